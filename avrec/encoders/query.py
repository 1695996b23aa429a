"""Embed a free-text query into an encoder's space (for ``avrec recommend --query``).

``encoder`` is the name recorded in an embeddings artifact's ``extra.text_spaces``
(``text:...`` for the text modality, ``clip:...`` for video, ``clap:...`` for audio).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import InputError, ModelError
from .registry import REGISTRY, load_encoder, parse_name


def encode_query(text: str, *, encoder: str, device: str = "cpu") -> np.ndarray:
    """``text`` -> (d,) float32, L2-normalised, in ``encoder``'s embedding space."""
    if not text or not text.strip():
        raise InputError("--query is empty; give some words, e.g. --query \"slow piano music\"")
    prefix, _ = parse_name(encoder)
    if "text" not in REGISTRY[prefix].modalities or prefix == "npy":
        raise ModelError(f"{encoder} cannot embed a text query; only text:, clip: and clap: encoders can")
    from ..config import resolve_device

    enc = _loaded(encoder, resolve_device(device))
    vec = np.asarray(enc.encode_text([text])[0], dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    if norm == 0:
        raise InputError(f"the query {text!r} produced an empty embedding with {encoder}")
    return (vec / norm).astype(np.float32)


@lru_cache(maxsize=4)
def _loaded(encoder: str, device: str):
    """Each encoder is loaded once per process: ``avrec serve`` answers every /search after
    the first without reloading the model."""
    return load_encoder(encoder, device=device)
