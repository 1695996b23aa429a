"""Adding new items to an index from their content, without retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ArtifactError, InputError
from .build import _cfg_dict, _check_cfg, _write_index, centred, understand_counts
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

    The new items' fused content vectors are made again with the catalogue's recipe (its
    builtin statistics, blocks, weights and PCA, copied into the index at build): uploads
    embedded on their own get the vectors they would have had embedded with the catalogue,
    and a modality they lack (audio-only uploads to a video catalogue) is a zero block.
    A new item's serving vector is that content vector c (D,) through the model's
    ``content_projection.npy``: c @ P for a (D, d) P, or [c, 1] @ P for a (D+1, d) P whose last
    row is a bias (affine content towers). Its fold-in (history) vector comes the same way from
    ``history_projection.npy``, or is the serving vector when the model stores none.
    The whole update holds the index's lock, so a second ``--add`` is refused, not lost.
    Returns (index dir, number of items added).
    """
    from ..artifacts import read_manifest, transaction

    index_dir, embeddings_dir = Path(index_dir), Path(embeddings_dir)
    _check_cfg(cfg)
    read_manifest(index_dir, expect=KIND, verify="none")  # an early, clear error before locking anything
    with transaction(index_dir, kind=KIND, inputs=[embeddings_dir]) as txn:
        n_new = _add(index_dir, embeddings_dir, txn.path, cfg, seed=seed, log=log)
        if n_new == 0:
            txn.skip()
    return index_dir, n_new


def _new_vectors(idx: Index, recipe: Any, embeddings_dir: Path, new_man: dict[str, Any], rows: list[dict[str, Any]],
                 is_new: np.ndarray, log: Callable[[str], None]) -> tuple[np.ndarray, dict[str, Any]]:
    """(fused (m, D), {modality: ((m, d) vectors, (m,) mask)}) of the new items, made with
    the catalogue's recipe."""
    from ..artifacts import load_npy

    n_new = int(is_new.sum())
    vecs: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for m, d in recipe.dims.items():
        vp, mp = embeddings_dir / f"{m}.npy", embeddings_dir / f"{m}_mask.npy"
        v = np.asarray(load_npy(vp), np.float32)[is_new] if vp.exists() else np.zeros((n_new, 0), np.float32)
        mask = np.asarray(load_npy(mp), bool)[is_new] if mp.exists() else np.any(v != 0, axis=1)
        if m in recipe.stats:
            own = embeddings_dir / f"builtin_{m}_stats.npy"
            same = own.exists() and np.allclose(np.asarray(load_npy(own, mmap=False)), recipe.stats[m])
            if not same:
                v, mask = _restandardise(idx, recipe, m, embeddings_dir, new_man, rows, is_new)
                log(f"index: the new items' builtin {m} features normalised with the catalogue's statistics "
                    "(they were embedded on their own)")
        if v.shape[1] == 0:
            v, mask = np.zeros((n_new, d), np.float32), np.zeros(n_new, bool)
        vecs[m], masks[m] = v, mask
    fused = recipe.fuse(vecs, masks, n_new)
    return fused, {m: centred(recipe, m, vecs[m], masks[m]) for m in vecs}


def _restandardise(idx: Index, recipe: Any, m: str, embeddings_dir: Path, new_man: dict[str, Any],
                   rows: list[dict[str, Any]], is_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The new items' builtin ``m`` vectors from their raw features (the features artifact
    their embeddings were made from), standardised with the catalogue's statistics."""
    from ..encoders.fusion import standardise
    from ..features.store import FeatureStore

    src = (new_man.get("inputs") or {}).get("features")
    if not src or not (Path(src) / "manifest.json").exists():
        raise InputError(
            f"{embeddings_dir} was embedded with its own builtin statistics and its features artifact "
            f"({src}) is gone; embed the new items with `avrec embed FEATURES --like <the catalogue's embeddings>`")
    store = FeatureStore.open(src, verify="full")
    by_id = {str(it["item_id"]): it for it in store.items}
    new_rows = [r for r, keep in zip(rows, is_new) if keep]
    missing = [r["item_id"] for r in new_rows if str(r["item_id"]) not in by_id]
    if missing:
        raise InputError(f"{src} lacks the new item {missing[0]!r}; embed the new items with `avrec embed --like`")
    raw, present = store.feature_matrix([by_id[str(r["item_id"])] for r in new_rows], recipe.kind(m))
    v, mask = standardise(raw, present, recipe.stats[m])
    return v, mask


