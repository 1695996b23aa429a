"""The ``features`` artifact written by extract and read by embed.

Layout::

    features/
      manifest.json            artifact "features"; extra: audio_feature_names, video_feature_names,
                               thumb_size, audio_sr
      items.jsonl              every item, in catalogue order, failed ones included:
                               {item_id, path, status, error, modalities, duration, title,
                                description, tags, text, shard, row, fingerprint}
      shards/00000/            one directory per shard, renamed into place when complete
        items.jsonl            the shard's rows (same fields; ``row`` indexes the arrays)
        audio_features.npy     (n, Da) float32, NaN rows where the item has no audio
        video_features.npy     (n, Dv) float32, NaN rows where the item has no video
        frames.npy             (F, S, S, 3) uint8 RGB thumbnails of all items' sampled frames
        frame_offsets.npy      (n + 1,) int64: item r's frames are frames[off[r]:off[r+1]]
        frame_times.npy        (F,) float32 seconds
        audio.npy              (T,) int16 mono PCM at ``audio_sr`` of all items, concatenated
        audio_offsets.npy      (n + 1,) int64
        stats.json             written last: a shard with stats.json is complete

Embed never decodes the source media again: thumbnails and PCM are kept here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..artifacts import make_public, read_jsonl, read_manifest, write_json, write_jsonl

KIND = "features"
ITEM_FIELDS = (
    "item_id", "path", "status", "error", "modalities", "duration", "title", "description",
    "tags", "text", "shard", "row", "fingerprint",
)


def shard_name(index: int) -> str:
    return f"{index:05d}"


@dataclass
class ItemFeatures:
    """What extract produced for one item (arrays may be None for a missing modality)."""

    row: dict[str, Any]
    audio_features: np.ndarray | None = None  # (Da,) float32
    video_features: np.ndarray | None = None  # (Dv,) float32
    frames: np.ndarray | None = None  # (f, S, S, 3) uint8
    frame_times: np.ndarray | None = None  # (f,) float32
    audio: np.ndarray | None = None  # (t,) float32 in [-1, 1] or int16


def write_shard(
    root: str | Path,
    index: int,
    items: list[ItemFeatures],
    *,
    audio_dim: int,
    video_dim: int,
    thumb_size: int,
    stats: dict[str, Any] | None = None,
) -> Path:
    """Write one shard under a temporary name and rename it into place (atomic)."""
    shards = Path(root) / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    final = shards / shard_name(index)
    tmp = Path(tempfile.mkdtemp(dir=shards, prefix=f".{shard_name(index)}.tmp-"))
    make_public(tmp)
    try:
        n = len(items)
        a = np.full((n, audio_dim), np.nan, dtype=np.float32)
        v = np.full((n, video_dim), np.nan, dtype=np.float32)
        frames, times, pcm = [], [], []
        f_off = np.zeros(n + 1, dtype=np.int64)
        a_off = np.zeros(n + 1, dtype=np.int64)
        rows = []
        for r, it in enumerate(items):
            row = dict(it.row)
            row["shard"], row["row"] = index, r
            rows.append(row)
            if it.audio_features is not None:
                a[r] = it.audio_features
            if it.video_features is not None:
                v[r] = it.video_features
            nf = 0 if it.frames is None else len(it.frames)
            if nf:
                frames.append(np.asarray(it.frames, dtype=np.uint8))
                t = it.frame_times if it.frame_times is not None else np.zeros(nf)
                times.append(np.asarray(t, dtype=np.float32))
            f_off[r + 1] = f_off[r] + nf
            na = 0
            if it.audio is not None and len(it.audio):
                x = it.audio
                if x.dtype != np.int16:
                    x = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
                pcm.append(x)
                na = len(x)
            a_off[r + 1] = a_off[r] + na
        s = thumb_size
        np.save(tmp / "audio_features.npy", a)
        np.save(tmp / "video_features.npy", v)
        np.save(tmp / "frames.npy", np.concatenate(frames) if frames else np.zeros((0, s, s, 3), np.uint8))
        np.save(tmp / "frame_times.npy", np.concatenate(times) if times else np.zeros(0, np.float32))
        np.save(tmp / "frame_offsets.npy", f_off)
        np.save(tmp / "audio.npy", np.concatenate(pcm) if pcm else np.zeros(0, np.int16))
        np.save(tmp / "audio_offsets.npy", a_off)
        write_jsonl(tmp / "items.jsonl", rows)
        st = {"items": n, "ok": sum(r["status"] == "ok" for r in rows),
              "failed": sum(r["status"] == "failed" for r in rows), **(stats or {})}
        write_json(tmp / "stats.json", st)  # last: marks the shard complete
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def complete_shards(root: str | Path) -> list[int]:
    """Indices of complete shards (those with stats.json); temp leftovers are ignored."""
    shards = Path(root) / "shards"
    if not shards.exists():
        return []
    out = []
    for p in shards.iterdir():
        if p.is_dir() and p.name.isdigit() and (p / "stats.json").exists():
            out.append(int(p.name))
    return sorted(out)


def clean_partial(root: str | Path) -> None:
    """Remove temp shard directories left by a killed run."""
    shards = Path(root) / "shards"
    if shards.exists():
        for p in shards.iterdir():
            if p.name.startswith(".") and ".tmp-" in p.name:
                shutil.rmtree(p, ignore_errors=True)


class Shard:
    """Memory-mapped arrays of one complete shard."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.items = read_jsonl(self.path / "items.jsonl")
        self.stats = json.loads((self.path / "stats.json").read_text())
        ld = lambda name: np.load(self.path / name, mmap_mode="r", allow_pickle=False)  # noqa: E731
        self.audio_features = ld("audio_features.npy")
        self.video_features = ld("video_features.npy")
        self._frames = ld("frames.npy")
        self._frame_times = ld("frame_times.npy")
        self._f_off = ld("frame_offsets.npy")
        self._audio = ld("audio.npy")
        self._a_off = ld("audio_offsets.npy")

    def frames(self, row: int) -> np.ndarray:
        """(f, S, S, 3) uint8 RGB thumbnails of item ``row``."""
        return np.asarray(self._frames[self._f_off[row] : self._f_off[row + 1]])

    def frame_times(self, row: int) -> np.ndarray:
        return np.asarray(self._frame_times[self._f_off[row] : self._f_off[row + 1]])

    def audio(self, row: int) -> np.ndarray:
        """(t,) float32 mono PCM in [-1, 1] at the artifact's ``audio_sr``."""
        x = self._audio[self._a_off[row] : self._a_off[row + 1]]
        return np.asarray(x, dtype=np.float32) / 32767.0


