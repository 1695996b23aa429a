"""Private alternating least squares: the hybrid's ``als`` solver under ``train.privacy.epsilon``.

The closed form's private release (:mod:`avrec.models.dp`) is one noisy items x items Gram
matrix over at most ``closed_max`` items, so at platform sizes it covers a sliver of the
catalogue. This is DP-ALS in the billboard model of Chien et al. (2021, "Private Alternating
Least Squares: practical private matrix completion with tighter rates", ICML): the item
factors are released; each user's factors are solved from the released item factors and that
user's own full history, which nobody else sees, so only the item step needs noise.

One iteration:

1. **User step** (not a release): every user's exact implicit-feedback ALS solve (Hu, Koren &
   Volinsky 2008; confidence 1 + alpha * weight, target 1 on interactions) on the current item
   factors, over their whole history, through ``implicit``'s ``recalculate_user``.
2. **Clip**: each user vector is scaled to unit norm (a user's ranking is unchanged by a
   positive scale; every user then weighs the same in the item step, and the bound below holds
   whatever the data).
3. **Item step** (the release): over the contribution-bounded, binarised interactions X_b (at
   most c items per user, :func:`avrec.models.dp.bound_contributions`) it releases b_i =
   sum_{u in i} u for every kept item i and once G = sum_u u u'. One user's contribution has L2
   norm at most sqrt(c + 1) (<= 1 per item in b, 1 in G: the Frobenius norm of a unit vector's
   outer product), so both are one Gaussian mechanism with that sensitivity. Item factors are
   then the least-squares solve of X_b on the users (post-processing):

       (G + lambda I) y_i = b_i,   lambda = reg + 2 sigma sqrt(d)

   the ridge raised by the noise's spectral norm (semicircle law), as in the private closed
   form, so the noisy G stays positive definite. This is the ALS item step with confidence 1
   on kept interactions, not 1 + alpha: weighting them needs the per-item Gram matrices
   sum_{u in i} u u' as well, whose noise then needs a ridge 1 + alpha times larger. On the
   generated logs of benchmarks/scale_data.py (S1, epsilon 1-8, 8-32 factors, 1-3 iterations)
   the unweighted step scored higher every time (S1, epsilon 8, one iteration, 32 factors:
   NDCG@10 0.134 unweighted against 0.130 at confidence 2 and 0.121 at 11).
4. Items whose released count is under ``POPULARITY_Z`` noise standard deviations (the items
   the release cannot tell from no interactions) get factors 0: the hybrid gives them
   content-only vectors, as it does new uploads.

The budget (mu-GDP, composed as in :mod:`avrec.models.dp`): ``ACTIVITY_SHARE`` for choosing c
when ``max_items_per_user`` is 0 (statistic "counts": the item step's signal grows with the
kept interactions, its noise with sqrt(c)), ``COUNT_SHARE`` for the item counts (served
popularity, the items kept), the rest split evenly over the ``iterations`` item steps. The
first user step starts from public information only: ``init_items`` (the hybrid passes its
prepared content, which the DP module treats as public) or seeded random factors. From
content, one item step is best: each further one halves every step's share of the budget,
and on S1 and S2 (epsilon 1-8) one step scored above two or three every time; from random
factors the first step only finds a basis, and three scored above one (S1, epsilon 8: 0.093
against 0.062). The noise is fresh OS entropy unless ``noise_seed`` is set (tests and
benchmarks only).

Cost per iteration: the user step is ``implicit``'s; the item step is one sparse product X_b' U
and one d x d solve: O(nnz d + items d^2).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from . import dp



class PrivateALS:
    """The release in two phases, so that the hybrid can prepare its content on the kept items
    before the item steps start from it.

    ``PrivateALS(seen, ...)`` draws the contribution bound and releases the item counts
    (``kept``, ``popularity()``); ``fit(...)`` runs the ``iterations`` item steps (each a share
    of the budget) and returns (user factors
    (n_users, d), item factors (n_items, d)) float32, item factors 0 outside ``kept``. ``info``
    is the manifest's record of both.

    seen: (n_users, n_items) CSR of weights. max_items: the contribution bound c (0: chosen from
    a noisy activity histogram). seed: the
    per-user subsets and a random start. noise_seed: None draws the noise from OS entropy; an
    int makes it reproducible (tests and benchmarks only: a known seed lets anyone subtract it).
    """

    def __init__(self, seen, *, epsilon: float, delta: float, max_items: int, seed: int,
                 noise_seed: int | None = None):
        import scipy.sparse as sp

        self.seen = sp.csr_matrix(seen, dtype=np.float32)
        n_users, n_items = self.seen.shape
        self.seed, self.noise_seed = int(seed), noise_seed
        if delta <= 0:
            delta = dp.default_delta(n_users=n_users)
        self.mu = dp.gaussian_mu(epsilon=epsilon, delta=delta)
        self.rng = np.random.default_rng(noise_seed)
        shares = {"activity": dp.ACTIVITY_SHARE if max_items <= 0 else 0.0, "counts": dp.COUNT_SHARE}
        shares["item_steps"] = 1.0 - shares["activity"] - shares["counts"]
        self.shares = shares
        self.c, bound = dp.contribution_bound(self.seen, max_items=max_items, mu=self.mu * math.sqrt(shares["activity"]),
                                              rng=self.rng, statistic="counts", share=shares["activity"])
        self.bounded = dp.bound_contributions(self.seen, max_items=self.c, seed=self.seed)
        sigma_c = dp.count_sensitivity(max_items=self.c) / (self.mu * math.sqrt(shares["counts"]))
        self.counts = np.asarray(self.bounded.sum(axis=0), np.float64).ravel() + self.rng.normal(0.0, sigma_c, n_items)
        self.threshold = dp.POPULARITY_Z * sigma_c
        self.kept = np.flatnonzero(self.counts >= self.threshold)
        self.info: dict[str, Any] = {
            "epsilon": float(epsilon), "delta": float(delta), "mu_gdp": self.mu, "max_items_per_user": bound,
            "mechanism": "Gaussian (analytic calibration, Balle & Wang 2018), releases composed in Gaussian DP "
                         "(Dong, Roth & Su 2022); DP-ALS in the billboard model (Chien et al. 2021)",
            "neighbours": "user-level: add or remove all of one user's interactions",
            "shares_of_mu2": shares,
            "sigma": {"counts": sigma_c},
            "sensitivity": {"counts": dp.count_sensitivity(max_items=self.c)},
            "kept_items": {"count": len(self.kept), "rule": f"noisy count >= {dp.POPULARITY_Z:g} x sigma_counts "
                                                            f"({self.threshold:.3g})"},
            "popularity": f"noisy counts, 0 below {dp.POPULARITY_Z:g} x sigma_counts ({self.threshold:.3g})",
            "weights": "item step: binarised, at most max_items_per_user per user; user step: each user's own "
                       "full history (not released)",
            "interactions_kept": int(self.bounded.nnz),
            "noise": "fresh OS entropy" if noise_seed is None else f"seeded ({noise_seed}; reproducible, not private)",
        }

    def popularity(self) -> np.ndarray:
        """(n_items,) float32 served popularity: noisy counts, 0 under ``threshold``."""
        return dp.served_popularity(self.counts, self.threshold)

    def fit(self, *, factors: int, iterations: int, reg: float, alpha: float, init_items: np.ndarray | None = None,
            progress: Callable[[str], None] = lambda _m: None) -> tuple[np.ndarray, np.ndarray]:
        """Run the item steps; init_items: (n_items, k) public vectors the first user step starts
        from (k >= ``factors``: their top principal directions; else seeded random factors)."""
        n_items = self.seen.shape[1]
        d, iterations = int(factors), max(int(iterations), 1)
        sens = math.sqrt(self.c + 1)
        sigma = sens * math.sqrt(iterations) / (self.mu * math.sqrt(self.shares["item_steps"]))
        lam = float(reg) + 2.0 * sigma * math.sqrt(d)
        start = _from_content(init_items, n_items, d)
        y = _start(init_items if start else None, n_items, d, self.seed)
        outside = np.ones(n_items, bool)
        outside[self.kept] = False
        y[outside] = 0.0
        conf = self.seen.copy()
        conf.data = 1.0 + alpha * conf.data
        xbt = self.bounded.T.tocsr()[self.kept]
        for it in range(iterations):
            ts = time.perf_counter()
            u = unit_rows(user_step(conf, y, reg=reg))
            b = np.asarray(xbt @ u, np.float64) + self.rng.normal(0.0, sigma, (len(self.kept), d))
            g = u.T.astype(np.float64) @ u + dp.symmetric_noise(d, sigma=sigma, rng=self.rng)
            y = np.zeros((n_items, d), np.float32)
            y[self.kept] = np.linalg.solve(g + lam * np.eye(d), b.T).T
            progress(f"hybrid: private ALS item step {it + 1}/{iterations} in {time.perf_counter() - ts:.1f}s")
        self.info.update(iterations=iterations, factors=d, l2_effective=round(lam, 3),
                         start="public content (its top principal directions)" if start else "seeded random factors")
        self.info["sigma"]["item_step"] = sigma
        self.info["sensitivity"]["item_step"] = sens
        return user_step(conf, y, reg=reg), y


def user_step(conf, items: np.ndarray, *, reg: float) -> np.ndarray:
    """(n_users, d) float32 exact ALS user factors for confidence CSR ``conf`` (values 1 + alpha w)
    on item factors ``items`` (n_items, d), through ``implicit``'s batched Cholesky solve."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    y = np.ascontiguousarray(items, np.float32)
    with threadpool_limits(1, "blas"):  # implicit parallelises over users itself
        model = AlternatingLeastSquares(factors=y.shape[1], regularization=float(reg), alpha=1.0)
        model.item_factors = y
        return np.asarray(model.recalculate_user(np.arange(conf.shape[0]), conf), np.float32)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` with every nonzero row scaled to L2 norm 1 (zero rows stay 0)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def _start(init: np.ndarray | None, n_items: int, d: int, seed: int) -> np.ndarray:
    """(n_items, d) float32 item factors to start from: the top ``d`` principal directions of the
    public ``init`` vectors, scaled to unit mean norm, or seeded random ones."""
    if init is not None:
        z = init.astype(np.float64) - init.mean(axis=0, dtype=np.float64)
        _, vecs = np.linalg.eigh(z.T @ z)
        y = z @ vecs[:, ::-1][:, :d]
        scale = float(np.linalg.norm(y, axis=1).mean()) or 1.0
        return (y / scale).astype(np.float32)
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_items, d)) / math.sqrt(d)).astype(np.float32)


def _from_content(init: np.ndarray | None, n_items: int, d: int) -> bool:
    return init is not None and init.shape[0] == n_items and init.shape[1] >= d
