"""Every stage killed (SIGKILL) or interrupted (SIGINT) at a random point, then run again.

For extract (a first run, and a re-extraction after a settings change), embed, train, index
(build) and index --add: start the command, signal it after a seeded random delay (from its
start, or from the moment it takes its output's lock), then check that

- the previous artifact is byte for byte what it was (every file, the manifest included)
  and verifies with ``read_manifest(verify="full")``; a first run left nothing or a
  complete artifact; a run that finished before the signal left a complete new one;
- SIGINT ends the run with exit 130 and the one line ``interrupted``;
- nothing half-made is visible at the output path (its files are exactly the manifest's);
- the same command run again exits 0 and leaves nothing beside the output: no
  ``.<name>.tmp-*``, ``.<name>.old-*``, ``.<name>.lock`` or ``.<name>.partial``;
- after index --add, the index holds the old items and the new ones, each exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from avrec_runner import run_avrec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_index_fixtures import make_embeddings, make_model  # noqa: E402

from avrec.artifacts import read_manifest  # noqa: E402

FAST_EXTRACT = ["--set", "extract.max_frames=4", "--set", "extract.audio_max_seconds=1", "--set",
                "extract.shard_size=2"]
THUMB_OLD, THUMB_NEW = ["--set", "extract.thumb_size=32"], ["--set", "extract.thumb_size=64"]
EMBED = ["--set", "embed.text="]  # builtin audio and video only: no torch model to load
TRAIN = ["--set", "train.hybrid.epochs=40"]
N_ITEMS, N_NEW = 4000, 40  # the synthetic model behind index and index --add: ~1 s per run
# (seed, where the random delay is counted from); AVREC_KILL_SEEDS=N runs N of them per case
SEEDS = [(i, "lock" if i % 3 == 2 else "start") for i in range(int(os.environ.get("AVREC_KILL_SEEDS", "3")))]


# ---------------------------------------------------------------------------------------
# helpers


def _popen(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    # a test process that ignores SIGINT (started in the background by a script) would pass
    # that on, and Python does not install its handler where SIGINT is ignored
    reset = (lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) \
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else None
    return subprocess.Popen([sys.executable, "-m", "avrec", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=reset)  # noqa: PLW1509


def _snapshot(directory: Path) -> dict[str, str] | None:
    """{relative path: sha256} of every file under ``directory`` (hidden ones too); None if absent."""
    if not directory.exists():
        return None
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            p = Path(root) / name
            out[p.relative_to(directory).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _lock(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _assert_complete(out: Path) -> dict:
    """A whole artifact: it verifies, and its visible files are exactly those its manifest lists."""
    man = read_manifest(out, verify="full")
    visible = set()
    for root, dirs, names in os.walk(out):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        visible |= {(Path(root) / n).relative_to(out).as_posix() for n in names if not n.startswith(".")}
    assert visible - {"manifest.json"} == set(man["files"]), sorted(visible ^ set(man["files"]))
    return man


def _signal_at_random(args: list[str], out: Path, sig: int, seed: str, anchor: str, typical: float):
    """Run ``avrec ARGS``; send ``sig`` after a seeded random delay within the command's typical
    run time, counted from its start or from when it holds the output's lock. Returns
    (returncode, stdout, stderr, whether the lock had been seen held before the signal)."""
    rng = random.Random(f"{seed}-{int(sig)}")
    delay = rng.uniform(0.0, typical if anchor == "start" else typical / 2)
    lock = _lock(out)
    proc = _popen(args)
    seen = False
    t0 = time.monotonic()
    if anchor == "lock":
        while proc.poll() is None and not lock.exists() and time.monotonic() - t0 < 60:
            time.sleep(0.001)
        t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < delay:
        seen = seen or lock.exists()
        time.sleep(0.002)
    seen = seen or lock.exists()
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        stdout, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"`avrec {' '.join(args)}` still ran 120 s after {signal.Signals(sig).name} (hung): "
                             f"{err[-1000:]}") from None
    return proc.returncode, stdout, err, seen


# Ctrl-C while `import torch` runs (train imports it inside its transaction, for the device)
# can land in a pybind11 callback, which turns the KeyboardInterrupt into std::terminate:
# the run aborts (SIGABRT) instead of exiting 130. Outside the files this test may fix
# (avrec/config.py resolve_device); the artifact checks still apply, then the case xfails.
TORCH_ABORT = "pybind11::error_already_set"


def _check_signalled(rc: int, stdout: str, err: str, sig: int, seen_lock: bool, out: Path) -> str | None:
    """Is this how a run ends when given ``sig``? Returns a known bug's description, if hit."""
    if sig == signal.SIGKILL:
        assert rc in (0, -signal.SIGKILL), (rc, err)  # 0: it finished before the signal landed
        return None
    if rc == 0:
        return None  # finished first (or CPython lost the interrupt in a weakref callback of an import)
    if stdout.strip() == str(out):
        # it had finished and printed its path: the signal landed as the interpreter exited
        # (killed by SIGINT without a word) or just before
        assert rc in (130, -signal.SIGINT), (rc, err)
        assert err.strip() in ("", "interrupted"), err
        return None
    if rc == -signal.SIGABRT and TORCH_ABORT in err and "KeyboardInterrupt" in err:
        return "known bug: SIGINT during `import torch` aborts the run (pybind11 std::terminate), not exit 130"
    if seen_lock:
        # it held its lock before the signal: avrec's handler was in place. -SIGINT: CPython
        # 3.11 exits by SIGINT after a KeyboardInterrupt that is caught once it went through
        # an exec/eval (a dataclass or namedtuple being made by an import); a shell reports
        # that as 130 too. The message is avrec's one line either way.
        assert rc in (130, -signal.SIGINT), (rc, err)
        assert err.splitlines() == ["interrupted"], err
        return None
    # the signal may have landed while Python was still starting the command, before avrec's
    # handler: Python's own KeyboardInterrupt traceback (exit 1, or killed by SIGINT), typer's
    # silent exit 130 while it parses the arguments, or click's "Aborted!"; no avrec error
    assert rc in (130, 1, -signal.SIGINT), (rc, err)
    assert not any(line.startswith("error:") for line in err.splitlines()), err
    assert err.strip() in ("", "interrupted") or err.rstrip().endswith(("KeyboardInterrupt", "Aborted!")), err
    return None