@dataclass
class FeatureStore:
    """Read access to a features artifact: ``FeatureStore.open(path)``."""

    path: Path
    manifest: dict[str, Any]
    items: list[dict[str, Any]]
    _shards: dict[int, Shard] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path, *, verify: str = "size") -> "FeatureStore":
        """verify: as :func:`avrec.artifacts.read_manifest` ("full" for a stage's input)."""
        path = Path(path)
        manifest = read_manifest(path, KIND, verify=verify)
        return cls(path=path, manifest=manifest, items=read_jsonl(path / "items.jsonl"))

    @property
    def ok_items(self) -> list[dict[str, Any]]:
        return [it for it in self.items if it["status"] == "ok"]

    @property
    def audio_sr(self) -> int:
        return int(self.manifest.get("extra", {}).get("audio_sr", 16000))

    @property
    def thumb_size(self) -> int:
        return int(self.manifest.get("extra", {}).get("thumb_size", 224))

    def shard(self, index: int) -> Shard:
        if index not in self._shards:
            self._shards[index] = Shard(self.path / "shards" / shard_name(index))
        return self._shards[index]

    def _loc(self, item: dict[str, Any]) -> tuple[Shard, int] | None:
        if item.get("shard") is None or item.get("row") is None:
            return None
        return self.shard(int(item["shard"])), int(item["row"])

    def audio_features(self, item: dict[str, Any]) -> np.ndarray | None:
        loc = self._loc(item)
        if loc is None:
            return None
        x = np.asarray(loc[0].audio_features[loc[1]])
        return None if np.isnan(x).all() else x

    def video_features(self, item: dict[str, Any]) -> np.ndarray | None:
        loc = self._loc(item)
        if loc is None:
            return None
        x = np.asarray(loc[0].video_features[loc[1]])
        return None if np.isnan(x).all() else x

    def feature_matrix(self, items: list[dict[str, Any]], modality: str) -> tuple[np.ndarray, np.ndarray]:
        """Builtin features of ``items``: ((n, d) float64 with NaN rows where missing, (n,)
        bool present); d comes from the manifest, so it is known even when no item has it."""
        names = (self.manifest.get("extra") or {}).get(f"{modality}_feature_names")
        get = self.video_features if modality == "video" else self.audio_features
        rows = [get(it) for it in items]
        d = len(names) if names else next((len(r) for r in rows if r is not None), 0)
        raw = np.full((len(items), d), np.nan, dtype=np.float64)
        present = np.zeros(len(items), dtype=bool)
        for i, r in enumerate(rows):
            if r is not None and len(r) == d:
                raw[i] = r
                present[i] = True
        return raw, present

    def frames(self, item: dict[str, Any]) -> np.ndarray:
        loc = self._loc(item)
        if loc is None:
            return np.zeros((0, self.thumb_size, self.thumb_size, 3), np.uint8)
        return loc[0].frames(loc[1])

    def audio(self, item: dict[str, Any]) -> np.ndarray:
        loc = self._loc(item)
        if loc is None:
            return np.zeros(0, np.float32)
        return loc[0].audio(loc[1])

    def iter_ok(self) -> Iterator[dict[str, Any]]:
        yield from self.ok_items
