"""The event store: appends, per-user reads, erasure, concurrent writers, and event parsing."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from avrec.errors import InputError
from avrec.serve.events import Event, EventStore, parse_event, read_event_lines

W = {"view": 1.0, "like": 2.0, "skip": 0.0}


def test_append_read_and_erase(tmp_path):
    s = EventStore(tmp_path / "ev.sqlite")
    assert s.add([Event("a", "i1", 1.0), Event("b", "i2", 2.0, "like"), Event("a", "i3", 0.0, "skip")]) == (1, 3)
    assert s.user_events("a") == [("i1", 1.0), ("i3", 0.0)]
    assert s.user_events("a", after=1) == [("i3", 0.0)]
    assert s.user_state("a", after=1) == ([("i3", 0.0)], None)
    assert s.forget("a") == 2 and s.user_events("a") == [] and s.erased_at("a") is not None
    s.add([Event("a", "i4", 1.0)])  # back after the erasure: both halves of the server's one read
    assert s.user_state("a") == ([("i4", 1.0)], s.erased_at("a"))
    s.forget("a")
    assert s.erased_at("b") is None and s.count() == 1
    assert [r[1] for r in s.iter_events()] == ["b"]


def _writer(path: str, who: str, n: int) -> None:
    s = EventStore(path)
    for k in range(n):
        s.add([Event(who, f"i{k}", 1.0)])


def test_writers_in_several_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "ev.sqlite")
    EventStore(path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, f"w{j}", 40)) for j in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = EventStore(path)
    assert s.count() == 120 and all(len(s.user_events(f"w{j}")) == 40 for j in range(3))


def test_not_a_store_and_a_newer_schema_are_clear(tmp_path):
    bad = tmp_path / "x.sqlite"
    bad.write_text("user_id,item_id\n")
    with pytest.raises(InputError, match="not an avrec event store"):
        EventStore(bad)
    with pytest.raises(InputError, match="not found"):
        EventStore(tmp_path / "missing.sqlite", create=False)


def test_parse_event():
    assert parse_event({"user_id": 42, "item_id": "v1", "event": "Like"}, weights=W) == Event("42", "v1", 2.0, "like")
    assert parse_event({"user_id": "u", "item_id": "v", "weight": 0.5, "timestamp": "2026-01-01T00:00:00Z"},
                       weights=W).timestamp == 1767225600.0
    for rec, needle in [({"item_id": "v"}, "user_id"), ({"user_id": "u", "item_id": "v", "weight": "x"}, "weight"),
                        ({"user_id": "u", "item_id": "v", "weight": float("nan")}, "weight"),
                        ({"user_id": "u", "item_id": "v", "event": "zap"}, "zap"),
                        ({"user_id": "u", "item_id": "v", "timestamp": "yesterday"}, "timestamp"),
                        ({"user_id": ["u"], "item_id": "v"}, "user_id"), ("text", "JSON object")]:
        with pytest.raises(ValueError, match=needle):
            parse_event(rec, weights=W)


def test_read_event_lines_json_and_csv():
    ev, probs = read_event_lines(['{"user_id": "u", "item_id": "a"}', "", '{"user_id": "u"}'], weights=W, source="f")
    assert len(ev) == 1 and probs == ["f: line 3: event lacks item_id"]
    ev, probs = read_event_lines(["user_id,item_id,event", "u,a,like", "v,b,"], weights=W, source="c")
    assert probs == [] and [(e.user_id, e.weight) for e in ev] == [("u", 2.0), ("v", 1.0)]
    with pytest.raises(InputError, match="CSV header"):
        read_event_lines(["a,b", "1,2"], weights=W, source="c")


def test_an_events_csv_takes_the_column_spellings_train_takes():
    ev, probs = read_event_lines(["userId,movieId,rating", "u,a,2", "v,b,"], weights=W, source="c")
    assert not probs and [(e.user_id, e.item_id, e.weight) for e in ev] == [("u", "a", 2.0), ("v", "b", 1.0)]
