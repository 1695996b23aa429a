"""Building an index directory from a model artifact (and its embeddings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ArtifactError, InputError
from ..data.embeddings import load_aligned
from .read import KIND, topk_rows, transform_query

SERVED_MODELS = ("hybrid", "mf", "content", "popular")
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


def _num(v: Any) -> float:
    """A finite float, or NaN for anything else (absent, null, text, inf)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return float("nan")
    return float(v) if np.isfinite(v) else float("nan")


def _understand(u: Any) -> dict[str, Any]:
    """The parts of an ``understand`` record (avrec/understand/__init__.py) the index stores,
    tolerant of absent or malformed parts: {valence, arousal (NaN when unknown), labels
    [(label, score)], tags [(tag, score)]}."""
    u = u if isinstance(u, dict) else {}
    mood = u.get("mood") if isinstance(u.get("mood"), dict) else {}
    labels: list[tuple[str, float]] = []
    for lab in mood.get("labels") or []:
        name = lab.get("label") if isinstance(lab, dict) else lab
        if isinstance(name, str) and name.strip() and name.strip().lower() not in [x for x, _ in labels]:
            sc = _num(lab.get("score")) if isinstance(lab, dict) else float("nan")
            labels.append((name.strip().lower(), 1.0 if np.isnan(sc) else sc))
    tags: list[tuple[str, float]] = []
    for t in u.get("tags") or []:
        name = t.get("tag") if isinstance(t, dict) else t
        if isinstance(name, str) and name.strip():
            sc = _num(t.get("score")) if isinstance(t, dict) else float("nan")
            tags.append((name.strip(), 1.0 if np.isnan(sc) else sc))
    return {"valence": _num(mood.get("valence")), "arousal": _num(mood.get("arousal")), "labels": labels,
            "tags": tags}


