"""Synthetic model + embeddings artifacts for the index and recommend tests.

Items fall in three content "worlds" (row i belongs to world i % 3); user u likes world u % 3
and has seen 5 of its items. Item vectors are the fused content through a fixed projection
(as the hybrid does for cold items), history vectors the same, and each user vector is the
fold-in (mean) of its history, so the right answers are known by construction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avrec.artifacts import Manifest, save_npy, write_jsonl, write_manifest

WORLD_TAGS = {0: ["music"], 1: ["news"], 2: ["kids", "music"]}
MODS = {"video": 8, "audio": 6, "text": 5}


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1)).astype(np.float32)


def content(ids: list[int], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-modality vectors, masks and the fused vector for items ``ids`` (world = id % 3)."""
    rng = np.random.default_rng(seed)
    centres = {m: np.random.default_rng(100 + j).standard_normal((3, d)) for j, (m, d) in enumerate(MODS.items())}
    out: dict[str, np.ndarray] = {}
    parts = []
    for m, d in MODS.items():
        v = _unit(centres[m][np.array(ids) % 3] + 0.35 * rng.standard_normal((len(ids), d)))
        mask = np.ones(len(ids), bool) if m != "video" else (np.array(ids) % 2 == 0)
        v[~mask] = 0
        out[m], out[f"{m}_mask"] = v, mask
        parts.append(v)
    out["fused"] = _unit(np.hstack(parts))
    return out


def projection(*, d: int = 8) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((sum(MODS.values()), d)).astype(np.float32)


def item_rows(ids: list[int]) -> list[dict]:
    rows = []
    for i in ids:
        mods = ["audio", "text"] + (["video"] if i % 2 == 0 else [])
        rows.append({"item_id": f"i{i}", "title": f"Title {i} é", "description": "", "tags": WORLD_TAGS[i % 3],
                     "modalities": sorted(mods), "duration": None if i % 7 == 6 else float(100 * (i % 10)),
                     "path": f"/media/{i}.mp4"})
    return rows


def make_embeddings(out: Path, ids: list[int], *, seed: int = 0, text_encoder: str = "text:fake-encoder") -> Path:
    c = content(ids, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "items.jsonl", item_rows(ids))
    save_npy(out / "fused.npy", c["fused"])
    for m in MODS:
        save_npy(out / f"{m}.npy", c[m])
        save_npy(out / f"{m}_mask.npy", c[f"{m}_mask"])
    write_manifest(out, Manifest(
        artifact="embeddings",
        models={m: {"name": text_encoder if m == "text" else "builtin", "dim": d, "revision": None} for m, d in MODS.items()},
        counts={"items": len(ids)},
        extra={"weights": {m: 1.0 for m in MODS}, "text_spaces": {"text": text_encoder}},
    ))
    return out


def make_model(tmp: Path, *, n_items: int = 60, n_users: int = 30, name: str = "hybrid",
               with_projection: bool = True, with_embeddings: bool = True, seed: int = 0) -> Path:
    """A model artifact at tmp/model (and its embeddings at tmp/embeddings)."""
    ids = list(range(n_items))
    emb = make_embeddings(tmp / "embeddings", ids, seed=seed)
    c = content(ids, seed=seed)
    proj = projection()
    x = c["fused"] @ proj
    rng = np.random.default_rng(seed)
    seen = []
    for u in range(n_users):
        world = [i for i in ids if i % 3 == u % 3]
        seen.append(np.sort(rng.choice(world, size=min(5, len(world)), replace=False)))
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in seen])]).astype(np.int64)
    indices = np.concatenate(seen).astype(np.int32)
    users = np.stack([x[s].mean(0) for s in seen]).astype(np.float32)
    pop = np.bincount(indices, minlength=n_items).astype(np.float32)
    out = tmp / "model"
    out.mkdir(parents=True)
    write_jsonl(out / "items.jsonl", [{k: r[k] for k in ("item_id", "title", "tags", "modalities", "duration")}
                                      for r in item_rows(ids)])
    (out / "users.txt").write_text("".join(f"u{u}\n" for u in range(n_users)), encoding="utf-8")
    for fname, a in (("item_vectors", x), ("user_vectors", users), ("history_vectors", x), ("seen_indptr", indptr),
                     ("seen_indices", indices), ("popularity", pop)):
        save_npy(out / f"{fname}.npy", a)
    if with_projection:
        save_npy(out / "content_projection.npy", proj)
    write_manifest(out, Manifest(
        artifact="model",
        models={"name": name, "params": {}},
        inputs={"embeddings": str(emb.resolve()) if with_embeddings else str(tmp / "no-such-embeddings")},
        counts={"users": n_users, "items": n_items, "interactions": int(len(indices)), "cold_items": int((pop == 0).sum())},
    ))
    return out
