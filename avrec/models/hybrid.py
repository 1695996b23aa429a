"""The default hybrid: a low-rank linear item-to-item model with content.

Every solver serves the same form: score(u, i) = (weighted mean over j in H_u of P_j) . Q_i,
with ``history_vectors`` = [P, 1] and ``item_vectors`` = [Q, b], so serving needs numpy
only, a fresh history is folded in without retraining, and items without interactions
get P, Q from their content.

``closed`` (default): a content-regularised EASE solved with PyTorch linear algebra,

    G = X'X + content_prior * C C' + l2 * I      (items with interactions; C: content)
    B = I - G^-1 diag(1 / diag(G^-1))            (EASE: zero diagonal)

When users + content dims (r) are fewer than items, G = l2 I + W W' with W = [X', c C], and
Woodbury makes B, off its diagonal, exactly a rank-r product (the diagonal never matters:
a user's own items are not ranked); otherwise B is formed and factorised by randomised SVD.
Either way the factors are balanced and cut to rank ``dim``. Items without interactions get
P, Q by ridge regression from content, fitted on the items with interactions, with Q scaled
by ``cold_scale`` (< 1: new items do not crowd out well-evidenced ones in mixed lists; a
positive scale leaves how new items rank among themselves unchanged). Ranks the
way EASE does (shown in the tests), with content as extra evidence of item similarity.

``als``: implicit-feedback ALS (through ``implicit``, as the mf model) for the warm items'
factors: score(u, i) = x_u . y_i. Its memory grows with nnz + (users + items) x dim and its
time with nnz x dim per iteration, so it trains at platform sizes where the closed form's
dense items x items (or users x users) solve cannot. ``user_vectors`` are the trained x_u;
``history_vectors`` P = Y (Y'Y + reg I)^-1 fold a fresh history in linearly (the ALS user
solve without its confidence term: a positive rescaling of the mean leaves the ranking
unchanged). Items without interactions get y = W c from content, W by ridge regression
from content to the warm items' factors (as the closed form does), times ``cold_scale``.

``auto`` (default) picks closed when its dense solve is small: min(items with interactions,
users + content dims) <= ``closed_max``; else als. The choice and the reason are in
``info["solver"]`` and the model manifest.

``train.privacy.epsilon`` > 0 (``params["privacy"]``): the closed form runs on the user-level
DP release of :mod:`avrec.models.dp` instead of X: the noisy X'X over the items whose noisy
count clears the noise (dense path only: Woodbury needs the raw X), with the ridge raised by
the noise's spectral norm 2 sigma sqrt(m); the served popularity is the noisy counts; the
other items keep content-only item vectors and carry no taste in a history. ``als`` runs
private ALS (:mod:`avrec.models.dp_als`: noisy item steps started from the prepared
content, each user solved on the released items from their own history) over every item
whose noisy count clears the noise, the others handled the same way. ``auto`` picks closed
up to ``closed_max`` items (on MovieLens latest-small and the generated S1 log it scored
higher) and als above, where the Gram matrix could give only part of the catalogue a row.
``sgd`` fits on the raw interactions and is refused.

``sgd``: towers trained by gradient descent (AdamW, early stopping on a validation split):

    P_j = E_j + A(c_j)      history side: free id embedding + projected content
    Q_i = F_i + B(c_i)      target side, likewise;  b_i = f_i + w . c_i

masking a random part of each user's history and predicting it from the rest with a
softmax over items with training interactions; id embeddings are dropped per item at
random so the content towers learn to carry an item alone.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any, Iterator

import numpy as np

from .base import Progress, Recommender, fold_mean


SOLVERS = ("auto", "closed", "als", "sgd")
PROTECTED = ("the item-side model (history and item vectors, the content maps for new items, popularity): "
             "post-processing of the DP release; not protected: each user's own served list (user vectors fold "
             "in that user's full history; the artifact keeps their id and seen items to serve them)")


PRIVATE_SGD = ("train.privacy.epsilon > 0 works with the closed and als solvers (sgd fits on the raw interactions); "
               "set train.hybrid.solver=auto, closed or als")


def private_epsilon(params: dict[str, Any]) -> float:
    """``train.privacy.epsilon`` as passed in ``params["privacy"]`` (0: off)."""
    return float((params.get("privacy") or {}).get("epsilon") or 0.0)


def choose_solver(params: dict[str, Any], *, n_users: int, n_active: int, content_dim: int) -> tuple[str, str]:
    """(solver, why) for ``solver: auto``; an explicit solver is kept as given."""
    if params["solver"] != "auto":
        return params["solver"], "train.hybrid.solver"
    r = n_users + content_dim
    side = min(n_active, r)
    if side <= params["closed_max"]:
        return "closed", (f"auto: its dense solve is {side} x {side} (min of {n_active} items, {n_users} users + "
                          f"{content_dim} content dims) <= closed_max {params['closed_max']}")
    return "als", (f"auto: a closed form would solve {side} x {side} densely (> closed_max {params['closed_max']}); "
                   "ALS grows with the interactions instead")


def choose_private_solver(params: dict[str, Any], *, n_users: int, n_items: int) -> tuple[str, str]:
    """(solver, why) under ``train.privacy.epsilon`` > 0: closed or als (sgd is refused)."""
    from ..errors import ConfigError

    if params["solver"] == "sgd":
        raise ConfigError(PRIVATE_SGD)
    if params["solver"] != "auto":
        return params["solver"], "train.hybrid.solver, on the private release"
    if n_items <= params["closed_max"]:
        return "closed", (f"auto under train.privacy.epsilon > 0: {n_items} items <= closed_max {params['closed_max']}, "
                          "so each can get a row of the private item Gram matrix")
    return "als", (f"auto under train.privacy.epsilon > 0: {n_items} items > closed_max {params['closed_max']}: private "
                   "ALS (avrec.models.dp_als) fits every item whose count clears the noise")


def _holdout(seen, ratio: float, seed: int):
    """Split a CSR per user: (fit, held) with ``ratio`` of each user's items held (users with >= 3 only)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    coo = seen.tocoo()
    counts = np.diff(seen.indptr)
    order = np.lexsort((rng.random(coo.nnz), coo.row))
    starts = np.repeat(seen.indptr[:-1], counts)
    pos = np.arange(coo.nnz) - starts
    n_held = np.where(counts >= 3, np.floor(counts * ratio + rng.random(len(counts))), 0).astype(np.int64)
    held = np.zeros(coo.nnz, bool)
    held[order] = pos < np.repeat(n_held, counts)
    mk = lambda m: sp.csr_matrix((coo.data[m], (coo.row[m], coo.col[m])), shape=seen.shape)  # noqa: E731
    return mk(~held), mk(held)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run small LAPACK factorisations single-threaded: with threads competing for busy cores,
    a 700 x 700 SVD was measured at 13 s on 2 threads and 0.2 s on one."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _spd_inv(g):
    """The inverse of a symmetric positive definite torch matrix through its Cholesky factor:
    n^3 flops against LU's 2n^3 (5000 x 5000 float32 on 2 cores: 1.0 s against 2.5 s). A
    matrix that is not positive definite in float32 (a private Gram's noise can make it so)
    falls back to LU."""
    import torch

    low, info = torch.linalg.cholesky_ex(g)
    return torch.cholesky_inverse(low) if int(info) == 0 else torch.linalg.inv(g)


