"""Readers and writers at the same time.

(a) ``avrec recommend`` (the command, and the library's Index + Recommender) answering while
    ``index --add`` swaps new versions of the index in, and rebuilds swap the old one back:
    every answer is whole and is the exact top-k of one version of the index, never an error.
(b) two writers of one output: the second is refused (exit 2, naming the first's pid) and
    the output is a whole artifact; two ``index --add`` on one index lose none of the added
    items of the run that succeeded; the lock file a SIGKILLed writer leaves blocks nobody.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from avrec_runner import run_avrec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_index_fixtures import make_embeddings, make_model, projection  # noqa: E402

from avrec.artifacts import read_manifest  # noqa: E402

N_ITEMS, N_USERS, BATCH, K = 3000, 60, 30, 10
TRAIN = ["--set", "train.hybrid.epochs=40"]


def _popen(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "avrec", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def _ids(directory: Path) -> list[str]:
    return [json.loads(line)["item_id"] for line in (directory / "items.jsonl").read_text().splitlines()]


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _assert_whole(out: Path, kind: str) -> dict:
    man = read_manifest(out, kind, verify="full")
    visible = set()
    for root, dirs, names in os.walk(out):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        visible |= {(Path(root) / n).relative_to(out).as_posix() for n in names if not n.startswith(".")}
    assert visible - {"manifest.json"} == set(man["files"])
    return man


def _hold(out: Path, proc: subprocess.Popen) -> Path:
    """Wait until ``proc`` holds the lock of ``out`` (its pid written in the lock file)."""
    lock = out.parent / f".{out.name}.lock"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[3:]} ended ({proc.returncode}) before taking its lock: "
                                 f"{proc.stderr.read()[-1000:]}")
        try:
            if json.loads(lock.read_text(encoding="utf-8")).get("pid") == proc.pid:
                return lock
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    raise AssertionError(f"{proc.args[3:]} did not take its lock in 120 s")


def _refused_by(r: subprocess.CompletedProcess | tuple[int, str], pid: int) -> None:
    rc, err = (r.returncode, r.stderr) if isinstance(r, subprocess.CompletedProcess) else r
    assert rc == 2, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "is being written by" in lines[0], err
    assert f"pid {pid} " in lines[0], (pid, err)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic model of N_ITEMS items, its index, four batches of new items, and the
    vectors every version's answers can be checked against."""
    tmp = tmp_path_factory.mktemp("concurrency")
    model = make_model(tmp / "syn", n_items=N_ITEMS, n_users=N_USERS)
    index = tmp / "index"
    _ok(run_avrec("index", str(model), "-o", str(index), "-q", "--n-trees", "10"))
    batches = [make_embeddings(tmp / f"batch{b}", list(range(N_ITEMS + BATCH * b, N_ITEMS + BATCH * (b + 1))),
                               seed=10 + b) for b in range(4)]
    vectors = {f"i{i}": v for i, v in enumerate(np.load(model / "item_vectors.npy"))}
    for b in batches:  # a new item's vector: its fused content through the model's projection
        vectors.update(zip(_ids(b), np.load(b / "fused.npy") @ projection()))
    users = {f"u{u}": v for u, v in enumerate(np.load(model / "user_vectors.npy"))}
    indptr, indices = np.load(model / "seen_indptr.npy"), np.load(model / "seen_indices.npy")
    seen = {f"u{u}": {f"i{i}" for i in indices[indptr[u]:indptr[u + 1]]} for u in range(N_USERS)}
    return {"model": model, "index": index, "batches": batches, "base": _ids(index), "vectors": vectors,
            "users": users, "seen": seen}


# ---------------------------------------------------------------------------------------
# (a) recommend while the index is swapped


def _check_answer(world, user: str, rows: list[dict], versions: list[set[str]]) -> None:
    """Whole, and the exact top-K of one version of the index."""
    assert [r["rank"] for r in rows] == list(range(1, K + 1)), rows
    assert all(r["user"] == user for r in rows)
    ids = [r["item_id"] for r in rows]
    assert len(set(ids)) == K and not set(ids) & world["seen"][user]
    for r in rows:
        assert r["item_id"] in world["vectors"], r  # an item of some version
        assert r["title"] == f"Title {r['item_id'][1:]} é", r  # its own title, not another row's
    u = world["users"][user]
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(scores, [float(world["vectors"][i] @ u) for i in ids], atol=1e-4)
    fits = []
    for items in versions:
        if not set(ids) <= items:
            continue
        rest = [float(world["vectors"][i] @ u) for i in items - set(ids) - world["seen"][user]]
        fits.append(max(rest) <= min(scores) + 1e-4)  # nothing left out scores above the answer
    assert any(fits), f"{user}: {ids} is the top {K} of no version of the index"


