"""The event store: one SQLite database in WAL mode, appended to durably.

Schema (version 1)::

    events(seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT, item_id TEXT, event TEXT,
           weight REAL, timestamp REAL, received REAL)          -- index on (user_id, seq)
    erased(digest TEXT PRIMARY KEY, at REAL, seq INTEGER)      -- avrec forget / DELETE /users
    meta(key TEXT PRIMARY KEY, value TEXT)                     -- schema, pseudonymisation

Durability: ``synchronous=FULL`` in WAL mode syncs the log at every commit, so an
:meth:`EventStore.add` that returned survives a kill -9 of the process (and a power loss on
a disk that honours fsync). Concurrency: SQLite's WAL lets any number of readers run beside
one writer; writers (several server workers, ``avrec events add``) take the database's
write lock in turn, waiting up to ``busy_ms``. Readers never block writers.

User ids are stored as given to :meth:`add`: the callers (the server, ``avrec events add``)
pseudonymise them first when ``privacy.pseudonymize`` is on, and ``meta`` records which key
did it, so a store is never read with another key's ids.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

if TYPE_CHECKING:
    import sqlite3

from ..errors import InputError

SCHEMA = 1
MAGIC = b"SQLite format 3\x00"

_DDL = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event TEXT,
    weight REAL NOT NULL,
    timestamp REAL,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id, seq);
CREATE TABLE IF NOT EXISTS erased (digest TEXT PRIMARY KEY, at REAL NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_store_path(cfg) -> Path:
    """``serve.events``, or ``<runtime.workdir>/events.sqlite``."""
    return Path(cfg.serve.events) if cfg.serve.events else Path(cfg.runtime.workdir) / "events.sqlite"


def is_store(path: str | Path) -> bool:
    """True when ``path`` is a SQLite database (an event store, or something to reject clearly)."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == MAGIC
    except OSError:
        return False


