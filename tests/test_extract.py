"""The extract stage as a library: rows, shards, resume, metadata, sidecars."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "media"))
import media_kit as kit  # noqa: E402

from avrec.artifacts import read_jsonl  # noqa: E402
from avrec.config import Config  # noqa: E402
from avrec.errors import InputError, TooManyFailures  # noqa: E402
from avrec.extract import check_failures, extract  # noqa: E402
from avrec.features.store import FeatureStore, ITEM_FIELDS  # noqa: E402


def _cfg(**extract_keys) -> Config:
    cfg = Config()
    cfg.extract.thumb_size = 32
    cfg.extract.max_frames = 4
    cfg.extract.audio_max_seconds = 1.0
    cfg.extract.item_timeout = 120
    for k, v in extract_keys.items():
        setattr(cfg.extract, k, v)
    return cfg


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    kit.write_cv2(d / "cv.mp4", seconds=3, fps=10)
    kit.write_cv2(d / "sub" / "motion.avi", seconds=2, fps=10, fourcc="MJPG") if (d / "sub").mkdir() is None else None
    kit.write_av(d / "muxed.mp4", seconds=3, fps=10)
    kit.write_audio(d / "tone.wav", seconds=2)
    kit.write_audio(d / "tone2.flac", seconds=1, freq=660)
    kit.write_audio(d / "tone3.ogg", seconds=1, freq=880)
    kit.truncate(d / "cv.mp4", d / "truncated.mp4")
    kit.random_bytes(d / "noise.webm")
    kit.empty(d / "empty.wav")
    kit.dangling(d / "dangling.mkv")
    os.mkfifo(d / "pipe.mp3")  # not a regular file: must not hang, must be a row
    (d / "muxed.json").write_text(json.dumps({"title": "Muxed clip", "tags": ["tone", "colour"]}))
    (d / "cv.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nspoken words\n")
    return d


@pytest.fixture(scope="module")
def artifact(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "features"
    manifest = extract([folder], out, _cfg(workers=2))
    return out, manifest


FAILED = {"truncated": "corrupt", "noise": "not a media file", "empty": "empty file",
          "dangling": "broken symlink", "pipe": "not a regular file"}


def test_rows_and_statuses(artifact):
    out, manifest = artifact
    rows = {r["item_id"]: r for r in read_jsonl(out / "items.jsonl")}
    assert list(rows) == sorted(rows)  # stable order
    assert set(rows) == {"cv", "sub/motion", "muxed", "tone", "tone2", "tone3", *FAILED}
    for r in rows.values():
        assert list(r) == list(ITEM_FIELDS)
    for iid, why in FAILED.items():
        assert rows[iid]["status"] == "failed" and why in rows[iid]["error"], rows[iid]
        assert "\n" not in rows[iid]["error"]
    assert rows["muxed"]["modalities"] == ["video", "audio", "text"]
    assert rows["muxed"]["title"] == "Muxed clip" and rows["muxed"]["tags"] == ["tone", "colour"]
    assert rows["cv"]["modalities"] == ["video", "text"] and rows["cv"]["text"] == "spoken words"
    assert rows["sub/motion"]["modalities"] == ["video"]
    assert rows["tone"]["modalities"] == ["audio"] and rows["tone"]["duration"] == pytest.approx(2.0, abs=0.01)
    assert manifest.counts["ok"] == 6 and manifest.counts["failed"] == 5
    with pytest.raises(TooManyFailures):
        check_failures(manifest, 4)
    check_failures(manifest, 5)
    check_failures(manifest, -1)


def test_store_gives_features_thumbnails_and_pcm(artifact):
    out, _ = artifact
    store = FeatureStore.open(out)
    extra = store.manifest["extra"]
    assert store.thumb_size == 32 and store.audio_sr == 16000
    by_id = {r["item_id"]: r for r in store.items}
    muxed = by_id["muxed"]
    v, a = store.video_features(muxed), store.audio_features(muxed)
    assert v.shape == (len(extra["video_feature_names"]),) and a.shape == (len(extra["audio_feature_names"]),)
    frames = store.frames(muxed)
    assert frames.dtype == np.uint8 and frames.shape[1:] == (32, 32, 3) and 1 <= len(frames) <= 4
    pcm = store.audio(muxed)
    assert len(pcm) == 16000  # audio_max_seconds = 1 at 16 kHz
    assert np.sqrt(np.mean(pcm[4000:12000] ** 2)) == pytest.approx(0.3 / np.sqrt(2), abs=0.03)  # the tone's RMS
    assert store.video_features(by_id["tone"]) is None and len(store.frames(by_id["tone"])) == 0
    assert store.audio_features(by_id["cv"]) is None


def test_rerun_does_no_work_and_changes_are_processed_alone(folder, tmp_path):
    import shutil

    src = tmp_path / "m"
    shutil.copytree(folder, src, symlinks=True, ignore=shutil.ignore_patterns("pipe.mp3"))
    out = tmp_path / "features"
    cfg = _cfg()
    first = extract([src], out, cfg)
    assert first.counts["processed"] == 10
    before = read_jsonl(out / "items.jsonl")
    again = extract([src], out, cfg)
    assert again.counts["processed"] == 0 and again.counts["reused"] == 10
    assert read_jsonl(out / "items.jsonl") == before
    # a new file and a changed file are processed, nothing else; the old shard is kept
    kit.write_audio(src / "new.wav", seconds=1)
    kit.write_audio(src / "tone.wav", seconds=3)
    third = extract([src], out, cfg)
    assert third.counts["processed"] == 2 and third.counts["reused"] == 9
    rows = {r["item_id"]: r for r in read_jsonl(out / "items.jsonl")}
    assert rows["tone"]["duration"] == pytest.approx(3.0, abs=0.01) and rows["new"]["status"] == "ok"
    assert rows["tone"]["shard"] == rows["new"]["shard"] != rows["muxed"]["shard"]
    # a removed file disappears; a shard nobody points at any more is deleted
    (src / "new.wav").unlink()
    (src / "tone.wav").unlink()
    fourth = extract([src], out, cfg)
    assert "tone" not in {r["item_id"] for r in read_jsonl(out / "items.jsonl")}
    assert fourth.counts["shards"] == 1 and fourth.counts["processed"] == 0


def test_interrupted_run_resumes_and_leaves_no_half_shard(folder, tmp_path):
    import shutil

    src = tmp_path / "m"
    src.mkdir()
    for name in ("cv.mp4", "muxed.mp4", "tone.wav", "tone2.flac"):
        shutil.copy(folder / name, src / name)
    out = tmp_path / "features"
    cfg = _cfg(shard_size=1)

    class Stop(Exception):
        pass

    class StopAfterTwo:
        n = 0

        def start(self, total, reused):
            pass

        def update(self, row):
            self.n += 1
            if self.n == 2:
                raise KeyboardInterrupt

        def close(self):
            pass

    staging = tmp_path / ".features.partial"
    (staging / "shards" / ".00007.tmp-left-by-a-kill").mkdir(parents=True)  # what SIGKILL mid-write leaves
    with pytest.raises(KeyboardInterrupt):
        extract([src], out, cfg, progress=StopAfterTwo())
    # nothing is published until the run completes; the finished shards wait in the staging folder
    assert not out.exists()
    shards = sorted(p.name for p in (staging / "shards").iterdir())
    assert all((staging / "shards" / s / "stats.json").exists() for s in shards)  # only complete shards
    assert len(shards) == 2
    resumed = extract([src], out, cfg)
    assert resumed.counts["processed"] == 2 and resumed.counts["reused"] == 2 and resumed.counts["ok"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "m"]  # no staging, lock or temp left


def test_content_hash_ignores_a_touch(folder, tmp_path):
    import shutil

    src = tmp_path / "m"
    src.mkdir()
    shutil.copy(folder / "tone2.flac", src / "a.flac")
    out = tmp_path / "features"
    extract([src], out, _cfg(hash=True))
    row = read_jsonl(out / "items.jsonl")[0]
    assert len(row["fingerprint"]["sha256"]) == 64
    os.utime(src / "a.flac", (1, 1))
    assert extract([src], out, _cfg(hash=True)).counts["processed"] == 0
    assert extract([src], out, _cfg(hash=False)).counts["processed"] == 1  # without --hash mtime counts


def test_settings_change_reextracts(folder, tmp_path):
    import shutil

    src = tmp_path / "m"
    src.mkdir()
    shutil.copy(folder / "tone2.flac", src / "a.flac")
    out = tmp_path / "features"
    extract([src], out, _cfg())
    m = extract([src], out, _cfg(audio_sr=8000))
    assert m.counts["processed"] == 1 and FeatureStore.open(out).audio_sr == 8000


def test_metadata_table_text_only_and_join_by_path(folder, tmp_path):
    table = tmp_path / "catalogue.csv"
    table.write_text(
        "item_id,title,description,tags,path\n"
        f"my-clip,Clip by path,,x|y,{folder / 'muxed.mp4'}\n"
        "tone,Tone by id,a pure tone,,\n"
        "article,Only text,words about things,news,\n"
        "lost,Missing file,,,missing.mp4\n"
        "blank,,,,\n"
    )
    out = tmp_path / "features"
    m = extract([], out, _cfg(), metadata=table)  # no media folder: the table names the files
    rows = {r["item_id"]: r for r in read_jsonl(out / "items.jsonl")}
    assert set(rows) == {"my-clip", "tone", "article", "lost", "blank"}
    assert rows["blank"]["status"] == "skipped" and m.counts["skipped"] == 1
    assert rows["my-clip"]["status"] == "ok" and rows["my-clip"]["title"] == "Clip by path"
    assert rows["my-clip"]["modalities"] == ["video", "audio", "text"]
    assert rows["article"] == {**rows["article"], "status": "ok", "modalities": ["text"], "shard": None, "path": None}
    assert rows["tone"]["modalities"] == ["text"]  # no file given for it here: text only
    assert rows["lost"]["status"] == "failed" and "not found" in rows["lost"]["error"]
    assert m.counts["text_only"] == 2
    # with the folder too, the table joins 'tone' by item_id
    extract([folder / "tone.wav"], out, _cfg(), metadata=table)
    rows = {r["item_id"]: r for r in read_jsonl(out / "items.jsonl")}
    assert rows["tone"]["modalities"] == ["audio", "text"] and rows["tone"]["description"] == "a pure tone"


def test_nothing_to_extract_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nothing to extract"):
        extract([], tmp_path / "f", _cfg())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError):
        extract([empty], tmp_path / "f", _cfg())


def test_keyframes_and_opencv_decoder(folder, tmp_path):
    out = tmp_path / "k"
    m = extract([folder / "muxed.mp4", folder / "cv.mp4"], out, _cfg(keyframes=True))
    assert m.counts["ok"] == 2 and m.extra["extract_signature"]["keyframes"] is True
    m = extract([folder / "cv.mp4"], tmp_path / "cv", _cfg(decoder="opencv"))
    assert m.counts["ok"] == 1 and len(FeatureStore.open(tmp_path / "cv").frames(FeatureStore.open(tmp_path / "cv").items[0])) >= 1


def test_long_video_is_sampled_by_seeking(tmp_path):
    clip = kit.write_av(tmp_path / "long.mp4", seconds=12, fps=5, audio=False)
    out = tmp_path / "f"
    extract([clip], out, _cfg(seek_min_seconds=5, max_frames=3))
    store = FeatureStore.open(out)
    times = store.shard(0).frame_times(0)
    assert len(times) == 3 and times[0] < 4 and times[-1] > 8
