"""User-level differential privacy for the statistics the hybrid's closed form fits on.

``train.privacy.epsilon`` > 0 makes everything the model shares across users an (epsilon,
delta)-differentially private function of the interactions, with *user-level* neighbours:
two data sets differ by adding or removing every interaction of one user. The pipeline:

1. **Contribution bound.** Each user keeps at most ``c`` = ``max_items_per_user`` of their
   items (a uniformly random subset, seeded by ``runtime.seed``), binarised to weight 1
   (:func:`bound_contributions`). One user's row x then has <= c ones.
2. **Activity histogram** (only when ``max_items_per_user`` is 0). ``c`` is not chosen from
   the raw data (that would leak): a noisy histogram of user activity over powers of two
   (sensitivity 1) is released with ``ACTIVITY_SHARE`` of the budget and ``c`` is chosen from
   it (:func:`choose_bound`). With ``max_items_per_user`` set, that share goes to the others.
3. **Item counts** (popularity, sensitivity ||x||_2 <= sqrt(c)), released with ``COUNT_SHARE``.
   They are the served popularity (the popular fallback, ``popularity`` in the index; counts
   under ``POPULARITY_Z`` of their noise std are served as 0, "no interactions") and they
   select the items the Gram matrix is released over: those whose noisy count is at least
   ``SELECT_Z`` noise standard deviations of the Gram entries (a row whose diagonal is below the
   noise is noise), at most ``max_selected`` of them (the closed form's dense solve bound), the
   highest first. The popular model releases the counts alone, with the whole budget.
4. **Item Gram matrix** X'X over the selected items: its upper triangle with the diagonal is
   released (the lower one is its mirror, so releasing it again would add nothing); one
   user's contribution there has L2 norm sqrt(c (c + 1) / 2) (c diagonal ones and c (c - 1) / 2
   pairs, each <= 1 with weights in [0, 1]). The noise is symmetric: N(0, sigma^2) per entry on
   and above the diagonal, mirrored below (:func:`symmetric_noise`).

Calibration: every release is a Gaussian mechanism. A Gaussian mechanism of sensitivity Delta
and noise sigma is mu-GDP with mu = Delta / sigma; adaptive releases compose to
sqrt(sum mu_i^2)-GDP (Dong, Roth & Su 2022, "Gaussian differential privacy", Cor. 3.3), and
mu-GDP is exactly (epsilon, delta(epsilon))-DP with Balle & Wang's (2018, "Improving the
Gaussian mechanism", Thm. 8) delta(epsilon) = Phi(-epsilon/mu + mu/2) - e^epsilon
Phi(-epsilon/mu - mu/2). :func:`gaussian_mu` inverts that for the whole budget (the analytic
Gaussian mechanism: valid for every epsilon > 0, unlike the classic sigma = Delta
sqrt(2 ln(1.25/delta)) / epsilon, which holds for epsilon < 1 only and is kept as
:func:`classic_sigma` for reference); the shares split mu^2. The noise is drawn from fresh OS
entropy, not ``runtime.seed``: anyone who knew a fixed seed could subtract it.

``delta`` 0 means 1 / users^1.1 (:func:`default_delta`); the number of users is treated as
public, as is the item catalogue (the embeddings) and the content vectors.

What this protects is the item-side model: every item's history and item vectors, the content
maps for new items and the popularity are post-processing of the releases above (with public
content), so publishing them is (epsilon, delta)-DP. What it does not: a user's own served
list. As in McSherry & Mironov (2009, "Differentially private recommender systems"), each
user's vector is their own full history folded into the private item side, and the model
artifact keeps each user's id and seen items to serve them; those are that user's own data and
are not private against whoever holds the artifact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ACTIVITY_SHARE = 0.05  # of mu^2: the activity histogram that chooses c (max_items_per_user 0 only)
COUNT_SHARE = 0.15  # of mu^2: the item counts (popularity, item selection)
SELECT_Z = 3.0  # items with a noisy count >= SELECT_Z * sigma of the Gram entries get a Gram row
POPULARITY_Z = 3.0  # noisy counts below POPULARITY_Z * their sigma are served as popularity 0
MIN_SELECTED = 2  # at least this many items (the highest noisy counts) are always selected
BOUND_CANDIDATES = tuple(int(v) for v in np.unique(np.round(2.0 ** np.arange(0, 12.01, 0.25))))  # 1 .. 4096


def gaussian_delta(*, epsilon: float, mu: float) -> float:
    """The smallest delta for which a Gaussian mechanism with sensitivity / sigma = ``mu`` is
    (``epsilon``, delta)-DP (Balle & Wang 2018, Thm. 8)."""
    from scipy.special import log_ndtr, ndtr

    a = -epsilon / mu
    return float(ndtr(a + mu / 2) - math.exp(epsilon + log_ndtr(a - mu / 2)))


def gaussian_mu(*, epsilon: float, delta: float) -> float:
    """The largest mu = sensitivity / sigma for which the Gaussian mechanism is (``epsilon``,
    ``delta``)-DP: the analytic Gaussian mechanism, by bisection on :func:`gaussian_delta`
    (increasing in mu). epsilon > 0, 0 < delta < 1."""
    if not (epsilon > 0 and math.isfinite(epsilon)) or not 0 < delta < 1:
        raise ValueError(f"need a finite epsilon > 0 and 0 < delta < 1; got epsilon {epsilon}, delta {delta}")
    lo, hi = 1e-8, 1.0
    while gaussian_delta(epsilon=epsilon, mu=hi) < delta:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if gaussian_delta(epsilon=epsilon, mu=mid) < delta:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-12:
            break
    return lo


def analytic_sigma(*, epsilon: float, delta: float, sensitivity: float) -> float:
    """Noise std of the analytic Gaussian mechanism for an L2 ``sensitivity``."""
    return sensitivity / gaussian_mu(epsilon=epsilon, delta=delta)


def classic_sigma(*, epsilon: float, delta: float, sensitivity: float) -> float:
    """The classic calibration sensitivity * sqrt(2 ln(1.25 / delta)) / epsilon (Dwork & Roth
    2014, Thm. A.1): valid for epsilon < 1 only; for reference (releases use the analytic one)."""
    if not 0 < epsilon < 1:
        raise ValueError(f"the classic Gaussian calibration holds for 0 < epsilon < 1 only; got {epsilon}")
    return sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def default_delta(*, n_users: int) -> float:
    """delta for ``train.privacy.delta`` 0: 1 / n_users^1.1 (below 1 / n, as DP asks)."""
    return 1.0 / max(n_users, 2) ** 1.1


def gram_sensitivity(*, max_items: int) -> float:
    """L2 norm bound of one user's contribution to the upper triangle (with the diagonal) of
    X'X when the user holds <= ``max_items`` weights in [0, 1]: sqrt(c (c + 1) / 2)."""
    return math.sqrt(max_items * (max_items + 1) / 2)