def _calibrated(c: np.ndarray, w: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The ridge map ``w`` (content ``c`` -> factors ``target``) rescaled so that its
    predictions on the fitted items have the targets' mean norm. A strong ridge shrinks
    predictions towards 0 as well as smoothing them; the shrinkage would leave new items
    unrecommendable in mixed lists whatever ``cold_scale`` says. Rescaled, ``ridge`` decides
    the direction of a new item's vector and ``cold_scale`` its size."""
    pred = np.linalg.norm(c @ w, axis=1).mean()
    return w * (float(np.linalg.norm(target, axis=1).mean()) / pred) if pred > 0 else w


class Hybrid(Recommender):
    name = "hybrid"
    factor_model = True

    def __init__(
        self, solver: str = "auto", dim: int = 384, l2: float = 200.0, content_prior: float = 30.0,
        ridge: float = 1.0, cold_scale: float = 0.5, epochs: int = 300, lr: float = 0.01, weight_decay: float = 0.0,
        batch_size: int = 512, negatives: int = 0, content_weight: float = 1.0, dropout: float = 0.3,
        patience: int = 20, mask_ratio: float = 0.25, content_hidden: int = 0, content_dim: int = 128,
        validation: float = 0.1, eval_k: int = 20, eval_every: int = 5, refit: bool = True, seed: int = 0,
        closed_max: int = 12000, als_factors: int = 64, als_iterations: int = 15, als_reg: float = 0.01,
        als_alpha: float = 10.0, als_warm_iterations: int = 5, device: str = "cpu", **params: Any,
    ):
        if solver not in SOLVERS:
            from ..errors import ConfigError

            raise ConfigError(f"train.hybrid.solver must be one of {', '.join(SOLVERS)}; got {solver!r}")
        params.update(closed_max=int(closed_max), als_factors=int(als_factors), als_iterations=int(als_iterations),
                      als_reg=float(als_reg), als_alpha=float(als_alpha), als_warm_iterations=int(als_warm_iterations))
        super().__init__(
            solver=solver, dim=int(dim), l2=float(l2), content_prior=float(content_prior), ridge=float(ridge),
            cold_scale=float(cold_scale), epochs=int(epochs), lr=float(lr), weight_decay=float(weight_decay),
            batch_size=int(batch_size), negatives=int(negatives), content_weight=float(content_weight),
            dropout=float(dropout), patience=int(patience), mask_ratio=float(mask_ratio),
            content_hidden=int(content_hidden), content_dim=int(content_dim), validation=float(validation),
            eval_k=int(eval_k), eval_every=int(eval_every), refit=bool(refit), seed=int(seed), **params,
        )
        self.device = device
        self.item_vectors: np.ndarray | None = None  # (n_items, dim + 1)
        self.history_vectors: np.ndarray | None = None  # (n_items, dim + 1), last column 1
        self.user_vectors: np.ndarray | None = None  # (n_users, dim + 1)
        self.projections_: dict[str, np.ndarray] = {}  # (D+1, dim+1) affine maps for new items
        self._prep: np.ndarray | None = None  # (D+1, content_dim) content preparation, while fitting
        self.als_: tuple[np.ndarray, np.ndarray] | None = None  # the raw ALS factors of the last fit (not saved)
        self.closed_: tuple[np.ndarray, np.ndarray] | None = None  # the closed form's warm (P, Q) of the last fit (not saved)

    # ------------------------------------------------------------------------------------
    def _fit(self, seen, content, *, progress: Progress, als_init: np.ndarray | None = None,
             als_given: tuple[np.ndarray, np.ndarray] | None = None, prep_cache: dict | None = None,
             keep_als: bool = False, closed_given: tuple[np.ndarray, np.ndarray] | None = None, **kw) -> None:
        """als_init: (n_items, als_factors) item factors the ALS solver starts from (the
        validation search's, so the final fit needs ``als_warm_iterations``, not
        ``als_iterations``); als_given: (user, item) factors already fitted on exactly
        ``seen`` with these ALS parameters (the search varying only the content side);
        prep_cache: see ``_prepare_content``; keep_als: keep the raw ALS factors in ``als_``, or
        the closed form's warm factors in ``closed_`` (the search reuses them; a final fit drops
        them: at S4 they are ~400 MB); closed_given: the closed form's (P, Q) of a fit on
        exactly ``seen`` and this content with these parameters but the ridge (the cold search
        then pays for the content map alone, not for the items x items solve)."""
        t0 = time.perf_counter()
        private, released = None, None
        if private_epsilon(self.params) > 0:
            solver, why = choose_private_solver(self.params, n_users=seen.shape[0], n_items=seen.shape[1])
            if solver == "closed":
                private = self._private_release(seen, progress)
                active = private.items
            else:
                released = self._private_als_release(seen, progress)
                active = released.kept
        else:
            active = np.flatnonzero(np.diff(seen.tocsc().indptr) > 0)
        c, self._prep = self._prepare_content(content, active, prep_cache)
        self.projections_ = {}
        if private is None and released is None:
            solver, why = choose_solver(self.params, n_users=seen.shape[0], n_active=len(active),
                                        content_dim=0 if c is None else c.shape[1])
        self.info["solver"] = {"chosen": solver, "reason": why}
        progress(f"hybrid: solver {solver} ({why})")
        if released is not None:
            self._fit_private_als(seen, c, content, released, progress=progress)
        elif solver == "closed":
            self._fit_closed(seen, c, content, progress=progress, private=private,
                             given=closed_given if private is None else None, keep=keep_als)
        elif solver == "als":
            self._fit_als(seen, c, content, progress=progress, init=als_init, given=als_given, keep=keep_als)
        else:
            self._fit_sgd(seen, c, content, progress=progress)
        self._prep = None
        self.info["fit_seconds"] = round(time.perf_counter() - t0, 3)

    def _private_release(self, seen, progress: Progress):
        """The DP release (:mod:`avrec.models.dp`) the closed form fits on under
        ``train.privacy.epsilon`` > 0; sets the private popularity and ``info["privacy"]``."""
        from . import dp

        p, priv = self.params, self.params["privacy"]
        stats = dp.release(seen, epsilon=float(priv["epsilon"]), delta=float(priv.get("delta") or 0.0),
                           max_items=int(priv.get("max_items_per_user") or 0), max_selected=p["closed_max"],
                           seed=p["seed"], noise_seed=priv.get("noise_seed"))
        self.popularity = stats.popularity()
        self.info["privacy"] = {**stats.info, "solver": "closed", "protected": PROTECTED}
        progress(f"hybrid: private release (epsilon {stats.info['epsilon']:g}, delta {stats.info['delta']:.3g}): "
                 f"{stats.info['max_items_per_user']['value']} items per user, {len(stats.items)} items in the "
                 f"Gram matrix, sigma {stats.sigma_gram:.3g} (Gram) / {stats.sigma_counts:.3g} (counts)")
        return stats

    def _private_als_release(self, seen, progress: Progress):
        """The first phase of private ALS (:mod:`avrec.models.dp_als`): the contribution bound and
        the item counts; sets the private popularity."""
        from .dp_als import PrivateALS

        priv = self.params["privacy"]
        released = PrivateALS(seen, epsilon=float(priv["epsilon"]), delta=float(priv.get("delta") or 0.0),
                              max_items=int(priv.get("max_items_per_user") or 0), seed=self.params["seed"],
                              noise_seed=priv.get("noise_seed"))
        self.popularity = released.popularity()
        return released

    def _fit_private_als(self, seen, c, raw, released, *, progress: Progress) -> None:
        """ALS on the private release: item steps started from the prepared content (public),
        then the hybrid's ALS export with the kept items as the warm ones."""
        p, priv = self.params, self.params["privacy"]
        # factors 0: as many as the prepared content has (content_dim, 128), which it starts from
        d = int(priv.get("factors") or 0) or (c.shape[1] if c is not None else p["als_factors"])
        start = c is not None and c.shape[1] >= d
        iterations = int(priv.get("iterations") or 0) or (1 if start else 3)
        x, y = released.fit(factors=d, iterations=iterations, reg=p["als_reg"], alpha=p["als_alpha"], init_items=c if start else None,
                            progress=progress)
        self.info["privacy"] = {**released.info, "solver": "als", "protected": PROTECTED}
        progress(f"hybrid: private ALS (epsilon {released.info['epsilon']:g}, delta {released.info['delta']:.3g}): "
                 f"{released.c} items per user, {len(released.kept)} items kept, {iterations} item "
                 f"step(s), sigma {released.info['sigma']['item_step']:.3g}")
        self._fit_als(seen, c, raw, progress=progress, given=(x, y), active=released.kept)
        # items the release could not tell from no interactions carry no taste into a history (as in
        # the private closed form); their item vectors come from content like a new upload's
        hist = self.history_vectors
        outside = np.ones(len(hist), bool)
        outside[released.kept] = False
        hist[outside, :-1] = 0.0

    def _fit_closed(self, seen, c, raw, *, progress: Progress, private=None,
                    given: tuple[np.ndarray, np.ndarray] | None = None, keep: bool = False) -> None:
        import torch

        p = self.params
        torch.manual_seed(p["seed"])
        n_items = seen.shape[1]
        active = np.flatnonzero(np.diff(seen.tocsc().indptr) > 0) if private is None else private.items
        m = len(active)
        xa = seen[:, active].tocsr()
        lam, beta = p["l2"], p["content_prior"]
        if private is not None:
            # the noise matrix's spectral norm is about 2 sigma sqrt(m) (the semicircle law): the
            # ridge grows by it, so the noisy G stays positive definite and the noise is damped
            lam = lam + 2.0 * private.sigma_gram * np.sqrt(m)
            self.info["privacy"]["l2_effective"] = round(float(lam), 3)
        if given is not None:  # the same factors, another content map (the cold search)
            pa, qa = given
            d = pa.shape[1]
            progress(f"hybrid: closed form over {m} items, rank {d}, reused (only the content map is refitted)")
        else:
            ca = None
            if c is not None and beta > 0:
                ca = torch.as_tensor(c[active], dtype=torch.float32)
            r = xa.shape[0] + (0 if ca is None else ca.shape[1])
            if private is None and r < m:
                # G = l2 I + W W' with W = [X', sqrt(content_prior) C] (m x r), so by Woodbury
                # G^-1 = (I - W K W') / l2 with K = (l2 I + W'W)^-1 (r x r): off its diagonal, EASE's
                # B is exactly the rank-r product W . (W K / (l2 diag(G^-1)))', and the diagonal never
                # matters because a user's own items are excluded from the ranking
                w = torch.as_tensor(xa.T.toarray(), dtype=torch.float32)
                if ca is not None:
                    w = torch.cat([w, np.sqrt(beta) * ca], dim=1)
                gram = w.T @ w + lam * torch.eye(r)
                with _one_thread():
                    k = _spd_inv(gram)
                wk = w @ k
                diag = (1.0 - (wk * w).sum(dim=1)) / lam
                left, right = w, wk / (lam * diag[:, None])
                # balanced rank-d factors of left . right': the R factors of both thin QRs come from
                # Cholesky of the r x r Gram matrices (GEMM-bound, cheaper than Householder QR), then
                # one r x r SVD
                jitter = 1e-6 * torch.eye(r, dtype=torch.float64)
                g1, g2 = (left.T @ left).double(), (right.T @ right).double()
                d = min(p["dim"], r)
                with _one_thread():
                    r1 = torch.linalg.cholesky(g1 + jitter * float(g1.diagonal().mean())).T  # left = Q1 r1
                    r2 = torch.linalg.cholesky(g2 + jitter * float(g2.diagonal().mean())).T
                    u, s, vh = torch.linalg.svd(r1 @ r2.T)
                    root = s[:d].sqrt()
                    # Q1 u = left r1^-1 u, so each side is one (m x r) . (r x d) product
                    lp = torch.linalg.solve_triangular(r1, u[:, :d] * root, upper=True).float()
                    rq = torch.linalg.solve_triangular(r2, vh[:d].T * root, upper=True).float()
                pa, qa = (left @ lp).numpy(), (right @ rq).numpy()
                s = s.float()
                kept = float((s[:d] ** 2).sum() / (s**2).sum())
            else:
                if private is None:
                    g = torch.as_tensor((xa.T @ xa).toarray(), dtype=torch.float32)
                else:  # the released noisy X'X: the raw interactions are not read past this point
                    g = torch.as_tensor(private.gram, dtype=torch.float32).clone()
                if ca is not None:
                    g += beta * (ca @ ca.T)  # content similarity as pseudo-interactions
                g.diagonal().add_(lam)
                inv = _spd_inv(g)
                del g
                b = inv / (-torch.diagonal(inv))[None, :]
                b.fill_diagonal_(0.0)
                d = min(p["dim"], m)
                u, s, v = torch.svd_lowrank(b, q=min(d + 10, m), niter=p.get("power_iters", 2))
                root = s[:d].sqrt()
                pa, qa = (u[:, :d] * root).numpy(), (v[:, :d] * root).numpy()
                kept = float((s[:d] ** 2).sum() / (b**2).sum())
            progress(f"hybrid: closed form over {m} items, rank {d} keeps {kept:.1%} of the energy")
        self.closed_ = (pa, qa) if keep else None
        n = n_items
        hist = np.hstack([np.zeros((n, d)), np.ones((n, 1))])
        item = np.zeros((n, d + 1))  # EASE has no item bias: last column 0
        if c is not None:
            # items without interactions: factors predicted from content (ridge, fitted on warm
            # items), folded with the content preparation into one affine map of the raw vector
            ca = c[active].astype(np.float64)
            with _one_thread():
                w = torch.linalg.solve(torch.as_tensor(ca.T @ ca + p["ridge"] * np.eye(ca.shape[1])),
                                       torch.as_tensor(ca.T @ np.hstack([pa, qa]))).numpy()
            wp, wq = _calibrated(ca, w[:, :d], pa), _calibrated(ca, w[:, d:], qa)
            self._set_projections(wp, wq * p["cold_scale"], np.zeros(w.shape[0]), 0.0)
            hist, item = self._cold_rows(raw)
        if private is not None:
            # items without a private Gram row carry no taste into a history: their content-predicted
            # history vectors (from a ridge over the few selected items) were measured to blur users'
            # vectors (MovieLens, epsilon 8: NDCG@10 0.06 with them, 0.15 without)
            hist[:, :d] = 0.0
        hist[active, :d], item[active, :d] = pa, qa
        self.history_vectors = hist.astype(np.float32)
        self.item_vectors = item.astype(np.float32)
        self.user_vectors = self._fold(seen)

    def _fit_als(self, seen, c, raw, *, progress: Progress, init: np.ndarray | None = None,
                 given: tuple[np.ndarray, np.ndarray] | None = None, keep: bool = False,
                 active: np.ndarray | None = None) -> None:
        """active: the warm items (default: those with interactions in ``seen``)."""
        from .mf import als_engine, fit_als

        p = self.params
        n = seen.shape[1]
        if active is None:
            active = np.flatnonzero(np.diff(seen.tocsc().indptr) > 0)
        t0 = time.perf_counter()
        if given is not None:
            x, y = given
            self.info["als"] = {"iterations": 0, "start": "given"}
        else:
            engine = als_engine(self.device)
            # implicit's CUDA build keeps its own factors on the device: it takes no start
            warm = (init is not None and init.shape == (n, p["als_factors"])
                    and not (engine == "implicit" and self.device.startswith("cuda")))
            iters = p["als_warm_iterations"] if warm else p["als_iterations"]
            x, y = fit_als(seen, factors=p["als_factors"], iterations=iters, reg=p["als_reg"], alpha=p["als_alpha"],
                           seed=p["seed"], device=self.device, init_items=init if warm else None)
            self.info["als"] = {"iterations": iters, "start": "validation search's item factors" if warm else "random",
                                "engine": engine}
            start = "from the search's item factors " if warm else ""
            progress(f"hybrid: ALS over {len(active)} items, {y.shape[1]} factors, {iters} iterations {start}in "
                     f"{time.perf_counter() - t0:.1f}s")
        self.als_ = (x, y) if keep else None
        d = y.shape[1]
        ya = y[active].astype(np.float64)
        g_inv = np.linalg.inv(ya.T @ ya + p["als_reg"] * np.eye(d))  # the linear fold-in's (Y'Y + reg I)^-1
        pa, qa = ya @ g_inv, ya
        hist = np.hstack([np.zeros((n, d)), np.ones((n, 1))])
        item = np.zeros((n, d + 1))
        if c is not None:
            ca = c[active].astype(np.float64)
            w = _calibrated(ca, np.linalg.solve(ca.T @ ca + p["ridge"] * np.eye(ca.shape[1]), ca.T @ qa), qa)  # content -> y
            self._set_projections(w @ g_inv, w * p["cold_scale"], np.zeros(w.shape[0]), 0.0)
            hist, item = self._cold_rows(raw)
        hist[active, :d], item[active, :d] = pa, qa
        self.history_vectors = hist.astype(np.float32, copy=False)
        self.item_vectors = item.astype(np.float32, copy=False)
        self.user_vectors = np.hstack([x, np.ones((x.shape[0], 1), np.float32)]).astype(np.float32)
        empty = np.diff(seen.indptr) == 0
        self.user_vectors[empty] = 0.0  # no history: nothing to go on

    def _set_projections(self, wp: np.ndarray, wq: np.ndarray, wb: np.ndarray, b0: float) -> None:
        """Cold items' vectors as affine maps of the raw content vector x (D,), stored as
        (D+1, d+1) matrices M with vector = [x, 1] @ M: history [x~ wp, 1], item [x~ wq, x~ wb + b0],
        where x~ = [x, 1] @ prep is the prepared content (centring, PCA, scaling; fitted on warm
        items only, so items without interactions change nothing in the model)."""
        prep = self._prep  # (D+1, k)
        e = np.zeros((prep.shape[0], 1))
        e[-1] = 1.0
        self.projections_ = {
            "history_projection": np.hstack([prep @ wp, e]),
            "content_projection": np.hstack([prep @ wq, (prep @ wb)[:, None] + b0 * e]),
        }

    def _cold_rows(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(history, item) vectors (n, d+1) float32 of every item from its raw content alone."""
        x = raw.astype(np.float32, copy=False)  # float32 products: 100k x 384 in float64 cost ~1 s per fit
        hp, cp = self.projections_["history_projection"], self.projections_["content_projection"]
        return x @ hp[:-1].astype(np.float32) + hp[-1].astype(np.float32), \
            x @ cp[:-1].astype(np.float32) + cp[-1].astype(np.float32)

    def projections(self) -> dict[str, np.ndarray]:
        """{content_projection, history_projection}: (D+1, d+1) affine maps from a raw content
        vector to the vectors of an item without interactions (exact; empty when not affine)."""
        return dict(self.projections_)

    def _fit_sgd(self, seen, c, raw, *, progress: Progress) -> None:
        p = self.params
        epochs = p["epochs"]
        if p["validation"] > 0 and p["patience"] > 0:
            fit, held = _holdout(seen, p["validation"], p["seed"])
            net, active, best_epoch, best = self._train(fit, c, epochs=epochs, held=held, progress=progress)
            self.info.update(best_epoch=best_epoch, validation_ndcg=best)
            progress(f"hybrid: best validation NDCG@{p['eval_k']} {best:.4f} at epoch {best_epoch}")
            if p["refit"]:
                # the held-out part is data too: retrain on everything for the chosen epochs
                net, active, _, _ = self._train(seen, c, epochs=max(best_epoch, 1), held=None, progress=progress)
        else:
            net, active, _, _ = self._train(seen, c, epochs=epochs, held=None, progress=progress)
        self._export(net, active, c, raw, seen)

    def _prepare_content(self, content: np.ndarray | None, active: np.ndarray,
                         cache: dict | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Centre, project on the top ``content_dim`` principal directions, scale to unit mean
        norm; statistics from the items with interactions (``active``) only. Returns the
        prepared content (n, k) float32 and the affine map (D+1, k) float64 that gives it.
        cache: a dict kept across fits on the same content (the validation search's), keyed by
        what the result depends on."""
        if content is None or content.shape[1] == 0 or self.params["content_weight"] <= 0:
            return None, None
        if cache is not None:
            import hashlib

            key = (id(content), content.shape, self.params["content_dim"],
                   json.dumps(self.params.get("modality_weights") or {}, sort_keys=True),
                   hashlib.blake2b(np.ascontiguousarray(active).tobytes(), digest_size=16).hexdigest())
            if key not in cache:
                cache.clear()  # one entry: a search holds one or two splits' worth at a time
                cache[key] = self._prepare_content(content, active)
            return cache[key]
        # float32 products, float64 statistics: at 100k items x 384 dims the float64 copies and
        # products took 5 s of a 19 s fit
        scale = self._content_scale(content.shape[1])
        x = content.astype(np.float32) * scale.astype(np.float32)[None, :]
        xa = x[active] if len(active) else x
        mu = xa.mean(axis=0, dtype=np.float64)
        proj = np.eye(x.shape[1])
        k = self.params["content_dim"]
        if 0 < k < x.shape[1]:
            from threadpoolctl import threadpool_limits

            xc = xa - mu.astype(np.float32)
            cov = (xc.T @ xc).astype(np.float64)
            del xc
            with threadpool_limits(1, "blas"):  # a D x D eigh: small LAPACK work runs best on one thread
                _, vecs = np.linalg.eigh(cov)  # numpy, not torch: the ALS path then never imports torch (~2 s)
            proj = vecs[:, ::-1][:, :k].copy()
        proj /= max(float(np.linalg.norm(xa @ proj.astype(np.float32) - (mu @ proj).astype(np.float32), axis=1).mean()), 1e-8)
        aff = np.vstack([proj, -mu @ proj])
        prepared = x @ aff[:-1].astype(np.float32) + aff[-1].astype(np.float32)
        aff[:-1] *= scale[:, None]  # so [raw, 1] @ aff gives ``prepared``
        return prepared, aff

    def _content_scale(self, dim: int) -> np.ndarray:
        """(D,) per-column factor: sqrt of ``modality_weights[m]`` over the fused vector's block of
        modality m (``content_blocks``, from the embeddings' fusion recipe; tuning chooses them)."""
        scale = np.ones(dim)
        weights, blocks = self.params.get("modality_weights") or {}, self.params.get("content_blocks") or []
        for b in blocks:
            if b["modality"] in weights and b["end"] <= dim:
                scale[b["start"]:b["end"]] = np.sqrt(float(weights[b["modality"]]))
        return scale

    def _train(self, seen, content, *, epochs: int, held, progress: Progress):
        """Train on the items with interactions in ``seen``; returns (net, active rows, best epoch, best score)."""
        import torch

        p = self.params
        torch.manual_seed(p["seed"])
        rng = np.random.default_rng(p["seed"])
        dev = torch.device(self.device)
        active = np.flatnonzero(np.diff(seen.tocsc().indptr) > 0)
        xa = seen[:, active].tocsr()  # users x active items
        c = None if content is None else content[active]
        net = _Net(len(active), c, dim=p["dim"], hidden=p["content_hidden"], content_weight=p["content_weight"]).to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        users = np.flatnonzero(np.diff(xa.indptr) >= 2)
        eval_users = None if held is None else np.flatnonzero(np.diff(held.indptr) > 0)
        best, best_epoch, best_state, bad = -1.0, 0, None, 0
        every = max(1, p["eval_every"])
        for epoch in range(1, epochs + 1):
            net.train()
            perm = rng.permutation(users)
            for s in range(0, len(perm), p["batch_size"]):
                loss = self._step_loss(net, xa[perm[s : s + p["batch_size"]]], rng, dev)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if held is None or (epoch % every and epoch != epochs):
                continue
            score = self._validate(net, xa, held[:, active], eval_users, dev)
            if score > best + 1e-5:
                best, best_epoch, bad = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                bad += every
            progress(f"hybrid: epoch {epoch} loss {float(loss.detach()):.4f} validation NDCG@{p['eval_k']} {score:.4f}")
            if bad >= p["patience"]:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        return net, active, best_epoch or epochs, best

    def _step_loss(self, net, sub, rng, dev):
        """Softmax loss of predicting a random part of each history from the rest. ``sub``: CSR (b, m)."""
        import torch
        import torch.nn.functional as fn

        p = self.params
        b, m = sub.shape
        counts = np.diff(sub.indptr)
        row = np.repeat(np.arange(b), counts)
        r = rng.random(sub.nnz)
        target = r < p["mask_ratio"]
        # every user predicts at least one item and keeps at least one as input
        order = np.lexsort((r, row))
        starts = sub.indptr[:-1]
        target[order[starts]] = True
        target[order[starts + counts - 1]] = False
        w = sub.data.astype(np.float32)
        inp = ~target
        in_idx = torch.as_tensor(sub.indices[inp].astype(np.int64), device=dev)
        in_w = torch.as_tensor(w[inp], device=dev)
        offsets = torch.as_tensor(np.r_[0, np.cumsum(np.bincount(row[inp], minlength=b))[:-1]].astype(np.int64), device=dev)
        wsum = torch.as_tensor(np.bincount(row[inp], weights=w[inp], minlength=b).astype(np.float32), device=dev)
        tw = torch.zeros((b, m), device=dev)
        tw[torch.as_tensor(row[target], device=dev), torch.as_tensor(sub.indices[target].astype(np.int64), device=dev)] = torch.as_tensor(w[target], device=dev)
        P, Q, bias = net.towers(drop_id=p["dropout"])
        u = fn.embedding_bag(in_idx, P, offsets, mode="sum", per_sample_weights=in_w) / wsum[:, None].clamp_min(1e-8)
        neg = p["negatives"]
        if 0 < neg < m:
            # sampled softmax: the batch's targets plus ``neg`` shared random items
            cand = torch.unique(torch.cat([torch.as_tensor(sub.indices[target].astype(np.int64), device=dev),
                                           torch.randint(m, (neg,), device=dev)]))
            logits = u @ Q[cand].T + bias[cand]
            tw = tw[:, cand]
        else:
            logits = u @ Q.T + bias
        logp = torch.log_softmax(logits, dim=1)
        return (-(tw * logp).sum(dim=1) / tw.sum(dim=1).clamp_min(1e-8)).mean()

    def _validate(self, net, xa, held, eval_users, dev) -> float:
        import torch

        from ..metrics import ndcg_at_k

        net.eval()
        with torch.no_grad():
            P, Q, b = (t.cpu().numpy() for t in net.towers(drop_id=0.0))
        h = xa[eval_users]
        u = np.asarray(h @ P) / np.maximum(np.asarray(h.sum(axis=1)), 1e-8)
        scores = u @ Q.T + b
        rr = np.repeat(np.arange(len(eval_users)), np.diff(h.indptr))
        scores[rr, h.indices] = -np.inf
        return ndcg_at_k(scores, held[eval_users], self.params["eval_k"])

    def _export(self, net, active, content, raw, seen) -> None:
        """Vectors for every item: trained id parts for active items, content alone for the rest
        (through the exact affine maps when the content towers are linear)."""
        import torch

        net.eval()
        n = seen.shape[1]
        p = self.params
        d, cs = p["dim"], p["cold_scale"]
        P, Q, b = np.zeros((n, d), np.float32), np.zeros((n, d), np.float32), np.zeros(n, np.float32)
        with torch.no_grad():
            Pa, Qa, ba = (t.cpu().numpy() for t in net.towers(drop_id=0.0))
            if content is not None and not p["content_hidden"]:
                cw = net.cw
                wp = cw * net.A.weight.detach().cpu().numpy().T.astype(np.float64)
                wq = cw * net.B.weight.detach().cpu().numpy().T.astype(np.float64)
                wb = net.w.weight.detach().cpu().numpy()[0].astype(np.float64)
                self._set_projections(wp, wq * cs, wb * cs, float(net.w.bias.detach().cpu().numpy()[0]) * cs)
                hist, item = self._cold_rows(raw)
                P[:], Q[:], b[:] = hist[:, :d], item[:, :d], item[:, d]
            elif content is not None:
                Pc, Qc, bc = (t.cpu().numpy() for t in net.content_towers(torch.as_tensor(content)))
                P[:], Q[:], b[:] = Pc, Qc * cs, bc * cs
        P[active], Q[active], b[active] = Pa, Qa, ba
        self.history_vectors = np.hstack([P, np.ones((n, 1), np.float32)]).astype(np.float32)
        self.item_vectors = np.hstack([Q, b[:, None]]).astype(np.float32)
        self.user_vectors = self._fold(seen)

    def _fold(self, history) -> np.ndarray:
        u = fold_mean(history, self.history_vectors)
        u[:, -1] = 1.0  # an empty history scores by the item bias alone
        return u

    # ------------------------------------------------------------------------------------
    def score(self, user_rows) -> np.ndarray:
        self._check_fitted()
        return self.user_vectors[np.asarray(user_rows)] @ self.item_vectors.T

    def score_history(self, history) -> np.ndarray:
        return self._fold(history) @ self.item_vectors.T

    def factors(self) -> dict[str, np.ndarray]:
        return {"item_vectors": self.item_vectors, "user_vectors": self.user_vectors, "history_vectors": self.history_vectors}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**self.factors(), **self.projections_}

    def _restore(self, a) -> None:
        self.item_vectors, self.user_vectors, self.history_vectors = a["item_vectors"], a["user_vectors"], a["history_vectors"]
        self.projections_ = {k: a[k] for k in ("content_projection", "history_projection") if k in a}


def _Net(n_items: int, content: np.ndarray | None, *, dim: int, hidden: int, content_weight: float):
    """The towers as a torch module (built lazily so importing this file needs no torch).
    ``content``: (n_items, D) prepared content of the trained items, or None."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.E = nn.Parameter(torch.randn(n_items, dim) * 0.01)
            self.F = nn.Parameter(torch.randn(n_items, dim) * 0.01)
            self.f = nn.Parameter(torch.zeros(n_items))
            self.cw = content_weight
            if content is not None:
                self.register_buffer("c", torch.as_tensor(content))
                d_in = content.shape[1]
                mk = (lambda: nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, dim))) if hidden else (lambda: nn.Linear(d_in, dim, bias=False))
                self.A, self.B = mk(), mk()
                self.w = nn.Linear(d_in, 1)
            else:
                self.c = None

        def content_towers(self, c):
            """(P, Q, b) from content alone for content rows ``c`` (k, D)."""
            return self.cw * self.A(c), self.cw * self.B(c), self.w(c).squeeze(1)

        def towers(self, *, drop_id: float):
            """P, Q (n, dim) and b (n,) of the trained items; id parts dropped per item at random."""
            E, F, f = self.E, self.F, self.f
            if self.c is None:
                return E, F, f
            if drop_id > 0:
                E = E * (torch.rand(n_items, 1, device=E.device) >= drop_id)
                keep = (torch.rand(n_items, device=E.device) >= drop_id).float()
                F = F * keep[:, None]
                f = f * keep
            Pc, Qc, bc = self.content_towers(self.c)
            return E + Pc, F + Qc, f + bc

    return Net()
