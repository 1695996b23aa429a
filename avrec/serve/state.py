"""What a server answers from: the index (pinned in memory), live fold-in from the event
store, and swaps to a new index version.

numpy and annoy only (plus sqlite3): the web stack lives in :mod:`.app`, the text encoder is
imported on the first /search.

Live events. A request for user U reads U's events newer than the model (seq above the
``events.seq`` watermark the model was trained up to) from the store; with any, U's vector
is folded in again from the model's history vectors over everything U has seen (the
model's history plus the live items, weighted), and every seen item is excluded. So the
next request after ``POST /events`` reflects it, in every worker process (they share the
store), and a user the model never saw is servable from their first event. Erasure: a user
erased after the model was trained is served as unknown, with the events since then only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..index.normscan import NormScan
from ..index.read import Index
from ..recency import live_weights
from ..recommend import Options, Recommender
from .events import EventStore


class NotFound(InputError):
    """An unknown user or item: a 404 on the server."""


class NoTaste(NotFound):
    """A user the server knows only from events that carry no taste (skips, or items the index
    lacks): nothing to rank by, so a 404 unless the request asks for fallback=popular, as for
    an unknown user."""


class PinnedIndex(Index):
    """An :class:`Index` whose every file is opened once, up front (:meth:`pin`). A server
    keeps answering from it while ``index --add`` replaces the directory: open memory maps
    keep the old version's pages, and nothing is opened from the path afterwards."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.pending: dict[str, list[tuple[str, float]]] = {}  # set by State (events on items added since)
        self._content: dict[str, np.ndarray] = {}
        self._masks: dict[str, np.ndarray] = {}
        self._centres: dict[str, np.ndarray | None] = {}
        self._tags: dict[str, np.ndarray] = {}
        self.scan: NormScan | None = None

    def content(self, m: str) -> np.ndarray:
        if m not in self._content:
            self._content[m] = super().content(m)
        return self._content[m]

    def content_mask(self, m: str) -> np.ndarray:
        if m not in self._masks:
            self._masks[m] = super().content_mask(m)
        return self._masks[m]

    def centre(self, m: str) -> np.ndarray | None:
        if m not in self._centres:
            self._centres[m] = super().centre(m)
        return self._centres[m]

    def tag_rows(self, tag: str) -> np.ndarray:
        t = tag.lower()
        if t not in self._tags:  # a filter's mask, computed once per index version
            self._tags[t] = super().tag_rows(tag)
        return self._tags[t]

    def mood_rows(self, label: str) -> np.ndarray:
        key = f"mood:{label.lower()}"
        if key not in self._tags:
            self._tags[key] = super().mood_rows(label)
        return self._tags[key]

    def pin(self) -> "PinnedIndex":
        """Open every file a request may read (and touch its pages), then return self."""
        for name in ("item_vectors", "user_vectors", "history_vectors", "seen_indptr", "seen_indices", "popularity"):
            a = getattr(self, name)
            if a.size:
                float(np.asarray(a).reshape(-1)[:: max(1, a.size // 4096)].sum())  # fault the pages in
        if (self.path / "durations.npy").exists():
            len(self.durations)
        for m in (self.items, self.users):
            len(m.ids), len(m.sorted), len(m.order)
        len(self.titles)
        if (self.path / "tags_vocab_utf8.npy").exists():
            self.tag_vocab  # noqa: B018
        # the understand columns (each falls back to an empty default in an older index)
        for name in ("tags_indptr", "tags_indices", "tags_predicted", "tags_scores", "valence", "arousal",
                     "mood_vocab", "moods_indptr", "moods_indices", "moods_scores", "clusters", "cluster_names",
                     "seen_weights"):
            if hasattr(type(self), name):
                getattr(self, name)
        self.content_fused  # noqa: B018
        for m in self.content_modalities:
            self.content(m), self.content_mask(m), self.centre(m)
            self.has_modality(m)
        if self.exact_batch and self.item_vectors.size:
            # the item vectors in decreasing norm, (d, n) C-ordered: a batch of queries reads
            # only the blocks that can still beat its top k (see Batcher, index.normscan).
            # Wherever batches are exact this serves every user request, also on an index
            # whose single CLI requests go through annoy: at 500k items annoy needed search_k
            # 160k for recall@10 0.95 (~20 ms a query), where the scan is exact and reads a
            # few per cent of the items for most users. Scanned by norm only where that reads
            # less than the full product, as probed on the model's users (or its items)
            self.scan = NormScan.probed(self.item_vectors,
                                        self.user_vectors if len(self.user_vectors) else self.item_vectors)
        if not self.exact:
            self.annoy()
            for m in self.content_modalities:
                if (self.path / f"content_{m}.ann").exists():
                    self.annoy(f"content_{m}")
        return self

    def has_modality(self, name: str) -> np.ndarray | None:
        key = f"has:{name}"
        if key not in self._masks:
            got = super().has_modality(name)
            if got is None:
                return None
            self._masks[key] = got
        return self._masks[key]

    @property
    def watermark(self) -> int:
        """The last event store seq the model behind this index was trained on (0: none)."""
        return int((self.extra.get("events") or {}).get("seq", 0) or 0)

    @property
    def recency_half_life(self) -> float:
        """train.recency's half-life behind this index (0: none; avrec/recency.py)."""
        return float(self.extra.get("recency_half_life") or 0.0)

    @property
    def trained_at(self) -> float:
        return float((self.extra.get("events") or {}).get("trained_at", 0.0) or 0.0)


def open_index(path: str | Path) -> PinnedIndex:
    return PinnedIndex(path).pin()


@dataclass
class Plan:
    """One user request between its preparation and its ranking: the query vector and the
    rows to exclude (``q``), or the finished answer (``done``)."""

    rec: Recommender
    user: str
    q: np.ndarray | None = None
    exclude: np.ndarray | None = None
    hist: np.ndarray | None = None
    weights: np.ndarray | None = None
    done: list[dict[str, Any]] | None = None

    def finish(self, rows: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        """Records from the ranked rows (already re-ranked by ``Recommender._finish``)."""
        rec = self.rec
        ex = rec.explain_history(self.hist, self.weights, rows) if rec.opts.explain else None
        return rec.records("user", self.user, rows, scores, ex)


class Batcher:
    """Scores the user requests that arrive together as one batch.

    Exact search of one user is a scan of every item vector; under concurrent load, the
    requests that are ready in the same turn of the event loop are scored together by
    :class:`~avrec.index.normscan.NormScan`, which reads the item matrix once per batch in
    blocks of decreasing norm and stops where no item left can enter a request's top k.
    The batch is scored a few loop turns after its first request, so requests whose bytes
    arrived meanwhile join it (``hops``). Indexes whose batches go through annoy rank one by one.

    Scoring stays on the event loop, a whole batch at a time. Two alternatives measured
    worse on 2 cores (benchmarks/serve.py, 16 clients): a worker thread scoring each batch
    while the loop parsed the next (p99 10.3-17.7 ms against 7.5-8.1 ms at 100k items: the
    GIL's hand-overs land in the tail), and scanning a batch a block at a time with a turn
    of the loop between blocks, answering each request as its block finished (at 500k
    items p99 25.9 ms against 21.1: the slow queries, which make the p99, got slower).
    """

    def __init__(self, *, max_batch: int = 32, hops: int = 3, on_batch: Callable[[int], Any] | None = None):
        self.max_batch = max_batch
        self.hops = hops
        self.on_batch = on_batch  # told each batch's size (the server's /metrics)
        self.queue: list[tuple[PinnedIndex, Plan, Any]] = []
        self.scheduled = False

    def rank(self, idx: PinnedIndex, plan: Plan):
        """A future of (rows, scores) for ``plan``, re-ranked, resolved within this turn of the loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.queue.append((idx, plan, fut))
        if not self.scheduled:
            self.scheduled = True
            self._later(loop, self.hops)
        return fut

    def _later(self, loop, hops: int) -> None:
        # a few turns of the loop before scoring: requests whose bytes arrived meanwhile get to
        # their handlers (read -> task -> first step takes two turns) and join this batch;
        # with nothing else to do a turn costs microseconds
        if hops <= 0:
            self._run()
        else:
            loop.call_soon(self._later, loop, hops - 1)

    def _run(self) -> None:
        self.scheduled = False
        queue, self.queue = self.queue, []
        groups: dict[int, list[tuple[PinnedIndex, Plan, Any]]] = {}
        for item in queue:
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            idx = items[0][0]
            if idx.scan is None:
                for _idx, plan, fut in items:
                    _resolve(fut, lambda p=plan: p.rec.rank_vector(p.q, p.exclude))
                continue
            for a in range(0, len(items), self.max_batch):
                self._finish(items[a:a + self.max_batch])

    def _finish(self, items: list[tuple[PinnedIndex, Plan, Any]]) -> None:
        ready = []
        for item in items:  # a request's own filter error (no --candidates id known) is its alone
            try:
                item[1].rec.allowed  # noqa: B018 - built (and cached) here
            except Exception as e:  # noqa: BLE001
                if not item[2].done():
                    item[2].set_exception(e)
                continue
            ready.append(item)
        items = ready
        if not items:
            return
        try:
            top, val = _score(items)
        except Exception as e:  # noqa: BLE001 - every waiting request gets the error, none hangs
            for _i, _p, fut in items:
                if not fut.done():
                    fut.set_exception(e)
            return
        if self.on_batch is not None:
            self.on_batch(len(items))
        for j, (_i, p, fut) in enumerate(items):
            pool = p.rec._pool()
            keep = np.isfinite(val[j])[:pool]
            rows, scores = top[j][:pool][keep], val[j][:pool][keep]
            _resolve(fut, lambda p=p, rows=rows, scores=scores: p.rec._finish(rows, scores))


def _score(items: list[tuple[PinnedIndex, Plan, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(b, pool) rows and scores, best first, of every request in one exact batch."""
    idx = items[0][0]
    plans = [p for _i, p, _f in items]
    return idx.scan.topk(np.stack([p.q for p in plans]), max(p.rec._pool() for p in plans),
                         exclude=[p.exclude for p in plans], allowed=[p.rec.allowed for p in plans])


def _resolve(fut, fn) -> None:
    if fut.done():  # the request went away (client closed)
        return
    try:
        fut.set_result(fn())
    except Exception as e:  # noqa: BLE001
        fut.set_exception(e)


class State:
    """The current index version, swapped whole when ``index --add`` (or a rebuild) replaces
    the directory. A request takes ``state.index`` once and answers from it to the end."""

    def __init__(self, index_path: str | Path, *, store: EventStore | None, pid: Callable[[str], str],
                 log: Callable[[str], None] = lambda s: None):
        self.path = Path(index_path)
        self.store = store
        self.pid = pid
        self.log = log
        self.index = self._with_pending(open_index(self.path))
        self.loaded_at = time.time()
        self.swaps = 0
        self._swap_lock = threading.Lock()

    def refresh(self) -> bool:
        """Load the directory's new version if it changed; True when it swapped. A version
        that cannot be opened (mid-write, damaged) is logged and the current one kept."""
        if self.index.current():
            return False
        with self._swap_lock:
            if self.index.current():
                return False
            try:
                new = self._with_pending(open_index(self.path))
            except Exception as e:  # noqa: BLE001 - keep serving the version we have
                self.log(f"serve: the index at {self.path} changed but cannot be opened yet ({e}); keeping {self.index.build_id}")
                return False
            old = self.index.build_id
            self.index = new
            self.loaded_at = time.time()
            self.swaps += 1
            self.log(f"serve: index swapped {old} -> {new.build_id} ({new.n_items} items)")
            return True

    def _with_pending(self, idx: PinnedIndex) -> PinnedIndex:
        """``idx`` with ``pending``: the stored events (up to the model's watermark) on items
        the model lacked, which it therefore never learnt, for the items this version holds
        (``index --add`` brought them). They count as live events, so a like on an upload made
        before a retrain that could not yet embed it is not lost. One query per version."""
        idx.pending = {}
        items = (idx.extra.get("events") or {}).get("pending_items") or []
        if self.store is not None and items and idx.watermark:
            held = [i for i in items if idx.items.row(i) is not None]
            if held:
                idx.pending = self.store.pending(held, upto=idx.watermark)
                n = sum(map(len, idx.pending.values()))
                self.log(f"serve: {n} stored events on {len(held)} items added since the model was trained count as "
                         "live events until the next train")
        return idx

    # requests -------------------------------------------------------------------------
    def recommender(self, idx: PinnedIndex, opts: Options) -> Recommender:
        return Recommender(idx, opts)

    def live(self, idx: PinnedIndex, uid: str) -> tuple[list[tuple[str, float]], bool]:
        """(the user's events newer than the model, whether the user was erased after the
        model was trained)."""
        if self.store is None:
            return [], False
        events, erased = self.store.user_state(uid, after=idx.watermark)
        erased = erased is not None and erased >= idx.trained_at
        if idx.pending and not erased and uid in idx.pending:  # events the model could not learn (_with_pending)
            events = idx.pending[uid] + events
        return events, erased

    def plan_user(self, idx: PinnedIndex, rec: Recommender, user: str) -> "Plan":
        """What GET /recommend must rank: the model's vector, or a fresh fold-in when the
        user has live events; or the finished answer (popular items) when nothing is to rank."""
        uid = self.pid(user)
        live, erased = self.live(idx, uid)
        row = None if erased else idx.users.row(uid)
        if not live:
            if row is None:
                if rec.opts.fallback == "popular":
                    return Plan(rec, user, done=rec.popular("user", user))
                raise NotFound(f"unknown user {user!r}: no model vector and no events; send events to POST /events, "
                               "a history to POST /recommend, or pass fallback=popular")
            seen, sw = idx.history(row)
            taste = sw > 0  # a skip is excluded, but explains nothing
            return Plan(rec, user, q=np.asarray(idx.user_vectors[row], dtype=np.float32),
                        exclude=seen if rec.opts.exclude_seen else None, hist=seen[taste], weights=sw[taste])
        rows, _unknown = idx.items.rows([i for i, _ in live])  # events on items the index lacks wait for it
        weights = np.asarray([w for i, w in live if idx.items.row(i) is not None], dtype=np.float32)
        seen_w = None
        if row is not None:
            seen, seen_w = idx.history(row)
            rows = np.concatenate([seen, rows])
        h = idx.recency_half_life
        if h > 0:  # train.recency: every live event is newer than the trained history (avrec/recency.py)
            seen_w, weights = live_weights(seen_w if seen_w is not None else np.zeros(0, np.float32), weights,
                                           half_life=h)
        if seen_w is not None:
            weights = np.concatenate([seen_w, weights])
        exclude = np.unique(rows) if rec.opts.exclude_seen and len(rows) else None
        taste = weights > 0
        if not taste.any():  # only skips so far: the model's vector, or popular, minus what was seen
            if row is None:
                if rec.opts.fallback == "popular":
                    return Plan(rec, user, done=rec.popular("user", user, exclude=exclude))
                raise NoTaste(f"user {user!r} has no taste to rank by yet: their {len(live)} event(s) are skips or on "
                              "items the index lacks (an index --add brings those); pass fallback=popular for popular "
                              "items minus what they saw")
            return Plan(rec, user, q=np.asarray(idx.user_vectors[row], dtype=np.float32), exclude=exclude,
                        hist=rows[:0], weights=weights[:0])
        hist, hw = rows[taste], weights[taste]
        q = (hw[:, None] * np.asarray(idx.history_vectors[hist], dtype=np.float32)).sum(0) / hw.sum()
        return Plan(rec, user, q=q.astype(np.float32), exclude=exclude, hist=hist, weights=hw)

    def profile(self, idx: PinnedIndex, user: str, *, top: int = 10) -> dict[str, Any]:
        """GET /profile: the user's interests over the model's history plus live events."""
        from ..profile import profile, user_history

        uid = self.pid(user)
        live, erased = self.live(idx, uid)
        row = None if erased else idx.users.row(uid)
        rows = np.zeros(0, np.int64)
        weights = np.zeros(0, np.float64)
        if row is not None:
            rows, weights = user_history(idx, row)
        lrows = [(idx.items.row(i), w) for i, w in live]
        lrows = [(r, w) for r, w in lrows if r is not None]
        h = idx.recency_half_life
        if h > 0 and lrows:  # train.recency: on the scale plan_user folds with
            tw, lw = live_weights(np.asarray(weights, np.float32), np.asarray([w for _, w in lrows], np.float32),
                                  half_life=h)
            weights, lrows = tw.astype(np.float64), [(r, float(w)) for (r, _), w in zip(lrows, lw)]
        lrows = [(r, w) for r, w in lrows if w > 0]
        if lrows:
            rows = np.concatenate([np.asarray(rows, np.int64), np.asarray([r for r, _ in lrows], np.int64)])
            weights = np.concatenate([np.asarray(weights, np.float64), np.asarray([w for _, w in lrows], np.float64)])
        if row is None and not lrows:
            raise NotFound(f"unknown user {user!r}: no model history and no events")
        return {"user": user, **profile(idx, rows, weights, top=top)}

    def for_history(self, idx: PinnedIndex, rec: Recommender, history: Sequence[tuple[str, float]],
                    user: str | None) -> list[dict[str, Any]]:
        uid = self.pid(user) if user is not None else None
        if uid is not None and self.live(idx, uid)[1]:
            uid = None  # erased: the model's history of this user is not used
        out = rec.for_history(history, uid)
        return _relabel(out, uid, user) if user is not None else out

    def for_item(self, idx: PinnedIndex, rec: Recommender, item: str) -> list[dict[str, Any]]:
        if idx.items.row(item) is None:
            raise NotFound(f"unknown item {item!r} (the index holds {idx.n_items} items); add new items with avrec index --add")
        return rec.for_item(item)

    def for_query(self, idx: PinnedIndex, rec: Recommender, q: str, user: str | None) -> list[dict[str, Any]]:
        if user is None:
            return rec.for_query(q)
        try:  # the user's taste as /recommend has it: the model's vector, or folded with live events
            plan = self.plan_user(idx, rec, user)
        except NoTaste:  # nothing to blend: the plain search
            return rec.for_query(q)
        except NotFound:
            raise NotFound(f"unknown user {user!r} for a blended search: no model vector and no events; leave user "
                           "out for a plain text search") from None
        if plan.done is not None:  # nothing to blend (fallback=popular for a user with only skips): the plain search
            return rec.for_query(q)
        return rec.for_query(q, taste=plan.q, exclude=plan.exclude)  # the answer names the user once, above


def _relabel(records: list[dict[str, Any]], uid: str | None, user: str | None) -> list[dict[str, Any]]:
    """Answers name the user as the request did, not by the stored pseudonym."""
    if uid != user:
        for r in records:
            if "user" in r:
                r["user"] = user
    return records