def _add(index_dir: Path, embeddings_dir: Path, tmp: Path, cfg: Any, *, seed: int | None,
         log: Callable[[str], None]) -> int:
    from ..artifacts import Manifest, load_npy, read_jsonl, read_manifest, write_manifest
    from ..encoders.fusion import Recipe

    man = read_manifest(index_dir, expect=KIND, verify="full")
    extra = man.get("extra") or {}
    idx = Index(index_dir)
    new_man = read_manifest(embeddings_dir, expect="embeddings", verify="full")
    old_models = extra.get("embed_models") or {}
    new_models = new_man.get("models") or {}
    # a modality the uploads lack (no item has it) is a zero block, not a mismatch
    diff = [m for m in set(old_models) & set(new_models)
            if (new_models[m] or {}).get("dim")
            and ((old_models[m] or {}).get("name") != (new_models[m] or {}).get("name")
                 or (old_models[m] or {}).get("dim") != (new_models[m] or {}).get("dim"))]
    if diff:
        m = sorted(diff)[0]
        raise InputError(
            f"{embeddings_dir} was embedded with other encoders than the index's catalogue ({m}: "
            f"{new_models[m].get('name')}, dim {new_models[m].get('dim')}, against {old_models[m].get('name')}, dim "
            f"{old_models[m].get('dim')}); embed the new items with `avrec embed FEATURES --like <the catalogue's "
            "embeddings>`")
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
        return 0
    recipe = Recipe.load(index_dir)
    if recipe is not None:
        fused_new, content_new = _new_vectors(idx, recipe, embeddings_dir, new_man, rows, is_new, log)
    else:  # an index built before recipes were stored: the uploads' own fused vectors
        log("index: this index stores no fusion recipe (built by an older avrec); using the new items' own "
            "fused vectors (rebuild the index to normalise them like the catalogue)")
        fused_path = embeddings_dir / "fused.npy"
        fused_new = np.asarray(load_npy(fused_path), np.float32)[is_new]
        content_new = {}
        for m in idx.content_modalities:
            vp, mp = embeddings_dir / f"{m}.npy", embeddings_dir / f"{m}_mask.npy"
            if vp.exists():
                v = np.asarray(load_npy(vp), np.float32)[is_new]
                content_new[m] = (v, np.asarray(load_npy(mp), bool)[is_new] if mp.exists() else np.any(v != 0, axis=1))
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
    # the understand record (mood, captions, predicted tags) travels with each row
    items = old_items + [{k: r.get(k) for k in ("item_id", "title", "tags", "modalities", "duration", "understand")
                          if k != "understand" or r.get(k)} for r in new_rows]
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
    if idx.seen_weights is not None:
        arrays["seen_weights"] = idx.seen_weights
    emb: dict[str, Any] = {"manifest": {}, "rows": None, "modalities": {}, "fused": None}
    if idx.content_fused is not None:
        emb["fused"] = np.vstack([idx.content_fused, fused_new])
    for m in idx.content_modalities:
        v_old, mask_old = idx.content(m), idx.content_mask(m)
        v_new, m_new = content_new.get(m, (np.zeros((n_new, 0), np.float32), np.zeros(n_new, bool)))
        if v_new.shape[1] != v_old.shape[1]:
            v_new, m_new = np.zeros((n_new, v_old.shape[1]), np.float32), np.zeros(n_new, bool)
        emb["modalities"][m] = (np.vstack([v_old, v_new]), np.concatenate([mask_old, m_new]))
    users = [idx.users.id(u) for u in range(idx.n_users)]
    seed = int(extra.get("seed", 0)) if seed is None else seed
    clusters = None
    if idx.clusters is not None and idx.cluster_centroids is not None:  # old items keep their clusters
        clusters = {"centroids": np.asarray(idx.cluster_centroids), "labels": np.asarray(idx.clusters),
                    "on": (extra.get("clusters") or {}).get("on")}
    new_extra = _write_index(tmp, arrays=arrays, items=items, users=users, emb=emb, cfg=cfg, seed=seed, log=log,
                             clusters=clusters)
    if recipe is not None:
        recipe.save(tmp)
    new_extra.update({
        "model_name": extra.get("model_name"),
        "text_spaces": extra.get("text_spaces") or {},
        "events": extra.get("events"),
        "recency_half_life": float(extra.get("recency_half_life") or 0.0),
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
                "added_items": sum(a["items"] for a in new_extra["added"]), **understand_counts(new_extra)},
        extra=new_extra,
    ))
    return n_new
