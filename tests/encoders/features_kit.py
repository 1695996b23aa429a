"""Build features artifacts directly (extract is not needed to test embed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from avrec.artifacts import Manifest, write_jsonl, write_manifest
from avrec.features.store import ItemFeatures, write_shard

AUDIO_DIM, VIDEO_DIM = 6, 5


def make_features(root: str | Path, specs: list[dict[str, Any]], *, thumb: int = 32, sr: int = 16000,
                  shard_size: int = 4) -> Path:
    """Write a features artifact from item specs.

    A spec holds the item row fields (item_id, title, description, tags, text, status) and
    optionally ``frames`` (f, thumb, thumb, 3) uint8, ``audio`` (t,) float32,
    ``video_features`` (VIDEO_DIM,), ``audio_features`` (AUDIO_DIM,). ``no_shard=True`` keeps
    the item out of every shard (a text-only row with shard/row None).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows, sharded = [], [s for s in specs if not s.get("no_shard")]
    placed: dict[str, tuple[int, int]] = {}
    for k in range(0, len(sharded), shard_size):
        chunk = sharded[k : k + shard_size]
        items = []
        for r, s in enumerate(chunk):
            items.append(ItemFeatures(
                row=_row(s), frames=s.get("frames"), audio=s.get("audio"),
                video_features=s.get("video_features"), audio_features=s.get("audio_features"),
                frame_times=None if s.get("frames") is None else np.arange(len(s["frames"]), dtype=np.float32),
            ))
            placed[s["item_id"]] = (k // shard_size, r)
        write_shard(root, k // shard_size, items, audio_dim=AUDIO_DIM, video_dim=VIDEO_DIM, thumb_size=thumb)
    for s in specs:
        row = _row(s)
        row["shard"], row["row"] = placed.get(s["item_id"], (None, None))
        rows.append(row)
    write_jsonl(root / "items.jsonl", rows)
    write_manifest(root, Manifest(artifact="features", counts={"items": len(rows)}, extra={
        "audio_feature_names": [f"a{i}" for i in range(AUDIO_DIM)],
        "video_feature_names": [f"v{i}" for i in range(VIDEO_DIM)], "thumb_size": thumb, "audio_sr": sr}))
    return root


def _row(s: dict[str, Any]) -> dict[str, Any]:
    mods = [m for m, key in (("video", "frames"), ("audio", "audio")) if s.get(key) is not None]
    if s.get("title") or s.get("description") or s.get("text"):
        mods.append("text")
    return {
        "item_id": s["item_id"], "path": s.get("path", f"/media/{s['item_id']}.mp4"),
        "status": s.get("status", "ok"), "error": s.get("error", ""), "modalities": mods,
        "duration": s.get("duration", 2.0), "title": s.get("title", ""), "description": s.get("description", ""),
        "tags": s.get("tags", []), "text": s.get("text", ""), "fingerprint": {},
    }


def frames(seed: int, n: int = 2, size: int = 32) -> np.ndarray:
    """(n, size, size, 3) uint8: a distinct colour pattern per seed."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(1, 1, 1, 3))
    noise = rng.integers(0, 40, size=(n, size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def tone(freq: float, seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
