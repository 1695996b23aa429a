"""Pooling over frames / audio windows and audio windowing (numpy only); ``resample`` is
extract's (re-exported here for the encoders)."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..media.audio import resample  # noqa: F401 - the encoders resample with extract's resampler

POOLINGS = ("mean", "max", "attention")


def pool(vectors: np.ndarray, method: str = "mean", *, temperature: float = 0.1) -> np.ndarray:
    """Pool (k, d) per-frame/per-window vectors into one (d,) vector, L2-normalised.

    Rows are L2-normalised first, so every frame counts equally whatever its norm.
    ``attention`` is parameter-free self-attention: each frame is weighted by
    softmax(cos(frame, mean) / temperature), so outlier frames (black frames, title
    cards) count less than the frames that agree with the rest of the item.
    """
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or len(v) == 0:
        raise ValueError(f"pool expects (k, d) with k >= 1, got shape {v.shape}")
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    if method == "mean":
        out = v.mean(axis=0)
    elif method == "max":
        out = v.max(axis=0)
    elif method == "attention":
        centre = v.mean(axis=0)
        centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
        logits = (v @ centre) / temperature
        w = np.exp(logits - logits.max())
        out = (w[:, None] * v).sum(axis=0) / w.sum()
    else:
        raise ConfigError(f"embed.pooling must be one of {', '.join(POOLINGS)}; got {method!r}")
    n = float(np.linalg.norm(out))
    return (out / n if n > 0 else out).astype(np.float32)


def windows(pcm: np.ndarray, *, size: int, min_fraction: float = 0.25) -> list[np.ndarray]:
    """Split (t,) PCM into consecutive windows of ``size`` samples.

    The last, shorter window is kept only when it holds at least ``min_fraction`` of a
    window (or when it is the only one), so a 10.1 s clip is one window, not two.
    """
    x = np.asarray(pcm, dtype=np.float32)
    if len(x) == 0 or size <= 0:
        return []
    out = [x[i : i + size] for i in range(0, len(x), size)]
    if len(out) > 1 and len(out[-1]) < min_fraction * size:
        out.pop()
    return out
