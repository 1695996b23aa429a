"""Captions of each video item's key frames (``understand.caption``), read from the features
store like every other model input: the stored thumbnails and their times, through the same
DataLoader and batching as the encoders (``avrec.embed._run_units``).

The captions of an item join its text after the speech transcript (:func:`caption_text`),
so they reach the text encoder, ``--query`` search and the explanations exactly as
transcripts do.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..features.store import FeatureStore


def frame_times(store: FeatureStore, item: dict[str, Any]) -> np.ndarray:
    """(f,) seconds of the item's stored key frames (empty when it has none)."""
    if item.get("shard") is None or item.get("row") is None:
        return np.zeros(0, np.float32)
    return store.shard(int(item["shard"])).frame_times(int(item["row"]))


def caption_items(store: FeatureStore, items: list[dict[str, Any]], enc: Any, *, frames: int, batch_size: int,
                  workers: int, progress: Callable[[str], None] | None = None
                  ) -> tuple[list[list[dict[str, Any]]], dict[int, str]]:
    """-> (per item [{t, text}] in time order, {item index: error}); items without frames get []."""
    from ..embed import _MediaDataset, _run_units

    ds = _MediaDataset(store.path, items, "frames+times", enc.caption_preparer(frames))
    outputs, errors = _run_units(ds, enc.caption_units, batch_size=batch_size, workers=workers,
                                 label=f"captions [{enc.name}]", progress=progress)
    caps: list[list[dict[str, Any]]] = [[] for _ in items]
    for i, pieces in outputs.items():
        caps[i] = [{"t": round(float(p["t"]), 3), "text": p["text"]} for p in pieces if p and p.get("text")]
    return caps, errors


def caption_text(captions: list[dict[str, Any]]) -> str:
    """An item's captions as one text: distinct captions in time order, '. '-joined."""
    texts = list(dict.fromkeys(c["text"].strip() for c in captions if c.get("text", "").strip()))
    return ". ".join(texts)
