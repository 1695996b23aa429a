"""Every container and codec family the issue lists decodes to rows with the right modalities."""

import pytest

import media_kit as kit
from avrec.config import Config
from avrec.extract import Task, extract_item


def _cfg():
    cfg = Config().extract
    cfg.thumb_size, cfg.max_frames, cfg.audio_max_seconds = 32, 2, 1.0
    return cfg


@pytest.mark.parametrize("name,make", [
    ("a.mkv", lambda p: kit.write_av(p, seconds=2)),
    ("a.mov", lambda p: kit.write_av(p, seconds=2)),
    ("a.m4v", lambda p: _as(kit.write_av(p.with_suffix(".mp4"), seconds=2), p)),
    ("a.avi", lambda p: kit.write_cv2(p, seconds=2, fourcc="MJPG")),
])
def test_video_containers(tmp_path, name, make):
    path = tmp_path / name
    make(path)
    r = extract_item(Task("a", str(path)), _cfg())
    assert r.row["status"] == "ok", r.row["error"]
    assert "video" in r.row["modalities"] and r.frames.shape[1:] == (32, 32, 3)


def _as(src, dst):
    src.rename(dst)
    return dst


@pytest.mark.parametrize("name,codec,fmt", [
    ("a.mp3", "libmp3lame", "mp3"),
    ("a.m4a", "aac", "mp4"),
    ("a.opus", "libopus", "ogg"),
    ("a.aac", "aac", "adts"),
])
def test_audio_containers(tmp_path, name, codec, fmt):
    path = kit.write_av_audio(tmp_path / name, codec, fmt)
    r = extract_item(Task("a", str(path)), _cfg())
    assert r.row["status"] == "ok", r.row["error"]
    assert r.row["modalities"] == ["audio"] and r.row["duration"] == pytest.approx(1.5, abs=0.15)
    assert len(r.audio) == 16000 and r.audio_features is not None
