"""Annoy index over a model's item vectors, plus everything ``avrec recommend`` reads.

Layout of ``index/`` (every matrix memory-mappable ``.npy``; nothing pickled)::

    manifest.json            artifact "index"; inputs {model, embeddings}; extra: metric, transform,
                             max_norm, n_trees, search_k, seed, exact_below, exact_single_below,
                             serving (single requests: exact | annoy), serving_batch, recall_at_10,
                             recall_queries, content {m: {dim, items, recall_at_10}}, text_spaces,
                             embed_models, model_name, added
    items.ann                annoy (angular) over the item vectors. With transform "extra_dim" item
                             row i is [x_i, sqrt(M^2 - |x_i|^2)] / M (M = max norm) and a query q is
                             [q / |q|, 0], so angular order equals inner-product order.
    items.jsonl              row i = annoy item i: {item_id, title, tags, modalities, duration}
    item_ids.npy             (n,) S: utf-8 item id of row i         } id maps: row -> id, and the
    item_ids_sorted.npy      (n,) S: the same ids sorted            } sorted ids with their rows for
    item_ids_order.npy       (n,) int64: row of each sorted id      } a binary-search id -> row lookup
    user_ids.npy, user_ids_sorted.npy, user_ids_order.npy          the same for users
    titles_utf8.npy          (B,) uint8 } titles as one utf-8 blob: title i is
    titles_offsets.npy       (n+1,) int64 } blob[off[i]:off[i+1]]
    durations.npy            (n,) float32 seconds, NaN when unknown
    has_<modality>.npy       (n,) bool: the item has this modality (from items.jsonl)
    tags_vocab_utf8.npy, tags_vocab_offsets.npy    tag strings (same blob layout)
    tags_indptr.npy (n+1,) int64, tags_indices.npy (nnz,) int32   CSR item -> tag ids
    item_vectors.npy, user_vectors.npy, history_vectors.npy, seen_indptr.npy, seen_indices.npy,
    popularity.npy           copied from the model (see docs/artifacts.md)
    content_projection.npy   (D or D+1, d) copied from the model when present: a new item's vector
                             = [fused content, 1] @ projection (used by ``--add``; D+1: last row bias)
    history_projection.npy   the same for its fold-in (history) vector, when the model has one
    content_<m>.npy          (n, d_m) L2-normalised content vectors of modality m (zero rows where missing)
    content_<m>_mask.npy     (n,) bool
    content_<m>.ann          annoy (angular) over the rows that have modality m
    content_fused.npy        (n, D) fused content vectors (MMR diversity, explanations)

Only numpy and annoy are needed to read it (:class:`Index`).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .errors import ArtifactError, InputError

KIND = "index"
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
# string tables and id maps (memory-mapped, no pickle)


def save_strings(directory: Path, name: str, strings: Sequence[str]) -> None:
    """Write strings as ``<name>_utf8.npy`` (one uint8 blob) + ``<name>_offsets.npy`` (n+1,)."""
    from .artifacts import save_npy

    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        offsets[1:] = np.cumsum([len(b) for b in encoded])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.zeros(0, np.uint8)
    save_npy(directory / f"{name}_utf8.npy", blob)
    save_npy(directory / f"{name}_offsets.npy", offsets)


def save_ids(directory: Path, name: str, ids: Sequence[str]) -> None:
    """Write ``<name>.npy`` (row -> id), ``<name>_sorted.npy`` and ``<name>_order.npy``."""
    from .artifacts import save_npy

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


class StringTable:
    """Row -> string over a utf-8 blob and offsets (both memory-mapped)."""

    def __init__(self, directory: Path, name: str):
        self.blob = _npy(directory / f"{name}_utf8.npy")
        self.offsets = _npy(directory / f"{name}_offsets.npy")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return bytes(self.blob[a:b]).decode("utf-8")


class IdMap:
    """Row <-> id over fixed-width byte strings; lookup is a binary search on the sorted copy."""

    def __init__(self, directory: Path, name: str):
        self.directory, self.name = directory, name

    # each map is opened on first use: a lookup needs only the sorted pair, output only ids
    @cached_property
    def ids(self) -> np.ndarray:
        return _npy(self.directory / f"{self.name}.npy")

    @cached_property
    def sorted(self) -> np.ndarray:
        return _npy(self.directory / f"{self.name}_sorted.npy")

    @cached_property
    def order(self) -> np.ndarray:
        return _npy(self.directory / f"{self.name}_order.npy")

    def __len__(self) -> int:
        return len(self.ids)

    def id(self, row: int) -> str:
        return bytes(self.ids[row]).decode("utf-8")

    def row(self, key: str) -> int | None:
        b = str(key).encode("utf-8")
        if not b or len(b) > self.sorted.dtype.itemsize or len(self.sorted) == 0:
            return None
        pos = int(np.searchsorted(self.sorted, np.bytes_(b)))
        if pos < len(self.sorted) and bytes(self.sorted[pos]) == b:
            return int(self.order[pos])
        return None

    def rows(self, keys: Iterable[str]) -> tuple[np.ndarray, list[str]]:
        """Rows of the known keys (in order) and the list of unknown keys."""
        rows, unknown = [], []
        for k in keys:
            r = self.row(k)
            (unknown.append(k) if r is None else rows.append(r))
        return np.asarray(rows, dtype=np.int64), unknown


# ---------------------------------------------------------------------------------------
# metric and transform


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


def transform_query(q: np.ndarray, transform: str) -> np.ndarray:
    """(d,) -> the annoy query: [q/|q|, 0] for extra_dim, q itself otherwise."""
    q = np.asarray(q, dtype=np.float32)
    if transform != "extra_dim":
        return q
    n = float(np.linalg.norm(q)) or 1.0
    return np.append(q / n, np.float32(0.0)).astype(np.float32)


def build_annoy(vectors: np.ndarray, path: Path, *, n_trees: int, seed: int,
                rows: np.ndarray | None = None) -> None:
    """Build an angular annoy index over ``vectors`` (only ``rows`` if given; annoy id = row)."""
    from annoy import AnnoyIndex

    from .artifacts import atomic_file

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


def topk_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (-inf ones dropped). scores: (n,)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if scores.ndim == 1 and scores.shape[0] >= 2 * k * 1024:  # wide: block maxima beat argpartition
        idx, val = topk_batch(np.asarray(scores, dtype=np.float32)[None, :], k)
        return idx[0][np.isfinite(val[0])]
    if k < scores.shape[0]:
        part = np.argpartition(scores, -k)[-k:]
    else:
        part = np.arange(scores.shape[0])
    part = part[np.argsort(-scores[part], kind="stable")]
    return part[np.isfinite(scores[part])].astype(np.int64)


def topk_batch(s: np.ndarray, k: int, *, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top k of s (c, n), best first: (c, k) column indices and values (-inf where a
    row has fewer than k finite scores).

    argpartition over every row of a wide matrix costs ~1 ms per 100k columns; instead the
    k-th largest block maximum bounds each row's k-th score from below (k blocks each hold an
    element at least that large), so only the few entries above it are sorted.
    """
    c, n = s.shape
    k = min(k, n)
    out_idx = np.zeros((c, k), dtype=np.int64)
    out_val = np.full((c, k), -np.inf, dtype=np.float32)
    if c == 0 or k == 0:
        return out_idx, out_val
    nb = n // block
    if nb < 2 * k:
        part = np.argpartition(s, n - k, axis=1)[:, n - k:] if k < n else np.tile(np.arange(n), (c, 1))
        vals = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1).astype(np.float32)
    body = s[:, : nb * block].reshape(c, nb, block)
    tail = s[:, nb * block:]
    maxima = body.max(axis=2)
    all_max = np.concatenate([maxima, tail.max(axis=1, keepdims=True)], axis=1) if tail.shape[1] else maxima
    m = all_max.shape[1]
    t = np.partition(all_max, m - k, axis=1)[:, m - k]
    # only blocks whose maximum reaches the bound can hold a top-k entry
    rb, bb = np.nonzero(maxima >= t[:, None])
    blocks = body[rb, bb]  # (blocks kept, block)
    cr, cc = np.nonzero(blocks >= t[rb][:, None])
    r, col, vals = rb[cr], bb[cr] * block + cc, blocks[cr, cc]
    if tail.shape[1]:
        tr, tc = np.nonzero(tail >= t[:, None])
        r = np.concatenate([r, tr])
        col = np.concatenate([col, nb * block + tc])
        vals = np.concatenate([vals, tail[tr, tc]])
    o = np.lexsort((col, -vals, r))  # by row, then score descending, then column
    r, col, vals = r[o], col[o], vals[o]
    pos = np.arange(len(r)) - np.searchsorted(r, np.arange(c))[r]
    keep = pos < k
    out_idx[r[keep], pos[keep]] = col[keep]
    out_val[r[keep], pos[keep]] = vals[keep]
    return out_idx, out_val


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
    from .artifacts import load_npy, read_jsonl, read_manifest

    man = read_manifest(model_dir, expect="model")
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


