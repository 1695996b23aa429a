"""Reading an embeddings artifact: what train, evaluate and index take from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError


def load_embeddings(embeddings_dir: Path) -> tuple[list[dict[str, Any]], np.ndarray]:
    """(items.jsonl rows, fused (n, D) float32) of an embeddings artifact."""
    from ..artifacts import load_npy, read_jsonl, read_manifest

    read_manifest(embeddings_dir, expect="embeddings", verify="full")
    rows = read_jsonl(embeddings_dir / "items.jsonl")
    fused = embeddings_dir / "fused.npy"
    if not fused.exists():
        raise InputError(f"{embeddings_dir} has no fused.npy; re-run avrec embed")
    content = np.asarray(load_npy(fused, mmap=False), np.float32)
    if content.shape[0] != len(rows):
        raise InputError(f"{embeddings_dir}: fused.npy has {content.shape[0]} rows but items.jsonl {len(rows)}")
    return rows, content


def fusion_blocks(embeddings_dir: Path) -> list[dict[str, Any]] | None:
    """The fused vector's modality blocks [{modality, start, end, weight}] from the artifact's
    fusion recipe; None when there is none or a PCA mixed the blocks."""
    from ..encoders.fusion import Recipe

    recipe = Recipe.load(Path(embeddings_dir))
    return None if recipe is None or recipe.pca is not None else list(recipe.blocks)


def load_aligned(emb_dir: Path, item_ids: list[str], log: Callable[[str], None]) -> dict[str, Any] | None:
    """The embeddings of ``emb_dir`` aligned to ``item_ids`` (rows missing there are zero).

    Returns {manifest, rows (the embeddings' items.jsonl), modalities {m: ((n, d) vectors,
    (n,) mask)}, fused ((n, D) or None)}.
    """
    from ..artifacts import load_npy, read_jsonl, read_manifest

    man = read_manifest(emb_dir, expect="embeddings", verify="full")
    rows = read_jsonl(emb_dir / "items.jsonl")
    emb_ids = [str(r["item_id"]) for r in rows]
    if emb_ids == item_ids:
        take = None
    else:
        pos = {i: r for r, i in enumerate(emb_ids)}
        take = np.array([pos.get(i, -1) for i in item_ids], dtype=np.int64)
        log(f"embeddings rows differ from the model's; aligned by item_id ({int((take < 0).sum())} missing)")

    def aligned(a: np.ndarray, fill: Any = 0) -> np.ndarray:
        a = np.asarray(a)
        if take is None:
            return a
        out = np.full((len(item_ids),) + a.shape[1:], fill, dtype=a.dtype)
        ok = take >= 0
        out[ok] = a[take[ok]]
        return out

    out: dict[str, Any] = {"manifest": man, "rows": rows, "modalities": {}, "fused": None}
    if (emb_dir / "fused.npy").exists():
        out["fused"] = aligned(load_npy(emb_dir / "fused.npy")).astype(np.float32)
    for m in (man.get("models") or {}):
        vp, mp = emb_dir / f"{m}.npy", emb_dir / f"{m}_mask.npy"
        if not vp.exists():
            continue
        v = aligned(load_npy(vp)).astype(np.float32)
        mask = aligned(load_npy(mp), False).astype(bool) if mp.exists() else np.any(v != 0, axis=1)
        out["modalities"][m] = (v, mask)
    return out
