"""How an interaction's weight (a rating, a play count, an event's weight) enters a model.

``train.weighting``: ``linear`` uses the weight as it is, ``log`` uses ``log1p(weight)`` (play
counts and watch totals are heavy-tailed: one user's 10,000 plays of one artist would
otherwise outweigh everything else they did), ``binary`` counts every interaction once.
``auto`` lets the hybrid's validation search choose (avrec/tune.py) when the weights vary,
and is ``linear`` elsewhere. Whatever the transform, the model then divides the weights by
their mean (models/base.py: scale_weights), so the regularisers mean the same on any scale.
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


def varies(w: np.ndarray) -> bool:
    """Whether the weights differ at all (a binary log has nothing to choose)."""
    w = np.asarray(w)
    return bool(len(w)) and bool(np.ptp(w) > 1e-6 * max(float(np.abs(w).max()), 1e-12))