def _ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def _timed(*args: str) -> float:
    t0 = time.monotonic()
    _ok(run_avrec(*args))
    return time.monotonic() - t0


def _ids(directory: Path) -> list[str]:
    return [json.loads(line)["item_id"] for line in (directory / "items.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------
# the artifacts each stage is run against, and how long each command takes here


@pytest.fixture(scope="module")
def base(sample_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill")
    media, meta, events = sample_data / "media", sample_data / "metadata.csv", sample_data / "interactions.csv"
    feats, emb, model = tmp / "features", tmp / "embeddings", tmp / "model"
    typical = {}
    extract_args = ["extract", str(media), "--metadata", str(meta), "-q", *FAST_EXTRACT]
    typical["extract"] = _timed(*extract_args, "-o", str(feats), *THUMB_OLD)
    typical["embed"] = _timed("embed", str(feats), "-o", str(emb), "-q", *EMBED)
    typical["train"] = _timed("train", str(emb), "-i", str(events), "-o", str(model), "-q", *TRAIN)
    syn = tmp / "synthetic"
    syn_model = make_model(syn, n_items=N_ITEMS, n_users=100)
    index = tmp / "index"
    typical["index"] = _timed("index", str(syn_model), "-o", str(index), "-q", "--n-trees", "10")
    new = make_embeddings(tmp / "new-items", list(range(N_ITEMS, N_ITEMS + N_NEW)), seed=5)
    scratch = tmp / "scratch" / "index"
    shutil.copytree(index, scratch)
    typical["add"] = _timed("index", "--add", str(new), "-o", str(scratch), "-q", "--n-trees", "10")
    assert len(_ids(scratch)) == N_ITEMS + N_NEW
    commands = {
        # stage: (output name, the artifact it replaces or None, its arguments but -o, typical seconds)
        "extract-first": ("features", None, [*extract_args, *THUMB_OLD], typical["extract"]),
        "extract-resize": ("features", feats, [*extract_args, *THUMB_NEW], typical["extract"]),
        "embed": ("embeddings", emb, ["embed", str(feats), "-q", *EMBED], typical["embed"]),
        "train": ("model", model, ["train", str(emb), "-i", str(events), "-q", *TRAIN], typical["train"]),
        "index": ("index", index, ["index", str(syn_model), "-q", "--n-trees", "10"], typical["index"]),
        "add": ("index", index, ["index", "--add", str(new), "-q", "--n-trees", "10"], typical["add"]),
    }
    return commands, {"old_index_ids": _ids(index), "new_ids": _ids(new)}


# ---------------------------------------------------------------------------------------
# the test


@pytest.mark.parametrize("seed,anchor", SEEDS, ids=[f"seed{s}-from-{a}" for s, a in SEEDS])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("stage", ["extract-first", "extract-resize", "embed", "train", "index", "add"])
def test_signalled_stage_keeps_the_previous_artifact_and_the_next_run_finishes(base, tmp_path, stage, sig, seed,
                                                                              anchor):
    commands, info = base
    name, previous, args, typical = commands[stage]
    out = tmp_path / name
    if previous is not None:
        shutil.copytree(previous, out)
    before = _snapshot(out)
    old_build = json.loads((out / "manifest.json").read_text())["build_id"] if before else None
    cmd = [*args, "-o", str(out)]

    rc, stdout, err, seen_lock = _signal_at_random(cmd, out, sig, f"{stage}-{seed}", anchor, typical)
    known_bug = _check_signalled(rc, stdout, err, sig, seen_lock, out)
    after = _snapshot(out)
    if after == before:  # untouched (or, for a first run, still absent)
        if before is not None:
            _assert_complete(out)
    else:
        # replaced: only by a whole new version, swapped in before the signal landed (SIGINT
        # then may still report the interruption of what came after the swap)
        assert _assert_complete(out)["build_id"] != old_build

    # the same command again: it finishes and leaves nothing beside the output
    again = run_avrec(*cmd)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip() == str(out)
    man = _assert_complete(out)
    assert _leftovers(out) == [], _leftovers(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    if stage in ("extract-first", "extract-resize"):
        size = 32 if stage == "extract-first" else 64
        assert man["extra"]["thumb_size"] == size and man["counts"]["items"] == 28
        shapes = {np.load(p, mmap_mode="r").shape[1:] for p in (out / "shards").glob("*/frames.npy")}
        assert shapes == {(size, size, 3)}  # every shard of the new version, none of the old
    if stage == "add":
        ids = _ids(out)
        assert len(ids) == len(set(ids))  # each item once
        assert sorted(ids) == sorted(info["old_index_ids"] + info["new_ids"])
        assert ids[:len(info["old_index_ids"])] == info["old_index_ids"]  # the old rows keep their place
        assert man["counts"]["items"] == len(ids)
    if known_bug:
        pytest.xfail(known_bug)
