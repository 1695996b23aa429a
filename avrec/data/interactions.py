"""Interactions: loading from CSV / TSV / JSONL / Parquet into integer-indexed arrays.

Columns: ``user_id``, ``item_id`` (strings), optional ``timestamp`` (number or ISO date),
optional ``weight`` or ``event`` (view, like, ...) or ``watch_seconds``. Problems are
counted and reported with line numbers, never silently dropped: malformed rows,
duplicate (user, item) pairs (merged: weights summed, latest timestamp kept) and items
missing from the catalogue.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..errors import InputError
from ..ids import check_id
from .columns import match_columns
from .idmap import IdMap

# accepted spellings of each column (first match wins)
ALIASES = {
    "user_id": ("user_id", "user", "userid", "userId", "uid"),
    "item_id": ("item_id", "item", "itemid", "itemId", "movieId", "iid"),
    "timestamp": ("timestamp", "time", "ts", "datetime"),
    "weight": ("weight", "rating", "value", "count"),
    "event": ("event", "event_type", "type", "action"),
    "watch_seconds": ("watch_seconds", "seconds", "duration_watched"),
}
# implicit strength of each event type (serve.event_weights configures it, for train and the
# server alike); 0: seen, no taste (see Interactions.seen_only); unknown names are malformed rows
EVENT_WEIGHTS = {
    "view": 1.0, "play": 1.0, "click": 1.0, "listen": 1.0, "watch": 1.0, "open": 1.0,
    "complete": 2.0, "finish": 2.0, "like": 2.0, "save": 2.0, "add": 2.0,
    "share": 3.0, "purchase": 3.0, "buy": 3.0,
    "skip": 0.0, "dislike": 0.0,
}
MAX_REPORTED = 20  # line numbers kept per problem kind
_F32_MAX = float(np.finfo(np.float32).max)  # weights are stored as float32
_F32_ZERO = float(np.finfo(np.float32).smallest_subnormal) / 2  # this and below round to 0.0


@dataclass
class LoadReport:
    """What loading found: counts plus the first line numbers of each problem."""

    rows: int = 0
    kept: int = 0
    malformed: int = 0
    malformed_lines: list[tuple[int, str]] = field(default_factory=list)
    duplicates: int = 0
    duplicate_lines: list[int] = field(default_factory=list)
    unknown_items: int = 0
    unknown_item_lines: list[tuple[int, str]] = field(default_factory=list)
    below_min_weight: int = 0
    zero_weight: int = 0  # (user, item) pairs whose weight sums to 0: seen, no taste
    zero_only_users: int = 0  # users all of whose pairs weigh 0: not trained users
    trimmed: int = 0  # rows whose user or item id had spaces around it (removed, as everywhere)
    mixed_time_units: int = 0  # timestamps that look like epoch milliseconds where others look like seconds

    def add(self, kind: str, line: int, detail: str = "") -> None:
        if kind == "malformed":
            self.malformed += 1
            if len(self.malformed_lines) < MAX_REPORTED:
                self.malformed_lines.append((line, detail))
        elif kind == "duplicate":
            self.duplicates += 1
            if len(self.duplicate_lines) < MAX_REPORTED:
                self.duplicate_lines.append(line)
        elif kind == "unknown":
            self.unknown_items += 1
            if len(self.unknown_item_lines) < MAX_REPORTED:
                self.unknown_item_lines.append((line, detail))

    def lines(self, source: str = "") -> list[str]:
        """Human-readable summary, one problem kind per line."""
        pre = f"{source}: " if source else ""
        out = [f"{pre}{self.rows} rows, {self.kept} interactions kept"]
        if self.malformed:
            where = ", ".join(f"line {n} ({d})" for n, d in self.malformed_lines[:5])
            out.append(f"{pre}{self.malformed} malformed rows skipped: {where}{' ...' if self.malformed > 5 else ''}")
        if self.duplicates:
            where = ", ".join(f"line {n}" for n in self.duplicate_lines[:5])
            out.append(f"{pre}{self.duplicates} duplicate (user, item) rows merged: {where}{' ...' if self.duplicates > 5 else ''}")
        if self.unknown_items:
            where = ", ".join(f"line {n} ({d})" for n, d in self.unknown_item_lines[:5])
            out.append(
                f"{pre}{self.unknown_items} rows name items that have no embeddings (not in the catalogue, or "
                f"skipped or failed in extract / embed: see their items.jsonl), skipped: "
                f"{where}{' ...' if self.unknown_items > 5 else ''}"
            )
        if self.below_min_weight:
            out.append(f"{pre}{self.below_min_weight} rows below train.min_weight ignored")
        if self.trimmed:
            out.append(f"{pre}{self.trimmed} rows have spaces around an id, removed as in every table (' 7' is the "
                       "id '7')")
        if self.mixed_time_units:
            out.append(f"{pre}warning: {self.mixed_time_units} timestamps look like epoch milliseconds (> 1e11) and the "
                       "rest like seconds; a temporal split then puts them all last: convert them to one unit")
        if self.zero_weight:
            out.append(f"{pre}{self.zero_weight} (user, item) pairs weigh 0 (skip, dislike, weight 0): kept as seen, "
                       "so never recommended back to that user, with no taste")
        if self.zero_only_users:
            out.append(f"{pre}{self.zero_only_users} users have only zero-weight rows: no model vector for them "
                       "(they get --fallback popular, or --history)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "kept": self.kept, "malformed": self.malformed,
            "malformed_lines": [n for n, _ in self.malformed_lines], "duplicates": self.duplicates,
            "duplicate_lines": self.duplicate_lines, "unknown_items": self.unknown_items,
            "unknown_item_lines": [n for n, _ in self.unknown_item_lines],
            "below_min_weight": self.below_min_weight, "zero_weight": self.zero_weight,
            "zero_only_users": self.zero_only_users, "trimmed": self.trimmed,
            "mixed_time_units": self.mixed_time_units,
        }


@dataclass
class Interactions:
    """Deduplicated interactions over an item catalogue.

    ``user``, ``item``: (nnz,) int32 indices into ``users`` / ``items``; ``weight``: (nnz,)
    float32 > 0; ``timestamp``: (nnz,) float64 seconds (NaN when unknown). ``seen_only``:
    (user, item) int32 arrays of the pairs whose weight summed to 0 (a skip, a dislike): not
    interactions, so no model learns from them, but seen, so train's artifact excludes them
    from the user's recommendations; None when there are none.
    """

    users: IdMap
    items: IdMap
    user: np.ndarray
    item: np.ndarray
    weight: np.ndarray
    timestamp: np.ndarray
    report: LoadReport = field(default_factory=LoadReport)
    seen_only: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def has_time(self) -> bool:
        return bool(len(self) and np.isfinite(self.timestamp).all())

    def untimed(self) -> str:
        """Why not every interaction has a time, for an error message ('' when all do)."""
        bad = ~np.isfinite(self.timestamp)
        if len(self) and not bad.any():
            return ""
        if bad.all():
            return "no interaction has a timestamp (add a timestamp column)"
        j = int(np.flatnonzero(bad)[0])
        return (f"{int(bad.sum())} of {len(self)} interactions have no timestamp (e.g. user {self.users[self.user[j]]!r}, "
                f"item {self.items[self.item[j]]!r}; an empty cell); fill them in or drop those rows")

    def subset(self, mask: np.ndarray) -> "Interactions":
        """Rows where ``mask`` is true, over the same user and item index spaces."""
        return Interactions(
            self.users, self.items, self.user[mask], self.item[mask], self.weight[mask],
            self.timestamp[mask], self.report, self.seen_only,
        )

    def to_csr(self, *, binary: bool = False):
        """(n_users, n_items) scipy CSR of weights (ones with ``binary``)."""
        import scipy.sparse as sp

        data = np.ones(len(self), np.float32) if binary else self.weight.astype(np.float32)
        m = sp.csr_matrix((data, (self.user, self.item)), shape=(self.n_users, self.n_items), dtype=np.float32)
        m.sum_duplicates()
        m.sort_indices()
        return m

    def item_counts(self) -> np.ndarray:
        """(n_items,) float32 number of interactions per item."""
        return np.bincount(self.item, minlength=self.n_items).astype(np.float32)

    def user_counts(self) -> np.ndarray:
        return np.bincount(self.user, minlength=self.n_users).astype(np.int64)


def from_arrays(
    user_ids: Iterable[str], item_ids: Iterable[str], *, weights=None, timestamps=None,
    catalogue: Iterable[str] | None = None,
) -> Interactions:
    """Build :class:`Interactions` from parallel sequences (no file); duplicates merged."""
    users = list(map(str, user_ids))
    items = list(map(str, item_ids))
    n = len(users)
    rows = [
        (i + 1, users[i], items[i], 1.0 if weights is None else float(weights[i]),
         math.nan if timestamps is None else float(timestamps[i]))
        for i in range(n)
    ]
    return _build(rows, catalogue=catalogue, report=LoadReport(rows=n))


# ---------------------------------------------------------------------------------------
# reading


def _parse_time(v: Any) -> float:
    if v is None or v == "":
        return math.nan
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v).strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        d = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad timestamp {s!r}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def _columns(header: Iterable[str], source: Path, *, strict: bool = False,
             warn: Callable[[str], None] = lambda _m: None) -> dict[str, str]:
    names = [str(h).strip() for h in header if h is not None]
    _check_delimiter(names, source)
    seen: dict[str, int] = {}
    for n, name in enumerate(names, 1):  # which of two item_id columns would be read is anyone's guess
        if name and name.lower() in seen:
            raise InputError(f"{source}: the header names {name!r} twice (columns {seen[name.lower()]} and {n}); "
                             "rename or drop one")
        seen[name.lower()] = n
    return match_columns(names, ALIASES, source, strict=strict, warn=warn, required=("user_id", "item_id"),
                         what="an interactions table")


def _check_delimiter(header: list[str], source: Path) -> None:
    """InputError for a one-column header that another delimiter splits (a spreadsheet's
    semicolons, a tab-separated file named .csv)."""
    if len(header) != 1:
        return
    for sep, name, fix in (("\t", "tab-separated", "name it .tsv"),
                           (";", "semicolon-separated", "save it comma-separated (decimal points, not commas) or "
                            "tab-separated as .tsv")):
        if sep in header[0]:
            raise InputError(f"{source}: looks {name} (header {header[0][:60]!r}); {fix}")


def why_empty(report: LoadReport, sources: str, catalogue: str) -> str:
    """The one line saying why no interaction was kept, naming the fix for the largest cause."""
    causes = {"malformed": report.malformed, "unknown": report.unknown_items, "low": report.below_min_weight,
              "zero": report.zero_weight}
    top = max(causes, key=causes.get)
    if causes[top] == 0:
        return f"{sources}: no interactions"
    if top == "malformed":
        first = f" (first: line {report.malformed_lines[0][0]}: {report.malformed_lines[0][1]})" \
            if report.malformed_lines else ""
        return (f"{sources}: no usable row, {report.malformed} of {report.rows} malformed{first}; check the "
                "delimiter, the quoting and the header")
    if top == "low":
        return (f"{sources}: every usable row weighs below train.min_weight (or is negative); lower "
                "train.min_weight or check the weight column")
    if top == "zero":
        return (f"{sources}: every usable row weighs 0 (skip, dislike, weight 0: seen, no taste), so there is no "
                "taste to learn; check the weight or event column (serve.event_weights)")
    return (f"{sources}: no interaction matches an item of {catalogue} ({report.unknown_items} rows name other "
            "items); item_id values must be the embeddings' item ids")


_BINARY_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"PK\x03\x04": "a zip archive",
                 b"\x1f\x8b": "gzip-compressed data", b"PAR1": "a Parquet file", b"%PDF": "a PDF document"}


def _check_text(path: Path, what: str) -> None:
    """InputError when ``path`` is plainly not a text table (binary bytes at its start)."""
    with open(path, "rb") as f:
        head = f.read(8192)
    for magic, name in _BINARY_MAGIC.items():
        if head.startswith(magic):
            hint = " (name it .parquet)" if magic == b"PAR1" else ""
            raise InputError(f"{path} is {name}, not {what} table{hint}; pass CSV, TSV, JSONL or Parquet")
    if b"\x00" in head:
        raise InputError(f"{path} holds binary data, not {what} table; pass CSV, TSV, JSONL or Parquet")


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """Yield (line number, record or None when unparseable, error)."""
    try:
        yield from _parse(path)
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start} of a line); save it as UTF-8") from None
    except csv.Error as e:
        raise InputError(f"{path}: {e}; check the quoting of that row") from None


def _parse(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if suffix not in (".parquet", ".pq"):
        _check_text(path, "an interactions")
    if suffix in (".jsonl", ".ndjson", ".json"):
        with open(path, encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except (ValueError, RecursionError) as e:  # also a number past int's 4300 digits
                    yield n, None, f"invalid JSON: {getattr(e, 'msg', None) or e}"
                    continue
                if not isinstance(rec, dict):
                    yield n, None, "not a JSON object"
                    continue
                yield n, rec, ""
        return
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or convert to CSV") from None
        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
            first = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
            raise InputError(f"{path} is not a readable Parquet file ({first}); pass CSV, TSV, JSONL or Parquet") from None
        for n, rec in enumerate(table.to_pylist(), 1):
            yield n, rec, ""
        return
    delimiter = "\t" if suffix in (".tsv", ".tab") else ","
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long field is data, not an error
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        if delimiter == ",":
            _check_delimiter(header, path)
        header = [h.strip() for h in header]
        start = reader.line_num + 1
        for row in reader:
            # a quoted field may span lines: report the line the row starts on
            n, start = start, reader.line_num + 1
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                yield n, None, f"{len(row)} fields, header has {len(header)}"
                continue
            yield n, dict(zip(header, row)), ""


def load_interactions(
    path: str | Path, *, catalogue: Iterable[str] | None = None, min_weight: float = 0.0, strict: bool = False,
    warn: Callable[[str], None] = lambda _m: None, event_weights: dict[str, float] | None = None,
) -> Interactions:
    """Read an interactions file.

    ``catalogue``: the item ids in model order (the embeddings' items.jsonl); rows naming
    other items are counted as unknown and skipped. Without it the items seen in the file
    form the catalogue, in order of first appearance. Unknown columns are warned about
    (errors with ``strict``); an id with a control character is a malformed row.
    ``event_weights``: an ``event`` column's weights (default :data:`EVENT_WEIGHTS`; train
    passes ``serve.event_weights``). A row weighing exactly 0 is seen, not taste
    (:attr:`Interactions.seen_only`); one below ``min_weight`` is dropped.
    """
    ev = {str(k).strip().lower(): float(v) for k, v in (EVENT_WEIGHTS if event_weights is None else event_weights).items()}
    path = Path(path)
    if not path.exists():
        raise InputError(f"interactions file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory; pass an interactions file (CSV, TSV, JSONL or Parquet)")
    try:
        path.open("rb").close()
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied") from None
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    from ..serve.events import is_store

    if is_store(path):  # avrec serve's event store: its rows, in seq order ("line" = seq)
        return _from_rows(path, _store_records(path), catalogue=catalogue, min_weight=min_weight, strict=strict,
                          warn=warn, event_weights=ev)
    if suffix in (".csv", ".tsv", ".tab", ".parquet", ".pq"):
        fast = _columnar(path, suffix, catalogue=catalogue, min_weight=min_weight, strict=strict, warn=warn,
                         event_weights=ev)
        if fast is not None:
            return fast
    return _from_rows(path, _records(path), catalogue=catalogue, min_weight=min_weight, strict=strict, warn=warn,
                      event_weights=ev)


def _store_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    from ..serve.events import EventStore

    store = EventStore(path, pseudonyms="any", create=False)
    for seq, u, i, _ev, w, t in store.iter_events():
        yield seq, {"user_id": u, "item_id": i, "weight": w, "timestamp": t}, ""


def _number(v: Any, name: str) -> float:
    """float(v), or ValueError naming the field and the value (not Python's own wording)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        shown = str(v) if len(str(v)) <= 40 else str(v)[:37] + "..."
        raise ValueError(f"{name} {shown!r} is not a number") from None


def _from_rows(path: Path, records: Iterator[tuple[int, dict[str, Any] | None, str]], *, catalogue, min_weight: float,
               strict: bool, warn: Callable[[str], None], event_weights: dict[str, float] | None = None
               ) -> Interactions:
    event_weights = EVENT_WEIGHTS if event_weights is None else event_weights
    report = LoadReport()
    rows: list[tuple[int, str, str, float, float]] = []
    cols: dict[str, str] | None = None
    keys: dict[str, None] = {}  # JSON lines may each name other fields: the columns seen so far
    warned: set[str] = set()

    def warn_once(msg: str) -> None:
        if msg not in warned:
            warned.add(msg)
            warn(msg)

    varying = path.suffix.lower() in (".jsonl", ".ndjson", ".json")  # each JSON line names its own fields
    missing: InputError | None = None  # no user_id / item_id field yet (JSON lines): raised if none ever comes
    for n, rec, err in records:
        report.rows += 1
        if rec is None:
            report.add("malformed", n, err)
            continue
        if cols is None or any(k not in keys for k in rec):
            keys.update(dict.fromkeys(rec))
            try:  # unknown fields are warned about once, at the end, over every line's fields
                cols = _columns(keys, path, strict=strict, warn=lambda _m: None)
            except InputError as e:
                if not varying or strict and "--strict" in str(e):
                    raise
                missing, cols = e, None
                report.add("malformed", n, "no user_id or item_id field")
                continue
        try:
            u = rec.get(cols["user_id"])
            i = rec.get(cols["item_id"])
            if u is None or i is None or str(u).strip() == "" or str(i).strip() == "":
                raise ValueError("empty user_id or item_id")
            for name, v in (("user_id", u), ("item_id", i)):
                if isinstance(v, (list, dict)):  # JSON: str() would make "['x']" an id
                    raise ValueError(f"{name} is a JSON {'list' if isinstance(v, list) else 'object'}; give it as text")
            su, si = str(u), str(i)
            u, i = check_id(u, "user_id"), check_id(i, "item_id")
            if len(u) != len(su) or len(i) != len(si):
                report.trimmed += 1
            w = 1.0
            if "weight" in cols and rec.get(cols["weight"]) not in (None, ""):
                w = _number(rec[cols["weight"]], "weight")
            elif "event" in cols and rec.get(cols["event"]) not in (None, ""):
                ev = str(rec[cols["event"]]).strip().lower()
                if ev not in event_weights:
                    raise ValueError(f"unknown event {ev[:40]!r} (known: {', '.join(sorted(event_weights))}; "
                                     "serve.event_weights adds more)")
                w = event_weights[ev]
            elif "watch_seconds" in cols and rec.get(cols["watch_seconds"]) not in (None, ""):
                # diminishing returns: a minute counts 1, an hour about 4
                w = math.log1p(max(_number(rec[cols["watch_seconds"]], "watch_seconds"), 0.0) / 60.0) / math.log(2.0)
            if not math.isfinite(w) or abs(w) > _F32_MAX:
                raise ValueError(f"weight {w} is not finite" if not math.isfinite(w) else f"weight {w} is too large")
            t = _parse_time(rec.get(cols["timestamp"])) if "timestamp" in cols else math.nan
        except (TypeError, ValueError, OverflowError) as e:  # OverflowError: a JSON integer past float
            report.add("malformed", n, str(e))
            continue
        if w < min_weight or w < 0:
            report.below_min_weight += 1
            continue
        if w <= _F32_ZERO:  # stored as float32: a weight that rounds to 0 is 0, seen with no taste
            w = 0.0
        rows.append((n, str(u).strip(), str(i).strip(), w, t))
    if report.rows == 0:
        raise InputError(f"{path}: no interactions (empty file)")
    if cols is None and missing is not None:
        raise missing
    if keys:
        _columns(keys, path, strict=strict, warn=warn_once)
    return _build(rows, catalogue=catalogue, report=report)


def _columnar(path: Path, suffix: str, *, catalogue, min_weight: float, strict: bool,
              warn: Callable[[str], None], event_weights: dict[str, float] | None = None) -> Interactions | None:
    """The whole-column reader (``avrec.data.columnar``), or None when the file needs this
    module's row-by-row one (or pyarrow is not installed)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return None
    from .columnar import load_columnar

    return load_columnar(path, suffix, catalogue=None if catalogue is None else [str(c) for c in catalogue],
                         min_weight=min_weight, strict=strict, warn=warn, columns=_columns,
                         event_weights=EVENT_WEIGHTS if event_weights is None else event_weights, f32_max=_F32_MAX,
                         f32_zero=_F32_ZERO)


def _build(rows, *, catalogue, report: LoadReport) -> Interactions:
    items = IdMap(catalogue) if catalogue is not None else IdMap()
    fixed = catalogue is not None
    users = IdMap()
    pairs: dict[tuple[int, int], int] = {}
    uu: list[int] = []
    ii: list[int] = []
    ww: list[float] = []
    tt: list[float] = []
    for n, u, i, w, t in rows:
        if fixed:
            j = items.get(i)
            if j is None:
                report.add("unknown", n, i)
                continue
        else:
            j = items.add(i)
        k = users.add(u)
        at = pairs.get((k, j))
        if at is not None:
            report.add("duplicate", n)
            ww[at] += w
            if math.isfinite(t) and not (tt[at] >= t):
                tt[at] = t
            continue
        pairs[(k, j)] = len(uu)
        uu.append(k)
        ii.append(j)
        ww.append(w)
        tt.append(t)
    check_time_units(np.asarray(tt, np.float64), report)
    return split_zero(users, items, np.asarray(uu, np.int32), np.asarray(ii, np.int32),
                      np.minimum(np.asarray(ww, np.float64), _F32_MAX).astype(np.float32),  # a sum may pass float32
                      np.asarray(tt, np.float64), report)


def check_time_units(timestamp: np.ndarray, report: LoadReport) -> None:
    """Count in ``report`` the timestamps that look like epoch milliseconds (past 1e11: March
    1973 in ms, the year 5138 in seconds) when the others look like seconds."""
    t = timestamp[np.isfinite(timestamp) & (timestamp > 0)]
    ms = int((t > 1e11).sum())
    report.mixed_time_units = ms if 0 < ms < len(t) else 0


def split_zero(users: IdMap, items: IdMap, user: np.ndarray, item: np.ndarray, weight: np.ndarray,
               timestamp: np.ndarray, report: LoadReport) -> Interactions:
    """Interactions from deduplicated pairs, those whose weight is 0 moved to ``seen_only``.

    A skip or a dislike says the user saw the item and wants no more of it: it must not
    enter any model as taste (a zero entry still shapes ALS and binary weighting), yet it
    must keep the item out of that user's list. A user with nothing but such pairs gets
    no model vector (nothing to fold), so is dropped and counted."""
    pos = weight > 0
    report.kept = int(pos.sum())
    report.zero_weight = int((~pos).sum())
    if pos.all():
        return Interactions(users=users, items=items, user=user, item=item, weight=weight, timestamp=timestamp,
                            report=report)
    has = np.zeros(len(users), bool)
    has[user[pos]] = True
    so = ~pos & has[user]
    if not has.all():
        report.zero_only_users = int((~has).sum())
        users = IdMap(u for u, h in zip(users, has) if h)
        user = (np.cumsum(has) - 1)[user].astype(np.int32)  # valid wherever has[user]
    return Interactions(users=users, items=items, user=user[pos], item=item[pos], weight=weight[pos],
                        timestamp=timestamp[pos], report=report,
                        seen_only=(user[so].astype(np.int32), item[so].astype(np.int32)) if so.any() else None)


def merge(parts: list[Interactions]) -> Interactions:
    """Interactions from several sources over one catalogue (files and an event store):
    users are matched by id; a (user, item) pair found in several sources is one
    interaction with the weights summed and the latest timestamp, as within a file."""
    if len(parts) == 1:
        return parts[0]
    items = parts[0].items
    if any(p.items.ids != items.ids for p in parts[1:]):
        raise InputError("interaction sources were read against different catalogues")
    users = IdMap()
    uu, ii, ww, tt = [], [], [], []
    su, si = [], []
    report = LoadReport()
    for p in parts:
        remap = np.asarray([users.add(u) for u in p.users], dtype=np.int64)
        uu.append(remap[p.user] if len(p.user) else p.user.astype(np.int64))
        ii.append(p.item.astype(np.int64))
        ww.append(p.weight.astype(np.float64))
        tt.append(p.timestamp)
        if p.seen_only is not None:
            su.append(remap[p.seen_only[0]])
            si.append(p.seen_only[1].astype(np.int64))
        for f in ("rows", "kept", "malformed", "unknown_items", "below_min_weight", "zero_only_users"):
            if hasattr(report, f):
                setattr(report, f, getattr(report, f) + getattr(p.report, f))
    u, i, w, t = (np.concatenate(a) for a in (uu, ii, ww, tt))
    key = u * max(len(items), 1) + i
    order = np.lexsort((np.where(np.isfinite(t), t, -np.inf), key))
    key, u, i, w, t = key[order], u[order], i[order], w[order], t[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(first)
    w_sum = np.add.reduceat(w, starts) if len(starts) else w
    last = np.r_[starts[1:] - 1, len(key) - 1] if len(starts) else starts
    report.kept = int(len(starts))
    seen_only = None
    if su:  # zero-weight pairs of any source, less those another source gave weight
        n_items = max(len(items), 1)
        skey = np.unique(np.concatenate(su) * n_items + np.concatenate(si))
        skey = skey[~np.isin(skey, key[starts])]
        report.zero_weight = int(len(skey))
        if len(skey):
            seen_only = ((skey // n_items).astype(np.int32), (skey % n_items).astype(np.int32))
    return Interactions(users=users, items=items, user=u[starts].astype(np.int32), item=i[starts].astype(np.int32),
                        weight=np.minimum(w_sum, _F32_MAX).astype(np.float32), timestamp=t[last], report=report,
                        seen_only=seen_only)


def pseudonymize(data: Interactions, pid) -> Interactions:
    """The same interactions with every user id replaced by ``pid(id)`` (order kept)."""
    return Interactions(users=IdMap(pid(u) for u in data.users), items=data.items, user=data.user, item=data.item,
                        weight=data.weight, timestamp=data.timestamp, report=data.report, seen_only=data.seen_only)


def drop_users(data: Interactions, digests: set[str], digest) -> tuple[Interactions, int]:
    """Without the users whose ``digest(id)`` is in ``digests`` (erased); returns (data, users dropped).
    The erased users keep no row and no id."""
    if not digests:
        return data, 0
    gone = np.asarray([digest(u) in digests for u in data.users], dtype=bool)
    if not gone.any():
        return data, 0
    keep_user = ~gone
    new_index = np.cumsum(keep_user) - 1
    mask = keep_user[data.user]
    users = IdMap(u for u, k in zip(data.users, keep_user) if k)
    seen_only = None
    if data.seen_only is not None:
        su, si = data.seen_only
        sk = keep_user[su]
        seen_only = (new_index[su[sk]].astype(np.int32), si[sk]) if sk.any() else None
    return Interactions(users=users, items=data.items, user=new_index[data.user[mask]].astype(np.int32),
                        item=data.item[mask], weight=data.weight[mask], timestamp=data.timestamp[mask],
                        report=data.report, seen_only=seen_only), int(gone.sum())
