"""How an interaction's weight (a rating, a play count, an event's weight) enters a model.

``train.weighting``: ``linear`` uses the weight as it is, ``log`` uses ``log1p(weight)`` (play
counts and watch totals are heavy-tailed: one user's 10,000 plays of one artist would
otherwise outweigh everything else they did), ``binary`` counts every interaction once.
``auto`` lets the hybrid's validation search choose (avrec/tune.py) when the weights are
heavy-tailed (:func:`heavy_tailed`), and is ``linear`` elsewhere. Whatever the transform,
the model then divides the weights by their mean (models/base.py: scale_weights), so the
regularisers mean the same on any scale.
numpy only: the serving path may import it.
"""

from __future__ import annotations

import numpy as np

WEIGHTINGS = ("linear", "log", "binary")


def weigh(w: np.ndarray, how: str) -> np.ndarray:
    """(n,) float32 weights as ``how`` (one of :data:`WEIGHTINGS`, or ``auto``: linear) has them."""
    w = np.asarray(w, np.float32)
    if how in ("linear", "auto"):
        return w
    if how == "log":
        return np.log1p(np.maximum(w, 0.0)).astype(np.float32)
    if how == "binary":
        return (w > 0).astype(np.float32)
    raise ValueError(f"unknown weighting {how!r}; choose from auto, {', '.join(WEIGHTINGS)}")


HEAVY_TAIL = 10.0  # p99 / median of the weights at or above which train.weighting auto searches


def heavy_tailed(w: np.ndarray, *, ratio: float = HEAVY_TAIL) -> bool:
    """Whether the weights' 99th percentile is at least ``ratio`` times their median: play
    counts and watch seconds are (lognormal-like, often 100x), ratings (1-5: 1.4x) and event
    weights (view 1, like 2, share 3) are not. Only there can log1p or binary change much, so
    only there does auto spend validation fits on them (on MovieLens ratings the three
    scored within 1.2%)."""
    w = np.asarray(w, np.float64)
    w = w[w > 0]
    if len(w) == 0:
        return False
    p50, p99 = np.quantile(w, [0.5, 0.99])
    return bool(p99 >= ratio * p50)
