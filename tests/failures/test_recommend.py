"""recommend's failures: bad requests and bad history files are one line and exit 2;
nothing is ever an empty answer that looks like success."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avrec_runner import run_avrec  # noqa: E402
from workspace_kit import workspace  # noqa: E402


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return workspace(tmp_path_factory.mktemp("recommend") / "work")


def _rec(work: Path, *args: str, input: str | None = None):
    return run_avrec("recommend", "-w", str(work), *args, input=input)


def _one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0]


@pytest.mark.parametrize("weight", ["nan", "inf", "-inf", "-1", "1e400"])
def test_history_weights_must_be_finite_and_not_negative(work, weight):
    proc = _rec(work, "--history", "-", input=f"ocean_video_1,{weight}\nocean_audio_1,1\n")
    assert proc.returncode == 2, proc.stderr
    line = _one_line(proc)
    assert "line 1" in line and "finite" in line


@pytest.mark.parametrize("args, needle", [
    (["--user", "nobody"], "unknown user"),
    (["--item", "nothing"], "unknown item"),
    (["--user", "u001", "--k", "0"], "--k"),
    (["--user", "u001", "--diversity", "2"], "--diversity"),
    (["--user", "u001", "--filter", "colour=red"], "unknown --filter field"),
    (["--user", "u001", "--filter", "duration<long"], "needs a number"),
    (["--user", "u001", "--item", "x"], "exactly one of"),
    (["--history", "/no/such/file"], "not found"),
    (["--user", "u001", "--set", "recommend.k=-4"], "recommend.k must be"),
])
def test_bad_requests_are_exit_2_with_one_line(work, args, needle):
    proc = _rec(work, *args)
    assert proc.returncode == 2, proc.stderr
    assert needle in _one_line(proc)


def test_a_history_file_that_is_not_text_is_exit_2(work, tmp_path):
    p = tmp_path / "h.txt"
    p.write_bytes(b"\xff\xfe\x00\x01bad")
    proc = _rec(work, "--history", str(p))
    assert proc.returncode == 2 and str(p) in _one_line(proc)


def test_a_damaged_manifest_or_a_non_index_is_named(work, tmp_path):
    import shutil

    bad = tmp_path / "index"
    shutil.copytree(work / "index", bad)
    (bad / "manifest.json").write_text("{ not json")
    proc = run_avrec("recommend", str(bad), "--user", "u001")
    assert proc.returncode == 2 and "manifest" in _one_line(proc)
    proc = run_avrec("recommend", str(work / "model"), "--user", "u001")
    assert proc.returncode == 2 and "'model' artifact" in _one_line(proc)
