"""``builtin``: the signal features written by extract (no weights, no torch).

Each feature column is standardised over the catalogue (z-score; NaN-safe: a NaN cell is
ignored in the statistics and becomes 0, the column mean), then each row is L2-normalised,
so loud, long or bright items do not dominate by scale alone. The statistics are stored
with the embeddings and reused for new items (:mod:`avrec.encoders.fusion`).
"""

from __future__ import annotations

import numpy as np

from .base import Encoder
from .fusion import fit_standardiser
from .fusion import standardise as _standardise


class BuiltinEncoder(Encoder):
    def __init__(self) -> None:
        super().__init__(name="builtin", kind="builtin", dim=0, revision="builtin", modalities=("video", "audio"))


def standardise(x: np.ndarray, mask: np.ndarray, stats: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, d) raw features with NaN, (n,) bool rows present -> ((n, d) float32 L2 rows,
    (n,) mask, (2, d) the [mean; std] used): fitted on these rows unless ``stats`` is given
    (a catalogue's, so new items land in its space)."""
    if stats is None:
        stats = fit_standardiser(x, mask)
    out, ok = _standardise(x, mask, stats)
    return out, ok, stats
