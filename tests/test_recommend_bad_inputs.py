"""avrec recommend with bad inputs: exit 2 with one clear line on stderr, nothing on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avrec.artifacts import Manifest, write_manifest
from avrec.config import IndexConfig
from avrec.index import build_index

from avrec_runner import run_avrec
from test_index_fixtures import make_model


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("rec-bad")
    return build_index(make_model(tmp), tmp / "index", IndexConfig(n_trees=5), seed=0)


def test_cli_user_json_lines_and_exit_codes(index_dir):
    r = run_avrec("recommend", str(index_dir), "--user", "u1", "--k", "3")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]  # piped: JSON lines without --json
    assert [ln["rank"] for ln in lines] == [1, 2, 3] and lines[0]["user"] == "u1"
    r = run_avrec("recommend", str(index_dir), "--user", "ghost")
    assert r.returncode == 2 and r.stdout == "" and "unknown user 'ghost'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_avrec("recommend", str(index_dir), "--user", "ghost", "--fallback", "popular", "--k", "2")
    assert r.returncode == 0 and [json.loads(ln)["source"] for ln in r.stdout.splitlines()] == ["popular"] * 2
    r = run_avrec("recommend", str(index_dir), "--item", "nope")
    assert r.returncode == 2 and "unknown item" in r.stderr
    r = run_avrec("recommend", str(index_dir), "--user", "u1", "--item", "i1")
    assert r.returncode == 2 and "exactly one of" in r.stderr and "got --user --item" in r.stderr
    r = run_avrec("recommend", str(index_dir))
    assert r.returncode == 2 and "exactly one of" in r.stderr
    r = run_avrec("recommend", str(index_dir), "--user", "u1", "--filter", "colour=red")
    assert r.returncode == 2 and "unknown --filter field" in r.stderr
    r = run_avrec("recommend", str(index_dir.parent / "nothing"), "--user", "u1")
    assert r.returncode == 2 and "not found" in r.stderr

@pytest.mark.parametrize("args,msg", [
    (["--user", "u1", "--k", "0"], "--k must be at least 1"),
    (["--user", "u1", "--diversity", "1.5"], "--diversity must be between 0 and 1"),
    (["--user", "u1", "--fallback", "random"], "--fallback must be none or popular"),
    (["--user", "u1", "--filter", "duration<long"], "needs a number"),
    (["--item", "i4", "--modality", "smell"], "no content index for modality 'smell'"),
    (["--query", "calm", "--modality", "video"], "cannot be searched with text"),
    (["--query", "   "], "--query is empty"),
    (["--history", "-", "--candidates", "-"], "only one of --history and --candidates"),
    (["--user", "u1", "--set", "recommend.k=many"], "recommend.k"),
    (["--user", "u1", "--set", "recommend.kk=3"], "did you mean 'recommend.k'"),
])
def test_bad_options_exit_2_with_one_line(index_dir, args, msg):
    r = run_avrec("recommend", str(index_dir), *args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def test_history_and_candidates_files_that_hold_nothing_useful(index_dir, tmp_path):
    r = run_avrec("recommend", str(index_dir), "--history", "-", input="")
    assert r.returncode == 2 and "no item ids found" in r.stderr
    r = run_avrec("recommend", str(index_dir), "--history", "-", input="zzz\nyyy\n")
    assert r.returncode == 2 and "none of the history items" in r.stderr
    bad = tmp_path / "weights.csv"
    bad.write_text("i1,1\ni2,lots\n")
    r = run_avrec("recommend", str(index_dir), "--history", str(bad))
    assert r.returncode == 2 and "line 2" in r.stderr
    empty = tmp_path / "cands.txt"
    empty.write_text("not-an-item\n")
    r = run_avrec("recommend", str(index_dir), "--user", "u1", "--candidates", str(empty))
    assert r.returncode == 2 and "none of the --candidates" in r.stderr


def test_wrong_or_broken_index_directories(index_dir, tmp_path):
    model = index_dir.parent / "model"
    r = run_avrec("recommend", str(model), "--user", "u1")  # a model, not an index
    assert r.returncode == 2 and "'model' artifact" in r.stderr and "avrec index" in r.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    r = run_avrec("recommend", str(broken), "--user", "u1")
    assert r.returncode == 2 and "cannot read" in r.stderr
    old = tmp_path / "old"
    write_manifest(old, Manifest(artifact="index", schema_version=0))
    r = run_avrec("recommend", str(old), "--user", "u1")
    assert r.returncode == 2 and "schema_version" in r.stderr
    r = run_avrec("recommend", "--user", "u1", "--workdir", str(tmp_path / "empty-work"))
    assert r.returncode == 2 and "no index artifact" in r.stderr


def test_index_without_text_spaces_refuses_a_query(tmp_path):
    model = make_model(tmp_path, with_embeddings=False)
    idx = build_index(model, tmp_path / "index", IndexConfig(n_trees=2))
    r = run_avrec("recommend", str(idx), "--query", "calm piano")
    assert r.returncode == 2 and "no content space a text query can search" in r.stderr
    r = run_avrec("recommend", str(idx), "--user", "u1", "--json")  # the rest still works
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["user"] == "u1"
