"""Interactions loading (formats, problems reported with line numbers) and splits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from taste import as_data, make_taste  # noqa: E402

from avrec.data import (  # noqa: E402
    IdMap, cold_item_split, from_arrays, leave_last_split, load_interactions, random_split, temporal_split, write_split,
)
from avrec.errors import InputError  # noqa: E402


def test_csv_with_malformed_duplicate_and_unknown_rows(tmp_path):
    p = tmp_path / "ev.csv"
    p.write_text(
        "user_id,item_id,weight,timestamp\n"
        "u1,a,1,10\n"
        "u1,b,2,11\n"
        "u2,a,1\n"  # line 4: too few fields
        "u2,zzz,1,12\n"  # line 5: unknown item
        "u1,a,1,20\n"  # line 6: duplicate of line 2
        "u3,b,notanumber,13\n"  # line 7: bad weight
        ",b,1,14\n"  # line 8: empty user
        "u3,c,1,2024-01-01T00:00:00\n"
    )
    d = load_interactions(p, catalogue=["a", "b", "c"])
    r = d.report
    assert r.rows == 8 and r.kept == 3
    assert [n for n, _ in r.malformed_lines] == [4, 7, 8]
    assert r.duplicate_lines == [6] and r.duplicates == 1
    assert [n for n, _ in r.unknown_item_lines] == [5]
    text = "\n".join(r.lines("ev.csv"))
    assert "line 4" in text and "line 5" in text and "line 6" in text
    # duplicate merged: weights summed, latest timestamp kept
    k = int(np.flatnonzero((d.user == d.users.index("u1")) & (d.item == 0))[0])
    assert d.weight[k] == 2.0 and d.timestamp[k] == 20.0
    assert d.timestamp[d.item == 2][0] == pytest.approx(1704067200.0)


def test_tsv_jsonl_events_and_watch_seconds(tmp_path):
    tsv = tmp_path / "ev.tsv"
    tsv.write_text("user\titem\nx\t1\ny\t2\n")
    d = load_interactions(tsv)
    assert d.n_users == 2 and d.items.ids == ["1", "2"]
    jl = tmp_path / "ev.jsonl"
    jl.write_text(
        json.dumps({"user_id": 7, "item_id": "a", "event": "like"}) + "\n"
        + "{broken\n"
        + json.dumps({"user_id": 7, "item_id": "b", "event": "teleport"}) + "\n"
        + json.dumps({"user_id": 8, "item_id": "a", "event": "view"}) + "\n"
    )
    d = load_interactions(jl)
    assert [n for n, _ in d.report.malformed_lines] == [2, 3]
    assert sorted(d.weight.tolist()) == [1.0, 2.0]
    assert d.users.ids == ["7", "8"]  # ids are strings
    ws = tmp_path / "w.csv"
    ws.write_text("user_id,item_id,watch_seconds\na,x,60\na,y,0\n")
    d = load_interactions(ws)
    # 0 seconds watched: seen (never recommended back), but no taste
    assert d.weight.tolist() == [1.0] and d.report.below_min_weight == 0 and d.report.zero_weight == 1
    assert [d.items[j] for j in d.seen_only[1]] == ["y"] and [d.users[u] for u in d.seen_only[0]] == ["a"]


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_interactions(tmp_path / "nope.csv")
    p = tmp_path / "x.csv"
    p.write_text("who,what\n1,2\n")
    with pytest.raises(InputError, match="user_id"):
        load_interactions(p)
    e = tmp_path / "e.csv"
    e.write_text("")
    with pytest.raises(InputError, match="empty"):
        load_interactions(e)


def test_parquet_when_pyarrow_is_installed(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": [1, 2]}), tmp_path / "e.parquet")
    d = load_interactions(tmp_path / "e.parquet")
    assert len(d) == 2 and d.has_time


def test_idmap_round_trip(tmp_path):
    m = IdMap(["b", "a", "b", "c d"])
    assert m.ids == ["b", "a", "c d"] and m.index("a") == 1
    m.save(tmp_path / "ids.txt")
    assert IdMap.load(tmp_path / "ids.txt").ids == m.ids


def _data():
    t = make_taste(n_users=30, items_per_cluster=10, per_user=6)
    return as_data(t)


def _pairs(d):
    return set(zip(d.user.tolist(), d.item.tolist()))


def test_splits_are_disjoint_complete_and_seeded(tmp_path):
    data = _data()
    everything = _pairs(data)
    for make in (
        lambda s: random_split(data, ratio=0.25, seed=s),
        lambda s: cold_item_split(data, ratio=0.2, seed=s),
        lambda s: leave_last_split(data, n=2, seed=s),
        lambda s: temporal_split(data, ratio=0.2),
    ):
        a, b, c = make(1), make(1), make(2)
        assert not _pairs(a.train) & _pairs(a.test)
        assert _pairs(a.train) | _pairs(a.test) == everything
        assert _pairs(a.test) == _pairs(b.test)
        if a.name in ("random", "cold"):
            assert _pairs(a.test) != _pairs(c.test)
    # random: every user keeps training data; about a quarter held out
    s = random_split(data, ratio=0.25, seed=0)
    assert set(s.train.user.tolist()) == set(data.user.tolist())
    assert 0.15 < len(s.test) / len(data) < 0.35
    # cold: held-out items have no training interaction at all
    c = cold_item_split(data, ratio=0.2, seed=0)
    assert not set(c.cold_items.tolist()) & set(c.train.item.tolist())
    assert set(c.test.item.tolist()) <= set(c.cold_items.tolist())
    # temporal: every test interaction is later than every training one
    t = temporal_split(data, ratio=0.2)
    assert t.test.timestamp.min() > t.train.timestamp.max()
    # leave-last-2: per user, the test ones are the newest
    ll = leave_last_split(data, n=2)
    for u in range(data.n_users):
        tr, te = ll.train.timestamp[ll.train.user == u], ll.test.timestamp[ll.test.user == u]
        assert len(te) == 2 and te.min() >= tr.max()
    # written to disk as CSV, byte-identical for the same seed
    write_split(cold_item_split(data, ratio=0.2, seed=3), tmp_path / "a")
    write_split(cold_item_split(data, ratio=0.2, seed=3), tmp_path / "b")
    for f in ("train.csv", "test.csv", "cold_items.txt"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    back = load_interactions(tmp_path / "a" / "test.csv")
    assert len(back) == len(cold_item_split(data, ratio=0.2, seed=3).test)


def test_temporal_split_needs_timestamps():
    d = from_arrays(["a", "b"], ["x", "y"])
    with pytest.raises(InputError, match="timestamp"):
        temporal_split(d, ratio=0.5)


def test_json_lines_name_their_own_fields(tmp_path):
    """A JSONL line without item_id is that line's problem, not the file's; fields that only
    some lines carry are warned about once, in one line, however many there are."""
    p = tmp_path / "ev.jsonl"
    rows = [{"user_id": "u0"}] + [{"user_id": f"u{n}", "item_id": f"i{n % 3}", **({f"x{n}": 1} if n % 10 == 0 else {})}
                                  for n in range(1, 101)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    warnings: list[str] = []
    d = load_interactions(p, warn=warnings.append)
    assert len(d) == 100 and d.report.malformed_lines == [(1, "no user_id or item_id field")]
    assert len(warnings) == 1 and "unknown columns 'x10', 'x20'" in warnings[0] and "and 2 more" in warnings[0]
    p.write_text("".join(json.dumps({"user_id": f"u{n}", "thing": 1}) + "\n" for n in range(5)))
    with pytest.raises(InputError, match="no 'item_id' column"):  # no line ever names one: the file's problem
        load_interactions(p)


@pytest.mark.parametrize("body, needle", [
    ("user_id;item_id;weight\nu1;item-001;3,5\nu2;item-002;4,0\n", "looks semicolon-separated"),
    ("user_id,item_id,weight\nu1,item-001,0\nu2,item-002,0\n", "every usable row weighs 0"),
    ("user_id,item_id,weight\nu1,item-001,-1\nu2,item-002,-2\n", "below train.min_weight"),
    ("user_id,item_id\nu1,zz1\nu2,zz2\n", "2 rows name other items"),
    ('user_id,item_id\nu1,"item-001\nu2,item-002\n', "malformed"),
])
def test_a_log_with_nothing_usable_names_the_cause(tmp_path, body, needle):
    """When no row survives, the one error line names why (not always 'unknown item ids')."""
    from taste import write_embeddings

    from avrec.config import Config
    from avrec.train import train

    write_embeddings(make_taste(), tmp_path / "emb")
    (tmp_path / "ev.csv").write_text(body)
    with pytest.raises(InputError, match=needle):
        train(tmp_path / "emb", tmp_path / "ev.csv", tmp_path / "m", Config())
    assert not (tmp_path / "m").exists()


def test_malformed_rows_say_what_is_wrong_in_avrec_words(tmp_path):
    p = tmp_path / "ev.jsonl"
    p.write_text('{"user_id": "u1", "item_id": ["x"]}\n{"user_id": "u1", "item_id": "a", "weight": "abc"}\n'
                 '{"user_id": "u1", "item_id": "b"}\n')
    d = load_interactions(p)
    assert d.items.ids == ["b"]  # never the id "['x']"
    assert d.report.malformed_lines == [(1, "item_id is a JSON list; give it as text"), (2, "weight 'abc' is not a number")]


def test_spaces_around_ids_are_removed_and_counted(tmp_path):
    p = tmp_path / "ev.csv"
    p.write_text("user_id,item_id\n7,a\n 7,b\n7 ,c\n")
    d = load_interactions(p)
    assert d.users.ids == ["7"] and len(d) == 3 and d.report.trimmed == 2
    assert any("2 rows have spaces around an id" in line for line in d.report.lines())


def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    p = tmp_path / "ev.csv"
    p.write_text("user_id,item_id,Item_ID\nu1,a,b\n")
    with pytest.raises(InputError, match=r"names 'Item_ID' twice \(columns 2 and 3\)"):
        load_interactions(p)


def test_milliseconds_beside_seconds_are_warned_about(tmp_path):
    p = tmp_path / "ev.csv"
    p.write_text("user_id,item_id,timestamp\nu1,a,1700000000\nu1,b,1700000100000\nu2,a,1700000200\n")
    d = load_interactions(p)
    assert d.report.mixed_time_units == 1 and any("look like epoch milliseconds" in x for x in d.report.lines())
    p.write_text("user_id,item_id,timestamp\nu1,a,1700000000000\nu1,b,1700000100000\n")  # all in ms: one unit, fine
    assert load_interactions(p).report.mixed_time_units == 0
