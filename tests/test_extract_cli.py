"""`avrec extract` through the command line: stdout, stderr, exit codes, stdin."""

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "media"))
import media_kit as kit  # noqa: E402

from avrec.artifacts import read_jsonl  # noqa: E402
from avrec.cli import app  # noqa: E402

FAST = ["--set", "extract.thumb_size=32", "--set", "extract.max_frames=2", "--set", "extract.audio_max_seconds=1"]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_media")
    kit.write_av(d / "clip.mp4", seconds=2, fps=10)
    kit.write_audio(d / "song.flac", seconds=1)
    kit.truncate(d / "clip.mp4", d / "broken.mp4", 0.3)
    kit.random_bytes(d / "junk.ogg")
    return d


def invoke(*args, input=None):
    return CliRunner().invoke(app, ["extract", *args], input=input)


def test_stdout_is_only_the_path_and_failures_are_rows(media, tmp_path):
    out = tmp_path / "features"
    res = invoke(str(media), "-o", str(out), "--workers", "2", *FAST)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out)
    assert "[4/4]" in res.stderr and "2 failed" in res.stderr and "failed junk:" in res.stderr
    rows = {r["item_id"]: r["status"] for r in read_jsonl(out / "items.jsonl")}
    assert rows == {"broken": "failed", "clip": "ok", "junk": "failed", "song": "ok"}


def test_engine_ray_gives_the_rows_of_the_local_pool(media, tmp_path):
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        res = invoke(str(media), "-o", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2", *FAST)
    finally:
        ray.shutdown()
    assert res.exit_code == 0, res.stderr
    rows = {r["item_id"]: (r["status"], r["modalities"]) for r in read_jsonl(tmp_path / "ray" / "items.jsonl")}
    assert rows == {"broken": ("failed", []), "clip": ("ok", ["video", "audio"]), "junk": ("failed", []),
                    "song": ("ok", ["audio"])}
    assert json.loads((tmp_path / "ray" / "manifest.json").read_text())["config"]["distributed"]["engine"] == "ray"


def test_max_failed_exits_3_after_writing_the_artifact(media, tmp_path):
    out = tmp_path / "features"
    res = invoke(str(media), "-o", str(out), "--max-failed", "1", "-q", *FAST)
    assert res.exit_code == 3 and res.stdout.strip() == str(out)
    assert "2 item(s) failed, more than --max-failed 1" in res.stderr
    assert (out / "items.jsonl").exists()
    res = invoke(str(media), "-o", str(out), "--max-failed", "2", "-q", *FAST)
    assert res.exit_code == 0 and res.stderr == ""  # --quiet: nothing on stderr; re-run: no work


def test_stdin_list_keyframes_and_hash(media, tmp_path):
    out = tmp_path / "features"
    listing = f"{media / 'clip.mp4'}\n{media / 'song.flac'}\n"
    res = invoke("-", "-o", str(out), "--keyframes", "--hash", "-q", *FAST, input=listing)
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["extract"]["keyframes"] is True and manifest["counts"]["ok"] == 2
    assert all("sha256" in r["fingerprint"] for r in read_jsonl(out / "items.jsonl"))


def test_metadata_only_catalogue(tmp_path):
    table = tmp_path / "catalogue.jsonl"
    table.write_text('{"item_id": "a", "title": "Alpha", "tags": ["x"]}\n{"item_id": "b", "title": "Beta"}\n')
    out = tmp_path / "features"
    res = invoke("--metadata", str(table), "-o", str(out), "-q")
    assert res.exit_code == 0, res.output
    assert [(r["item_id"], r["modalities"]) for r in read_jsonl(out / "items.jsonl")] == [("a", ["text"]), ("b", ["text"])]

    # a row with neither media nor text is skipped, and the summary says so (not "0 failed" alone)
    table.write_text('{"item_id": "a", "title": "Alpha"}\n{"item_id": "b", "title": ""}\n')
    res = CliRunner().invoke(app, ["extract", "--metadata", str(table), "-o", str(tmp_path / "f2")])
    assert res.exit_code == 0 and "1 ok, 0 failed, 1 skipped (no media and no text" in res.output, res.output


def test_usage_errors_exit_2(tmp_path):
    res = invoke()
    assert res.exit_code == 2 and "no input" in res.stderr
    res = invoke(str(tmp_path / "missing"))
    assert res.exit_code == 2 and "input not found" in res.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nx\n")
    res = invoke("--metadata", str(bad))
    assert res.exit_code == 2 and "missing column 'item_id'" in res.stderr
    res = invoke(str(tmp_path), "--set", "extract.decoder=gstreamer")
    assert res.exit_code == 2 and "extract.decoder" in res.stderr
    res = invoke(str(tmp_path), "--engine", "spark", "-o", str(tmp_path / "out"))
    assert res.exit_code == 2 and "distributed.engine must be one of local, ray" in res.stderr
    assert not (tmp_path / "out").exists()


def test_help_has_an_example():
    res = CliRunner().invoke(app, ["extract", "--help"])
    assert res.exit_code == 0 and "avrec extract ./videos" in res.stdout and "--max-failed" in res.stdout


def test_real_process_pipes_its_path(media, tmp_path, avrec_cli):
    out = tmp_path / "features"
    proc = avrec_cli("extract", str(media / "song.flac"), "-o", str(out), *FAST)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{out}\n"
    assert "song: ok audio" in proc.stderr


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_killed_run_leaves_only_whole_shards_and_the_next_run_finishes(media, tmp_path, sig):
    import shutil
    import signal
    import subprocess
    import time

    src = tmp_path / "m"
    src.mkdir()
    for i in range(6):
        shutil.copy(media / "clip.mp4", src / f"c{i}.mp4")
    out = tmp_path / "features"
    args = [sys.executable, "-m", "avrec", "extract", str(src), "-o", str(out), "--set", "extract.shard_size=1", *FAST]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    staged = tmp_path / ".features.partial" / "shards"
    while proc.poll() is None and time.monotonic() < deadline:  # kill once the first shard is in place
        if staged.exists() and any((p / "stats.json").exists() for p in staged.iterdir()):
            proc.send_signal(getattr(signal, sig))
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130, -signal.SIGKILL)  # 0: it finished before the signal landed
    if proc.returncode == 130:
        assert err.rstrip().endswith("interrupted")
    if proc.returncode != 0:
        assert not out.exists()  # nothing half-made is published
        for p in staged.iterdir():
            assert p.name.startswith(".") or (p / "stats.json").exists()  # complete, or a temp dir the next run drops
    res = invoke(str(src), "-o", str(out), "--set", "extract.shard_size=1", "-q", *FAST)
    assert res.exit_code == 0
    rows = read_jsonl(out / "items.jsonl")
    assert [r["status"] for r in rows] == ["ok"] * 6
    assert not [p for p in (out / "shards").iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "m"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["processed"] + manifest["counts"]["reused"] == 6
    if proc.returncode != 0:
        assert manifest["counts"]["reused"] >= 1  # what the killed run finished is kept
