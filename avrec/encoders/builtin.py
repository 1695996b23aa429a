"""``builtin``: the signal features written by extract (no weights, no torch).

Each feature column is standardised over the catalogue (z-score; NaN-safe: a NaN cell is
ignored in the statistics and becomes 0, the column mean), then each row is L2-normalised,
so loud, long or bright items do not dominate by scale alone.
"""

from __future__ import annotations

import numpy as np

from .base import Encoder, l2n


class BuiltinEncoder(Encoder):
    def __init__(self) -> None:
        super().__init__(name="builtin", kind="builtin", dim=0, revision="builtin", modalities=("video", "audio"))


def standardise(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) raw features with NaN, (n,) bool rows present -> ((n, d) float32 L2 rows, (n,) mask).

    Rows that are absent, or that are exactly the catalogue mean (nothing to tell them
    apart), come back as zero rows with mask False.
    """
    x = np.asarray(x, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool).copy()
    out = np.zeros(x.shape, dtype=np.float32)
    if not mask.any() or x.shape[1] == 0:
        return out, np.zeros(len(x), dtype=bool)
    rows = x[mask]
    finite = np.isfinite(rows)
    cnt = finite.sum(axis=0)
    safe = np.where(finite, rows, 0.0)
    mean = safe.sum(axis=0) / np.maximum(cnt, 1)
    var = (np.where(finite, rows - mean, 0.0) ** 2).sum(axis=0) / np.maximum(cnt, 1)
    std = np.sqrt(var)
    # constant (or all-NaN) columns carry no information: they become 0
    z = np.where(finite & (std > 1e-12), (rows - mean) / np.where(std > 1e-12, std, 1.0), 0.0)
    z = l2n(z)
    out[mask] = z
    nonzero = np.linalg.norm(out, axis=1) > 0
    return out, mask & nonzero