def _by_id(items: list[dict[str, Any]], extra_rows: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The embeddings' rows aligned to ``items`` by item_id (an empty row where one is missing)."""
    if extra_rows is None:
        return [{} for _ in items]
    if len(extra_rows) == len(items) and all(str(e.get("item_id")) == str(r.get("item_id"))
                                             for e, r in zip(extra_rows, items)):
        return list(extra_rows)
    pos = {str(e.get("item_id")): e for e in extra_rows}
    return [pos.get(str(r.get("item_id")), {}) for r in items]


def _write_metadata(out: Path, items: list[dict[str, Any]],
                    extra_rows: list[dict[str, Any]] | None) -> tuple[list[str], dict[str, Any]]:
    """ids, titles, durations, modality flags, tags (given and predicted), moods; returns the
    modality names seen and what the understand columns hold: {moods, predicted_tags,
    predicted_only, captions} count the items with a mood, with predicted tags, with a
    predicted tag not also given and with captions; mood_labels is the mood vocabulary."""
    from ..artifacts import save_npy, write_jsonl
    from ..understand import MOOD_LABELS

    merged = []
    parsed = []
    for r, e in zip(items, _by_id(items, extra_rows)):
        pick = lambda k, d=None: r.get(k) if r.get(k) not in (None, "") else e.get(k, d)  # noqa: E731
        tags = pick("tags") or []
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.replace(";", ",").split(",") if t.strip()]
        row = {
            "item_id": str(r["item_id"]),
            "title": str(pick("title") or ""),
            "tags": [str(t) for t in tags],
            "modalities": list(pick("modalities") or []),
            "duration": pick("duration"),
        }
        und = pick("understand")
        if isinstance(und, dict) and und:
            row["understand"] = und  # captions live here only (not on the hot path)
        merged.append(row)
        parsed.append(_understand(und))
    save_ids(out, "item_ids", [m["item_id"] for m in merged])
    save_strings(out, "titles", [m["title"] for m in merged])
    dur = np.array([float(m["duration"]) if isinstance(m["duration"], (int, float)) else np.nan for m in merged],
                   dtype=np.float32)
    save_npy(out / "durations.npy", dur)
    names = sorted({x for m in merged for x in m["modalities"]})
    for name in names:
        save_npy(out / f"has_{name}.npy", np.array([name in m["modalities"] for m in merged], dtype=bool))
    # tags: the given ones and the predicted ones in one vocabulary and one CSR; a parallel
    # flag marks predicted entries (a tag both given and predicted is given), with its score
    vocab = sorted({t.lower() for m in merged for t in m["tags"]} | {t.lower() for p in parsed for t, _ in p["tags"]})
    tid = {t: j for j, t in enumerate(vocab)}
    indptr = np.zeros(len(merged) + 1, dtype=np.int64)
    indices: list[int] = []
    predicted: list[bool] = []
    scores: list[float] = []
    n_pred = n_pred_only = 0  # items with predicted tags; with one that is not also given
    for i, (m, p) in enumerate(zip(merged, parsed)):
        entry = {tid[t.lower()]: (False, 1.0) for t in m["tags"]}
        had = False
        for t, sc in p["tags"]:
            j = tid[t.lower()]
            if j not in entry:
                entry[j] = (True, sc)
                had = True
            elif entry[j][0]:
                entry[j] = (True, max(entry[j][1], sc))
        n_pred += bool(p["tags"])
        n_pred_only += had
        for j in sorted(entry):
            indices.append(j)
            predicted.append(entry[j][0])
            scores.append(entry[j][1])
        indptr[i + 1] = len(indices)
    save_strings(out, "tags_vocab", vocab)
    save_npy(out / "tags_indptr.npy", indptr)
    save_npy(out / "tags_indices.npy", np.asarray(indices, dtype=np.int32))
    save_npy(out / "tags_predicted.npy", np.asarray(predicted, dtype=bool))
    save_npy(out / "tags_scores.npy", np.asarray(scores, dtype=np.float32))
    # moods: valence and arousal per item (NaN unknown), labels as a CSR over their vocabulary
    # (the fixed MOOD_LABELS first, then any other label a classifier gave, sorted)
    save_npy(out / "valence.npy", np.array([p["valence"] for p in parsed], dtype=np.float32))
    save_npy(out / "arousal.npy", np.array([p["arousal"] for p in parsed], dtype=np.float32))
    fixed = [lab for lab, _, _ in MOOD_LABELS]
    mvocab = fixed + sorted({lab for p in parsed for lab, _ in p["labels"]} - set(fixed))
    mid = {lab: j for j, lab in enumerate(mvocab)}
    m_indptr = np.zeros(len(merged) + 1, dtype=np.int64)
    m_indices: list[int] = []
    m_scores: list[float] = []
    for i, p in enumerate(parsed):  # best first, as the record lists them
        for lab, sc in p["labels"]:
            m_indices.append(mid[lab])
            m_scores.append(sc)
        m_indptr[i + 1] = len(m_indices)
    save_strings(out, "moods_vocab", mvocab)
    save_npy(out / "moods_indptr.npy", m_indptr)
    save_npy(out / "moods_indices.npy", np.asarray(m_indices, dtype=np.int32))
    save_npy(out / "moods_scores.npy", np.asarray(m_scores, dtype=np.float32))
    write_jsonl(out / "items.jsonl", merged)
    stats = {
        "moods": sum(1 for p in parsed if p["labels"] or not (np.isnan(p["valence"]) and np.isnan(p["arousal"]))),
        "predicted_tags": int(n_pred),
        "predicted_only": int(n_pred_only),
        "captions": sum(1 for m in merged if (m.get("understand") or {}).get("captions")),
        "mood_labels": mvocab,
    }
    return names, stats


# ---------------------------------------------------------------------------------------
# content clusters (numpy k-means; a profile's "clusters" and their names)

CLUSTERS_MAX = 64
KMEANS_SAMPLE = 20000


def choose_k(n: int) -> int:
    """Clusters for ``n`` items: sqrt(n / 2), at least 1 (2 from 8 items), at most CLUSTERS_MAX."""
    if n < 2:
        return max(n, 0)
    return int(min(CLUSTERS_MAX, max(2 if n >= 8 else 1, round(float(np.sqrt(n / 2.0))))))


