"""The read side of an index directory: numpy memory maps and annoy, nothing else.

``avrec recommend``, ``avrec profile`` and ``avrec serve`` import only this module (numpy,
and annoy when a search needs it), so a request never pays for torch, transformers, librosa
or OpenCV. The items' understand columns (tags_predicted/tags_scores, valence, arousal,
moods_*, clusters, cluster_centroids, cluster_names_*; docs/artifacts.md) are optional:
an index built before them reads as "nothing known" (NaN moods, no predicted tags).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import ArtifactError

KIND = "index"


# ---------------------------------------------------------------------------------------
# string tables and id maps (memory-mapped, no pickle)


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

    def take(self, rows: np.ndarray) -> list[str]:
        """The strings of ``rows`` (n,) ints: their offsets read in one gather each."""
        rows = np.asarray(rows, np.int64)
        blob = self.blob
        return [bytes(blob[a:b]).decode("utf-8")
                for a, b in zip(self.offsets[rows].tolist(), self.offsets[rows + 1].tolist())]


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

    def ids_of(self, rows: np.ndarray) -> list[str]:
        """The ids of ``rows`` (n,) ints, in one gather."""
        return [b.decode("utf-8") for b in self.ids[np.asarray(rows, np.int64)].tolist()]

    def row(self, key: str) -> int | None:
        b = str(key).strip().encode("utf-8")  # ids are stored stripped (avrec.ids.check_id)
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


def transform_query(q: np.ndarray, transform: str) -> np.ndarray:
    """(d,) -> the annoy query: [q/|q|, 0] for extra_dim, q itself otherwise."""
    q = np.asarray(q, dtype=np.float32)
    if transform != "extra_dim":
        return q
    n = float(np.linalg.norm(q)) or 1.0
    return np.append(q / n, np.float32(0.0)).astype(np.float32)


def topk_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (-inf ones dropped). scores: (n,)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if scores.ndim == 1 and scores.shape[0] >= 2 * k * 1024:  # wide: block maxima beat argpartition
        idx, val = topk_batch(np.asarray(scores, dtype=np.float32)[None, :], k)
        return idx[0][np.isfinite(val[0])]
    if k < scores.shape[0]:
        # ties at the k-th score go to the lowest rows, so a shorter list is a prefix of a longer
        # one (argpartition chooses among them as it likes: popular items tie often)
        kth = scores[np.argpartition(scores, -k)[-k:]].min()
        above = np.flatnonzero(scores > kth)
        part = np.concatenate([above, np.flatnonzero(scores == kth)[: k - len(above)]])
    else:
        part = np.arange(scores.shape[0])
    part = part[np.lexsort((part, -scores[part]))]  # best first, ties by row
    return part[np.isfinite(scores[part])].astype(np.int64)


def topk_batch(s: np.ndarray, k: int, *, block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top k of s (c, n), best first: (c, k) column indices and values (-inf where a
    row has fewer than k finite scores). Wide rows go through the block-maxima filter of
    :func:`avrec.metrics._topk_wide` (numpy only); narrow ones through one argpartition."""
    from ..metrics import _topk_wide

    c, n = s.shape
    k = min(k, n)
    if c == 0 or k == 0:
        return np.zeros((c, k), dtype=np.int64), np.full((c, k), -np.inf, dtype=np.float32)
    if block is None:  # measured: 1024-wide blocks for 100k columns, 256 for 20k (46 ms against 110 for 1677 rows)
        block = 1024 if n >= 65536 else 256
        # a larger k wants narrower blocks (at least 4k of them): at 100k columns, 16 rows, on
        # an AMD EPYC core, k=50 took 2.0 ms in 256-wide blocks against 18.7 ms of argpartition,
        # k=100 2.2 ms in 128-wide ones against 16.4 (the MMR pool of diversity requests)
        while block > 64 and n // block < 4 * k:
            block //= 2
    if n // block < 2 * k:
        part = np.argpartition(s, n - k, axis=1)[:, n - k:] if k < n else np.tile(np.arange(n), (c, 1))
        vals = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1).astype(np.float32)
    idx, vals = _topk_wide(s, k, block=block)
    return idx, vals.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------
# load and query


def _npy(path: Path) -> np.ndarray:
    """A read-only memory map as a plain ndarray view: the same pages, without np.memmap's
    per-index Python overhead (which dominates row-by-row id and title lookups)."""
    return np.load(path, mmap_mode="r", allow_pickle=False).view(np.ndarray)


_UNREADABLE = object()


def _build_id(path: Path) -> Any:
    """The build_id of the index at ``path`` now; when its manifest cannot be read, a
    sentinel equal to no build_id."""
    import json

    try:
        data = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _UNREADABLE
    return data.get("build_id") if isinstance(data, dict) else _UNREADABLE


