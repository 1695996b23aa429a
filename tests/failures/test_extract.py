"""extract's failures: every bad input, setting or output is one clear line with the exit
code that says who can fix it (2: the user's input, config or paths; 1: a runtime failure;
3: no item succeeded, or more failed than --max-failed), and nothing already written is
lost. Bad media are rows (failed or skipped), never a crash and never a silent success."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "media"))
import media_kit as kit  # noqa: E402
from avrec_runner import run_avrec  # noqa: E402

from avrec.artifacts import Manifest, read_jsonl, read_manifest, write_manifest  # noqa: E402
from avrec.cli import app  # noqa: E402
from avrec.config import RANGES, Config, range_text  # noqa: E402
from avrec.errors import InputError  # noqa: E402
from avrec.extract import extract  # noqa: E402

ROOT = HERE.parent.parent
FAST = ["--set", "extract.thumb_size=32", "--set", "extract.max_frames=2", "--set", "extract.audio_max_seconds=1"]
# a Python exception's name (or a traceback) in a message meant for the user
CLASS_NAME = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception|Interrupt|Exit)\b")


def _cfg(**keys) -> Config:
    cfg = Config()
    cfg.extract.thumb_size, cfg.extract.max_frames, cfg.extract.audio_max_seconds = 32, 2, 1.0
    cfg.extract.item_timeout = 120
    for k, v in keys.items():
        setattr(cfg.extract, k, v)
    return cfg


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(app, ["extract", *args], input=input)


def _code(res) -> int:
    return res.exit_code if hasattr(res, "exit_code") else res.returncode


def error_line(res, code: int) -> str:
    """The run exited ``code`` with exactly one line on stderr (it ran with -q): the error."""
    assert _code(res) == code, (_code(res), res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert not CLASS_NAME.search(lines[0]), lines[0]
    return lines[0]


def rows_of(out: Path) -> dict[str, dict]:
    return {r["item_id"]: r for r in read_jsonl(out / "items.jsonl")}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too) and its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _write_webm(path: Path, seconds: int = 30, fps: int = 10, sr: int = 48000) -> Path:
    """VP8 + Opus WebM, packets of both streams muxed in time order (as a real file is)."""
    import av

    c = av.open(str(path), "w", format="webm")
    v = c.add_stream("libvpx", rate=fps)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    a = c.add_stream("libopus", rate=sr)
    a.layout = "stereo"
    packets = []
    for i in range(seconds * fps):
        img = np.full((48, 64, 3), (i * 7) % 256, np.uint8)
        fr = av.VideoFrame.from_ndarray(img, format="rgb24")
        fr.pts, fr.time_base = i, Fraction(1, fps)
        packets += v.encode(fr)
    packets += v.encode()
    y = kit.tone(seconds, sr)
    for s in range(0, len(y), 960):
        blk = np.pad(y[s : s + 960], (0, max(0, s + 960 - len(y))))
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.stack([blk, blk])), format="fltp", layout="stereo")
        fr.sample_rate, fr.pts = sr, s
        packets += a.encode(fr)
    packets += a.encode()
    packets.sort(key=lambda p: float(p.pts * p.time_base) if p.pts is not None else 0.0)
    for p in packets:
        c.mux(p)
    c.close()
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """good/ (two tones), bad/ (nothing decodes), mixed/ (one of each)."""
    root = tmp_path_factory.mktemp("media")
    good, bad, mixed = root / "good", root / "bad", root / "mixed"
    for d in (good, bad, mixed):
        d.mkdir()
    kit.write_audio(good / "tone.wav", seconds=1)
    kit.write_audio(good / "high.flac", seconds=1, freq=660)
    kit.random_bytes(bad / "noise.ogg")
    kit.empty(bad / "empty.wav")
    (bad / "text.mp4").write_text("not a video\n")
    kit.write_audio(mixed / "tone.wav", seconds=1)
    kit.random_bytes(mixed / "noise.ogg")
    return {"root": root, "good": good, "bad": bad, "mixed": mixed}


# ---------------------------------------------------------------------------------------
# exit codes of a run whose items fail


@pytest.mark.parametrize("max_failed", [None, "-1", "10"])
def test_every_item_failing_exits_3_whatever_max_failed_says(media, tmp_path, max_failed):
    out = tmp_path / "features"
    extra = ["--max-failed", max_failed] if max_failed else []
    res = invoke(str(media["bad"]), "-o", str(out), "-q", *FAST, *extra)
    line = error_line(res, 3)
    assert "no item succeeded" in line and "3 failed" in line
    assert res.stdout == f"{out}\n"  # the artifact is written and named all the same
    rows = rows_of(out)
    assert {i: r["status"] for i, r in rows.items()} == {"noise": "failed", "empty": "failed", "text": "failed"}
    assert all(r["error"] and not CLASS_NAME.search(r["error"]) for r in rows.values()), rows
    read_manifest(out, "features", verify="full")


def test_a_mix_with_some_ok_exits_0_by_default_and_says_what_failed(media, tmp_path):
    out = tmp_path / "features"
    res = invoke(str(media["mixed"]), "-o", str(out), *FAST)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == f"{out}\n"
    assert {i: r["status"] for i, r in rows_of(out).items()} == {"tone": "ok", "noise": "failed"}
    assert "failed noise:" in res.stderr and not CLASS_NAME.search(res.stderr), res.stderr


# ---------------------------------------------------------------------------------------
# inputs


def test_an_empty_path_argument_is_refused_and_the_working_directory_is_not_extracted(media, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    kit.write_audio(cwd / "here.wav", seconds=1)  # what extracting '.' would find
    before = sorted(p.name for p in cwd.iterdir())
    for args in ([""], ["", str(media["good"])], ["  "]):
        proc = run_avrec("extract", *args, "-q", *FAST, cwd=cwd)
        assert "empty string" in error_line(proc, 2)
        assert proc.stdout == ""
        assert sorted(p.name for p in cwd.iterdir()) == before  # no avrec-work/ made
    with pytest.raises(InputError, match="empty string"):
        extract([""], tmp_path / "f", _cfg())
    assert not (tmp_path / "f").exists()


def _png() -> bytes:
    import zlib

    raw = b"".join(b"\x00" + bytes(range(48)) for _ in range(16))
    chunk = lambda t, d: len(d).to_bytes(4, "big") + t + d + zlib.crc32(t + d).to_bytes(4, "big")  # noqa: E731
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", (16).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00")
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


BAD_TABLES = {
    # name: (file name, bytes, what the one line must say besides the file's name)
    "empty": ("t.csv", b"", ["no rows"]),
    "header-only": ("t.csv", b"item_id,title,description\n", ["no rows"]),
    "duplicate-id": ("t.csv", b"item_id,title\na,A\nb,B\na,C\n", ["'a'", "rows 2 and 4"]),
    "latin-1": ("t.csv", b"item_id,title\ncafe,Caf\xe9 cr\xe8me\n", ["UTF-8"]),
    "png": ("cover.png", _png(), []),
    "png-named-csv": ("cover.csv", _png(), []),
    "utf-16": ("t.csv", "item_id,title\na,A\n".encode("utf-16"), []),
    "newline-id": ("t.csv", b'item_id,title\nok,Fine\n"a\nb",Broken\n', ["row 3", "newline"]),
    "nul-id-jsonl": ("t.jsonl", b'{"item_id": "ok", "title": "x"}\n{"item_id": "a\\u0000b", "title": "y"}\n',
                     ["row 2", "NUL"]),
    "nul-id-csv": ("t.csv", b"item_id,title\nok,Fine\na\x00b,Broken\n", ["row 3", "NUL"]),
    "nul-path-jsonl": ("t.jsonl", b'{"item_id": "a", "title": "A", "path": "clip\\u0000.mp4"}\n', ["row 1", "NUL"]),
    "unclosed-quote": ("t.csv", b'item_id,title\na,"Hello\nb,B\nc,C\n', ["line 2", "never closed"]),
    "no-id-column": ("t.csv", b"colour,size\nred,3\n", ["item_id"]),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_a_bad_metadata_table_is_one_line_naming_it(tmp_path, case):
    name, data, says = BAD_TABLES[case]
    table = tmp_path / name
    table.write_bytes(data)
    out = tmp_path / "features"
    line = error_line(invoke("--metadata", str(table), "-o", str(out), "-q"), 2)
    assert name in line and all(s in line for s in says), line
    # nothing written, no lock left (an empty staging folder may stay: it resumes nothing)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != ".features.partial")
    assert left == [name] and not any((tmp_path / ".features.partial").glob("*"))


def test_a_folder_or_a_missing_file_as_the_table_is_exit_2(media, tmp_path):
    line = error_line(invoke(str(media["good"]), "--metadata", str(media["good"]), "-o", str(tmp_path / "f"), "-q"), 2)
    assert "directory" in line and str(media["good"]) in line
    line = error_line(invoke("--metadata", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "f"), "-q"), 2)
    assert "not found" in line and "nope.csv" in line
    assert not (tmp_path / "f").exists()


def test_an_empty_metadata_path_is_refused_not_taken_for_no_table(media, tmp_path):
    for args in ([str(media["good"]), "--metadata", ""], ["--metadata", " "]):
        line = error_line(invoke(*args, "-o", str(tmp_path / "f"), "-q", *FAST), 2)
        assert "--metadata" in line and "empty string" in line
    assert not (tmp_path / "f").exists()
    with pytest.raises(InputError, match="empty string"):
        extract([media["good"]], tmp_path / "f", _cfg(), metadata="")


def test_a_misspelt_column_is_a_warning_naming_the_closest_one_and_strict_refuses_it(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("item_id,description,titel\na,Some words,Alpha\n")
    out = tmp_path / "features"
    res = invoke("--metadata", str(table), "-o", str(out))
    assert res.exit_code == 0, res.stderr
    warning = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and "'titel'" in warning[0] and "'title'" in warning[0], res.stderr
    assert rows_of(out)["a"]["title"] == "" and rows_of(out)["a"]["description"] == "Some words"
    before = snapshot(out)
    line = error_line(invoke("--metadata", str(table), "-o", str(out), "-q", "--strict"), 2)
    assert "'titel'" in line and "'title'" in line
    assert snapshot(out) == before


def test_aliases_a_bom_and_a_long_description_are_read(tmp_path):
    long = "lorem ipsum " * 166_667 + "end"  # 2,000,007 characters
    tables = {
        "alias.csv": b"id,name,genres\na,Alpha,x|y\n",
        "bom.csv": b"\xef\xbb\xbfitem_id,title\na,Alpha\n",
        "long.csv": ('item_id,title,description\na,Alpha,"' + long + '"\n').encode(),
    }
    for name, data in tables.items():
        (tmp_path / name).write_bytes(data)
        out = tmp_path / name.replace(".csv", "")
        res = invoke("--metadata", str(tmp_path / name), "-o", str(out), "-q")
        assert res.exit_code == 0 and res.stderr == "", (name, res.stderr)
        row = rows_of(out)["a"]
        assert row["title"] == "Alpha" and row["modalities"] == ["text"], (name, row["title"])
    assert rows_of(tmp_path / "alias")["a"]["tags"] == ["x", "y"]
    assert len(rows_of(tmp_path / "long")["a"]["description"]) == len(long) > 2_000_000


# ---------------------------------------------------------------------------------------
# settings


@pytest.mark.parametrize("setting", ["extract.max_frames=-3", "extract.thumb_size=0", "train.validation=5"])
def test_an_out_of_range_setting_names_its_range(media, tmp_path, setting):
    key = setting.split("=")[0]
    line = error_line(invoke(str(media["good"]), "-o", str(tmp_path / "f"), "-q", "--set", setting), 2)
    assert key in line and f"must be {range_text(*RANGES[key])}" in line, line
    assert not (tmp_path / "f").exists()


def test_no_time_limit_is_spelt_0_and_inf_is_refused(media, tmp_path):
    line = error_line(invoke(str(media["mixed"]), "-o", str(tmp_path / "g"), "-q", "--set", "extract.item_timeout=inf"), 2)
    assert "extract.item_timeout" in line and "finite" in line
    res = invoke(str(media["mixed"]), "-o", str(tmp_path / "f"), "-q", "--set", "extract.item_timeout=0", *FAST)
    assert res.exit_code == 0, res.stderr
    assert {i: r["status"] for i, r in rows_of(tmp_path / "f").items()} == {"tone": "ok", "noise": "failed"}


def test_a_folder_as_the_config_is_exit_2(media, tmp_path):
    line = error_line(invoke(str(media["good"]), "-o", str(tmp_path / "f"), "-q", "--config", str(tmp_path)), 2)
    assert str(tmp_path) in line and "directory" in line
    assert not (tmp_path / "f").exists()


def test_debug_shows_the_exception_that_is_otherwise_one_line(media, tmp_path):
    res = invoke(str(media["good"]), "-o", str(tmp_path / "f"), "--set", "extract.thumb_size=0", "--debug")
    assert res.exit_code != 0 and type(res.exception).__name__ == "ConfigError"


# ---------------------------------------------------------------------------------------
# outputs: never replace what is not extract's own artifact


def test_another_stages_artifact_as_the_output_is_untouched(media, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.npy").write_bytes(b"\x93NUMPY not really")
    write_manifest(model, Manifest(artifact="model"))
    before, listing = snapshot(tmp_path), sorted(os.listdir(tmp_path))
    line = error_line(invoke(str(media["good"]), "-o", str(model), "-q", *FAST), 2)
    assert "'model' artifact" in line and "avrec train" in line
    (tmp_path / "latest").symlink_to("model")  # through a link to it: the same
    listing.append("latest")
    assert "'model' artifact" in error_line(invoke(str(media["good"]), "-o", str(tmp_path / "latest"), "-q"), 2)
    assert snapshot(tmp_path) == before and sorted(os.listdir(tmp_path)) == sorted(listing)


def test_a_file_or_a_folder_of_other_things_as_the_output_is_refused(media, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me\n")
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8 jpeg")
    before = snapshot(tmp_path)
    assert "is a file" in error_line(invoke(str(media["good"]), "-o", str(tmp_path / "notes.txt"), "-q"), 2)
    assert "not an avrec artifact" in error_line(invoke(str(media["good"]), "-o", str(other), "-q"), 2)
    assert "empty string" in error_line(invoke(str(media["good"]), "-o", "", "-q"), 2)
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    assert "dangling" in error_line(invoke(str(media["good"]), "-o", str(tmp_path / "gone"), "-q"), 2)
    (tmp_path / "gone").unlink()
    assert snapshot(tmp_path) == before


def test_an_output_that_is_or_holds_the_media_is_refused_but_a_workspace_inside_it_is_fine(media, tmp_path):
    import shutil

    src = tmp_path / "clips"
    shutil.copytree(media["good"], src)
    before = snapshot(tmp_path)
    for out in (src, tmp_path):  # the media folder itself, and a folder around it
        error_line(invoke(str(src), "-o", str(out), "-q", *FAST), 2)
        assert snapshot(tmp_path) == before
    # a features artifact that the media were later put into: replacing it would delete them
    art = tmp_path / "art"
    assert invoke(str(src / "tone.wav"), "-o", str(art), "-q", *FAST).exit_code == 0
    shutil.copytree(media["good"], art / "clips")
    held = snapshot(art)
    line = error_line(invoke(str(art / "clips"), "-o", str(art), "-q", *FAST), 2)
    assert "holds this stage's input" in line
    (art / "catalogue.csv").write_text("item_id,title\na,Alpha\n")  # the table, likewise
    held = snapshot(art)
    line = error_line(invoke(str(src), "--metadata", str(art / "catalogue.csv"), "-o", str(art), "-q", *FAST), 2)
    assert "holds this stage's input" in line and "catalogue.csv" in line
    assert snapshot(art) == held
    # a workspace below the media folder: written, and not taken for media on the next run
    inner = src / "avrec-work" / "features"
    res = invoke(str(src), "-o", str(inner), "-q", *FAST)
    assert res.exit_code == 0, res.stderr
    assert set(rows_of(inner)) == {"tone", "high"}
    res = invoke(str(src), "-o", str(inner), *FAST)
    assert res.exit_code == 0 and "nothing changed" in res.stderr, res.stderr


# ---------------------------------------------------------------------------------------
# media that lie, and paths that lead elsewhere


def test_a_truncated_webm_is_a_failed_row_not_30_seconds_of_ok(tmp_path):
    folder = tmp_path / "webm"
    folder.mkdir()
    full = _write_webm(folder / "full.webm")
    kit.truncate(full, folder / "cut.webm", 1 / 6)
    manifest = extract([folder], tmp_path / "f", _cfg())
    rows = rows_of(tmp_path / "f")
    assert rows["cut"]["status"] == "failed" and "truncated" in rows["cut"]["error"], rows["cut"]
    assert rows["cut"]["duration"] is None and rows["cut"]["modalities"] == []
    assert rows["full"]["status"] == "ok" and rows["full"]["duration"] == pytest.approx(30, abs=0.5)
    assert rows["full"]["modalities"] == ["video", "audio"]
    assert manifest.counts["failed"] == 1 and manifest.counts["ok"] == 1


@pytest.fixture()
def outside(tmp_path, media) -> dict[str, Path]:
    """media/in.wav, media/link.wav -> ../elsewhere/secret.wav, tables/ beside them."""
    import shutil

    d = {k: tmp_path / k for k in ("media", "elsewhere", "tables")}
    for p in d.values():
        p.mkdir()
    shutil.copy(media["good"] / "tone.wav", d["media"] / "in.wav")
    shutil.copy(media["good"] / "high.flac", d["elsewhere"] / "secret.flac")
    (d["media"] / "link.flac").symlink_to("../elsewhere/secret.flac")
    return d


def test_a_symlink_out_of_the_media_folder_is_skipped_unless_follow_outside(outside, tmp_path):
    out = tmp_path / "f"
    res = invoke(str(outside["media"]), "-o", str(out), "-q", *FAST)
    assert res.exit_code == 0, res.stderr
    rows = rows_of(out)
    assert rows["in"]["status"] == "ok"
    link = rows["link"]
    assert link["status"] == "skipped" and "--follow-outside" in link["error"]
    assert link["fingerprint"] is None and link["duration"] is None and link["shard"] is None  # not even opened
    res = invoke(str(outside["media"]), "-o", str(out), "-q", "--follow-outside", *FAST)
    assert res.exit_code == 0, res.stderr
    assert rows_of(out)["link"]["status"] == "ok" and rows_of(out)["link"]["modalities"] == ["audio"]


def test_a_tables_relative_path_out_of_its_folder_is_skipped_but_an_absolute_one_is_read(outside, tmp_path):
    import shutil

    rel = outside["tables"] / "rel.csv"
    shutil.copy(outside["media"] / "in.wav", outside["tables"] / "here.wav")
    rel.write_text("item_id,title,path\nsecret,Secret,../elsewhere/secret.flac\nin,In,../media/in.wav\n"
                   "here,Here,here.wav\n")
    res = invoke("--metadata", str(rel), "-o", str(tmp_path / "r"), "-q", *FAST)
    assert res.exit_code == 0, res.stderr
    rows = rows_of(tmp_path / "r")
    assert rows["secret"]["status"] == "skipped" and "--follow-outside" in rows["secret"]["error"]
    assert rows["secret"]["fingerprint"] is None
    assert rows["in"]["status"] == "skipped"  # ../media is outside tables/ too
    assert rows["here"]["status"] == "ok"
    res = invoke("--metadata", str(rel), "-o", str(tmp_path / "r"), "-q", "--follow-outside", *FAST)
    assert res.exit_code == 0 and {r["status"] for r in rows_of(tmp_path / "r").values()} == {"ok"}
    absolute = outside["tables"] / "abs.csv"
    absolute.write_text(f"item_id,title,path\nsecret,Secret,{outside['elsewhere'] / 'secret.flac'}\n")
    res = invoke("--metadata", str(absolute), "-o", str(tmp_path / "a"), "-q", *FAST)
    assert res.exit_code == 0, res.stderr
    assert rows_of(tmp_path / "a")["secret"]["status"] == "ok"


def test_two_table_rows_naming_one_file_are_refused_naming_both(outside, tmp_path):
    table = outside["tables"] / "twice.csv"
    table.write_text("item_id,title,path\nfirst,One,../elsewhere/secret.flac\n"
                     f"second,Two,{outside['elsewhere'] / 'secret.flac'}\n")
    line = error_line(invoke("--metadata", str(table), "-o", str(tmp_path / "f"), "-q", *FAST), 2)
    assert "rows 2 and 3" in line and "secret.flac" in line
    assert not (tmp_path / "f").exists()


def test_one_file_through_a_linked_folder_and_the_tables_real_path_is_one_item(outside, tmp_path):
    (tmp_path / "via").symlink_to(outside["elsewhere"], target_is_directory=True)
    table = tmp_path / "t.csv"
    table.write_text("item_id,title,path\ncatalogued,Catalogued,elsewhere/secret.flac\n")
    out = tmp_path / "f"
    res = invoke(str(tmp_path / "via"), "--metadata", str(table), "-o", str(out), "-q", *FAST)
    assert res.exit_code == 0, res.stderr
    rows = rows_of(out)
    assert list(rows) == ["catalogued"], rows
    assert rows["catalogued"]["status"] == "ok" and rows["catalogued"]["title"] == "Catalogued"
    assert rows["catalogued"]["modalities"] == ["audio", "text"]


def test_a_nul_in_a_path_on_stdin_is_exit_2_naming_the_line(media, tmp_path):
    listing = f"\n{media['good'] / 'tone.wav'}\n{media['good']}/bad\x00name.wav\n"
    proc = run_avrec("extract", "-", "-o", str(tmp_path / "f"), "-q", *FAST, input=listing)
    line = error_line(proc, 2)
    assert "line 3" in line and "NUL" in line
    assert not (tmp_path / "f").exists()


# ---------------------------------------------------------------------------------------
# the workers import the installed avrec, whatever the working directory holds


@pytest.mark.parametrize("package", ["empty", "broken", "empty-safepath-var"])
def test_a_folder_named_avrec_in_the_working_directory_does_not_break_the_workers(media, tmp_path, package):
    cwd = tmp_path / "project"
    (cwd / "avrec").mkdir(parents=True)
    (cwd / "avrec" / "__init__.py").write_text("def broken(:\n" if package == "broken" else "")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    if package == "empty-safepath-var":
        env["PYTHONSAFEPATH"] = ""  # set but empty: Python reads it as unset
    # like the `avrec` console script: the working directory is not on the parent's sys.path
    # (`python -m` would put it there; -P would hand the fix to the workers by itself)
    launcher = "import sys; del sys.path[0]; sys.argv[0] = 'avrec'; from avrec.cli import main; main()"
    out = tmp_path / "f"
    proc = subprocess.run([sys.executable, "-c", launcher, "extract", str(media["good"]), "-o", str(out), *FAST],
                          cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert {r["status"] for r in rows_of(out).values()} == {"ok"} and len(rows_of(out)) == 2
    assert "Traceback" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------
# a re-run keeps the old artifact whole until the new one is complete


def test_an_interrupted_rerun_with_other_settings_leaves_the_old_artifact_byte_identical(media, tmp_path):
    import shutil

    src = tmp_path / "m"
    src.mkdir()
    for i in range(3):
        shutil.copy(media["good"] / "tone.wav", src / f"t{i}.wav")
    out = tmp_path / "features"
    extract([src], out, _cfg(shard_size=1))
    before = snapshot(out)

    class StopOnSecond:
        n = 0

        def start(self, total, reused):
            assert reused == 0  # other settings: every item is extracted again

        def update(self, row):
            self.n += 1
            if self.n == 2:
                raise KeyboardInterrupt

        def close(self):
            pass

    with pytest.raises(KeyboardInterrupt):
        extract([src], out, _cfg(shard_size=1, audio_sr=8000), progress=StopOnSecond())
    assert snapshot(out) == before
    data = read_manifest(out, "features", verify="full")
    assert data["extra"]["audio_sr"] == 16000
    done = extract([src], out, _cfg(shard_size=1, audio_sr=8000))  # goes on from the staged shards
    assert done.counts["ok"] == 3 and done.counts["processed"] <= 2
    assert read_manifest(out, "features", verify="full")["extra"]["audio_sr"] == 8000


# ---------------------------------------------------------------------------------------
# ids are data


def test_ids_with_slashes_and_dots_are_kept_and_write_nothing_outside_the_output(media, tmp_path):
    base = tmp_path / "a" / "b"
    base.mkdir(parents=True)
    ids = ["../../escape", "x/../../../y", "/etc/passwd", "..", "dir/sub/item", "clip/../.."]
    lines = ["item_id,title,path"] + [f'"{i}",Title {n},' for n, i in enumerate(ids)]
    lines.append(f"../../media-id,Media,{media['good'] / 'tone.wav'}")
    (base / "t.csv").write_text("\n".join(lines) + "\n")
    out = base / "out"
    res = invoke("--metadata", str(base / "t.csv"), "-o", str(out), "-q", *FAST)
    assert res.exit_code == 0, res.stderr
    rows = rows_of(out)
    assert set(rows) == {*ids, "../../media-id"}
    assert rows["../../media-id"]["modalities"] == ["audio", "text"]
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(w.startswith("a/b/out/") for w in written - {"a/b/t.csv"}), written
    assert not [p for p in tmp_path.rglob("*") if p.name in ("escape", "y", "passwd", "media-id")]
    assert not (Path("/etc/passwd.npy").exists() or (ROOT / "escape").exists())