def key_fingerprint(pid) -> str:
    """Which pseudonymisation a store was written with: 'none', or 12 hex digits that
    identify the key without revealing it (its pseudonym of a fixed string, hashed)."""
    probe = pid("avrec-key-fingerprint")
    if probe == "avrec-key-fingerprint":
        return "none"
    return hashlib.sha256(probe.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Event:
    user_id: str
    item_id: str
    weight: float
    event: str | None = None
    timestamp: float | None = None


MAX_EPOCH_S = 1e11  # seconds since the epoch below this (the year 5138); above it, most likely milliseconds


def erasure_digest(stored_id: str) -> str:
    from ..privacy import erasure_digest as d

    return d(stored_id)


class EventStore:
    """Append-only event log with per-user reads and erasure. Thread-safe: one connection
    per thread, writes serialised by SQLite's lock (and a process-local mutex)."""

    def __init__(self, path: str | Path, *, pseudonyms: str = "none", create: bool = True, busy_ms: int = 10000):
        self.path = Path(path)
        self.busy_ms = busy_ms
        self._local = threading.local()
        self._write_lock = threading.Lock()
        if self.path.exists() and self.path.stat().st_size > 0 and not is_store(self.path):
            raise InputError(f"{self.path} is not an avrec event store (not a SQLite database); "
                             "pass another serve.events path")
        if not self.path.exists():
            if not create:
                raise InputError(f"event store not found: {self.path}; it is created by avrec serve or avrec events add")
            if not self.path.parent.exists():
                raise InputError(f"cannot create the event store {self.path}: folder {self.path.parent} does not exist")
        con = self._con()
        with self._write_lock:
            con.executescript(_DDL)
            got = dict(con.execute("SELECT key, value FROM meta").fetchall())
            if not got:
                con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?), ('pseudonyms', ?)", (str(SCHEMA), pseudonyms))
                got = {"schema": str(SCHEMA), "pseudonyms": pseudonyms}
        if int(got.get("schema", SCHEMA)) > SCHEMA:
            raise InputError(f"{self.path} has event store schema {got['schema']}, newer than this avrec's {SCHEMA}; upgrade avrec")
        self.pseudonyms = got.get("pseudonyms", "none")
        if pseudonyms != "any" and self.pseudonyms != pseudonyms:
            have = "raw user ids" if self.pseudonyms == "none" else f"ids pseudonymised with key {self.pseudonyms}"
            want = "raw user ids" if pseudonyms == "none" else f"key {pseudonyms}"
            raise InputError(f"{self.path} holds {have} but this config uses {want}; use the same privacy.key_file "
                             "and privacy.pseudonymize as the store was written with, or a new serve.events path")

    # connections -----------------------------------------------------------------------
    def _con(self) -> "sqlite3.Connection":
        con = getattr(self._local, "con", None)
        if con is None:
            import sqlite3  # here, not at import: recommend reads this module only when a store exists

            try:
                con = sqlite3.connect(self.path, timeout=self.busy_ms / 1000.0, isolation_level=None,
                                      check_same_thread=True)
            except sqlite3.Error as e:
                raise InputError(f"cannot open the event store {self.path}: {e}") from None
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")  # WAL + FULL: the log is fsynced at every commit
            con.execute("PRAGMA secure_delete=ON")  # erased rows are overwritten, not left in free pages
            con.execute(f"PRAGMA busy_timeout={int(self.busy_ms)}")
            self._local.con = con
        return con

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # writes ------------------------------------------------------------------------------
    def add(self, events: Sequence[Event]) -> tuple[int, int]:
        """Append events in one transaction, synced before returning. Returns (first seq, last seq)."""
        if not events:
            return (0, 0)
        now = time.time()
        con = self._con()
        with self._write_lock:
            try:
                con.execute("BEGIN IMMEDIATE")
                cur = con.executemany(
                    "INSERT INTO events (user_id, item_id, event, weight, timestamp, received) VALUES (?, ?, ?, ?, ?, ?)",
                    [(e.user_id, e.item_id, e.event, float(e.weight), e.timestamp, now) for e in events])
                del cur
                last = con.execute("SELECT last_insert_rowid()").fetchone()[0]
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK") if con.in_transaction else None
                raise
        return int(last) - len(events) + 1, int(last)

    def forget(self, user_id: str) -> int:
        """Erase a user's events and record the erasure (its digest and time). Returns the
        number of events deleted."""
        con = self._con()
        with self._write_lock:
            try:
                con.execute("BEGIN IMMEDIATE")
                n = con.execute("DELETE FROM events WHERE user_id = ?", (user_id,)).rowcount
                seq = con.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
                con.execute("INSERT OR REPLACE INTO erased VALUES (?, ?, ?)", (erasure_digest(user_id), time.time(), seq))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK") if con.in_transaction else None
                raise
        # the deleted rows' pages stay in the WAL until a checkpoint copies them over
        import sqlite3

        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # a reader holds the log: the next checkpoint does it
        return int(n)

    # reads -------------------------------------------------------------------------------
    def last_seq(self) -> int:
        return int(self._con().execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def count(self) -> int:
        return int(self._con().execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def user_events(self, user_id: str, *, after: int = 0) -> list[tuple[str, float]]:
        """(item_id, weight) of the user's events with seq > ``after``, oldest first."""
        return self._con().execute("SELECT item_id, weight FROM events WHERE user_id = ? AND seq > ? ORDER BY seq",
                                   (user_id, int(after))).fetchall()

    def user_state(self, user_id: str, *, after: int = 0) -> tuple[list[tuple[str, float]], float | None]:
        """(:meth:`user_events`, :meth:`erased_at`) in one statement: the server asks both
        for every request it answers."""
        rows = self._con().execute(
            "SELECT 0, seq, item_id, weight FROM events WHERE user_id = ? AND seq > ? "
            "UNION ALL SELECT 1, 0, NULL, at FROM erased WHERE digest = ? ORDER BY 1, 2",
            (user_id, int(after), erasure_digest(user_id))).fetchall()
        if rows and rows[-1][0] == 1:
            return [(r[2], r[3]) for r in rows[:-1]], float(rows[-1][3])
        return [(r[2], r[3]) for r in rows], None

    def erased_at(self, user_id: str) -> float | None:
        row = self._con().execute("SELECT at FROM erased WHERE digest = ?", (erasure_digest(user_id),)).fetchone()
        return None if row is None else float(row[0])

    def erased_digests(self, *, since: float | None = None) -> set[str]:
        """Digests of the erased users (erased at ``since`` or later, when given)."""
        if since is None:
            return {r[0] for r in self._con().execute("SELECT digest FROM erased")}
        return {r[0] for r in self._con().execute("SELECT digest FROM erased WHERE at >= ?", (float(since),))}

    def item_ids(self, *, upto: int | None = None) -> set[str]:
        """The distinct item ids of the stored events (with seq <= ``upto``)."""
        q, args = "SELECT DISTINCT item_id FROM events", ()
        if upto is not None:
            q, args = q + " WHERE seq <= ?", (int(upto),)
        return {r[0] for r in self._con().execute(q, args)}

    def pending(self, items: Sequence[str], *, upto: int) -> dict[str, list[tuple[str, float]]]:
        """{user_id: [(item_id, weight), ...] oldest first} of the events with seq <= ``upto``
        on ``items``: what a model trained up to ``upto`` could not learn (it lacked the items)."""
        rows: list[tuple[int, str, str, float]] = []
        items = list(items)
        con = self._con()
        for a in range(0, len(items), 500):  # SQLite's bound-parameter limit
            chunk = items[a:a + 500]
            q = f"SELECT seq, user_id, item_id, weight FROM events WHERE seq <= ? AND item_id IN ({','.join('?' * len(chunk))})"
            rows += con.execute(q, (int(upto), *chunk)).fetchall()
        out: dict[str, list[tuple[str, float]]] = {}
        for _seq, u, i, w in sorted(rows):
            out.setdefault(u, []).append((i, float(w)))
        return out

    def iter_events(self, *, after: int = 0, upto: int | None = None) -> Iterator[tuple[int, str, str, str | None, float, float | None]]:
        """(seq, user_id, item_id, event, weight, timestamp) in seq order."""
        q = "SELECT seq, user_id, item_id, event, weight, timestamp FROM events WHERE seq > ?"
        args: list[Any] = [int(after)]
        if upto is not None:
            q += " AND seq <= ?"
            args.append(int(upto))
        yield from self._con().execute(q + " ORDER BY seq", args)


def parse_event(rec: Any, *, weights: dict[str, float], where: str = "event") -> Event:
    """One event from a JSON object; ValueError naming the field at fault.

    ``user_id`` and ``item_id``: ids (see :mod:`avrec.ids`); ``weight``: a finite number
    >= 0, else the configured weight of ``event`` (serve.event_weights), else 1;
    ``timestamp``: seconds since the epoch or an ISO date."""
    from ..data.interactions import _parse_time
    from ..ids import check_id

    if not isinstance(rec, dict):
        raise ValueError(f"{where} is not a JSON object")
    unknown = set(rec) - {"user_id", "item_id", "event", "weight", "timestamp"}
    if unknown:
        raise ValueError(f"{where} has unknown field {sorted(unknown)[0]!r}; use user_id, item_id, event, weight, timestamp")
    for key in ("user_id", "item_id"):
        if rec.get(key) in (None, ""):
            raise ValueError(f"{where} lacks {key}")
        if not isinstance(rec[key], (str, int)) or isinstance(rec[key], bool):
            raise ValueError(f"{where}: {key} must be a string")
    u = check_id(rec["user_id"], "user_id")
    i = check_id(rec["item_id"], "item_id")
    ev = rec.get("event")
    if ev is not None:
        if not isinstance(ev, str) or not ev.strip():
            raise ValueError(f"{where}: event must be a non-empty string such as 'view'")
        ev = ev.strip().lower()
    w = rec.get("weight")
    if w is not None:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(float(w)) or float(w) < 0 or float(w) > 1e6:
            raise ValueError(f"{where}: weight must be a number in [0, 1e6]")
        w = float(w)
    elif ev is not None:
        if ev not in weights:
            raise ValueError(f"{where}: unknown event {ev!r}; use one of {', '.join(sorted(weights))} or give a weight")
        w = float(weights[ev])
    else:
        w = 1.0
    t = rec.get("timestamp")
    if t is not None:
        try:
            t = _parse_time(t)
        except (ValueError, TypeError):
            raise ValueError(f"{where}: bad timestamp {t!r}; use seconds since the epoch or an ISO date") from None
        # NaN was stored as "no time"; 1e30 or -5 would be a time no split can place
        if not math.isfinite(t) or not 0 <= t < MAX_EPOCH_S:
            hint = " (milliseconds? divide by 1000)" if math.isfinite(t) and MAX_EPOCH_S <= t < MAX_EPOCH_S * 1000 else ""
            raise ValueError(f"{where}: bad timestamp {rec.get('timestamp')!r}{hint}; use seconds since the epoch "
                             "(0 to 1e11) or an ISO date, or leave it out (the server's clock)")
    return Event(u, i, w, ev, t)


def read_event_lines(lines: Iterable[str], *, weights: dict[str, float], source: str) -> tuple[list[Event], list[str]]:
    """Events from JSON lines (or a CSV with a header: user_id,item_id[,event][,weight][,timestamp]).
    Returns (events, problems) where each problem names its line."""
    import csv
    import json

    events: list[Event] = []
    problems: list[str] = []
    it = iter(lines)
    header: list[str] | None = None
    for n, line in enumerate(it, 1):
        s = line.strip()
        if not s:
            continue
        if header is None and n == 1 and not s.startswith("{"):
            from ..data.interactions import ALIASES
            from ..data.columns import match_columns

            raw = [h.strip() for h in next(csv.reader([s]))]
            aliases = {k: v for k, v in ALIASES.items() if k != "watch_seconds"}
            try:  # the spellings train accepts (user, userId, movieId, rating, ...), named as parse_event wants
                cols = match_columns(raw, aliases, source, required=("user_id", "item_id"), what="an events CSV")
            except InputError:
                raise InputError(f"{source}: line 1 is neither a JSON event nor a CSV header with user_id,item_id "
                                 f"(found: {', '.join(raw)})") from None
            named = {v: k for k, v in cols.items()}
            header = [named.get(h, h) for h in raw]
            continue
        try:
            if header is not None:
                row = next(csv.reader([s]))
                if len(row) != len(header):
                    raise ValueError(f"{len(row)} fields, header has {len(header)}")
                rec: Any = {h: v for h, v in zip(header, row) if v != ""}
                if "weight" in rec:
                    rec["weight"] = float(rec["weight"])
            else:
                rec = json.loads(s)
            events.append(parse_event(rec, weights=weights, where="event"))
        except (ValueError, RecursionError) as e:
            problems.append(f"{source}: line {n}: {e}")
    return events, problems
