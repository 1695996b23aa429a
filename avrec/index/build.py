"""Building an index directory from a model artifact (and its embeddings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ArtifactError, InputError
from ..data.embeddings import load_aligned
from .read import KIND, topk_rows, transform_query

SERVED_MODELS = ("hybrid", "mf", "popular")
NOT_SERVED = ("ease", "itemknn")
MODEL_FILES = (
    "item_vectors.npy",
    "user_vectors.npy",
    "history_vectors.npy",
    "seen_indptr.npy",
    "seen_indices.npy",
    "popularity.npy",
)
NORM_TOL = 1e-3  # item vectors this close to unit norm are served with the plain angular metric


# ---------------------------------------------------------------------------------------
# string tables and id maps


def save_strings(directory: Path, name: str, strings: Sequence[str]) -> None:
    """Write strings as ``<name>_utf8.npy`` (one uint8 blob) + ``<name>_offsets.npy`` (n+1,)."""
    from ..artifacts import save_npy

    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        offsets[1:] = np.cumsum([len(b) for b in encoded])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.zeros(0, np.uint8)
    save_npy(directory / f"{name}_utf8.npy", blob)
    save_npy(directory / f"{name}_offsets.npy", offsets)


def save_ids(directory: Path, name: str, ids: Sequence[str]) -> None:
    """Write ``<name>.npy`` (row -> id), ``<name>_sorted.npy`` and ``<name>_order.npy``."""
    from ..artifacts import save_npy

    encoded = [str(i).encode("utf-8") for i in ids]
    if any(b.endswith(b"\x00") for b in encoded):
        raise InputError(f"{name}: ids may not end with a NUL byte")
    width = max([len(b) for b in encoded] + [1])
    arr = np.array(encoded, dtype=f"S{width}")
    order = np.argsort(arr, kind="stable").astype(np.int64)
    srt = arr[order]
    if len(srt) > 1 and np.any(srt[1:] == srt[:-1]):
        dup = srt[1:][srt[1:] == srt[:-1]][0].decode("utf-8", "replace")
        raise ArtifactError(f"{name}: duplicate id {dup!r}; ids must be unique")
    save_npy(directory / f"{name}.npy", arr)
    save_npy(directory / f"{name}_sorted.npy", srt)
    save_npy(directory / f"{name}_order.npy", order)


# ---------------------------------------------------------------------------------------
# metric, transform and annoy


def choose_metric(item_vectors: np.ndarray, metric: str) -> tuple[str, float]:
    """Resolve ``auto | angular | dot`` to (transform, max_norm).

    transform "none": annoy angular on the vectors themselves (cosine = inner product for
    unit vectors). transform "extra_dim": inner products through the extra-dimension trick,
    because annoy's own ``dot`` metric has poor recall (DESIGN.md).
    """
    norms = np.linalg.norm(np.asarray(item_vectors, dtype=np.float32), axis=1) if len(item_vectors) else np.ones(1)
    max_norm = float(norms.max()) if norms.size else 1.0
    if metric == "angular":
        return "none", max_norm
    if metric == "dot":
        return "extra_dim", max_norm
    unit = bool(norms.size) and bool(np.all(np.abs(norms - 1.0) < NORM_TOL))
    return ("none" if unit else "extra_dim"), max_norm


def transform_items(x: np.ndarray, max_norm: float) -> np.ndarray:
    """(n, d) -> (n, d+1): [x, sqrt(M^2 - |x|^2)] / M, every row of unit norm."""
    x = np.asarray(x, dtype=np.float32)
    m = max(max_norm, 1e-12)
    sq = np.maximum(m * m - np.einsum("ij,ij->i", x, x), 0.0)
    return np.hstack([x, np.sqrt(sq)[:, None]]).astype(np.float32) / np.float32(m)


def build_annoy(vectors: np.ndarray, path: Path, *, n_trees: int, seed: int,
                rows: np.ndarray | None = None) -> None:
    """Build an angular annoy index over ``vectors`` (only ``rows`` if given; annoy id = row)."""
    from annoy import AnnoyIndex

    from ..artifacts import atomic_file

    n, f = vectors.shape
    ann = AnnoyIndex(int(f), "angular")
    ann.set_seed(int(seed))
    for i in range(n) if rows is None else rows.tolist():
        ann.add_item(int(i), vectors[i])
    # one build thread: annoy's trees then depend on the seed alone
    ann.build(int(n_trees), n_jobs=1)
    with atomic_file(path, suffix=".ann") as tmp:
        ann.save(str(tmp))
    ann.unload()


def exact_recall_at_10(
    vectors: np.ndarray, queries: np.ndarray, ann_path: Path, *, transform: str, search_k: int,
    allowed: np.ndarray | None = None,
) -> float:
    """Mean recall@10 of the annoy index against an exact inner-product search.

    vectors: (n, d) what the index serves; queries: (q, d); allowed: (n,) bool of indexed rows.
    """
    from annoy import AnnoyIndex

    if len(queries) == 0:
        return float("nan")
    f = vectors.shape[1] + (1 if transform == "extra_dim" else 0)
    ann = AnnoyIndex(f, "angular")
    ann.load(str(ann_path))
    hits = 0
    total = 0
    x = np.asarray(vectors, dtype=np.float32)
    for q in queries:
        s = x @ q
        if allowed is not None:
            s = np.where(allowed, s, -np.inf)
        truth = set(topk_rows(s, 10).tolist())
        got = ann.get_nns_by_vector(transform_query(q, transform), 10, search_k=search_k)
        hits += len(truth.intersection(got))
        total += len(truth)
    ann.unload()
    return hits / max(total, 1)


# ---------------------------------------------------------------------------------------
# build


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [ln.rstrip("\n").rstrip("\r") for ln in f if ln.strip()]


def _emb_path(model_manifest: dict[str, Any], model_dir: Path) -> Path | None:
    ref = (model_manifest.get("inputs") or {}).get("embeddings")
    if isinstance(ref, dict):
        ref = ref.get("path")
    if not ref:
        return None
    p = Path(ref)
    return p if p.is_absolute() else (model_dir / p)


def _load_model(model_dir: Path) -> dict[str, Any]:
    from ..artifacts import load_npy, read_jsonl, read_manifest

    man = read_manifest(model_dir, expect="model", verify="full")
    name = str((man.get("models") or {}).get("name", ""))
    if name in NOT_SERVED:
        raise InputError(
            f"avrec index serves factor models ({', '.join(SERVED_MODELS)}); {model_dir} holds "
            f"'{name}', which avrec evaluate scores in-process (train hybrid or mf to serve it)"
        )
    for f in (*MODEL_FILES, "users.txt", "items.jsonl"):
        if not (model_dir / f).exists():
            raise ArtifactError(f"{model_dir} lacks {f}; re-run avrec train (model artifact is incomplete)")
    item_vectors = load_npy(model_dir / "item_vectors.npy")
    user_vectors = load_npy(model_dir / "user_vectors.npy")
    history_vectors = load_npy(model_dir / "history_vectors.npy")
    items = read_jsonl(model_dir / "items.jsonl")
    users = _read_lines(model_dir / "users.txt")
    n, d = item_vectors.shape if item_vectors.ndim == 2 else (0, 0)
    if item_vectors.ndim != 2 or len(items) != n:
        raise ArtifactError(f"{model_dir}: item_vectors.npy has shape {item_vectors.shape} but items.jsonl has {len(items)} rows")
    if user_vectors.ndim != 2 or user_vectors.shape != (len(users), d):
        raise ArtifactError(f"{model_dir}: user_vectors.npy is {user_vectors.shape}, expected ({len(users)}, {d})")
    if history_vectors.shape != (n, d):
        raise ArtifactError(f"{model_dir}: history_vectors.npy is {history_vectors.shape}, expected ({n}, {d})")
    indptr = load_npy(model_dir / "seen_indptr.npy")
    if indptr.shape != (len(users) + 1,):
        raise ArtifactError(f"{model_dir}: seen_indptr.npy is {indptr.shape}, expected ({len(users) + 1},)")
    pop = load_npy(model_dir / "popularity.npy")
    if pop.shape != (n,):
        raise ArtifactError(f"{model_dir}: popularity.npy is {pop.shape}, expected ({n},)")
    return {"manifest": man, "name": name, "items": items, "users": users, "item_vectors": item_vectors}


def _write_metadata(out: Path, items: list[dict[str, Any]], extra_rows: list[dict[str, Any]] | None) -> list[str]:
    """ids, titles, durations, modality flags and tags; returns the modality names seen."""
    from ..artifacts import save_npy, write_jsonl

    merged = []
    for i, r in enumerate(items):
        e = extra_rows[i] if extra_rows is not None and i < len(extra_rows) else {}
        pick = lambda k, d=None: r.get(k) if r.get(k) not in (None, "") else e.get(k, d)  # noqa: E731
        tags = pick("tags") or []
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.replace(";", ",").split(",") if t.strip()]
        merged.append({
            "item_id": str(r["item_id"]),
            "title": str(pick("title") or ""),
            "tags": [str(t) for t in tags],
            "modalities": list(pick("modalities") or []),
            "duration": pick("duration"),
        })
    save_ids(out, "item_ids", [m["item_id"] for m in merged])
    save_strings(out, "titles", [m["title"] for m in merged])
    dur = np.array([float(m["duration"]) if isinstance(m["duration"], (int, float)) else np.nan for m in merged],
                   dtype=np.float32)
    save_npy(out / "durations.npy", dur)
    names = sorted({x for m in merged for x in m["modalities"]})
    for name in names:
        save_npy(out / f"has_{name}.npy", np.array([name in m["modalities"] for m in merged], dtype=bool))
    vocab = sorted({t.lower() for m in merged for t in m["tags"]})
    tid = {t: j for j, t in enumerate(vocab)}
    indptr = np.zeros(len(merged) + 1, dtype=np.int64)
    indices: list[int] = []
    for i, m in enumerate(merged):
        ts = sorted({tid[t.lower()] for t in m["tags"]})
        indices.extend(ts)
        indptr[i + 1] = len(indices)
    save_strings(out, "tags_vocab", vocab)
    save_npy(out / "tags_indptr.npy", indptr)
    save_npy(out / "tags_indices.npy", np.asarray(indices, dtype=np.int32))
    write_jsonl(out / "items.jsonl", merged)
    return names


def _query_sample(n_queries: int, *, user_vectors: np.ndarray, item_vectors: np.ndarray, seed: int) -> np.ndarray:
    """Queries for the build-time recall check: real user vectors when there are users."""
    rng = np.random.default_rng(seed)
    src = user_vectors if len(user_vectors) else item_vectors
    if len(src) == 0 or n_queries <= 0:
        return np.zeros((0, item_vectors.shape[1]), np.float32)
    take = rng.choice(len(src), size=min(n_queries, len(src)), replace=False)
    return np.asarray(src[np.sort(take)], dtype=np.float32)


def _write_index(
    out: Path,
    *,
    arrays: dict[str, np.ndarray],
    items: list[dict[str, Any]],
    users: list[str],
    emb: dict[str, Any] | None,
    cfg: Any,
    seed: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Write every file of an index into ``out``; returns the manifest ``extra``."""
    from ..artifacts import save_npy

    x = np.ascontiguousarray(arrays["item_vectors"], dtype=np.float32)
    n, d = x.shape
    for name, a in arrays.items():
        if name in ("seen_indptr", "tags_indptr"):
            a = np.asarray(a, dtype=np.int64)
        elif name == "seen_indices":
            a = np.asarray(a, dtype=np.int32)
        elif not name.endswith("_projection"):
            a = np.asarray(a, dtype=np.float32)
        save_npy(out / f"{name}.npy", a)
    save_ids(out, "user_ids", users)
    names = _write_metadata(out, items, emb["rows"] if emb else None)

    transform, max_norm = choose_metric(x, cfg.metric)
    served = transform_items(x, max_norm) if transform == "extra_dim" else x
    log(f"index: building annoy over {n} items x {d} dims ({'inner product via extra dim' if transform == 'extra_dim' else 'angular'}, "
        f"{cfg.n_trees} trees)")
    build_annoy(served, out / "items.ann", n_trees=cfg.n_trees, seed=seed)
    queries = _query_sample(cfg.recall_sample, user_vectors=arrays["user_vectors"], item_vectors=x, seed=seed)
    # search_k is chosen from the measured recall: doubled until the model's own vectors reach
    # the target, up to where a search inspects half the items (an exact scan is cheaper then)
    search_k = cfg.search_k if cfg.search_k > 0 else cfg.n_trees * 10
    recall = exact_recall_at_10(x, queries, out / "items.ann", transform=transform, search_k=search_k)
    tried = [(search_k, round(recall, 4))]
    while recall < cfg.target_recall and search_k * 2 <= max(n // 2, cfg.search_k):
        search_k *= 2
        recall = exact_recall_at_10(x, queries, out / "items.ann", transform=transform, search_k=search_k)
        tried.append((search_k, round(recall, 4)))
    # a batch of users amortises one matrix product; a single request is a matrix-vector scan,
    # which annoy beats at fewer items (exact_below also bounds it, so 0 forces annoy everywhere)
    # ... and annoy answers a batch one query at a time: once its search_k must inspect a
    # twentieth of the items to reach the target, the blocked product is the cheaper batch
    # (at 500k items annoy needed search_k 160k: ~20 ms a user, against ~1 ms exactly)
    serving_batch = "exact" if n < cfg.exact_below or (cfg.exact_below > 0 and search_k * 20 > n) else "annoy"
    serving = "exact" if n < min(cfg.exact_single_below, cfg.exact_below) else "annoy"
    if recall < cfg.target_recall and len(queries):
        log(f"warning: annoy reaches recall@10 {recall:.3f} on this model's vectors at most (search_k up to "
            f"{search_k}, {cfg.n_trees} trees), below index.target_recall {cfg.target_recall}: every request is "
            "served by exact search instead (more --n-trees may let annoy reach it)")
        serving = serving_batch = "exact"
    served = {"exact": 1.0, "annoy": round(float(recall), 4)}
    log(f"index: recall@10 against exact search = {recall:.3f} over {len(queries)} queries "
        f"(search_k={search_k}); single requests served by {serving} search (recall {served[serving]}), "
        f"batches by {serving_batch}")

    content: dict[str, Any] = {}
    if emb is not None:
        if emb["fused"] is not None:
            save_npy(out / "content_fused.npy", emb["fused"])
        for m, (v, mask) in emb["modalities"].items():
            save_npy(out / f"content_{m}.npy", v)
            save_npy(out / f"content_{m}_mask.npy", mask)
            rows = np.flatnonzero(mask)
            if len(rows) == 0:
                content[m] = {"dim": int(v.shape[1]), "items": 0, "recall_at_10": None}
                continue
            build_annoy(v, out / f"content_{m}.ann", n_trees=cfg.n_trees, seed=seed, rows=rows)
            rng = np.random.default_rng(seed + 1)
            qs = v[np.sort(rng.choice(rows, size=min(cfg.recall_sample, len(rows)), replace=False))]
            r = exact_recall_at_10(v, qs, out / f"content_{m}.ann", transform="none", search_k=cfg.search_k, allowed=mask)
            content[m] = {"dim": int(v.shape[1]), "items": int(len(rows)), "recall_at_10": round(r, 4)}
            log(f"index: content index '{m}' over {len(rows)} items, recall@10 = {r:.3f}")
    return {
        "metric": "inner_product" if transform == "extra_dim" else "angular",
        "transform": transform,
        "max_norm": max_norm,
        "dim": int(d),
        "n_trees": int(cfg.n_trees),
        "search_k": int(search_k),
        "search_k_tried": tried,
        "target_recall": float(cfg.target_recall),
        "served_recall_at_10": served[serving],
        "seed": int(seed),
        "exact_below": int(cfg.exact_below),
        "exact_single_below": int(cfg.exact_single_below),
        "serving": serving,
        "serving_batch": serving_batch,
        "recall_at_10": round(float(recall), 4),
        "recall_queries": int(len(queries)),
        "content": content,
        "item_modalities": names,
    }


def build_index(model_dir: str | Path, out_dir: str | Path, cfg: Any, *, seed: int = 0,
                log: Callable[[str], None] = lambda s: None) -> Path:
    """Build ``out_dir`` (atomically) from a model artifact. cfg: :class:`avrec.config.IndexConfig`.

    Returns the index directory.
    """
    from ..artifacts import transaction

    model_dir = Path(model_dir)
    out_dir = Path(out_dir)
    _check_cfg(cfg)
    with transaction(out_dir, kind=KIND, inputs=[model_dir]) as txn:
        _build(model_dir, txn.path, cfg, seed=seed, log=log)
    return out_dir


def _build(model_dir: Path, tmp: Path, cfg: Any, *, seed: int, log: Callable[[str], None]) -> None:
    from ..artifacts import Manifest, fingerprint, load_npy, write_manifest
    from ..encoders.fusion import Recipe

    model = _load_model(model_dir)
    item_ids = [str(r["item_id"]) for r in model["items"]]
    emb_dir = _emb_path(model["manifest"], model_dir)
    emb = None
    if emb_dir is not None and (emb_dir / "manifest.json").exists():
        emb = load_aligned(emb_dir, item_ids, lambda s: log(f"index: {s}"))
    else:
        log(f"index: no embeddings artifact at {emb_dir}; building without content indexes "
            "(--query, modality explanations and content diversity need it)")
    arrays = {name[:-4]: load_npy(model_dir / name) for name in MODEL_FILES}
    for name in ("content_projection", "history_projection"):
        if (model_dir / f"{name}.npy").exists():
            arrays[name] = load_npy(model_dir / f"{name}.npy", mmap=False)
    recipe = Recipe.load(emb_dir) if emb is not None and emb_dir else None
    if recipe is not None:
        # content spaces are searched centred on the catalogue's means, as they were fused
        emb["modalities"] = {m: centred(recipe, m, v, mask) for m, (v, mask) in emb["modalities"].items()}
    extra = _write_index(tmp, arrays=arrays, items=model["items"], users=model["users"], emb=emb,
                         cfg=cfg, seed=seed, log=log)
    emb_man = emb["manifest"] if emb else {}
    if recipe is not None:  # how new items' content becomes fused vectors (index --add)
        recipe.save(tmp)
    extra.update({
        "model_name": model["name"],
        "text_spaces": dict((emb_man.get("extra") or {}).get("text_spaces") or {}),
        "embed_models": emb_man.get("models") or {},
        "added": [],
        # the event store seq the model learnt up to: the server folds in the events after it
        "events": (model["manifest"].get("extra") or {}).get("events"),
    })
    write_manifest(tmp, Manifest(
        artifact=KIND,
        config={"index": _cfg_dict(cfg), "seed": seed},
        inputs={"model": str(model_dir.resolve()),
                "model_fingerprint": fingerprint(model_dir / "item_vectors.npy"),
                "embeddings": str(emb_dir.resolve()) if emb is not None and emb_dir else None},
        models={"name": model["name"], "dim": extra["dim"]},
        counts={"items": len(item_ids), "users": len(model["users"]),
                "content_modalities": len(extra["content"])},
        extra=extra,
    ))


def centred(recipe: Any, m: str, v: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A content modality as the index stores it: centred on the catalogue mean, L2 rows; a row
    that was exactly the mean has nothing to tell it apart and drops out of the mask."""
    c = recipe.centre(m, v, mask)
    return c, np.asarray(mask, bool) & (np.linalg.norm(c, axis=1) > 0)


def _check_cfg(cfg: Any) -> None:
    from ..errors import ConfigError

    if cfg.n_trees < 1:
        raise ConfigError(f"index.n_trees must be at least 1; got {cfg.n_trees}")
    if cfg.search_k == 0 or cfg.search_k < -1:
        raise ConfigError(f"index.search_k must be positive or -1 (annoy's default); got {cfg.search_k}")
    if cfg.exact_below < 0 or cfg.exact_single_below < 0:
        raise ConfigError("index.exact_below and index.exact_single_below must be >= 0")
    if cfg.recall_sample < 0:
        raise ConfigError(f"index.recall_sample must be >= 0; got {cfg.recall_sample}")


def _cfg_dict(cfg: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(vars(cfg))
