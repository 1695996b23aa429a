"""Properties of ``load_interactions``: every format agrees, any input gives Interactions or
InputError, every row is accounted for with its line number, and ids survive exactly."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from avrec.data import IdMap, load_interactions
from avrec.errors import InputError
from avrec.ids import MAX_ID_BYTES

SETTINGS = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

# what ids.py refuses: C0 and C1 control characters, DEL, and the unicode line/paragraph separators
CONTROL = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]] + ["\u2028", "\u2029"]

# ids as users write them: any text without control characters, no surrounding white space
_id_text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=12)
IDS = st.one_of(
    _id_text.map(str.strip).filter(bool),
    st.sampled_from([
        "a b", "..", "../../etc/passwd", "/", "a/b/../c", "ü/ß", "日本語", "😀 x", '"quoted"', "comma,inside",
        "tab-less", "'single'", "#hash", "x\ufeff", "=1+1", "null", "NaN", "1e400", "-0", "\\", "a\u00a0b",
    ]),
)


def _f32(values) -> np.ndarray:
    return np.asarray(values, np.float64).astype(np.float32)


def _lines_in(text: str) -> int:
    """Line breaks as the csv module counts them (newline='': \\r\\n, \\r and \\n)."""
    return len(re.findall(r"\r\n|\r|\n", text))


def _render_csv(rows: list[list[str]], delimiter: str, terminator: str = "\r\n") -> tuple[str, list[int]]:
    """The file text, and the line each row after the header starts on."""
    out, starts, line = [], [], 1
    for k, row in enumerate(rows):
        buf = io.StringIO()
        # with "\r\n" the writer quotes a field holding "\r" (with "\n" alone it does not)
        csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerow(row)
        s = buf.getvalue()[:-2] + terminator
        if k:
            starts.append(line)
        line += _lines_in(s)
        out.append(s)
    return "".join(out), starts


def _expected(rows):
    """Model of the merge: (users, items, pairs, summed weights, latest timestamps, duplicate row indices)."""
    users, items, pairs, w, t, dups = [], [], {}, [], [], []
    for k, (u, i, wt, ts) in enumerate(rows):
        if u not in users:
            users.append(u)
        if i not in items:
            items.append(i)
        key = (u, i)
        if key in pairs:
            at = pairs[key]
            dups.append(k)
            w[at] += wt
            if ts is not None and (math.isnan(t[at]) or ts > t[at]):
                t[at] = float(ts)
            continue
        pairs[key] = len(w)
        w.append(wt)
        t.append(math.nan if ts is None else float(ts))
    return users, items, list(pairs), w, t, dups


def _case(name: str, how: int) -> str:
    return (name, name.upper(), name.capitalize())[how]


table_rows = st.integers(1, 4).flatmap(
    lambda nu: st.integers(1, 4).flatmap(
        lambda ni: st.tuples(
            st.lists(IDS, min_size=nu, max_size=nu, unique=True),
            st.lists(IDS, min_size=ni, max_size=ni, unique=True),
            st.lists(
                st.tuples(
                    st.integers(0, nu - 1), st.integers(0, ni - 1),
                    st.one_of(st.integers(1, 5).map(float), st.floats(1e-3, 1e6)),
                    st.one_of(st.none(), st.integers(0, 2_000_000_000)),
                ),
                min_size=1, max_size=25,
            ),
        )
    )
)


@settings(max_examples=60, **SETTINGS)
@given(data=table_rows, names=st.tuples(st.sampled_from(["user_id", "user", "userId", "uid"]),
                                         st.sampled_from(["item_id", "item", "itemId", "movieId"]),
                                         st.sampled_from(["weight", "rating"]),
                                         st.sampled_from(["timestamp", "time", "ts"]),
                                         st.integers(0, 2)),
       crlf=st.booleans(), ascii_json=st.booleans())
@example(data=(["u 1", "../u2"], ["a/b", ".."], [(0, 0, 1.0, 5), (1, 1, 2.5, None), (0, 0, 3.0, 9)]),
         names=("user_id", "item_id", "weight", "timestamp", 0), crlf=False, ascii_json=False)
def test_csv_tsv_jsonl_parquet_load_the_same_interactions(data, names, crlf, ascii_json):
    user_pool, item_pool, picks = data
    rows = [(user_pool[u], item_pool[i], w, ts) for u, i, w, ts in picks]
    users, items, pairs, weights, times, dups = _expected(rows)
    ucol, icol, wcol, tcol = (_case(n, names[4]) for n in names[:4])
    table = [[ucol, icol, wcol, tcol]] + [[u, i, repr(w), "" if ts is None else str(ts)] for u, i, w, ts in rows]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        text, _ = _render_csv(table, ",", "\r\n" if crlf else "\n")
        (d / "t.csv").write_text(text, encoding="utf-8", newline="")
        text, _ = _render_csv(table, "\t", "\r\n" if crlf else "\n")
        (d / "t.tsv").write_text(text, encoding="utf-8", newline="")
        (d / "t.jsonl").write_text("".join(
            json.dumps({ucol: u, icol: i, wcol: w, **({} if ts is None else {tcol: ts})}, ensure_ascii=ascii_json) + "\n"
            for u, i, w, ts in rows), encoding="utf-8")
        paths = [d / "t.csv", d / "t.tsv", d / "t.jsonl"]
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            pass
        else:
            pq.write_table(pa.table({ucol: [r[0] for r in rows], icol: [r[1] for r in rows],
                                     wcol: pa.array([r[2] for r in rows], pa.float64()),
                                     tcol: pa.array([r[3] for r in rows], pa.int64())}), d / "t.parquet")
            paths.append(d / "t.parquet")
        for p in paths:
            got = load_interactions(p)
            first = 2 if p.suffix in (".csv", ".tsv") else 1  # csv/tsv: line 1 is the header
            where = p.name
            assert got.users.ids == users, where  # ids exactly as written, in order of first appearance
            assert got.items.ids == items, where
            assert [(got.users[u], got.items[i]) for u, i in zip(got.user, got.item)] == pairs, where
            assert np.array_equal(got.weight, _f32(weights)), where  # duplicates: weights summed
            assert np.array_equal(got.timestamp, np.asarray(times), equal_nan=True), where  # latest kept
            r = got.report
            assert (r.rows, r.kept, r.duplicates, r.malformed, r.unknown_items, r.below_min_weight) == \
                (len(rows), len(pairs), len(dups), 0, 0, 0), where
            assert r.duplicate_lines == [k + first for k in dups][:20], where
            # the kept ids survive the one-id-per-line files a model writes
            got.users.save(d / "users.txt")
            assert IdMap.load(d / "users.txt").ids == users, where


# ---------------------------------------------------------------------------------------
# every row accounted for


def _control_id(base: str):
    """``base`` with a control character inside (between two non-blank characters), or a
    non-blank control character anywhere: never an id."""
    inner = st.tuples(st.sampled_from(CONTROL), st.integers(1, max(1, len(base) - 1))).map(
        lambda cp: base[:cp[1]] + cp[0] + base[cp[1]:] if len(base) > 1 else base + cp[0] + base)
    edge = st.tuples(st.sampled_from([c for c in CONTROL if not c.isspace()]), st.booleans()).map(
        lambda cb: cb[0] + base if cb[1] else base + cb[0])
    return st.one_of(inner, edge)


@st.composite
def accounted_rows(draw):
    """(kind, user, item, weight text or None) rows; the kinds are exclusive."""
    users = draw(st.lists(IDS, min_size=1, max_size=3, unique=True))
    catalogue = draw(st.lists(IDS, min_size=1, max_size=3, unique=True))
    strangers = draw(st.lists(IDS.filter(lambda s: s not in catalogue), min_size=1, max_size=2, unique=True))
    min_weight = draw(st.sampled_from([0.0, 0.5, 1.0]))
    good_w = st.one_of(st.none(), st.floats(max(min_weight, 1e-3), 100.0).map(repr))
    # below min_weight; at min_weight 0 strictly negative (a weight of 0 is seen, no taste: "zero")
    low_w = st.floats(-10.0, min_weight, exclude_max=True).filter(
        lambda x: x < min_weight and (min_weight > 0 or x < 0)).map(repr)
    rows = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["ok", "ok", "ok", "low", "zero", "bad_weight", "bad_user", "bad_item", "empty",
                                     "fields", "unknown"]))
        u, i, w = draw(st.sampled_from(users)), draw(st.sampled_from(catalogue)), draw(good_w)
        if kind == "low":
            w = draw(low_w)
        elif kind == "zero":  # seen, no taste; under a positive min_weight simply low
            w = draw(st.sampled_from(["0", "0.0", "-0.0"]))
            kind = "zero" if min_weight == 0 else "low"
        elif kind == "bad_weight":
            w = draw(st.sampled_from(["abc", "nan", "inf", "-inf", "1e400", "1,5", "0x10", "--1", "[]"]))
        elif kind == "bad_user":
            u = draw(_control_id(u))
        elif kind == "bad_item":
            i = draw(_control_id(i))
        elif kind == "empty":
            u, i = draw(st.sampled_from([("", i), (u, ""), (" ", i), (u, "  ")]))
        elif kind == "unknown":
            i = draw(st.sampled_from(strangers))
        rows.append((kind, u, i, w))
    return users, catalogue, min_weight, rows


def _account(rows, first_line: list[int]):
    """Expected counts and reported lines of each problem kind."""
    malformed, unknown, dups, below = [], [], [], 0
    pairs: dict[tuple[str, str], bool] = {}  # (user, item) -> has a positive weight
    for (kind, u, i, _w), line in zip(rows, first_line):
        if kind in ("bad_weight", "bad_user", "bad_item", "empty", "fields"):
            malformed.append(line)
        elif kind == "low":
            below += 1
        elif kind == "unknown":
            unknown.append((line, i))
        else:
            if (u, i) in pairs:
                dups.append(line)
            pairs[(u, i)] = pairs.get((u, i), False) or kind == "ok"
    kept = sum(pairs.values())
    return malformed, unknown, dups, kept, below, len(pairs) - kept


def _check_accounting(got, rows, first_line, what):
    malformed, unknown, dups, kept, below, zero = _account(rows, first_line)
    r = got.report
    assert r.rows == r.kept + r.malformed + r.duplicates + r.unknown_items + r.below_min_weight + r.zero_weight \
        == len(rows), what
    assert r.zero_weight == zero and (got.seen_only is None or len(got.seen_only[0]) <= zero), what
    assert r.kept == kept == len(got), what
    assert r.malformed == len(malformed) and [n for n, _ in r.malformed_lines] == malformed[:20], what
    assert r.unknown_items == len(unknown) and r.unknown_item_lines == unknown[:20], what
    assert r.duplicates == len(dups) and r.duplicate_lines == dups[:20], what
    assert r.below_min_weight == below, what
    for (n, why), (kind, *_x) in zip(r.malformed_lines, [x for x in rows if x[0] not in ("ok", "low", "zero", "unknown")]):
        if kind in ("bad_user", "bad_item"):
            assert "control character" in why and ("user_id" if kind == "bad_user" else "item_id") in why, what
    for ids in (got.users.ids, got.items.ids):
        assert not any(c in s for s in ids for c in CONTROL), what  # never kept


@settings(max_examples=80, **SETTINGS)
@given(case=accounted_rows(), crlf=st.booleans())
def test_every_row_is_kept_merged_or_reported_with_its_line(case, crlf):
    _users, catalogue, min_weight, rows = case
    csv_rows = [["user_id", "item_id", "weight"]]
    for kind, u, i, w in rows:
        csv_rows.append([u, i, "" if w is None else w] + (["extra"] if kind == "fields" else []))
    # NUL makes a CSV binary (refused whole, tested below); JSON carries it escaped
    has_nul = any("\x00" in f for row in csv_rows for f in row)
    text, starts = _render_csv(csv_rows, ",", "\r\n" if crlf else "\n")
    jsonl = []
    for kind, u, i, w in rows:
        if kind == "fields":
            jsonl.append(json.dumps([u, i]))  # not an object
            continue
        rec = {"user_id": u, "item_id": i}
        if w is not None:
            rec["weight"] = w if kind == "bad_weight" else float(w)
        jsonl.append(json.dumps(rec, ensure_ascii=False))
    with tempfile.TemporaryDirectory() as tmp:
        c, j = Path(tmp) / "t.csv", Path(tmp) / "t.jsonl"
        c.write_text(text, encoding="utf-8", newline="")
        j.write_text("\n".join(jsonl) + "\n", encoding="utf-8")
        if has_nul:
            with pytest.raises(InputError):
                load_interactions(c, catalogue=catalogue, min_weight=min_weight)
        else:
            _check_accounting(load_interactions(c, catalogue=catalogue, min_weight=min_weight), rows, starts, "csv")
        got = load_interactions(j, catalogue=catalogue, min_weight=min_weight)
        _check_accounting(got, rows, list(range(1, len(rows) + 1)), "jsonl")


def test_a_quoted_row_over_several_lines_is_reported_at_its_first_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('user_id,item_id\nu0,a\n"u\n1",a\nu2,b\n"x\r\ny",c\nu3,"d\re"\n', newline="")
    r = load_interactions(p).report
    assert [n for n, _ in r.malformed_lines] == [3, 6, 8]
    assert r.kept == 2


# ---------------------------------------------------------------------------------------
# anything at all: Interactions or InputError


_FRAGMENTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from([
        '"', '""', ",", "\t", "\x00", "\r", "\n", "\r\n", "\ufeff", "\x85", "\u2028", "\x1f", "\x7f", " ", "{", "}",
        "[", "]", ":", '"user_id"', '"item_id"', '"weight"', '"timestamp"', '"event"', '"watch_seconds"', "null",
        "true", "1e400", "-1e400", "1e-50", "1e39", "3.5e38", "nan", "-inf", "-1", "0", "1" + "0" * 400, "1" * 5000,
        "view", "like", "teleport", "2024-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
        "user_id,item_id", "user_id\titem_id", "user_id,item_id,weight,timestamp", "user_id,item_id,event",
        "user_id,item_id,watch_seconds", "u,i", "\\u0000", "\\ud800", "\\n", "x" * 200_000, "é", "😀",
    ]),
)
_BYTES = st.sampled_from([b"\xff", b"\xfe", b"\xc3(", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xef\xbb\xbf"])
_HEADERS = st.sampled_from([
    "", "user_id,item_id\n", "user_id,item_id,weight,timestamp\n", "user_id,item_id,event\n",
    "user_id,item_id,watch_seconds\n", "user_id\titem_id\tweight\n", "\ufeffuser_id,item_id,rating,ts\n",
    "uid,iid,count,datetime,bogus\n",
])
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
              st.sampled_from([10**400, -(10**400), 2**64, "1e400", "nan", "view", "2024-01-01", "\x00", "\ud800"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)
_JSON_LINE = st.tuples(st.dictionaries(
    st.sampled_from(["user_id", "item_id", "weight", "timestamp", "event", "watch_seconds", "user", "x"]), _JSON,
    max_size=5,
), st.booleans()).map(lambda da: json.dumps(da[0], ensure_ascii=da[1]).encode("utf-8", "surrogatepass"))


@st.composite
def any_file(draw):
    suffix = draw(st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".ndjson", ".txt", ".parquet"]))
    if draw(st.integers(0, 9)) == 0:
        return suffix, draw(st.binary(max_size=300))
    parts = [draw(_HEADERS).encode()]
    for _ in range(draw(st.integers(0, 12))):
        pick = draw(st.integers(0, 9))
        if pick < 3:
            parts.append(draw(_JSON_LINE) + b"\n")
        elif pick < 9:
            line = "".join(draw(st.lists(_FRAGMENTS, max_size=8)))
            parts.append(line.encode("utf-8", "surrogatepass") + draw(st.sampled_from([b"\n", b"\r\n", b"\r", b""])))
        else:
            parts.append(draw(_BYTES))
    return suffix, b"".join(parts)


@settings(max_examples=150, **SETTINGS)
@given(f=any_file(), min_weight=st.sampled_from([0.0, 1.0]), catalogue=st.sampled_from([None, ["a", "u", "1"]]))
@example(f=(".jsonl", b'{"user_id": "a", "item_id": "b", "weight": 1' + b"0" * 400 + b"}\n"), min_weight=0.0, catalogue=None)
@example(f=(".jsonl", b'{"user_id": "a", "item_id": "b", "timestamp": 1' + b"0" * 400 + b"}\n"), min_weight=0.0, catalogue=None)
@example(f=(".jsonl", b'{"user_id": "a", "item_id": "b", "watch_seconds": 1' + b"0" * 400 + b"}\n"), min_weight=0.0,
         catalogue=None)
@example(f=(".jsonl", b'{"user_id": "a", "item_id": "b", "weight": ' + b"1" * 5000 + b"}\n"), min_weight=0.0, catalogue=None)
@example(f=(".jsonl", b'{"user_id": "\\ud800", "item_id": "b"}\n'), min_weight=0.0, catalogue=None)
@example(f=(".csv", b"user_id,item_id,weight\na,b,1e39\na,c,1e-50\n"), min_weight=0.0, catalogue=None)
@example(f=(".csv", b"user_id,item_id,weight\na,b,3e38\na,b,3e38\n"), min_weight=0.0, catalogue=None)
def test_any_file_gives_interactions_or_input_error(f, min_weight, catalogue):
    suffix, content = f
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"t{suffix}"
        p.write_bytes(content)
        physical = _lines_in(content.decode("utf-8", "replace")) + 1
        try:
            got = load_interactions(p, min_weight=min_weight, catalogue=catalogue)
        except InputError as e:
            assert str(e)  # a message for the user, never a bare exception
            return
        r = got.report
        assert r.rows == r.kept + r.malformed + r.duplicates + r.unknown_items + r.below_min_weight + r.zero_weight
        assert len(got) == r.kept == got.user.shape[0] == got.item.shape[0] == got.weight.shape[0]
        for ids in (got.users.ids, got.items.ids):
            for s in ids:
                assert s and s == s.strip() and not any(c in s for c in CONTROL), s
                assert len(s.encode("utf-8")) <= MAX_ID_BYTES  # encodable: the model can write it
        if catalogue is not None:
            assert got.items.ids == catalogue
        # weights are what training can use: finite, positive, at least min_weight
        assert np.isfinite(got.weight).all() and (got.weight > 0).all() and (got.weight >= min_weight).all()
        if p.suffix != ".parquet":
            for lines in ([n for n, _ in r.malformed_lines], r.duplicate_lines, [n for n, _ in r.unknown_item_lines]):
                assert lines == sorted(lines) and all(1 <= n <= physical for n in lines)
