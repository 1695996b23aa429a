"""embed's failures: damaged inputs are named with the command that rebuilds them, outputs
never overwrite another stage's artifact or the input, and new items embedded on their own
land in the catalogue's space when they should."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avrec_runner import run_avrec  # noqa: E402
from workspace_kit import SAMPLE, fast_config, snapshot, workspace  # noqa: E402

NO_TEXT = ["--text", ""]  # the builtin encoders only: fast, and what these checks are about


def _one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Error:" not in lines[0].split("error:", 1)[-1]
    return lines[0]


def test_output_of_another_kind_or_the_input_itself_is_refused(tmp_path):
    work = workspace(tmp_path / "work")
    for target in ("model", "index", "features"):
        before = snapshot(work / target)
        proc = run_avrec("embed", str(work / "features"), "-o", str(work / target), *NO_TEXT)
        assert proc.returncode == 2, proc.stderr
        line = _one_line(proc)
        assert ("artifact" in line and "another -o" in line) or "own input" in line
        assert snapshot(work / target) == before
    (tmp_path / "file").write_text("x")
    proc = run_avrec("embed", str(work / "features"), "-o", str(tmp_path / "file"), *NO_TEXT)
    assert proc.returncode == 2 and "is a file" in _one_line(proc)
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("damage", ["truncate-npy", "garble-jsonl", "delete-shard-file"])
def test_a_damaged_features_artifact_is_named_with_its_rebuild_command(tmp_path, damage):
    work = workspace(tmp_path / "work")
    shard = work / "features" / "shards" / "00000"
    if damage == "truncate-npy":
        p = shard / "audio_features.npy"
        p.write_bytes(p.read_bytes()[:-40])
    elif damage == "garble-jsonl":
        p = work / "features" / "items.jsonl"
        p.write_bytes(p.read_bytes().replace(b"}", b"", 1))
    else:
        p = shard / "frames.npy"
        p.unlink()
    proc = run_avrec("embed", "-w", str(work), *NO_TEXT)
    assert proc.returncode == 2, proc.stderr
    line = _one_line(proc)
    assert p.name in line and "avrec extract" in line


def test_like_reuses_the_catalogue_recipe_so_uploads_match_the_catalogue(tmp_path):
    """The same items embedded inside the catalogue and on their own with --like get the same
    builtin vectors; on their own without --like they do not (statistics of a tiny batch)."""
    from avrec.embed import embed
    from avrec.extract import extract

    cfg = fast_config()
    cfg.embed.text = ""
    new = ["ocean_video_1", "city_audio_2", "piano_video_3"]
    cat = tmp_path / "features"
    extract([SAMPLE / "media"], cat, cfg)
    embed(cat, tmp_path / "catalogue", cfg)
    up = tmp_path / "uploads"
    up.mkdir()
    for name in new:
        src = next((SAMPLE / "media").glob(f"{name}.*"))
        (up / src.name).symlink_to(src)
    extract([up], tmp_path / "up-features", cfg, follow_outside=True)
    embed(tmp_path / "up-features", tmp_path / "alone", cfg)
    embed(tmp_path / "up-features", tmp_path / "like", cfg, like=tmp_path / "catalogue")

    def vectors(d: Path, m: str) -> dict[str, np.ndarray]:
        ids = [json.loads(line)["item_id"] for line in (d / "items.jsonl").read_text().splitlines()]
        return dict(zip(ids, np.load(d / f"{m}.npy")))

    for m in ("video", "audio"):
        ref, like, alone = (vectors(tmp_path / d, m) for d in ("catalogue", "like", "alone"))
        for i in like:
            if not np.any(like[i]):
                continue
            assert float(like[i] @ ref[i]) == pytest.approx(1.0, abs=1e-5), (m, i)
        cos = [float(alone[i] @ ref[i]) for i in alone if np.any(alone[i]) and alone[i].shape == ref[i].shape]
        assert cos and min(cos) < 0.99  # the per-batch statistics the recipe exists to avoid
    fused = vectors(tmp_path / "like", "fused")
    ref = vectors(tmp_path / "catalogue", "fused")
    assert all(float(fused[i] @ ref[i]) == pytest.approx(1.0, abs=1e-5) for i in fused)
    man = json.loads((tmp_path / "like" / "manifest.json").read_text())
    assert man["inputs"]["like"] == str((tmp_path / "catalogue").resolve())


def test_like_refuses_an_artifact_without_a_recipe(tmp_path):
    work = workspace(tmp_path / "work")
    ref = tmp_path / "old-embeddings"
    import shutil

    shutil.copytree(work / "embeddings", ref)
    (ref / "fusion.json").unlink()  # as an artifact from before recipes: no recipe, no file list
    man = json.loads((ref / "manifest.json").read_text())
    man.pop("files")
    (ref / "manifest.json").write_text(json.dumps(man))
    proc = run_avrec("embed", "-w", str(work), "-o", str(tmp_path / "e"), "--like", str(ref))
    assert proc.returncode == 2
    assert "--like" in _one_line(proc) and "statistics" in proc.stderr


def test_no_ok_item_is_exit_2_and_nothing_is_written(tmp_path):
    from avrec.config import Config
    from avrec.extract import extract

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.mp4").write_bytes(b"junk")
    extract([bad], tmp_path / "f", Config())
    proc = run_avrec("embed", str(tmp_path / "f"), "-o", str(tmp_path / "e"))
    assert proc.returncode == 2 and "no items with status ok" in _one_line(proc)
    assert not (tmp_path / "e").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad", "f"]


def test_npy_vectors_whose_ids_match_no_item_are_an_error(tmp_path):
    work = workspace(tmp_path / "work")
    vec = tmp_path / "v.npy"
    np.save(vec, np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32))
    (tmp_path / "v.npy.ids.txt").write_text("item_1\nitem_2\nitem_3\n")  # another id scheme
    proc = run_avrec("embed", "-w", str(work), "-o", str(tmp_path / "e"), "--video", f"npy:{vec}", "-q", *NO_TEXT)
    assert proc.returncode == 2 and "no item gets a vector" in _one_line(proc) and "item_1" in proc.stderr
    assert not (tmp_path / "e").exists()
    # a superset of the catalogue is fine: the unused ids are counted
    ids = [json.loads(line)["item_id"] for line in (work / "features" / "items.jsonl").read_text().splitlines()]
    np.save(vec, np.random.default_rng(0).normal(size=(len(ids) + 2, 8)).astype(np.float32))
    (tmp_path / "v.npy.ids.txt").write_text("".join(f"{i}\n" for i in ids + ["elsewhere-1", "elsewhere-2"]))
    proc = run_avrec("embed", "-w", str(work), "-o", str(tmp_path / "e"), "--video", f"npy:{vec}", *NO_TEXT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "e" / "manifest.json").read_text())["models"]["video"]["unused_ids"] == 2