def _load_embeddings(emb_dir: Path, item_ids: list[str], log: Callable[[str], None]) -> dict[str, Any] | None:
    """Content vectors aligned to ``item_ids`` (rows missing from the embeddings are zero)."""
    from .artifacts import load_npy, read_jsonl, read_manifest

    man = read_manifest(emb_dir, expect="embeddings")
    rows = read_jsonl(emb_dir / "items.jsonl")
    emb_ids = [str(r["item_id"]) for r in rows]
    if emb_ids == item_ids:
        take = None
    else:
        pos = {i: r for r, i in enumerate(emb_ids)}
        take = np.array([pos.get(i, -1) for i in item_ids], dtype=np.int64)
        log(f"index: embeddings rows differ from the model's; aligned by item_id ({int((take < 0).sum())} missing)")

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


def _write_metadata(out: Path, items: list[dict[str, Any]], extra_rows: list[dict[str, Any]] | None) -> list[str]:
    """ids, titles, durations, modality flags and tags; returns the modality names seen."""
    from .artifacts import save_npy, write_jsonl

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
    from .artifacts import save_npy

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
    recall = exact_recall_at_10(x, queries, out / "items.ann", transform=transform, search_k=cfg.search_k)
    # a batch of users amortises one matrix product; a single request is a matrix-vector scan,
    # which annoy beats at fewer items (exact_below also bounds it, so 0 forces annoy everywhere)
    serving_batch = "exact" if n < cfg.exact_below else "annoy"
    serving = "exact" if n < min(cfg.exact_single_below, cfg.exact_below) else "annoy"
    log(f"index: recall@10 against exact search = {recall:.3f} over {len(queries)} queries "
        f"(search_k={cfg.search_k}); single requests served by {serving} search, batches by {serving_batch}")

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
        "search_k": int(cfg.search_k),
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
    from .artifacts import Manifest, atomic_dir, fingerprint, load_npy, write_manifest

    model_dir = Path(model_dir)
    out_dir = Path(out_dir)
    _check_cfg(cfg)
    model = _load_model(model_dir)
    item_ids = [str(r["item_id"]) for r in model["items"]]
    emb_dir = _emb_path(model["manifest"], model_dir)
    emb = None
    if emb_dir is not None and (emb_dir / "manifest.json").exists():
        emb = _load_embeddings(emb_dir, item_ids, log)
    else:
        log(f"index: no embeddings artifact at {emb_dir}; building without content indexes "
            "(--query, modality explanations and content diversity need it)")
    arrays = {name[:-4]: load_npy(model_dir / name) for name in MODEL_FILES}
    for name in ("content_projection", "history_projection"):
        if (model_dir / f"{name}.npy").exists():
            arrays[name] = load_npy(model_dir / f"{name}.npy", mmap=False)
    with atomic_dir(out_dir) as tmp:
        extra = _write_index(tmp, arrays=arrays, items=model["items"], users=model["users"], emb=emb,
                             cfg=cfg, seed=seed, log=log)
        emb_man = emb["manifest"] if emb else {}
        extra.update({
            "model_name": model["name"],
            "text_spaces": dict((emb_man.get("extra") or {}).get("text_spaces") or {}),
            "embed_models": emb_man.get("models") or {},
            "added": [],
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
    return out_dir


def _check_cfg(cfg: Any) -> None:
    from .errors import ConfigError

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


# ---------------------------------------------------------------------------------------
# add new items from content vectors, without retraining


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
    from .artifacts import Manifest, atomic_dir, read_jsonl, read_manifest, write_manifest

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


# ---------------------------------------------------------------------------------------
# load and query


def _npy(path: Path) -> np.ndarray:
    """A read-only memory map as a plain ndarray view: the same pages, without np.memmap's
    per-index Python overhead (which dominates row-by-row id and title lookups)."""
    return np.load(path, mmap_mode="r", allow_pickle=False).view(np.ndarray)


class Index:
    """Read side of an index directory: numpy memory maps and annoy, loaded on first use."""

    def __init__(self, path: str | Path):
        from .artifacts import read_manifest  # stdlib only: keeps this path light

        self.path = Path(path)
        self.manifest = read_manifest(self.path, KIND)
        self.extra: dict[str, Any] = self.manifest.get("extra") or {}
        self.transform: str = self.extra.get("transform", "none")
        self._ann: dict[str, Any] = {}

    # arrays -------------------------------------------------------------------------
    @cached_property
    def item_vectors(self) -> np.ndarray:
        return _npy(self.path / "item_vectors.npy")

    @cached_property
    def user_vectors(self) -> np.ndarray:
        return _npy(self.path / "user_vectors.npy")

    @cached_property
    def history_vectors(self) -> np.ndarray:
        return _npy(self.path / "history_vectors.npy")

    @cached_property
    def seen_indptr(self) -> np.ndarray:
        return _npy(self.path / "seen_indptr.npy")

    @cached_property
    def seen_indices(self) -> np.ndarray:
        return _npy(self.path / "seen_indices.npy")

    @cached_property
    def popularity(self) -> np.ndarray:
        return _npy(self.path / "popularity.npy")

    @cached_property
    def durations(self) -> np.ndarray:
        return _npy(self.path / "durations.npy")

    @cached_property
    def items(self) -> IdMap:
        return IdMap(self.path, "item_ids")

    @cached_property
    def users(self) -> IdMap:
        return IdMap(self.path, "user_ids")

    @cached_property
    def titles(self) -> StringTable:
        return StringTable(self.path, "titles")

    @cached_property
    def tag_vocab(self) -> list[str]:
        t = StringTable(self.path, "tags_vocab")
        return [t[i] for i in range(len(t))]

    @property
    def n_items(self) -> int:
        return int(self.manifest.get("counts", {}).get("items", len(self.item_vectors)))

    @property
    def n_users(self) -> int:
        return int(self.manifest.get("counts", {}).get("users", len(self.user_vectors)))

    @property
    def content_modalities(self) -> list[str]:
        return sorted((self.extra.get("content") or {}).keys())

    def has_modality(self, name: str) -> np.ndarray | None:
        p = self.path / f"has_{name}.npy"
        return _npy(p) if p.exists() else None

    def content(self, m: str) -> np.ndarray:
        return _npy(self.path / f"content_{m}.npy")

    def content_mask(self, m: str) -> np.ndarray:
        return _npy(self.path / f"content_{m}_mask.npy")

    @cached_property
    def content_fused(self) -> np.ndarray | None:
        p = self.path / "content_fused.npy"
        return _npy(p) if p.exists() else None

    def seen(self, user_row: int) -> np.ndarray:
        return np.asarray(self.seen_indices[int(self.seen_indptr[user_row]):int(self.seen_indptr[user_row + 1])],
                          dtype=np.int64)

    def tag_rows(self, tag: str) -> np.ndarray:
        """(n,) bool: items carrying ``tag`` (case-insensitive)."""
        vocab = self.tag_vocab
        out = np.zeros(self.n_items, dtype=bool)
        t = tag.lower()
        if t not in vocab:
            return out
        tid = vocab.index(t)
        indptr = np.asarray(_npy(self.path / "tags_indptr.npy"))
        indices = np.asarray(_npy(self.path / "tags_indices.npy"))
        hit = np.flatnonzero(indices == tid)
        out[np.searchsorted(indptr, hit, side="right") - 1] = True
        return out

    # annoy --------------------------------------------------------------------------
    def annoy(self, name: str = "items") -> Any:
        """The annoy index ``items`` or ``content_<m>`` (memory-mapped on first use)."""
        if name not in self._ann:
            from annoy import AnnoyIndex

            if name == "items":
                f = int(self.extra.get("dim", self.item_vectors.shape[1])) + (1 if self.transform == "extra_dim" else 0)
            else:
                f = int(self.extra["content"][name[len("content_"):]]["dim"])
            p = self.path / f"{name}.ann"
            if not p.exists():
                raise ArtifactError(f"{p} is missing; re-run avrec index")
            ann = AnnoyIndex(f, "angular")
            ann.load(str(p))
            self._ann[name] = ann
        return self._ann[name]

    @property
    def search_k(self) -> int:
        return int(self.extra.get("search_k", -1))

    @property
    def exact(self) -> bool:
        """Single requests scan exactly (else annoy + exact rescoring)."""
        return self.extra.get("serving", "exact") == "exact"

    @property
    def exact_batch(self) -> bool:
        """--all-users scores chunks of users with one exact matrix product."""
        return self.extra.get("serving_batch", self.extra.get("serving", "exact")) == "exact"


def search(
    vectors: np.ndarray,
    q: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    ann: Any = None,
    transform: str = "none",
    search_k: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows of ``vectors @ q``, best first, with exact scores.

    vectors: (n, d); q: (d,); exclude: row ids never returned; allowed: (n,) bool, or None for all.
    With ``ann`` (annoy over the same rows) candidates come from annoy and are rescored
    exactly; the candidate list grows until k rows survive the exclusions, and a search
    restricted to few allowed rows is done exactly.
    """
    n = vectors.shape[0]
    q = np.asarray(q, dtype=np.float32)
    n_allowed = n if allowed is None else int(allowed.sum())
    n_excl = 0 if exclude is None else len(exclude)
    # a boolean mask rather than np.isin: isin imports numpy.ma on first use (~20 ms per process)
    excluded = None
    if n_excl:
        excluded = np.zeros(n, dtype=bool)
        excluded[np.asarray(exclude, dtype=np.int64)] = True
    if ann is not None and n_allowed >= n // 4:
        want = k + n_excl + 10
        while want < n:
            cand = np.asarray(ann.get_nns_by_vector(transform_query(q, transform), want,
                                                    search_k=max(search_k, want * 4) if search_k > 0 else -1),
                              dtype=np.int64)
            keep = np.ones(len(cand), dtype=bool)
            if excluded is not None:
                keep &= ~excluded[cand]
            if allowed is not None:
                keep &= allowed[cand]
            cand = cand[keep]
            if len(cand) >= k or len(cand) + n_excl >= n_allowed:
                cand = np.sort(cand)  # sorted rows read the memory map in order
                s = np.asarray(vectors[cand] @ q, dtype=np.float32)
                top = topk_rows(s, k)
                return cand[top], s[top]
            want *= 4
    # exact: the whole matrix, or only the allowed rows when they are few
    if allowed is not None and n_allowed < n // 2:
        rows = np.flatnonzero(allowed)
        s = np.asarray(vectors[rows] @ q, dtype=np.float32)
        if excluded is not None:
            s[excluded[rows]] = -np.inf
        top = topk_rows(s, k)
        return rows[top], s[top]
    s = np.asarray(vectors @ q, dtype=np.float32)
    if allowed is not None:
        s[~allowed] = -np.inf
    if excluded is not None:
        s[excluded] = -np.inf
    top = topk_rows(s, k)
    return top, s[top]


def norm_rows(x: np.ndarray) -> np.ndarray:
    """(n, d) rows scaled to unit norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


__all__ = [
    "Index", "IdMap", "StringTable", "build_index", "add_items", "search", "topk_rows",
    "choose_metric", "transform_items", "transform_query", "norm_rows",
]
