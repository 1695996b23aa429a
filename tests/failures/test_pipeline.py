"""Failures are loud across stages: an upstream failure is never papered over by the
workspace's previous artifacts, and a CI script running one stage per line still works."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avrec_runner import run_avrec  # noqa: E402
from workspace_kit import FAST, SAMPLE, snapshot, workspace  # noqa: E402

AVREC = [sys.executable, "-m", "avrec"]


def _q(args: list[str]) -> str:
    return " ".join(shlex.quote(str(x)) for x in AVREC + args)


def test_failed_extract_in_a_pipe_fails_every_later_stage_and_touches_no_artifact(tmp_path):
    work = workspace(tmp_path / "work")
    before = {k: snapshot(work / k) for k in ("embeddings", "model", "index")}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.mp4").write_bytes(b"not a video at all")
    (bad / "b.wav").write_bytes(b"")
    w = ["-w", str(work)]
    chain = " | ".join([
        _q(["extract", str(bad), *w]), _q(["embed", *w]),
        _q(["train", "--interactions", str(SAMPLE / "interactions.csv"), *w, *FAST]), _q(["index", *w]),
    ])
    proc = subprocess.run(["bash", "-c", f"{chain}; echo \"${{PIPESTATUS[@]}}\""], capture_output=True, text=True,
                          timeout=600)
    codes = [int(c) for c in proc.stdout.split()[-4:]]
    assert codes == [3, 2, 2, 2], (codes, proc.stderr)
    assert "no item succeeded" in proc.stderr
    assert "nothing arrived on stdin" in proc.stderr  # train and index name the upstream failure
    for k, files in before.items():
        assert snapshot(work / k) == files, f"{k} changed after its upstream failed"


def test_one_stage_per_line_with_no_stdin_uses_the_workspace(tmp_path):
    w = tmp_path / "w"
    script = "\n".join([
        "set -e",
        _q(["extract", str(SAMPLE / "media"), "--metadata", str(SAMPLE / "metadata.csv"), "-w", str(w), "-q"]) + " < /dev/null",
        _q(["embed", "-w", str(w), "-q"]) + " < /dev/null",
        _q(["train", "--interactions", str(SAMPLE / "interactions.csv"), "-w", str(w), "-q", *FAST]) + " < /dev/null",
        _q(["index", "-w", str(w), "-q"]) + " < /dev/null",
        _q(["recommend", "--user", "u001", "--k", "3", "-w", str(w)]) + " < /dev/null",
    ])
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[:4] == [str(w / k) for k in ("features", "embeddings", "model", "index")]
    assert len(lines) == 7 and all('"user": "u001"' in ln for ln in lines[4:])


def test_an_empty_pipe_or_empty_file_on_stdin_is_an_error_not_the_workspace(tmp_path):
    work = workspace(tmp_path / "work")
    before = snapshot(work / "embeddings")
    for stdin in ("", None):
        if stdin is None:
            (tmp_path / "empty").write_text("")
            proc = subprocess.run(AVREC + ["embed", "-w", str(work)], stdin=open(tmp_path / "empty"),
                                  capture_output=True, text=True, timeout=300)
        else:
            proc = run_avrec("embed", "-w", str(work), input=stdin)
        assert proc.returncode == 2 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1 and "nothing arrived on stdin" in proc.stderr
    assert snapshot(work / "embeddings") == before
    rec = run_avrec("recommend", "--user", "u001", "-w", str(work), input="")
    assert rec.returncode == 2 and "nothing arrived on stdin" in rec.stderr
    ok = run_avrec("recommend", "--user", "u001", "--k", "2", "-w", str(work))  # /dev/null: the workspace
    assert ok.returncode == 0 and len(ok.stdout.splitlines()) == 2