def _assign(x: np.ndarray, centroids: np.ndarray, *, chunk: int = 65536) -> np.ndarray:
    """Nearest centroid by cosine of each row of x (-1 for zero rows)."""
    out = np.full(len(x), -1, dtype=np.int32)
    if len(centroids) == 0:
        return out
    for a in range(0, len(x), chunk):
        v = np.asarray(x[a:a + chunk], dtype=np.float32)
        nz = np.linalg.norm(v, axis=1) > 0
        if nz.any():
            out[a:a + chunk][nz] = np.argmax(v[nz] @ centroids.T, axis=1).astype(np.int32)
    return out


def kmeans(x: np.ndarray, k: int, *, seed: int, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means (cosine) with k-means++ seeding, fitted on at most KMEANS_SAMPLE
    rows: ((k, D) unit centroids, (n,) int32 cluster of each row, -1 for zero rows)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1)
    rows = np.flatnonzero(norms > 0)
    k = min(k, len(rows))
    if k < 1:
        return np.zeros((0, x.shape[1] if x.ndim == 2 else 0), np.float32), np.full(len(x), -1, np.int32)
    rng = np.random.default_rng(seed)
    fit = rows if len(rows) <= KMEANS_SAMPLE else np.sort(rng.choice(rows, KMEANS_SAMPLE, replace=False))
    v = x[fit] / norms[fit, None]
    c = [int(rng.integers(len(v)))]
    dist = 1.0 - v @ v[c[0]]
    for _ in range(1, k):  # k-means++ on cosine distance
        p = np.maximum(dist, 0).astype(np.float64)
        j = int(rng.choice(len(v), p=p / p.sum())) if p.sum() > 0 else int(rng.integers(len(v)))
        c.append(j)
        dist = np.minimum(dist, 1.0 - v @ v[j])
    cent = v[c].copy()
    lab = np.full(len(v), -1, np.int64)
    for _ in range(iters):
        sim = v @ cent.T
        new = np.argmax(sim, axis=1)
        if np.array_equal(new, lab):
            break
        lab = new
        for j in range(k):
            mem = lab == j
            if mem.any():
                s = v[mem].sum(0)
            else:  # an empty cluster takes the row farthest from its centroid
                s = v[int(np.argmin(sim[np.arange(len(v)), lab]))]
            cent[j] = s / (float(np.linalg.norm(s)) or 1.0)
    return cent.astype(np.float32), _assign(x, cent)


def _cluster_names(labels: np.ndarray, k: int, out: Path) -> list[str]:
    """Each cluster's name: its two most characteristic tags (given, or predicted weighted by
    their score), scored count_in_cluster^2 / count_in_catalogue; else its commonest mood
    label; else "cluster <j>"."""
    indptr = np.load(out / "tags_indptr.npy")
    indices = np.load(out / "tags_indices.npy").astype(np.int64)
    weights = np.where(np.load(out / "tags_predicted.npy"), np.load(out / "tags_scores.npy"), 1.0)
    vocab_t = _strings(out, "tags_vocab")
    m_indptr = np.load(out / "moods_indptr.npy")
    m_indices = np.load(out / "moods_indices.npy").astype(np.int64)
    vocab_m = _strings(out, "moods_vocab")
    item_of = np.repeat(np.arange(len(labels)), np.diff(indptr))
    item_of_m = np.repeat(np.arange(len(labels)), np.diff(m_indptr))
    total = np.bincount(indices, weights=weights, minlength=len(vocab_t))
    names = []
    for j in range(k):
        sel = labels[item_of] == j
        cnt = np.bincount(indices[sel], weights=weights[sel], minlength=len(vocab_t))
        score = np.where(total > 0, cnt * cnt / np.where(total > 0, total, 1.0), 0.0)
        top = [int(t) for t in np.argsort(-score, kind="stable")[:2] if score[t] > 0]
        if top:
            names.append(", ".join(vocab_t[t] for t in top))
            continue
        ms = np.bincount(m_indices[labels[item_of_m] == j], minlength=len(vocab_m))
        names.append(vocab_m[int(np.argmax(ms))] if ms.size and ms.max() > 0 else f"cluster {j}")
    return names


