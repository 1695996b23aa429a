"""Recency: a user's newer interactions weigh more in the vector folded from their history.

``train.recency`` (off | on | auto). With it, the model's user vectors are folded from the
history vectors with each interaction's weight times ``0.5 ** (n / half_life)``, where ``n``
is how many of the user's interactions are strictly newer (the newest weighs 1; equal
timestamps weigh the same). Ranks rather than ages: a user's pace (a binge in an evening,
one episode a week) does not change what "their last few" means.

It trades one question for another. On a random holdout (what was left out of a history,
at any time) it costs accuracy; on a user's next interactions it gains. ``auto`` chooses the
half-life, or none, on each user's newest interactions of the training data (a leave-last
validation split), so it is for platforms that predict what comes next; the default, off,
keeps a random holdout's answer. The decayed weights are stored beside the history
(``seen_weights.npy``), so the server folds live events in on the same scale: each live
event is newer than the whole trained history.

numpy only: the serving path imports :func:`live_weights`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .errors import InputError

HALF_LIVES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)  # auto's grid, in interactions
MAX_USERS = 20000  # auto scores at most this many validation users (a random sample)
MIN_GAIN = 0.01  # auto keeps a half-life only when it beats no decay by this share of validation NDCG


def newer_counts(user: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """(nnz,) int64: for each interaction, how many of the same user's interactions are
    strictly newer. user: (nnz,) ints; timestamp: (nnz,) finite floats."""
    user = np.asarray(user)
    t = np.asarray(timestamp, dtype=np.float64)
    n = len(user)
    out = np.zeros(n, np.int64)
    if n == 0:
        return out
    order = np.lexsort((-t, user))  # newest first within each user
    u, ts = user[order], t[order]
    pos = np.arange(n)
    user_start = np.maximum.accumulate(np.where(np.r_[True, u[1:] != u[:-1]], pos, 0))
    run_start = np.maximum.accumulate(np.where(np.r_[True, (u[1:] != u[:-1]) | (ts[1:] != ts[:-1])], pos, 0))
    out[order] = run_start - user_start
    return out


def decay(user: np.ndarray, timestamp: np.ndarray, *, half_life: float) -> np.ndarray:
    """(nnz,) float32 in (0, 1]: ``0.5 ** (newer / half_life)`` per interaction."""
    if not half_life > 0:
        raise ValueError(f"half_life must be > 0, got {half_life}")
    return (0.5 ** (newer_counts(user, timestamp) / float(half_life))).astype(np.float32)


def decayed_csr(data, *, half_life: float, weighting: str = "linear"):
    """(users, items) CSR of the interaction weights (as ``weighting`` has them:
    avrec/weighting.py) times their decay, with the same sparsity and order as ``data.to_csr()``."""
    from .data.interactions import Interactions
    from .weighting import weigh

    w = weigh(data.weight, weighting).astype(np.float64) * decay(data.user, data.timestamp, half_life=half_life)
    return Interactions(data.users, data.items, data.user, data.item, w.astype(np.float32), data.timestamp,
                        data.report).to_csr()


def live_weights(trained: np.ndarray, live: np.ndarray, *, half_life: float) -> tuple[np.ndarray, np.ndarray]:
    """The weights a server folds a user with: (trained history's, live events'), given the
    stored (already decayed) weights of the trained history and the live events' own
    weights, oldest first. Every live event is newer than the trained history; a skip
    (weight 0) counts as an interaction, as it does in training."""
    live = np.asarray(live, dtype=np.float32)
    m = len(live)
    newer = np.arange(m - 1, -1, -1, dtype=np.float64)
    f = np.float32(0.5 ** (m / half_life))
    return (np.asarray(trained, np.float32) * f,
            (live * (0.5 ** (newer / half_life))).astype(np.float32))


def newest_split(data, *, ratio: float, seed: int):
    """(train, test) Interactions: each user's newest ``ratio`` of interactions (rounded
    without bias, at least one left to train on) are the test."""
    from .data.splits import leave_last_split

    split = leave_last_split(data, ratio=ratio, seed=seed)
    return split.train, split.test


def check(data, model_name: str) -> None:
    """InputError unless recency can run: the hybrid, and a timestamp on every interaction."""
    if model_name != "hybrid":
        raise InputError(f"train.recency needs --model hybrid (its user vectors are folded from history); "
                         f"got {model_name}: set train.recency=off")
    if not data.has_time:
        raise InputError(f"train.recency needs a timestamp on every interaction: {data.untimed()} "
                         "(or set train.recency=off)")


def choose(data, fit: Callable[[Any], Any], *, ratio: float, seed: int, k: int,
           progress: Callable[[str], None]) -> dict[str, Any]:
    """Choose the half-life on each user's newest ``ratio`` of ``data``: ``fit(train
    Interactions) -> model`` is fitted once, then every half-life of :data:`HALF_LIVES` only
    refolds the user vectors. Returns {"half_life" (0: none), "tried": [...], "ndcg"}."""
    from .metrics import ndcg_at_k

    train, test = newest_split(data, ratio=ratio, seed=seed)
    model = fit(train)
    seen = model.weigh(train.to_csr())  # the weights as the model sees them (train.weighting)
    held = test.to_csr(binary=True)
    users = np.flatnonzero((np.diff(held.indptr) > 0) & (np.diff(seen.indptr) > 0))
    if len(users) == 0:
        return {"half_life": 0.0, "tried": [], "ndcg": None, "reason": "no user has both a newer and an older interaction"}
    rng = np.random.default_rng(seed)
    if len(users) > MAX_USERS:
        users = np.sort(rng.choice(users, MAX_USERS, replace=False))
    import scipy.sparse as sp

    # the newer-counts once, in the CSR's order (+1 keeps zeros stored); each half-life only rescales
    newer = sp.csr_matrix(((newer_counts(train.user, train.timestamp) + 1).astype(np.float64), (train.user, train.item)),
                          shape=seen.shape)
    newer.sort_indices()
    seen_u, newer_u, held_u = seen[users], newer[users], held[users]
    assert np.array_equal(seen_u.indices, newer_u.indices)
    batch = int(max(16, min(2048, 5e7 // max(seen.shape[1], 1))))  # about 200 MB of scores at a time
    tried = []
    for h in (0.0, *HALF_LIVES):
        hist = seen_u.copy()
        if h:
            hist.data = (hist.data * 0.5 ** ((newer_u.data - 1.0) / h)).astype(np.float32)
        total = 0.0
        for a in range(0, len(users), batch):
            hb, sb = hist[a:a + batch], seen_u[a:a + batch]
            scores = model._fold(hb) @ model.item_vectors.T
            scores[np.repeat(np.arange(sb.shape[0]), np.diff(sb.indptr)), sb.indices] = -np.inf
            total += float(ndcg_at_k(scores, held_u[a:a + batch], k)) * sb.shape[0]
        tried.append({"half_life": h, "ndcg": round(total / len(users), 5)})
        progress(f"recency: half-life {h:g} -> validation NDCG@{k} {tried[-1]['ndcg']:.4f} "
                 f"(each user's newest {ratio:.0%}, {len(users)} users)")
    base = tried[0]["ndcg"]
    best = max(tried, key=lambda t: t["ndcg"])
    if best["half_life"] and best["ndcg"] < base * (1 + MIN_GAIN):
        best = tried[0]
    return {"half_life": best["half_life"], "tried": tried, "ndcg": best["ndcg"], "users": int(len(users)),
            "ratio": ratio}
