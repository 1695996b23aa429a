"""End to end on the sample catalogue: the demo, the pipe chain, the workspace chain and the
command-line contract (stdout carries only paths or JSON; exit codes mean something)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from avrec_runner import run_avrec

FAST = ["--set", "train.hybrid.epochs=40"]


@pytest.fixture(scope="module")
def demo_run(sample_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    proc = run_avrec("demo", "-w", str(work), "--data", str(sample_data))
    return work, proc


def _interactions(sample_data: Path) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for line in (sample_data / "interactions.csv").read_text().splitlines()[1:]:
        user, item = line.split(",")[:2]
        seen.setdefault(user, set()).add(item)
    return seen


def test_demo_runs_whole_pipeline_and_follows_taste(demo_run, sample_data):
    work, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "User u001 watched:" in out and "User u002 watched:" in out
    for stage in ("features", "embeddings", "model", "index", "evaluation"):
        assert (work / stage / "manifest.json").exists(), stage
    # u001 is an ocean fan: the first recommendations are ocean items, including the new upload
    block = out.split("User u001 watched:")[1].split("User u002")[0].split("and is recommended:")[1]
    top2 = [ln for ln in block.splitlines() if ln.strip()[:2] in ("1.", "2.")]
    assert "Storm waves at the pier" in block and "[new upload" in block
    ocean_titles = ("Storm waves at the pier", "Morning surf at the reef")
    assert all(any(t in ln for t in ocean_titles) for ln in top2), top2
    # progress on stderr, results on stdout
    assert "demo: extract" in proc.stderr and "demo: extract" not in out


def test_demo_evaluation_hybrid_beats_popular_on_held_out(demo_run):
    work, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((work / "evaluation" / "metrics.json").read_text())["protocols"]
    hybrid = metrics["random"]["models"]["hybrid"]["metrics"]["10"]["ndcg"]
    popular = metrics["random"]["models"]["popular"]["metrics"]["10"]["ndcg"]
    assert hybrid > popular + 0.1, (hybrid, popular)
    # cold items (nobody saw them in training) are still ranked from content
    cold = metrics["cold"]["models"]["hybrid"]["metrics"]["10"]
    assert cold["ndcg"] > 0.5 and cold["coverage"] > 0


def test_pipe_chain_then_recommend(sample_data, tmp_path):
    w = str(tmp_path / "w")
    a = [sys.executable, "-m", "avrec"]
    q = lambda args: " ".join(shlex.quote(x) for x in a + args)  # noqa: E731
    chain = " | ".join([
        q(["extract", str(sample_data / "media"), "--metadata", str(sample_data / "metadata.csv"), "-w", w, "-q"]),
        q(["embed", "-w", w, "-q"]),
        q(["train", "--interactions", str(sample_data / "interactions.csv"), "-w", w, "-q", *FAST]),
        q(["index", "-w", w, "-q"]),
    ])
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", chain], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [str(tmp_path / "w" / "index")]  # stdout: the path, nothing else

    rec = run_avrec("recommend", "--user", "u003", "--k", "5", "-w", w)
    assert rec.returncode == 0, rec.stderr
    rows = [json.loads(line) for line in rec.stdout.splitlines()]  # piped: JSON lines
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert not {r["item_id"] for r in rows} & _interactions(sample_data)["u003"]  # seen items excluded

    unknown = run_avrec("recommend", "--user", "nobody", "-w", w)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert len(unknown.stderr.strip().splitlines()) == 1 and "nobody" in unknown.stderr
    fallback = run_avrec("recommend", "--user", "nobody", "--fallback", "popular", "--k", "3", "-w", w)
    assert fallback.returncode == 0 and len(fallback.stdout.splitlines()) == 3

    # stages chained through the workspace, one per line, as a CI script would
    again = run_avrec("embed", "-w", w, "-q")
    assert again.returncode == 0 and again.stdout.strip() == str(tmp_path / "w" / "embeddings")


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["extract"], 2, "metadata"),
        (["embed", "/no/such/features"], 2, "not found"),
        (["train", "--interactions", "x.csv", "--bogus"], 2, "bogus"),
        (["embed", "--set", "embed.txet=x"], 2, "did you mean 'embed.text'"),
        (["recommend", "--user", "1", "-w", "/no/such/work"], 2, "index"),
    ],
)
def test_bad_input_one_line_and_exit_code(args, code, message, tmp_path):
    proc = run_avrec(*args, cwd=tmp_path)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert message in proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr


def test_stage_input_of_the_wrong_kind_is_named(sample_data, tmp_path):
    # a features artifact handed to train: the error names both kinds
    proc = run_avrec("extract", "--metadata", str(sample_data / "metadata.csv"), "-o", str(tmp_path / "f"), "-q")
    assert proc.returncode == 0, proc.stderr
    bad = run_avrec("train", str(tmp_path / "f"), "--interactions", str(sample_data / "interactions.csv"))
    assert bad.returncode == 2
    assert "'features' artifact" in bad.stderr and "embeddings" in bad.stderr


def test_version():
    from avrec import __version__

    proc = run_avrec("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"avrec {__version__}"
