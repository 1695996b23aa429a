"""Adding new items to an index from their content, without retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ArtifactError, InputError
from .build import _cfg_dict, _check_cfg, _write_index
from .read import KIND, Index


def _projection(path: Path) -> np.ndarray | None:
    return np.load(path, allow_pickle=False).astype(np.float32) if path.exists() else None


def _apply_projection(c: np.ndarray, proj: np.ndarray, name: str) -> np.ndarray:
    """c (m, D) -> (m, d) through proj (D, d), or (D+1, d) whose last row is a bias."""
    if proj.ndim != 2 or proj.shape[0] not in (c.shape[1], c.shape[1] + 1):
        raise InputError(
            f"new items' fused vectors have {c.shape[1]} dims but the model's {name} is {proj.shape}; "
            "embed them with the config the model was trained on"
        )
    out = c @ proj[: c.shape[1]]
    if proj.shape[0] == c.shape[1] + 1:
        out = out + proj[-1]
    return out.astype(np.float32)


def add_items(index_dir: str | Path, embeddings_dir: str | Path, cfg: Any, *, seed: int | None = None,
              log: Callable[[str], None] = lambda s: None) -> tuple[Path, int]:
    """Add the items of ``embeddings_dir`` not yet in the index; rebuild to a temp dir and swap.

    A new item's serving vector is its fused content vector c (D,) through the model's
    ``content_projection.npy``: c @ P for a (D, d) P, or [c, 1] @ P for a (D+1, d) P whose last
    row is a bias (affine content towers). Its fold-in (history) vector comes the same way from
    ``history_projection.npy``, or is the serving vector when the model stores none. Both
    files are copied from the model at build time. Returns (index dir, number of items added).
    """
    from ..artifacts import Manifest, atomic_dir, read_jsonl, read_manifest, write_manifest

    index_dir, embeddings_dir = Path(index_dir), Path(embeddings_dir)
    _check_cfg(cfg)
    man = read_manifest(index_dir, expect=KIND)
    extra = man.get("extra") or {}
    idx = Index(index_dir)
    new_man = read_manifest(embeddings_dir, expect="embeddings")
    old_models = extra.get("embed_models") or {}
    new_models = new_man.get("models") or {}
    if old_models:
        diff = [m for m in set(old_models) | set(new_models)
                if (old_models.get(m) or {}).get("name") != (new_models.get(m) or {}).get("name")
                or (old_models.get(m) or {}).get("dim") != (new_models.get(m) or {}).get("dim")]
        if diff:
            raise InputError(
                f"{embeddings_dir} was embedded with other encoders than the index's content "
                f"(modalities {', '.join(sorted(diff))} differ); embed the new items with the same config"
            )
    proj = _projection(index_dir / "content_projection.npy")
    if proj is None:
        raise InputError(
            f"the model behind {index_dir} ('{extra.get('model_name')}') stores no content_projection.npy, "
            "so new items cannot get vectors from content; retrain (avrec train) with the new items instead"
        )
    hist_proj = _projection(index_dir / "history_projection.npy")
    rows = read_jsonl(embeddings_dir / "items.jsonl")
    ids = [str(r["item_id"]) for r in rows]
    if len(set(ids)) != len(ids):
        raise InputError(f"{embeddings_dir}/items.jsonl lists an item_id twice")
    is_new = np.array([idx.items.row(i) is None for i in ids], dtype=bool)
    n_new = int(is_new.sum())
    if n_new == 0:
        log(f"index: all {len(ids)} items of {embeddings_dir} are already indexed; nothing to add")
        return index_dir, 0
    fused_path = embeddings_dir / "fused.npy"
    if not fused_path.exists():
        raise ArtifactError(f"{embeddings_dir} lacks fused.npy; re-run avrec embed")
    fused_new = np.load(fused_path, allow_pickle=False)[is_new].astype(np.float32)
    if not np.all(np.isfinite(fused_new)):
        raise InputError(f"{embeddings_dir}: fused vectors of new items contain NaN or inf")
    new_vecs = _apply_projection(fused_new, proj, "content_projection.npy")
    if new_vecs.shape[1] != idx.item_vectors.shape[1]:
        raise ArtifactError(f"content_projection.npy gives {new_vecs.shape[1]} dims but item vectors have "
                            f"{idx.item_vectors.shape[1]}; the model artifact is inconsistent")
    if hist_proj is not None:
        new_hist = _apply_projection(fused_new, hist_proj, "history_projection.npy")
    else:
        log("index: the model stores no history_projection.npy; new items fold into histories with their item vectors")
        new_hist = new_vecs
    log(f"index: adding {n_new} new items ({len(ids) - n_new} already indexed) from {embeddings_dir}")

    old_items = read_jsonl(index_dir / "items.jsonl")
    new_rows = [r for r, keep in zip(rows, is_new) if keep]
    items = old_items + [{k: r.get(k) for k in ("item_id", "title", "tags", "modalities", "duration")} for r in new_rows]
    n_old = idx.n_items
    arrays: dict[str, np.ndarray] = {
        "item_vectors": np.vstack([idx.item_vectors, new_vecs]),
        "user_vectors": idx.user_vectors,
        "history_vectors": np.vstack([idx.history_vectors, new_hist]),
        "seen_indptr": idx.seen_indptr,
        "seen_indices": idx.seen_indices,
        "popularity": np.concatenate([idx.popularity, np.zeros(n_new, np.float32)]),
        "content_projection": proj,
    }
    if hist_proj is not None:
        arrays["history_projection"] = hist_proj
    emb: dict[str, Any] = {"manifest": {}, "rows": None, "modalities": {}, "fused": None}
    if (index_dir / "content_fused.npy").exists():
        emb["fused"] = np.vstack([np.load(index_dir / "content_fused.npy", mmap_mode="r"), fused_new])
    for m in idx.content_modalities:
        v_old, mask_old = idx.content(m), idx.content_mask(m)
        vp, mp = embeddings_dir / f"{m}.npy", embeddings_dir / f"{m}_mask.npy"
        if vp.exists():
            v_new = np.load(vp, allow_pickle=False)[is_new].astype(np.float32)
            m_new = np.load(mp, allow_pickle=False)[is_new].astype(bool) if mp.exists() else np.any(v_new != 0, axis=1)
        else:
            v_new = np.zeros((n_new, v_old.shape[1]), np.float32)
            m_new = np.zeros(n_new, bool)
        emb["modalities"][m] = (np.vstack([v_old, v_new]), np.concatenate([mask_old, m_new]))
    users = [idx.users.id(u) for u in range(idx.n_users)]
    seed = int(extra.get("seed", 0)) if seed is None else seed
    with atomic_dir(index_dir) as tmp:
        new_extra = _write_index(tmp, arrays=arrays, items=items, users=users, emb=emb, cfg=cfg, seed=seed, log=log)
        new_extra.update({
            "model_name": extra.get("model_name"),
            "text_spaces": extra.get("text_spaces") or {},
            "embed_models": old_models or new_models,
            "added": list(extra.get("added") or []) + [{"embeddings": str(embeddings_dir.resolve()), "items": n_new,
                                                         "first_row": n_old}],
        })
        write_manifest(tmp, Manifest(
            artifact=KIND,
            config={"index": _cfg_dict(cfg), "seed": seed},
            inputs={**(man.get("inputs") or {}), "added": [a["embeddings"] for a in new_extra["added"]]},
            models=man.get("models") or {},
            counts={"items": n_old + n_new, "users": idx.n_users, "content_modalities": len(new_extra["content"]),
                    "added_items": sum(a["items"] for a in new_extra["added"])},
            extra=new_extra,
        ))
    return index_dir, n_new