def _strings(directory: Path, name: str) -> list[str]:
    blob = bytes(np.load(directory / f"{name}_utf8.npy"))
    off = np.load(directory / f"{name}_offsets.npy").tolist()
    return [blob[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def _write_clusters(out: Path, x: np.ndarray, on: str, *, seed: int, previous: dict[str, Any] | None,
                    log: Callable[[str], None]) -> dict[str, Any]:
    """clusters.npy (n,) int32 (-1: no vector), cluster_centroids.npy (k, D), cluster_names_*;
    ``previous`` ({centroids, labels}: an index --add) keeps the old items' clusters and puts
    new items in their nearest one. Returns the manifest's ``clusters`` entry."""
    from ..artifacts import save_npy

    if previous is not None and previous["centroids"].shape[1:] == x.shape[1:]:
        cent = np.asarray(previous["centroids"], np.float32)
        old = np.asarray(previous["labels"], np.int32)
        labels = np.concatenate([old, _assign(x[len(old):], cent)]).astype(np.int32)
    else:
        cent, labels = kmeans(x, choose_k(int(np.count_nonzero(np.linalg.norm(x, axis=1) > 0))), seed=seed)
    k = len(cent)
    names = _cluster_names(labels, k, out)
    save_npy(out / "clusters.npy", labels)
    save_npy(out / "cluster_centroids.npy", cent)
    save_strings(out, "cluster_names", names)
    log(f"index: {k} content clusters on {on}" + (f" (e.g. {names[0]!r})" if names else ""))
    return {"k": int(k), "on": on}


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
    clusters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write every file of an index into ``out``; returns the manifest ``extra``.

    clusters: the old index's {centroids, labels, on} when adding items (kept; new items join
    their nearest cluster), else None (k-means afresh)."""
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
    names, understood = _write_metadata(out, items, emb["rows"] if emb else None)

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
    # content clusters on the fused content vectors (item vectors without embeddings)
    fused = emb["fused"] if emb is not None else None
    on = "content_fused" if fused is not None and np.any(fused) else "item_vectors"
    if clusters is not None and clusters.get("on") != on:
        clusters = None
    cluster_info = _write_clusters(out, np.asarray(fused if on == "content_fused" else x, np.float32), on,
                                   seed=seed, previous=clusters, log=log)
    if understood["moods"] or understood["predicted_tags"]:
        log(f"index: {understood['moods']} items with a mood, {understood['predicted_tags']} with predicted tags")
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
        "clusters": cluster_info,
        "understand": understood,
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
    if (model_dir / "seen_weights.npy").exists():  # train.recency: the decayed weights the user vectors hold
        arrays["seen_weights"] = load_npy(model_dir / "seen_weights.npy")
        if arrays["seen_weights"].shape != arrays["seen_indices"].shape:
            raise ArtifactError(f"{model_dir}: seen_weights.npy is {arrays['seen_weights'].shape}, expected "
                                f"{arrays['seen_indices'].shape} (one per seen_indices entry)")
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
        # train.recency: the server decays the trained history by the live events' count
        "recency_half_life": float(((model["manifest"].get("extra") or {}).get("recency") or {}).get("half_life") or 0.0),
    })
    write_manifest(tmp, Manifest(
        artifact=KIND,
        config={"index": _cfg_dict(cfg), "seed": seed},
        inputs={"model": str(model_dir.resolve()),
                "model_fingerprint": fingerprint(model_dir / "item_vectors.npy"),
                "embeddings": str(emb_dir.resolve()) if emb is not None and emb_dir else None},
        models={"name": model["name"], "dim": extra["dim"]},
        counts={"items": len(item_ids), "users": len(model["users"]),
                "content_modalities": len(extra["content"]), **understand_counts(extra)},
        extra=extra,
    ))


def understand_counts(extra: dict[str, Any]) -> dict[str, int]:
    """The manifest counts of what the items' understand records gave."""
    u = extra.get("understand") or {}
    return {"items_with_mood": int(u.get("moods", 0)), "items_with_predicted_tags": int(u.get("predicted_tags", 0)),
            "items_with_captions": int(u.get("captions", 0)), "clusters": int((extra.get("clusters") or {}).get("k", 0))}


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