class Index:
    """Read side of an index directory: numpy memory maps and annoy, loaded on first use.

    Opening checks the manifest and the size of every file it lists. ``index --add``
    replaces the whole directory in one rename while readers may hold it open: a reader
    asks :meth:`current` after answering, and answers again from a fresh :class:`Index`
    when the directory was replaced meanwhile (its files could mix two versions).
    """

    def __init__(self, path: str | Path):
        from ..artifacts import read_manifest, verify_files  # stdlib only: keeps this path light

        self.path = Path(path)
        for attempt in range(3):
            self.manifest = read_manifest(self.path, KIND, verify="none")
            try:
                verify_files(self.path, self.manifest)
                break
            except ArtifactError:
                # swapped between reading the manifest and checking the files: those were the
                # next version's (sizes that differ from this manifest's); open that one instead
                if attempt == 2 or _build_id(self.path) == self.manifest.get("build_id"):
                    raise
        self.build_id = self.manifest.get("build_id")
        self.extra: dict[str, Any] = self.manifest.get("extra") or {}
        self.transform: str = self.extra.get("transform", "none")
        self._ann: dict[str, Any] = {}

    def current(self) -> bool:
        """True while ``path`` still holds the version this object opened."""
        return _build_id(self.path) == self.build_id

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

    def centre(self, m: str) -> np.ndarray | None:
        """(d,) the catalogue mean modality ``m`` is centred on (a text query is centred with it too)."""
        p = self.path / f"centre_{m}.npy"
        return np.asarray(_npy(p), np.float32) if p.exists() else None

    @cached_property
    def content_fused(self) -> np.ndarray | None:
        p = self.path / "content_fused.npy"
        return _npy(p) if p.exists() else None

    def seen(self, user_row: int) -> np.ndarray:
        return np.asarray(self.seen_indices[int(self.seen_indptr[user_row]):int(self.seen_indptr[user_row + 1])],
                          dtype=np.int64)

    def history(self, user_row: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows (n,) int64, weights (n,) float32) of what a trained user has seen: each 1, or
        the stored weight (train.recency's decay; 0 for a skip or a dislike, seen but no taste)."""
        a, b = int(self.seen_indptr[user_row]), int(self.seen_indptr[user_row + 1])
        rows = np.asarray(self.seen_indices[a:b], dtype=np.int64)
        sw = self.seen_weights
        w = np.asarray(sw[a:b], np.float32) if sw is not None else np.ones(len(rows), np.float32)
        return rows, w

    def tag_rows(self, tag: str) -> np.ndarray:
        """(n,) bool: items carrying ``tag`` (case-insensitive), given or predicted."""
        return self._tag_rows(tag, None)

    def given_tag_rows(self, tag: str) -> np.ndarray:
        """(n,) bool: items ``tag`` was given to (metadata), not only predicted."""
        return self._tag_rows(tag, False)

    def predicted_tag_rows(self, tag: str) -> np.ndarray:
        """(n,) bool: items only a classifier gave ``tag`` (a tag also given counts as given)."""
        return self._tag_rows(tag, True)

    def _tag_rows(self, tag: str, predicted: bool | None) -> np.ndarray:
        out = np.zeros(self.n_items, dtype=bool)
        t = tag.lower()
        tid = self.tag_ids.get(t)
        if tid is None:
            return out
        sel = self.tags_indices == tid
        flags = self.tags_predicted
        if predicted is not None:
            sel &= flags if predicted else ~flags
        hit = np.flatnonzero(sel)
        out[np.searchsorted(self.tags_indptr, hit, side="right") - 1] = True
        return out

    # tags, moods and clusters (the items' understand records; each opened on first use) ----
    @cached_property
    def tag_ids(self) -> dict[str, int]:
        return {t: j for j, t in enumerate(self.tag_vocab)}

    @cached_property
    def tags_indptr(self) -> np.ndarray:
        return np.asarray(_npy(self.path / "tags_indptr.npy"))

    @cached_property
    def tags_indices(self) -> np.ndarray:
        return np.asarray(_npy(self.path / "tags_indices.npy"))

    @cached_property
    def tags_predicted(self) -> np.ndarray:
        """(nnz,) bool parallel to tags_indices: the entry is a predicted tag (all False in an
        index built before predicted tags)."""
        p = self.path / "tags_predicted.npy"
        return np.asarray(_npy(p)) if p.exists() else np.zeros(len(self.tags_indices), dtype=bool)

    @cached_property
    def tags_scores(self) -> np.ndarray:
        """(nnz,) float32 parallel to tags_indices: 1 for a given tag, the classifier's score
        for a predicted one."""
        p = self.path / "tags_scores.npy"
        return np.asarray(_npy(p)) if p.exists() else np.ones(len(self.tags_indices), dtype=np.float32)

    def item_tags(self, row: int) -> list[tuple[str, bool, float]]:
        """(tag, predicted, score) of item ``row``, in vocabulary order."""
        a, b = int(self.tags_indptr[row]), int(self.tags_indptr[row + 1])
        vocab = self.tag_vocab
        return [(vocab[int(t)], bool(p), float(s)) for t, p, s in
                zip(self.tags_indices[a:b], self.tags_predicted[a:b], self.tags_scores[a:b])]

    def _optional(self, name: str) -> np.ndarray | None:
        p = self.path / f"{name}.npy"
        return np.asarray(_npy(p)) if p.exists() else None

    @cached_property
    def valence(self) -> np.ndarray:
        """(n,) float32 in [-1, 1], NaN when unknown (all NaN in an index built before moods)."""
        v = self._optional("valence")
        return v if v is not None else np.full(self.n_items, np.nan, dtype=np.float32)

    @cached_property
    def arousal(self) -> np.ndarray:
        v = self._optional("arousal")
        return v if v is not None else np.full(self.n_items, np.nan, dtype=np.float32)

    @cached_property
    def mood_vocab(self) -> list[str]:
        """Mood labels (MOOD_LABELS first, then any other label a classifier gave); [] in an
        index built before moods."""
        if not (self.path / "moods_vocab_utf8.npy").exists():
            return []
        t = StringTable(self.path, "moods_vocab")
        return [t[i] for i in range(len(t))]

    @cached_property
    def moods_indptr(self) -> np.ndarray:
        v = self._optional("moods_indptr")
        return v if v is not None else np.zeros(self.n_items + 1, dtype=np.int64)

    @cached_property
    def moods_indices(self) -> np.ndarray:
        v = self._optional("moods_indices")
        return v if v is not None else np.zeros(0, dtype=np.int32)

    @cached_property
    def moods_scores(self) -> np.ndarray:
        v = self._optional("moods_scores")
        return v if v is not None else np.zeros(0, dtype=np.float32)

    def mood_rows(self, label: str) -> np.ndarray:
        """(n,) bool: items whose top mood labels include ``label``."""
        out = np.zeros(self.n_items, dtype=bool)
        vocab = self.mood_vocab
        lab = label.lower()
        if lab not in vocab:
            return out
        hit = np.flatnonzero(self.moods_indices == vocab.index(lab))
        out[np.searchsorted(self.moods_indptr, hit, side="right") - 1] = True
        return out

    def item_moods(self, row: int) -> list[tuple[str, float]]:
        """(label, score) of item ``row``, best first."""
        a, b = int(self.moods_indptr[row]), int(self.moods_indptr[row + 1])
        vocab = self.mood_vocab
        return [(vocab[int(j)], float(s)) for j, s in zip(self.moods_indices[a:b], self.moods_scores[a:b])]

    def item_mood(self, row: int) -> dict[str, Any] | None:
        """{valence, arousal, labels} of item ``row`` (None for an unknown value), or None
        when nothing about its mood is known."""
        v, a = float(self.valence[row]), float(self.arousal[row])
        labels = [lab for lab, _ in self.item_moods(row)]
        if not labels and v != v and a != a:
            return None
        return {"valence": None if v != v else round(v, 4), "arousal": None if a != a else round(a, 4),
                "labels": labels}

    @cached_property
    def clusters(self) -> np.ndarray | None:
        """(n,) int32 content cluster of each item (-1: none); None in an older index."""
        return self._optional("clusters")

    @cached_property
    def cluster_centroids(self) -> np.ndarray | None:
        return self._optional("cluster_centroids")

    @cached_property
    def cluster_names(self) -> list[str]:
        if not (self.path / "cluster_names_utf8.npy").exists():
            return []
        t = StringTable(self.path, "cluster_names")
        return [t[i] for i in range(len(t))]

    @cached_property
    def seen_weights(self) -> np.ndarray | None:
        """(nnz,) float32 parallel to seen_indices when the model stores interaction weights;
        None: every seen item weighs the same."""
        return self._optional("seen_weights")

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
                raise ArtifactError(f"{p} is missing; rebuild it with `avrec index`")
            check_annoy(p, f, self.manifest)
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


def check_annoy(path: Path, f: int, manifest: dict[str, Any]) -> None:
    """Refuse an annoy file annoy would crash on (it aborts the process, SIGABRT, on a
    damaged file): its size against the manifest and its node size, and its roots.

    An angular node is n_descendants (int32), two children (int32) and f float32s; the
    roots are the trailing nodes that cover every item, and their children must be nodes.
    """
    from ..artifacts import verify_files

    verify_files(path.parent, manifest, only=[path.name])
    size = path.stat().st_size
    node = 12 + 4 * f
    bad = f"{path} is damaged ({{}}); rebuild it with `avrec index`"
    if size == 0 or size % node:
        raise ArtifactError(bad.format(f"{size} bytes is not a whole number of {node}-byte nodes"))
    nodes = np.memmap(path, dtype=np.int32, mode="r").reshape(-1, node // 4)
    n_nodes = len(nodes)
    tail = np.asarray(nodes[-min(n_nodes, 4096):, :3])
    n_items = int(tail[-1, 0])
    roots = tail[tail[:, 0] == n_items]
    if n_items < 1 or n_items > n_nodes:
        raise ArtifactError(bad.format(f"its roots claim {n_items} items in {n_nodes} nodes"))
    if n_items > node // 4 - 1:  # a root of a bigger tree splits: both children are nodes
        if roots[:, 1:3].min() < 0 or roots[:, 1:3].max() >= n_nodes:
            raise ArtifactError(bad.format("a root points outside the file"))


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