def count_sensitivity(*, max_items: int) -> float:
    """L2 norm bound of one user's contribution to the item counts: sqrt(c)."""
    return math.sqrt(max_items)


def bound_contributions(x, *, max_items: int, seed: int):
    """(n_users, n_items) CSR ``x`` -> a float32 CSR of the same shape where each row keeps at
    most ``max_items`` of its positive entries (a uniformly random subset, seeded), set to 1."""
    import scipy.sparse as sp

    x = sp.csr_matrix(x)
    coo = x.tocoo()
    pos = coo.data > 0
    row, col = coo.row[pos], coo.col[pos]
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(row)), row))  # a random order within each row
    row, col = row[order], col[order]
    starts = np.searchsorted(row, row, side="left")
    keep = (np.arange(len(row)) - starts) < max_items
    out = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (row[keep], col[keep])), shape=x.shape)
    out.sort_indices()
    return out


def symmetric_noise(m: int, *, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """(m, m) float32 symmetric Gaussian noise: N(0, sigma^2) on and above the diagonal,
    mirrored below."""
    z = rng.standard_normal((m, m), dtype=np.float32)
    z *= np.float32(sigma)
    iu = np.triu_indices(m, 1)
    z[(iu[1], iu[0])] = z[iu]
    return z


def activity_histogram(x) -> np.ndarray:
    """(31,) users per activity bucket [2^k, 2^(k+1)) of CSR ``x`` (rows without items: none)."""
    n = np.diff(x.indptr)
    n = n[n > 0]
    return np.bincount(np.minimum(np.floor(np.log2(n)).astype(np.int64), 30), minlength=31).astype(np.float64)


def choose_bound(hist: np.ndarray, *, statistic: str = "gram", candidates: tuple[int, ...] = BOUND_CANDIDATES) -> int:
    """The contribution bound c that maximises a signal-to-noise proxy of the released
    ``statistic``, from a (noisy) activity histogram ``hist`` (31,) over [2^k, 2^(k+1)),
    r_k = 2^(k + 1/2) standing for its users' activity. "gram": a user with n items keeps a
    share min(1, (c / n)^2) of their item pairs, so the pair signal is sum_k hist_k min(1,
    (c / r_k)^2) against noise growing with the sensitivity sqrt(c (c + 1) / 2). "counts": the
    kept interactions sum_k hist_k min(r_k, c) against sqrt(c). Post-processing only."""
    h = np.maximum(np.asarray(hist, np.float64), 0.0)
    r = 2.0 ** (np.arange(len(h)) + 0.5)
    best, best_c = -1.0, int(candidates[0])
    for c in candidates:
        if statistic == "gram":
            snr = float((h * np.minimum(1.0, (c / r) ** 2)).sum()) / gram_sensitivity(max_items=c)
        else:
            snr = float((h * np.minimum(r, c)).sum()) / count_sensitivity(max_items=c)
        if snr > best:
            best, best_c = snr, int(c)
    return best_c


def contribution_bound(x, *, max_items: int, mu: float, rng: np.random.Generator, statistic: str,
                       share: float) -> tuple[int, dict[str, Any]]:
    """(c, its manifest record): ``max_items`` when set (> 0), else chosen by :func:`choose_bound`
    from a noisy activity histogram of CSR ``x`` released as a ``mu``-GDP Gaussian mechanism
    (sensitivity 1: one user sits in one bucket), ``share`` being its part of the budget."""
    if max_items > 0:
        return int(max_items), {"value": int(max_items), "chosen": "train.privacy.max_items_per_user"}
    hist = activity_histogram(x) + rng.normal(0.0, 1.0 / mu, 31)
    hist[hist < 3.0 / mu] = 0.0  # buckets within 3 sigma of empty: noise, not users
    c = choose_bound(hist, statistic=statistic)
    return c, {"value": c, "chosen": (f"from a noisy activity histogram (sigma {1.0 / mu:.3g}, {share:.0%} of mu^2, "
                                      "buckets under 3 sigma dropped), maximising the signal-to-noise proxy of "
                                      "choose_bound")}


def served_popularity(counts: np.ndarray, threshold: float) -> np.ndarray:
    """(n_items,) float32 popularity served from noisy ``counts``: 0 below ``threshold`` (items not
    told apart from no interactions, shown as such)."""
    return np.where(counts >= threshold, np.maximum(counts, 0.0), 0.0).astype(np.float32)


@dataclass
class PrivateStats:
    """What :func:`release` publishes: everything the private closed form uses."""

    counts: np.ndarray  # (n_items,) float64 noisy item counts of the bounded data
    items: np.ndarray  # (m,) int64 item rows selected for the Gram matrix (highest noisy count first)
    gram: np.ndarray  # (m, m) float32 noisy symmetric X'X over ``items``
    sigma_gram: float
    sigma_counts: float
    threshold: float  # noisy counts below this are served as popularity 0
    info: dict[str, Any] = field(default_factory=dict)

    def popularity(self) -> np.ndarray:
        """(n_items,) float32 served popularity: noisy counts, 0 below ``threshold`` (items not
        told apart from no interactions, shown as such)."""
        return served_popularity(self.counts, self.threshold)


def release(seen, *, epsilon: float, delta: float, max_items: int, max_selected: int, seed: int,
            noise_seed: int | None = None) -> PrivateStats:
    """The (``epsilon``, ``delta``) user-level DP release of the item counts and item Gram
    matrix of ``seen`` (n_users, n_items) CSR, as the module docstring describes.

    max_items: the contribution bound c (0: chosen from a noisy activity histogram).
    max_selected: most items given a Gram row; 0: no Gram matrix (counts only, with the whole
    budget but the activity share: the popular model). seed: the per-user subsets. noise_seed: None
    (the default) draws the noise from OS entropy; an int makes it reproducible (tests and
    benchmarks only: a known seed would let anyone subtract the noise).
    """
    import scipy.sparse as sp

    n_users, n_items = seen.shape
    if delta <= 0:
        delta = default_delta(n_users=n_users)
    mu = gaussian_mu(epsilon=epsilon, delta=delta)
    rng = np.random.default_rng(noise_seed)
    shares = {"activity": ACTIVITY_SHARE if max_items <= 0 else 0.0}
    if max_selected > 0:
        shares["counts"] = COUNT_SHARE
        shares["gram"] = 1.0 - sum(shares.values())
    else:
        shares["counts"] = 1.0 - shares["activity"]
    info: dict[str, Any] = {"epsilon": float(epsilon), "delta": float(delta), "mu_gdp": mu}
    x = sp.csr_matrix(seen)
    max_items, info["max_items_per_user"] = contribution_bound(
        x, max_items=max_items, mu=mu * math.sqrt(shares["activity"]), rng=rng,
        statistic="gram" if max_selected > 0 else "counts", share=shares["activity"])
    xb = bound_contributions(x, max_items=max_items, seed=seed)
    sigma_c = count_sensitivity(max_items=max_items) / (mu * math.sqrt(shares["counts"]))
    counts = np.asarray(xb.sum(axis=0), np.float64).ravel() + rng.normal(0.0, sigma_c, n_items)
    sigma = {"counts": sigma_c}
    sensitivity = {"counts": count_sensitivity(max_items=max_items)}
    items, gram, sigma_g = np.zeros(0, np.int64), np.zeros((0, 0), np.float32), 0.0
    if max_selected > 0:
        sigma_g = gram_sensitivity(max_items=max_items) / (mu * math.sqrt(shares["gram"]))
        cut = SELECT_Z * sigma_g
        m = int(min(max(int((counts >= cut).sum()), MIN_SELECTED), max_selected, n_items))
        items = np.sort(np.argsort(-counts, kind="stable")[:m]).astype(np.int64)
        xs = xb[:, items]
        gram = (xs.T @ xs).toarray().astype(np.float32) + symmetric_noise(m, sigma=sigma_g, rng=rng)
        sigma["gram"], sensitivity["gram"] = sigma_g, gram_sensitivity(max_items=max_items)
        info["selected_items"] = {"count": m, "rule": f"noisy count >= {SELECT_Z:g} x sigma_gram ({cut:.3g}), at most "
                                                       f"{max_selected} (closed_max), at least {MIN_SELECTED}"}
    threshold = POPULARITY_Z * sigma_c
    info.update(
        mechanism="Gaussian (analytic calibration, Balle & Wang 2018), releases composed in Gaussian DP "
                  "(Dong, Roth & Su 2022)",
        neighbours="user-level: add or remove all of one user's interactions",
        shares_of_mu2=shares,
        sigma=sigma,
        sensitivity=sensitivity,
        weights="binarised: each kept interaction counts 1",
        popularity=f"noisy counts, 0 below {POPULARITY_Z:g} x sigma_counts ({threshold:.3g})",
        interactions_kept=int(xb.nnz),
        noise="fresh OS entropy" if noise_seed is None else f"seeded ({noise_seed}; reproducible, not private)",
    )
    return PrivateStats(counts=counts, items=items, gram=gram, sigma_gram=sigma_g, sigma_counts=sigma_c,
                        threshold=threshold, info=info)
