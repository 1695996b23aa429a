"""The columnar reader gives exactly what the row-by-row reader gives, and hands irregular
files to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avrec.data import interactions as inter
from avrec.data.columnar import load_columnar

pytest.importorskip("pyarrow")
ROOT = Path(__file__).resolve().parents[2]


def _both(path: Path, monkeypatch, **kw):
    fast = inter.load_interactions(path, **kw)
    with monkeypatch.context() as m:
        m.setattr(inter, "_columnar", lambda *a, **k: None)
        slow = inter.load_interactions(path, **kw)
    return fast, slow


def _columnar(path: Path, **kw):
    return load_columnar(path, path.suffix, catalogue=kw.get("catalogue"), min_weight=kw.get("min_weight", 0.0),
                         strict=False, warn=lambda _m: None, columns=inter._columns, event_weights=inter.EVENT_WEIGHTS,
                         f32_max=inter._F32_MAX, f32_zero=inter._F32_ZERO)


def _same(a, b) -> None:
    assert list(a.users) == list(b.users) and list(a.items) == list(b.items)
    for f in ("user", "item", "weight"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_array_equal(np.isnan(a.timestamp), np.isnan(b.timestamp))
    np.testing.assert_array_equal(np.nan_to_num(a.timestamp), np.nan_to_num(b.timestamp))
    assert a.report.to_dict() == b.report.to_dict()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


CLEAN = ("user_id,item_id,timestamp,event\n"
         "u1,a,100,view\nu2,b,101,like\nu1,a,103,share\nu1,c,,view\nu3,zz,104,view\nu2,a,99,PLAY\n")


@pytest.mark.parametrize("catalogue", [None, ["c", "b", "a"]])
def test_a_clean_file_is_read_column_wise_and_equals_the_row_reader(tmp_path, monkeypatch, catalogue):
    p = _write(tmp_path, "ev.csv", CLEAN)
    assert _columnar(p, catalogue=catalogue) is not None  # the columnar path takes it
    fast, slow = _both(p, monkeypatch, catalogue=catalogue)
    _same(fast, slow)
    assert fast.report.duplicates == 1 and fast.report.duplicate_lines == [4]
    if catalogue:
        assert fast.report.unknown_items == 1 and fast.report.unknown_item_lines == [(6, "zz")]


def test_weights_watch_seconds_min_weight_tsv_and_parquet(tmp_path, monkeypatch):
    text = "user\titem\tweight\twatch_seconds\n" + "".join(
        f"u{k % 7}\ti{k % 11}\t{'' if k % 3 else k / 4}\t{k * 13}\n" for k in range(200))
    p = _write(tmp_path, "w.tsv", text)
    assert _columnar(p) is not None
    fast, slow = _both(p, monkeypatch, min_weight=0.5)
    _same(fast, slow)
    assert fast.report.below_min_weight > 0
    import pyarrow as pa
    import pyarrow.parquet as pq

    q = tmp_path / "w.parquet"
    pq.write_table(pa.table({"user_id": [k % 5 for k in range(50)], "item_id": [f"x{k % 9}" for k in range(50)],
                             "weight": [float(k % 4) for k in range(50)]}), q)
    assert _columnar(q) is not None
    _same(*_both(q, monkeypatch))


@pytest.mark.parametrize("text", [
    "user_id,item_id\nu1,a\n\nu2,b\n",                      # a blank line: rows are no longer lines
    "user_id,item_id,timestamp\nu1,a,2024-01-01T00:00:00Z\n",  # an ISO time: Python's parser reads it
    "user_id,item_id\nu1,a\nu2\n",                          # a short row
    "user_id,item_id\n\"u1\nx\",a\nu2,b\n",                 # a quoted newline
    "user_id,item_id\n u1 ,a\n",                            # an id check_id would strip
    "user_id,item_id,event\nu1,a,teleport\n",               # an unknown event
    "user_id,item_id,weight\nu1,a,1e400\n",                 # a weight past float32
])
def test_irregular_files_go_to_the_row_reader_with_the_same_result(tmp_path, monkeypatch, text):
    p = _write(tmp_path, "odd.csv", text)
    assert _columnar(p) is None
    fast, slow = _both(p, monkeypatch)
    _same(fast, slow)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("catalogue", [None, "half"])
def test_a_file_streamed_in_many_small_batches_reads_as_one(tmp_path, monkeypatch, fmt, catalogue):
    """Batches split users, items, duplicates and unknown ids across their edges; the
    result is still the row reader's, and the report's line numbers are the file's."""
    import avrec.data.columnar as col

    rng = np.random.default_rng(0)
    n = 3000
    users = [f"u{x}" for x in rng.zipf(1.5, n) % 400]
    items = [f"i{x}" for x in rng.zipf(1.3, n) % 300]
    rows = ["user_id,item_id,weight,timestamp"] + [f"{u},{i},{rng.integers(1, 4)},{1000 + t}"
                                                   for t, (u, i) in enumerate(zip(users, items))]
    p = _write(tmp_path, "ev.csv", "\n".join(rows) + "\n")
    if fmt == "parquet":
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        q = tmp_path / "ev.parquet"
        pq.write_table(pcsv.read_csv(p), q)
        p = q
    cat = None if catalogue is None else sorted(set(items))[::2]
    whole = inter.load_interactions(p, catalogue=cat)
    monkeypatch.setattr(col, "BATCH_BYTES", 1024)  # ~60 batches
    monkeypatch.setattr(col, "BATCH_ROWS", 50)
    batched = _columnar(p, catalogue=cat)
    assert batched is not None
    _same(batched, whole)
    assert batched.report.duplicates > 100
    if cat is not None:
        assert batched.report.unknown_items > 100 and len(batched.report.unknown_item_lines) > 0
    if fmt == "csv":
        _, slow = _both(p, monkeypatch, catalogue=cat)
        _same(batched, slow)