def test_recommend_answers_from_one_whole_version_while_index_add_and_rebuild_swap_it(world, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(world["index"], index)
    base, b = set(world["base"]), [set(_ids(x)) for x in world["batches"]]
    # the writer's steps and the versions of the index they make
    steps = [("add", 0), ("add", 1), ("rebuild", None), ("add", 0), ("add", 2), ("add", 3), ("rebuild", None),
             ("add", 1)]
    versions, current = [base], set(base)
    for op, k in steps:
        current = current | b[k] if op == "add" else set(base)
        versions.append(set(current))
    done = threading.Event()
    failures: list[str] = []
    cli_answers: list[tuple[str, list[dict]]] = []
    lib_answers: list[tuple[str, list[dict], int]] = []
    retries = [0]

    def writer() -> None:
        try:
            for op, k in steps:
                if op == "add":
                    r = run_avrec("index", "--add", str(world["batches"][k]), "-o", str(index), "-q", "--n-trees", "10")
                else:
                    r = run_avrec("index", str(world["model"]), "-o", str(index), "-q", "--n-trees", "10")
                if r.returncode != 0:
                    failures.append(f"writer {op} {k}: exit {r.returncode}: {r.stderr[-500:]}")
        finally:
            done.set()

    def cli_reader() -> None:
        rng = random.Random(1)
        while not done.is_set():
            user = f"u{rng.randrange(N_USERS)}"
            r = run_avrec("recommend", str(index), "--user", user, "--k", str(K), "--json")
            if r.returncode != 0:
                failures.append(f"recommend --user {user}: exit {r.returncode}: {r.stderr[-500:]}")
                continue
            try:
                cli_answers.append((user, [json.loads(line) for line in r.stdout.splitlines()]))
            except ValueError:
                failures.append(f"recommend --user {user}: not JSON lines: {r.stdout[:300]!r}")

    def lib_reader() -> None:
        # the library's contract (avrec.index.Index): answer, then ask current(); a reader
        # that opened the version being replaced answers again from the new one. Only the
        # errors `avrec recommend` answers again on may come from reading across a swap.
        from avrec.errors import AvrecError
        from avrec.index import Index
        from avrec.recommend import Options, Recommender

        rng = random.Random(2)
        while not done.is_set():
            user = f"u{rng.randrange(N_USERS)}"
            try:
                for _ in range(10):
                    idx = Index(index)
                    try:
                        rows = Recommender(idx, Options(k=K)).for_user(user)
                    except (AvrecError, OSError, ValueError, IndexError):
                        if idx.current():
                            raise
                        retries[0] += 1
                        continue
                    if idx.current():
                        lib_answers.append((user, rows, idx.n_items))
                        break
                else:
                    failures.append(f"library {user}: the index changed under 10 answers in a row")
            except Exception as e:  # noqa: BLE001 - collected, the test fails on it below
                failures.append(f"library {user}: {type(e).__name__}: {e}")
            time.sleep(0.001)

    threads = [threading.Thread(target=f, daemon=True) for f in (writer, cli_reader, lib_reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert not failures, "\n".join(failures[:10])
    for user, rows in cli_answers:
        _check_answer(world, user, rows, versions)
    for user, rows, n in lib_answers:
        _check_answer(world, user, rows, [v for v in versions if len(v) == n])
    assert len(cli_answers) >= 3 and len(lib_answers) >= 3, (len(cli_answers), len(lib_answers))
    assert len({n for _, _, n in lib_answers}) >= 2, retries  # the readers really saw the index change
    assert sorted(_ids(index)) == sorted(versions[-1]) and _leftovers(index) == []


# ---------------------------------------------------------------------------------------
# (b) two writers of one output


@pytest.fixture(scope="module")
def trained_inputs(sample_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("writers")
    feats, emb = tmp / "features", tmp / "embeddings"
    _ok(run_avrec("extract", "--metadata", str(sample_data / "metadata.csv"), str(sample_data / "media"), "-o",
                  str(feats), "-q", "--set", "extract.thumb_size=32", "--set", "extract.max_frames=2"))
    _ok(run_avrec("embed", str(feats), "-o", str(emb), "-q", "--set", "embed.text="))
    return emb, sample_data / "interactions.csv"


def _writer_args(stage: str, world, trained_inputs) -> tuple[list[str], str]:
    if stage == "index":
        return ["index", str(world["model"]), "-q", "--n-trees", "10"], "index"
    emb, events = trained_inputs
    return ["train", str(emb), "-i", str(events), "-q", *TRAIN], "model"


@pytest.mark.parametrize("stage", ["index", "train"])
def test_a_second_writer_of_the_same_output_is_refused_naming_the_first(world, trained_inputs, tmp_path, stage):
    args, kind = _writer_args(stage, world, trained_inputs)
    out = tmp_path / "out"
    first = _popen([*args, "-o", str(out)])
    _hold(out, first)
    os.kill(first.pid, signal.SIGSTOP)  # stopped while it holds the lock: the runs overlap for sure
    try:
        second = run_avrec(*args, "-o", str(out))
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    _refused_by(second, first.pid)
    _assert_whole(out, kind)
    assert _leftovers(out) == []


@pytest.mark.parametrize("stage", ["index", "train"])
def test_two_writers_started_at_once_give_one_whole_artifact(world, trained_inputs, tmp_path, stage):
    args, kind = _writer_args(stage, world, trained_inputs)
    out = tmp_path / "out"
    procs = [_popen([*args, "-o", str(out)]) for _ in range(2)]
    results = [(p.pid, *p.communicate(timeout=300), p.returncode) for p in procs]
    codes = sorted(rc for *_, rc in results)
    if codes == [0, 2]:  # they overlapped: exactly one wrote it, the other was refused naming it
        (winner,) = [pid for pid, _, _, rc in results if rc == 0]
        (loser_err,) = [err for _, _, err, rc in results if rc == 2]
        _refused_by((2, loser_err), winner)
    else:
        assert codes == [0, 0], results  # one after the other (the first was done before the second looked)
    _assert_whole(out, kind)
    assert _leftovers(out) == []


def test_a_second_index_add_is_refused_and_the_first_ones_items_are_all_kept(world, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(world["index"], index)
    b0, b1 = world["batches"][:2]
    first = _popen(["index", "--add", str(b0), "-o", str(index), "-q", "--n-trees", "10"])
    _hold(index, first)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = run_avrec("index", "--add", str(b1), "-o", str(index), "-q", "--n-trees", "10")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    _refused_by(second, first.pid)
    ids = _ids(index)
    assert ids == world["base"] + _ids(b0)  # every item of the add that ran, each once
    _assert_whole(index, "index")
    # the refused one, run again, adds its items on top
    _ok(run_avrec("index", "--add", str(b1), "-o", str(index), "-q", "--n-trees", "10"))
    assert _ids(index) == world["base"] + _ids(b0) + _ids(b1)
    assert _leftovers(index) == []


def test_two_index_adds_started_at_once_lose_no_item_of_either_that_ran(world, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(world["index"], index)
    batches = world["batches"][2:]
    procs = [_popen(["index", "--add", str(b), "-o", str(index), "-q", "--n-trees", "10"]) for b in batches]
    results = [(p.pid, *p.communicate(timeout=300), p.returncode) for p in procs]
    assert all(rc in (0, 2) for *_, rc in results) and any(rc == 0 for *_, rc in results), results
    winners = [pid for pid, _, _, rc in results if rc == 0]
    for _, _, err, rc in results:
        if rc == 2:
            _refused_by((rc, err), winners[0])
    ids = _ids(index)
    added = [i for (_, _, _, rc), b in zip(results, batches) if rc == 0 for i in _ids(b)]
    assert len(ids) == len(set(ids)) and ids[:N_ITEMS] == world["base"]
    assert sorted(ids[N_ITEMS:]) == sorted(added)  # the items of every add that ran, and of no other
    _assert_whole(index, "index")
    assert _leftovers(index) == []


@pytest.mark.parametrize("stage", ["index", "add"])
def test_the_lock_file_of_a_sigkilled_writer_does_not_block_the_next_run(world, tmp_path, stage):
    index = tmp_path / "index"
    shutil.copytree(world["index"], index)
    batch = world["batches"][0]
    args = (["index", "--add", str(batch)] if stage == "add" else ["index", str(world["model"])]) + [
        "-o", str(index), "-q", "--n-trees", "10"]
    writer = _popen(args)
    lock = _hold(index, writer)
    writer.kill()
    writer.communicate(timeout=60)
    assert writer.returncode == -signal.SIGKILL
    assert json.loads(lock.read_text())["pid"] == writer.pid  # left behind, naming a dead writer
    r = run_avrec(*args)
    assert r.returncode == 0, r.stderr
    _assert_whole(index, "index")
    assert _leftovers(index) == []
    want = world["base"] + (_ids(batch) if stage == "add" else [])
    assert _ids(index) == want
