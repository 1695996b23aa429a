"""Recommendations from an index directory: user, item, fresh history, text query, all users.

Only numpy and annoy are imported here (the text-query path imports the query encoder, and
with it torch, lazily). Every result is a list of rows::

    {<request key>: <value>, "rank": 1, "item_id": "v17", "score": 0.83, "title": "...",
     ["explain": {...}], ["source": "popular"]}

where the request key is ``user`` (``--user``, ``--all-users``, ``--history`` with ``--user``),
``item`` (``--item``), ``history`` (number of known history items) or ``query`` (``--query``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .errors import InputError
from .index import Index, norm_rows, search, topk_batch, topk_rows

FILTER_FIELDS = ("modality", "duration", "tag", "gtag", "ptag", "mood", "valence", "arousal", "popularity")
NUMERIC_FIELDS = ("duration", "popularity", "valence", "arousal")
CHOICE_FIELDS = ("modality", "tag", "gtag", "ptag", "mood")
_FILTER_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*$")


# ---------------------------------------------------------------------------------------
# filters


@dataclass(frozen=True)
class Filter:
    """One ``--filter`` term: ``field op value``; ``=``/``!=`` accept comma-separated alternatives.

    Fields: modality, tag (given or predicted), gtag (given only), ptag (predicted only),
    mood (one of the item's top mood labels), and the numbers duration, popularity, valence,
    arousal (< <= > >= = !=; an unknown value never passes a numeric filter)."""

    field: str
    op: str
    value: str

    @classmethod
    def parse(cls, spec: str) -> "Filter":
        m = _FILTER_RE.match(spec)
        if not m or not m.group(3):
            raise InputError(f"bad --filter {spec!r}; write field<op>value, e.g. modality=video, duration<600, tag=music, "
                             "mood=calm, valence>0.3")
        name, op, value = m.group(1).lower(), m.group(2), m.group(3)
        op = "=" if op == "==" else op
        if name not in FILTER_FIELDS:
            raise InputError(f"unknown --filter field {name!r}; use one of {', '.join(FILTER_FIELDS)} (e.g. duration<600)")
        if name in CHOICE_FIELDS and op not in ("=", "!="):
            raise InputError(f"--filter {spec!r}: {name} takes = or != (e.g. {name}={value})")
        if name in NUMERIC_FIELDS:
            try:
                v = float(value)
            except ValueError:
                raise InputError(f"--filter {spec!r}: {name} needs a number (e.g. {name}{op}"
                                 f"{'0.3' if name in ('valence', 'arousal') else '600'})") from None
            if not math.isfinite(v):
                raise InputError(f"--filter {spec!r}: {name} needs a finite number")
        return cls(name, op, value)

    def mask(self, index: Index) -> np.ndarray:
        """(n_items,) bool of the items this term keeps."""
        n = index.n_items
        if self.field in NUMERIC_FIELDS:
            col = np.asarray(getattr(index, {"duration": "durations"}.get(self.field, self.field)), dtype=np.float64)
            # the columns are float32: compare with the threshold as float32 holds it, so that
            # valence=0.8 finds the items stored as 0.8 and valence>0.3 skips those stored as 0.3
            v = float(np.float32(float(self.value)))
            with np.errstate(invalid="ignore"):
                out = {"<": col < v, "<=": col <= v, ">": col > v, ">=": col >= v, "=": col == v, "!=": col != v}[self.op]
            return out & ~np.isnan(col)  # unknown values never pass a numeric filter
        values = [v.strip() for v in self.value.split(",") if v.strip()]
        if self.field == "mood":
            _check_moods(index, values)
        hit = np.zeros(n, dtype=bool)
        for v in values:
            if self.field == "modality":
                hit |= _modality_mask(index, v.lower())
            elif self.field == "tag":
                hit |= index.tag_rows(v)
            elif self.field == "gtag":
                hit |= index.given_tag_rows(v)
            elif self.field == "ptag":
                hit |= index.predicted_tag_rows(v)
            else:
                hit |= index.mood_rows(v)
        return hit if self.op == "=" else ~hit


def mood_labels(index: Index) -> list[str]:
    """The mood labels a filter may name: avrec.understand.MOOD_LABELS and any other label
    the index's items carry."""
    vocab = list(index.mood_vocab)
    if not vocab:  # an index built before moods: the fixed vocabulary
        from .understand import MOOD_LABELS

        vocab = [lab for lab, _, _ in MOOD_LABELS]
    return vocab


def _check_moods(index: Index, values: list[str]) -> None:
    known = mood_labels(index)
    bad = [v for v in values if v.lower() not in known]
    if bad:
        raise InputError(f"unknown mood {bad[0]!r} in --filter; known: {', '.join(known)}")


def _modality_mask(index: Index, name: str) -> np.ndarray:
    has = index.has_modality(name)
    if has is not None:
        return np.asarray(has, dtype=bool)
    if name in index.content_modalities:
        return np.asarray(index.content_mask(name), dtype=bool)
    known = sorted(set(index.extra.get("item_modalities") or []) | set(index.content_modalities) | {"video", "audio", "text"})
    if name in known:
        return np.zeros(index.n_items, dtype=bool)
    raise InputError(f"unknown modality {name!r} in --filter; known: {', '.join(known)}")


_ID_HEADERS = {"item_id", "item", "itemid", "id"}
_WEIGHT_HEADERS = {"weight", "w", "rating", "score", "count"}


def read_id_lines(lines: Iterable[str]) -> list[tuple[str, float]]:
    """Item ids, one per line, optionally ``id,weight`` or ``id<TAB>weight``, CSV-quoted where
    an id holds a comma (``"x,y",2``); ``#`` starts a comment line. Line 1 may be the header
    ``item_id[,weight]``; any other line that is not an id (and a number) is an error naming it."""
    import csv

    out = []
    for i, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parts = next(csv.reader([line], delimiter="\t" if "\t" in line else ",", skipinitialspace=True))
        except csv.Error as e:
            raise InputError(f"line {i}: {e}; quote an id that holds a comma: \"x,y\"") from None
        parts = [p.strip() for p in parts]
        if i == 1 and parts[0].lower() in _ID_HEADERS and (len(parts) == 1 or parts[1].lower() in _WEIGHT_HEADERS):
            continue  # the header
        if len(parts) > 2:
            raise InputError(f"line {i}: {len(parts)} fields; write item_id or item_id,weight (quote an id that "
                             "holds a comma: \"x,y\")")
        item, w = parts[0], 1.0
        if len(parts) > 1 and parts[1]:
            try:
                w = float(parts[1])
            except ValueError:
                raise InputError(f"line {i}: weight {parts[1][:40]!r} is not a number (write item_id,weight; quote an "
                                 "id that holds a comma: \"x,y\")") from None
            if not math.isfinite(w) or w < 0:
                raise InputError(f"line {i}: weight {parts[1]!r} must be a finite number >= 0")
        if item:
            out.append((item, w))
    return out


# ---------------------------------------------------------------------------------------
# re-ranking and explanations


def mmr(rows: np.ndarray, rel: np.ndarray, vectors: np.ndarray, *, k: int, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximal marginal relevance: pick k of ``rows`` by (1-lam)*relevance - lam*max-similarity.

    rows: (p,) candidate rows, best first; rel: (p,) their scores; vectors: (n, D) content
    vectors (cosine similarity). Relevance is min-max scaled to [0, 1] over the pool so the
    two terms are comparable. Returns the chosen rows and their original scores.
    """
    p = len(rows)
    if p == 0 or lam <= 0:
        return rows[:k], rel[:k]
    v = norm_rows(np.asarray(vectors[rows], dtype=np.float32))
    sim = v @ v.T
    span = float(rel.max() - rel.min())
    r = (rel - rel.min()) / span if span > 0 else np.ones(p, dtype=np.float32)
    chosen = [0]
    max_sim = sim[0].copy()
    free = np.ones(p, dtype=bool)
    free[0] = False
    while len(chosen) < min(k, p):
        val = (1.0 - lam) * r - lam * max_sim
        val[~free] = -np.inf
        j = int(np.argmax(val))
        chosen.append(j)
        free[j] = False
        max_sim = np.maximum(max_sim, sim[j])
    idx = np.asarray(chosen)
    return rows[idx], rel[idx]


# ---------------------------------------------------------------------------------------
# the recommender


@dataclass
class Options:
    k: int = 10
    exclude_seen: bool = True
    fallback: str = "none"  # none | popular
    filters: Sequence[str] = ()
    candidates: Sequence[str] | None = None  # item ids to rank within
    diversity: float = 0.0  # MMR lambda
    mmr_pool: int = 100
    explain: bool = False
    modality: str | None = None  # content space for --item / --query
    query_weight: float = 0.5  # weight of the text query against the user's taste
    device: str = "cpu"
    log: Callable[[str], None] = field(default=lambda s: None)
    erased: np.ndarray | None = None  # (n_users,) bool: trained users erased since (avrec forget): not served


class Recommender:
    MIN_CHUNK_USERS = 16  # --all-users reads the item matrix once per chunk of at least this many users

    def __init__(self, index: Index, opts: Options):
        if opts.k < 1:
            raise InputError(f"--k must be at least 1; got {opts.k}")
        if not 0.0 <= opts.diversity <= 1.0:
            raise InputError(f"--diversity must be between 0 and 1; got {opts.diversity}")
        if opts.fallback not in ("none", "popular"):
            raise InputError(f"--fallback must be none or popular; got {opts.fallback!r}")
        self.index = index
        self.opts = opts
        self.filters = [Filter.parse(f) for f in opts.filters]

    # shared pieces ---------------------------------------------------------------------
    @cached_property
    def allowed(self) -> np.ndarray | None:
        """(n,) bool of items that may be recommended (filters and candidates), or None for all."""
        mask = None
        for f in self.filters:
            mask = f.mask(self.index) if mask is None else mask & f.mask(self.index)
        if self.opts.candidates is not None:
            rows, unknown = self.index.items.rows(self.opts.candidates)
            if unknown:
                self.opts.log(f"recommend: {len(unknown)} candidate id(s) not in the index ignored (e.g. {unknown[0]!r})")
            if len(rows) == 0:
                raise InputError("none of the --candidates ids is in the index")
            cand = np.zeros(self.index.n_items, dtype=bool)
            cand[rows] = True
            mask = cand if mask is None else mask & cand
        return mask

    @cached_property
    def sim_vectors(self) -> np.ndarray:
        """Vectors for MMR similarity: fused content, or the item vectors without embeddings."""
        fused = self.index.content_fused
        return fused if fused is not None else self.index.item_vectors

    def _ann(self, name: str = "items") -> Any:
        return None if self.index.exact else self.index.annoy(name)

    def _pool(self) -> int:
        return max(self.opts.k, self.opts.mmr_pool) if self.opts.diversity > 0 else self.opts.k

    def _finish(self, rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.opts.diversity > 0:
            return mmr(rows, scores, self.sim_vectors, k=self.opts.k, lam=self.opts.diversity)
        return rows[: self.opts.k], scores[: self.opts.k]

    def rank_vector(self, q: np.ndarray, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Top items for a user-space vector q (d,) by inner product, then re-ranked."""
        idx = self.index
        rows, scores = search(idx.item_vectors, q, self._pool(), exclude=exclude, allowed=self.allowed,
                              ann=self._ann(), transform=idx.transform, search_k=idx.search_k)
        return self._finish(rows, scores)

    def records(self, key: str, value: Any, rows: np.ndarray, scores: np.ndarray,
                explains: list[dict[str, Any]] | None = None, source: str | None = None) -> list[dict[str, Any]]:
        out = []
        idx = self.index
        rows = np.asarray(rows, np.int64)
        # ids and titles gathered once for the whole list: a server answers thousands a second
        for r, (row, s, item_id, title) in enumerate(zip(rows.tolist(), scores.tolist(), idx.items.ids_of(rows),
                                                         idx.titles.take(rows)), 1):
            rec: dict[str, Any] = {key: value, "rank": r, "item_id": item_id, "score": round(s, 6), "title": title}
            if explains is not None:
                ex = explains[r - 1]
                mood = idx.item_mood(row)
                if mood is not None:
                    ex["mood"] = mood
                rec["explain"] = ex
            if source:
                rec["source"] = source
            out.append(rec)
        return out

    # explanations ------------------------------------------------------------------------
    def modality_sims(self, a: int, b: int) -> dict[str, float]:
        """Cosine similarity of items a and b in every content modality both have."""
        out = {}
        for m in self.index.content_modalities:
            mask = self.index.content_mask(m)
            if mask[a] and mask[b]:
                v = self.index.content(m)
                out[m] = round(float(np.dot(v[a], v[b])), 4)
        return out

    def explain_history(self, hist: np.ndarray, weights: np.ndarray, recs: np.ndarray) -> list[dict[str, Any]]:
        """For each recommended row: the history item with the largest share of its score
        under fold-in (w_h * history_vector_h . item_vector_i / sum w), the content
        modality in which the two are most alike, and ``because_you_like``: the history's
        top tags and moods (:func:`avrec.profile.interests`) that the item carries."""
        from .profile import because_you_like, interests

        idx = self.index
        if len(hist) == 0:
            return [{"because": None, "modality": None, "because_you_like": []} for _ in recs]
        likes = interests(idx, hist, weights)
        contrib = (np.asarray(idx.history_vectors[hist]) @ np.asarray(idx.item_vectors[recs]).T)
        contrib = contrib * (weights[:, None] / weights.sum())
        best = np.argmax(contrib, axis=0)
        out = []
        for j, r in enumerate(recs.tolist()):
            h = int(hist[best[j]])
            sims = self.modality_sims(h, r)
            out.append({
                "because": idx.items.id(h),
                "because_title": idx.titles[h],
                "contribution": round(float(contrib[best[j], j]), 6),
                "modality": max(sims, key=sims.get) if sims else None,
                "modalities": sims,
                "because_you_like": because_you_like(idx, likes, r),
            })
        return out

    # requests ------------------------------------------------------------------------------
    def popular(self, key: str, value: Any, exclude: np.ndarray | None = None) -> list[dict[str, Any]]:
        pop = np.asarray(self.index.popularity, dtype=np.float32).copy()
        if self.allowed is not None:
            pop[~self.allowed] = -np.inf
        if exclude is not None and len(exclude):
            pop[exclude] = -np.inf
        rows = topk_rows(pop, self._pool())
        rows, scores = self._finish(rows, pop[rows])
        ex = [{"reason": "popular", "popularity": float(s)} for s in scores.tolist()] if self.opts.explain else None
        return self.records(key, value, rows, scores, ex, source="popular")

    def _erased(self, row: int | None) -> bool:
        return row is not None and self.opts.erased is not None and bool(self.opts.erased[row])

    def user_row(self, user_id: str) -> int | None:
        row = self.index.users.row(user_id)
        if self._erased(row):
            if self.opts.fallback != "popular":
                raise InputError(f"user {user_id!r} was erased (avrec forget) after this model was trained, so is not "
                                 "served; they leave the model at the next train (--fallback popular serves popular "
                                 "items)")
            return None
        if row is None and self.opts.fallback != "popular":
            raise InputError(
                f"unknown user {user_id!r} (the model knows {self.index.n_users} users); pass --history FILE for a "
                "new user, or --fallback popular"
            )
        return row

    def for_user(self, user_id: str) -> list[dict[str, Any]]:
        row = self.user_row(user_id)
        if row is None:
            self.opts.log(f"recommend: unknown user {user_id!r}; serving popular items (--fallback popular)")
            return self.popular("user", user_id)
        seen, sw = self.index.history(row)
        rows, scores = self.rank_vector(np.asarray(self.index.user_vectors[row], dtype=np.float32),
                                        seen if self.opts.exclude_seen else None)
        taste = sw > 0
        ex = self.explain_history(seen[taste], sw[taste], rows) if self.opts.explain else None
        return self.records("user", user_id, rows, scores, ex)

    def for_history(self, history: Sequence[tuple[str, float]], user_id: str | None = None) -> list[dict[str, Any]]:
        """Fold-in: a user vector from history items, with no retraining (numpy only)."""
        idx = self.index
        rows, unknown = idx.items.rows([h for h, _ in history])
        weights = np.asarray([w for (h, w) in history if idx.items.row(h) is not None], dtype=np.float32)
        if unknown:
            self.opts.log(f"recommend: {len(unknown)} history item(s) not in the index ignored (e.g. {unknown[0]!r})")
        urow = idx.users.row(user_id) if user_id is not None else None
        if self._erased(urow):  # their trained history is no longer theirs to use
            urow = None
        if urow is not None:  # a known user's fresh history extends what the model saw
            seen, sw = idx.history(urow)  # each 1, or its stored weight (recency; 0: a skip)
            rows = np.concatenate([seen, rows])
            weights = np.concatenate([sw, weights])
        if len(rows) == 0:
            if self.opts.fallback == "popular":
                return self.popular("user" if user_id else "history", user_id if user_id else 0)
            raise InputError("none of the history items is in the index; pass item ids from the catalogue "
                             "(or --fallback popular)")
        if np.any(weights < 0) or weights.sum() <= 0:
            raise InputError("history weights must be non-negative with a positive sum")
        q = (weights[:, None] * np.asarray(idx.history_vectors[rows], dtype=np.float32)).sum(0) / weights.sum()
        recs, scores = self.rank_vector(q, rows if self.opts.exclude_seen else None)
        ex = self.explain_history(rows[weights > 0], weights[weights > 0], recs) if self.opts.explain else None
        key, value = ("user", user_id) if user_id is not None else ("history", int(len(rows)))
        return self.records(key, value, recs, scores, ex)

    def for_item(self, item_id: str) -> list[dict[str, Any]]:
        """More like this: cosine on the model's item vectors, or in one content modality."""
        idx = self.index
        row = idx.items.row(item_id)
        if row is None:
            raise InputError(f"unknown item {item_id!r} (the index holds {idx.n_items} items); "
                             "add new items with avrec index --add EMBEDDINGS")
        m = self.opts.modality
        allowed = self.allowed
        if m:
            vectors, name, transform = self._content_space(m), f"content_{m}", "none"
            mask = np.asarray(idx.content_mask(m), dtype=bool)
            if not mask[row]:
                raise InputError(f"item {item_id!r} has no {m} content; choose another --modality")
            allowed = mask if allowed is None else allowed & mask
            q = np.asarray(vectors[row], dtype=np.float32)
            rows, scores = search(vectors, q, self._pool(), exclude=np.array([row]), allowed=allowed,
                                  ann=self._ann(name), transform=transform, search_k=idx.search_k)
        else:
            rows, scores = self._cosine_items(row, allowed)
        rows, scores = self._finish(rows, scores)
        ex = None
        if self.opts.explain:
            ex = []
            for r in rows.tolist():
                sims = self.modality_sims(row, r)
                ex.append({"because": item_id, "modality": m or (max(sims, key=sims.get) if sims else None),
                           "modalities": sims})
        return self.records("item", item_id, rows, scores, ex)

    def _cosine_items(self, row: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        idx = self.index
        x = idx.item_vectors
        q = np.asarray(x[row], dtype=np.float32)
        qn = float(np.linalg.norm(q)) or 1.0
        pool = self._pool()
        if idx.exact:
            cand = np.arange(idx.n_items) if allowed is None else np.flatnonzero(allowed)
        else:  # annoy ranks by inner product (or cosine); over-fetch, then rescore by cosine
            cand, _ = search(x, q, max(10 * pool, 100), exclude=np.array([row]), allowed=allowed,
                             ann=self._ann(), transform=idx.transform, search_k=idx.search_k)
        xs = np.asarray(x[np.sort(cand)], dtype=np.float32)
        cand = np.sort(cand)
        n = np.linalg.norm(xs, axis=1)
        s = (xs @ q) / (np.where(n > 0, n, 1.0) * qn)
        s[cand == row] = -np.inf
        top = topk_rows(s.astype(np.float32), pool)
        return cand[top], s[top].astype(np.float32)

    def _content_space(self, m: str) -> np.ndarray:
        if m not in self.index.content_modalities:
            have = ", ".join(self.index.content_modalities) or "none (index built without embeddings)"
            raise InputError(f"no content index for modality {m!r}; this index has: {have}")
        return self.index.content(m)

    def query_modality(self) -> tuple[str, str]:
        """(modality, encoder name) for a text query: --modality, else text, else the first space."""
        spaces = {m: e for m, e in (self.index.extra.get("text_spaces") or {}).items()
                  if e and m in self.index.content_modalities}
        if not spaces:
            raise InputError("this index has no content space a text query can search (its embeddings "
                             "record no text_spaces); re-run avrec embed with a text encoder, then train and index")
        m = self.opts.modality
        if m:
            if m not in spaces:
                raise InputError(f"--modality {m!r} cannot be searched with text; available: {', '.join(sorted(spaces))}")
            return m, spaces[m]
        m = "text" if "text" in spaces else sorted(spaces)[0]
        return m, spaces[m]

    def for_query(self, text: str, user_id: str | None = None, *, taste: np.ndarray | None = None,
                  exclude: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Text query in a content space; with a user, blended with the user's taste: their
        model vector, or ``taste`` (d,) with ``exclude`` (the server's fold-in of live events)."""
        if not text.strip():
            raise InputError("--query is empty; pass some text, e.g. --query 'calm piano'")
        idx = self.index
        m, encoder = self.query_modality()
        urow = self.user_row(user_id) if user_id is not None else None
        from .encoders.query import encode_query  # heavy (torch): only on this path

        qv = np.asarray(encode_query(text, encoder=encoder, device=self.opts.device), dtype=np.float32).reshape(-1)
        vectors = self._content_space(m)
        if qv.shape[0] != vectors.shape[1]:
            raise InputError(f"query encoder {encoder} gives {qv.shape[0]} dims but the {m} index has {vectors.shape[1]}; "
                             "rebuild the index from embeddings made with the same encoder")
        mu = idx.centre(m)
        if mu is not None and mu.shape == qv.shape:
            qv = qv / (float(np.linalg.norm(qv)) or 1.0) - mu  # in the space the items were centred in
        qv = qv / (float(np.linalg.norm(qv)) or 1.0)
        mask = np.asarray(idx.content_mask(m), dtype=bool)
        allowed = mask if self.allowed is None else self.allowed & mask
        if taste is None:
            exclude = idx.seen(urow) if (urow is not None and self.opts.exclude_seen) else None
        blend = urow is not None or taste is not None
        pool = max(self._pool(), 20 * self.opts.k, 200) if blend else self._pool()
        rows, qs = search(vectors, qv, pool, exclude=exclude, allowed=allowed, ann=self._ann(f"content_{m}"),
                          transform="none", search_k=idx.search_k)
        scores = qs
        if blend and len(rows):
            u = np.asarray(idx.user_vectors[urow] if taste is None else taste, dtype=np.float32)
            taste = np.asarray(idx.item_vectors[rows], dtype=np.float32) @ u
            z = lambda a: (a - a.mean()) / (a.std() or 1.0)  # noqa: E731
            w = self.opts.query_weight
            scores = (w * z(qs) + (1.0 - w) * z(taste)).astype(np.float32)
            order = np.argsort(-scores, kind="stable")
            rows, scores, qs = rows[order], scores[order], qs[order]
        keep_qs = dict(zip(rows.tolist(), qs.tolist()))
        rows, scores = self._finish(rows, scores)
        ex = None
        if self.opts.explain:
            ex = [{"modality": m, "encoder": encoder, "query_similarity": round(float(keep_qs[r]), 4)} for r in rows.tolist()]
        out = self.records("query", text, rows, scores, ex)
        if user_id is not None:
            for rec in out:
                rec["user"] = user_id
        return out

    # batch ----------------------------------------------------------------------------------
    def pin(self) -> None:
        """Open every file a batch over all users reads, so a later swap of the index
        cannot mix versions (memory maps keep a replaced file's pages)."""
        idx = self.index
        for a in (idx.item_vectors, idx.user_vectors, idx.seen_indptr, idx.seen_indices, idx.popularity):
            len(a)
        for m in (idx.items, idx.users):
            len(m.ids), len(m.sorted), len(m.order)
        len(idx.titles)
        if self.opts.filters or self.opts.candidates is not None:
            self.allowed  # noqa: B018 - evaluated for its side effect: opens the filter columns
        if self.opts.diversity > 0:
            len(self.sim_vectors)
        if not idx.exact_batch or self.opts.explain:
            idx.annoy() if not idx.exact else None

    def all_users(self, *, chunk_cells: int = 1 << 25) -> Iterator[list[dict[str, Any]]]:
        """Every user's recommendations, one list per user, in users.txt order.

        Exact search is vectorised over chunks of users (one (c, n) score matrix of about
        ``chunk_cells`` floats at a time); above ``index.exact_below`` items (or with
        --explain) each user is a single request. Memory stays bounded whatever the number of users.
        """
        idx = self.index
        if not idx.exact_batch or self.opts.explain:
            for u in range(idx.n_users):
                if not self._erased(u):
                    yield self.for_user(idx.users.id(u))
            return
        for a, b, top, vals in self._batch_chunks(chunk_cells):
            for i in range(b - a):
                if self._erased(a + i):
                    continue
                fin = np.isfinite(vals[i])
                rows, scores = self._finish(top[i][fin], vals[i][fin])
                yield self.records("user", idx.users.id(a + i), rows, scores)

    def all_users_jsonl(self, *, chunk_cells: int = 1 << 25) -> Iterator[str]:
        """``all_users`` as JSON lines (the records of ``records``, byte for byte), one string
        per chunk of users. Without --diversity or --explain the lines are assembled from
        per-item fragments encoded once, per-user prefixes and the scores' reprs, interleaved
        by numpy and joined once per chunk: no Python code runs per recommended item."""
        import json

        idx = self.index
        if not idx.exact_batch or self.opts.explain or self.opts.diversity > 0:
            for rows in self.all_users(chunk_cells=chunk_cells):
                if rows:
                    yield "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            return
        enc = json.JSONEncoder(ensure_ascii=False).encode
        n = idx.n_items
        item_ids = np.char.decode(np.asarray(idx.items.ids), "utf-8").tolist()
        pre = np.array([', "item_id": ' + x + ', "score": ' for x in map(enc, item_ids)], dtype=object)
        titles = idx.titles
        blob, off = bytes(np.asarray(titles.blob)), np.asarray(titles.offsets).tolist()
        post = np.array([', "title": ' + enc(blob[off[i]:off[i + 1]].decode("utf-8")) + "}\n" for i in range(n)],
                        dtype=object)
        ranks = np.array([str(r) for r in range(1, self.opts.k + 1)], dtype=object)
        for a, b, top, vals in self._batch_chunks(chunk_cells):
            k = top.shape[1]
            users = np.char.decode(np.asarray(idx.users.ids[a:b]), "utf-8").tolist()
            head = np.array(['{"user": ' + u + ', "rank": ' for u in map(enc, users)], dtype=object)
            parts = np.empty((b - a, k, 5), dtype=object)
            parts[:, :, 0] = head[:, None]
            parts[:, :, 1] = ranks[None, :k]
            parts[:, :, 2] = pre[top]
            # json.dumps(round(float(s), 6)) is repr(round(s, 6)): map runs both in C
            parts[:, :, 3] = np.array(list(map(repr, map(round, vals.astype(np.float64).ravel().tolist(),
                                                         [6] * vals.size))), dtype=object).reshape(vals.shape)
            parts[:, :, 4] = post[top]
            fin = np.isfinite(vals)  # a user with fewer than k unseen items has -inf at the end
            if self.opts.erased is not None:
                fin &= ~self.opts.erased[a:b, None]
            yield "".join((parts[fin] if not fin.all() else parts).ravel().tolist())

    def _batch_chunks(self, chunk_cells: int) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """(first user, end user, (c, kk) item rows best first, (c, kk) scores, -inf past a
        user's last unseen item) over chunks of users, by exact blocked scoring.

        A worker thread scores the next chunks (the matrix product and the partial sort
        release the GIL) while the caller writes the current one. A chunk holds at least 16
        users, so the item matrix is read once per 16 users or more, not once per user."""
        import itertools
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        idx = self.index
        n_users = idx.n_users
        cols = np.arange(idx.n_items) if self.allowed is None else np.flatnonzero(self.allowed)
        pos = np.full(idx.n_items, -1, dtype=np.int64)
        pos[cols] = np.arange(len(cols))
        kk = min(self._pool(), len(cols))
        step = max(self.MIN_CHUNK_USERS, min(4096, chunk_cells // max(len(cols), 1)))
        indptr = np.asarray(idx.seen_indptr)
        # the items in decreasing norm, read until no item left can enter a user's top k
        # (index.normscan), where that reads at most half of the scores for a sample of users
        from .index.normscan import NormScan

        scan = NormScan.probed(idx.item_vectors[cols], idx.user_vectors, k=kk) if kk > 0 and n_users else None
        if scan is not None and scan.full:
            scan = None
        xt = None if scan is not None else np.ascontiguousarray(np.asarray(idx.item_vectors[cols], dtype=np.float32).T)

        buf: dict[str, np.ndarray] = {}

        def seen(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            """(user in the chunk, column) of every seen item among the columns."""
            if not self.opts.exclude_seen:
                return np.zeros(0, np.int64), np.zeros(0, np.int64)
            lo, hi = int(indptr[a]), int(indptr[b])
            r = np.repeat(np.arange(b - a), np.diff(indptr[a:b + 1]))
            p = pos[np.asarray(idx.seen_indices[lo:hi], dtype=np.int64)]
            ok = p >= 0
            return r[ok], p[ok]

        def chunk(a: int) -> tuple[int, int, np.ndarray, np.ndarray]:
            b = min(a + step, n_users)
            if kk <= 0:
                return a, b, np.zeros((b - a, 0), np.int64), np.zeros((b - a, 0), np.float32)
            if scan is not None:
                rows, vals = scan.topk(np.asarray(idx.user_vectors[a:b], dtype=np.float32), kk, exclude_pairs=seen(a, b))
                return a, b, cols[rows], vals
            # one score buffer for every chunk (the single worker thread): a fresh (c, n_cols)
            # matrix per chunk costs its page faults again (seconds of system time at 100k users)
            if "s" not in buf:
                buf["s"] = np.empty((step, xt.shape[1]), dtype=np.float32)
            s = np.matmul(np.asarray(idx.user_vectors[a:b], dtype=np.float32), xt, out=buf["s"][: b - a])
            s[seen(a, b)] = -np.inf
            part, vals = topk_batch(s, kk)
            return a, b, cols[part], np.array(vals, dtype=np.float32)  # a copy: the buffer is the next chunk's

        starts = iter(range(0, n_users, step))
        with ThreadPoolExecutor(max_workers=1) as pool:
            # islice, not zip(starts, range(2)): zip would draw a third start and drop it
            ahead: deque = deque(pool.submit(chunk, a) for a in itertools.islice(starts, 2))
            while ahead:
                done = ahead.popleft().result()
                nxt = next(starts, None)
                if nxt is not None:
                    ahead.append(pool.submit(chunk, nxt))
                yield done
