"""Captions of each video item's key frames (``understand.caption``), read from the features
store like every other model input: the stored thumbnails and their times, through the same
DataLoader and batching as the encoders (``avrec.embed._run_units``).

The captions of an item join its text after the speech transcript (:func:`caption_text`),
so they reach the text encoder, ``--query`` search and the explanations exactly as
transcripts do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..features.store import FeatureStore


def frame_times(store: FeatureStore, item: dict[str, Any]) -> np.ndarray:
    """(f,) seconds of the item's stored key frames (empty when it has none)."""
    if item.get("shard") is None or item.get("row") is None:
        return np.zeros(0, np.float32)
    return store.shard(int(item["shard"])).frame_times(int(item["row"]))


class CaptionDataset:
    """Item i -> (i, units, error): the chosen key frames of item i, prepared. Picklable."""

    def __init__(self, store_path: Path, items: list[dict[str, Any]], prepare: Callable):
        self.store_path = Path(store_path)
        self.items = items
        self.prepare = prepare
        self._store: FeatureStore | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from ..embed import _in_worker, _pack

        try:
            if self._store is None:
                self._store = FeatureStore.open(self.store_path, verify="none")
            item = self.items[i]
            frames = self._store.frames(item)
            units = self.prepare(frames, frame_times(self._store, item)) if len(frames) else []
            return i, (_pack(units) if _in_worker() else units), ""
        except Exception as e:  # noqa: BLE001 - one bad item is a recorded error
            return i, [], f"{type(e).__name__}: {e}".splitlines()[0]


def caption_items(store: FeatureStore, items: list[dict[str, Any]], enc: Any, *, frames: int, batch_size: int,
                  workers: int, progress: Callable[[str], None] | None = None
                  ) -> tuple[list[list[dict[str, Any]]], dict[int, str]]:
    """-> (per item [{t, text}] in time order, {item index: error}); items without frames get []."""
    from ..embed import _run_units

    ds = CaptionDataset(store.path, items, enc.caption_preparer(frames))
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
