"""index's failures: a damaged index is named, never a crash (annoy aborts the process on
a bad file, so it is checked first); index --add takes uploads however they were embedded."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avrec_runner import run_avrec  # noqa: E402
from workspace_kit import SAMPLE, fast_config, snapshot, workspace  # noqa: E402

ANNOY = ["--set", "index.exact_single_below=0", "--set", "index.exact_below=0"]  # serve from annoy


def _one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def annoy_index(tmp_path):
    work = workspace(tmp_path / "work")
    proc = run_avrec("index", "-w", str(work), "-o", str(tmp_path / "idx"), "-q", *ANNOY)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["extra"]["serving"] == "annoy"
    return tmp_path / "idx"


@pytest.mark.parametrize("damage", ["garbage-same-size", "truncated", "extended", "zeros"])
def test_a_corrupt_annoy_file_is_an_error_line_not_an_abort(annoy_index, damage):
    p = annoy_index / "items.ann"
    data = p.read_bytes()
    if damage == "garbage-same-size":
        # the trailing roots overwritten: what annoy reads first, and aborts (SIGABRT) on
        p.write_bytes(data[: len(data) // 2] + np.random.default_rng(0).bytes(len(data) - len(data) // 2))
    elif damage == "truncated":
        p.write_bytes(data[: len(data) // 3])
    elif damage == "extended":
        p.write_bytes(data + b"\0" * 100)
    else:
        p.write_bytes(b"\0" * len(data))
    proc = run_avrec("recommend", str(annoy_index), "--user", "u001")
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = _one_line(proc)
    assert "items.ann" in line and "avrec index" in line


@pytest.mark.parametrize("name", ["item_vectors.npy", "items.jsonl", "user_ids_sorted.npy"])
def test_truncated_files_are_named_with_the_rebuild_command(tmp_path, name):
    work = workspace(tmp_path / "work")
    p = work / "index" / name
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)])
    proc = run_avrec("recommend", "--user", "u001", "-w", str(work))
    assert proc.returncode == 2
    line = _one_line(proc)
    assert name in line and "avrec index" in line


def test_index_output_of_another_kind_is_refused_and_untouched(tmp_path):
    work = workspace(tmp_path / "work")
    for target in ("embeddings", "model"):
        before = snapshot(work / target)
        proc = run_avrec("index", "-w", str(work), "-o", str(work / target))
        assert proc.returncode == 2 and "another -o" in _one_line(proc)
        assert snapshot(work / target) == before


def _catalogue_without(tmp_path: Path, new: list[str]) -> tuple[Path, Path]:
    """A workspace whose catalogue lacks ``new`` (symlinks to the sample files), trained and indexed."""
    from avrec.embed import embed
    from avrec.extract import extract
    from avrec.index import build_index
    from avrec.train import train

    cfg = fast_config()
    cat, up = tmp_path / "catalogue-media", tmp_path / "uploads"
    cat.mkdir()
    up.mkdir()
    for src in sorted((SAMPLE / "media").iterdir()):
        if src.suffix in (".mp4", ".wav", ".m4a"):
            ((up if src.stem in new else cat) / src.name).symlink_to(src)
    w = tmp_path / "w"
    extract([cat], w / "features", cfg, follow_outside=True)  # no table: it would list the uploads too
    embed(w / "features", w / "embeddings", cfg)
    train(w / "embeddings", SAMPLE / "interactions.csv", w / "model", cfg)
    build_index(w / "model", w / "index", cfg.index, seed=0)
    extract([up], tmp_path / "up-features", cfg, follow_outside=True)
    return w, tmp_path / "up-features"


def _rows(index_dir: Path) -> dict[str, int]:
    ids = [json.loads(line)["item_id"] for line in (index_dir / "items.jsonl").read_text().splitlines()]
    return {i: r for r, i in enumerate(ids)}


def test_add_uploads_embedded_alone_gets_the_catalogue_vectors(tmp_path):
    """index --add re-normalises builtin features with the catalogue's statistics: the added
    items get what embedding them --like the catalogue gives, and an audio-only batch is fine."""
    from avrec.embed import embed
    from avrec.index import Index, add_items

    new = ["ocean_video_1", "city_audio_1", "forest_audio_2"]
    w, up = _catalogue_without(tmp_path, new)
    cfg = fast_config()
    embed(up, tmp_path / "alone", cfg)
    embed(up, tmp_path / "like", cfg, like=w / "embeddings")
    # embedded alone, the uploads' own fused vectors are off (their batch's statistics)...
    assert not np.allclose(np.load(tmp_path / "alone" / "fused.npy"), np.load(tmp_path / "like" / "fused.npy"), atol=1e-3)
    shutil.copytree(w / "index", tmp_path / "index-like")
    add_items(w / "index", tmp_path / "alone", cfg.index)  # ...and index --add puts them right
    add_items(tmp_path / "index-like", tmp_path / "like", cfg.index)
    a, b = Index(w / "index"), Index(tmp_path / "index-like")
    ra, rb = _rows(w / "index"), _rows(tmp_path / "index-like")
    n_media = sum(1 for p in (SAMPLE / "media").iterdir() if p.suffix in (".mp4", ".wav", ".m4a"))
    assert a.n_items == b.n_items == n_media  # the catalogue's, and the uploads added once
    for i in new:
        assert np.allclose(a.item_vectors[ra[i]], b.item_vectors[rb[i]], atol=1e-5), i
        assert np.allclose(a.content_fused[ra[i]], b.content_fused[rb[i]], atol=1e-5), i
    # audio-only uploads to a catalogue with video: accepted, the video block is zero
    audio_up = tmp_path / "audio-only"
    audio_up.mkdir()
    for name in ("piano_audio_1.wav", "piano_audio_2.m4a"):
        (audio_up / name).symlink_to(SAMPLE / "media" / name)
    from avrec.extract import extract

    extract([audio_up], tmp_path / "audio-features", cfg, follow_outside=True)
    embed(tmp_path / "audio-features", tmp_path / "audio-emb", cfg)
    proc = run_avrec("index", "--add", str(tmp_path / "audio-emb"), "-o", str(w / "index"))
    assert proc.returncode == 0, proc.stderr
    rows = _rows(w / "index")
    assert {"piano_audio_1", "piano_audio_2"} <= set(rows)
    idx = Index(w / "index")
    assert "video" in idx.content_modalities and not idx.content_mask("video")[rows["piano_audio_1"]]
    rec = run_avrec("recommend", "--item", "piano_audio_1", "--k", "3", str(w / "index"))
    assert rec.returncode == 0 and len(rec.stdout.splitlines()) == 3


def test_add_refuses_uploads_whose_raw_features_are_gone_and_says_how(tmp_path):
    from avrec.embed import embed

    w, up = _catalogue_without(tmp_path, ["ocean_video_2"])
    embed(up, tmp_path / "alone", fast_config())
    shutil.rmtree(up)
    before = snapshot(w / "index")
    proc = run_avrec("index", "--add", str(tmp_path / "alone"), "-o", str(w / "index"))
    assert proc.returncode == 2 and "--like" in _one_line(proc)
    assert snapshot(w / "index") == before


def test_add_to_a_missing_index_is_one_line(tmp_path):
    work = workspace(tmp_path / "work")
    proc = run_avrec("index", "--add", str(work / "embeddings"), "-o", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "not found" in _one_line(proc)
    assert not (tmp_path / "nope").exists()
