"""extract on the real clips in ../shared/data/media (skipped when absent)."""

import pytest

from avrec.artifacts import read_jsonl
from avrec.config import Config
from avrec.extract import extract
from avrec.features.store import FeatureStore


def test_real_clips(shared_media, tmp_path):
    cfg = Config()
    cfg.extract.workers = 2
    cfg.extract.thumb_size = 64
    cfg.extract.max_frames = 8
    digits = sorted((shared_media / "audio" / "speech-digits").glob("*.wav"))[:3]
    clips = [shared_media / "audio" / "clips" / n for n in ("brahms.ogg", "robin.ogg", "vibeace.ogg")]
    out = tmp_path / "features"
    m = extract([shared_media / "video", *clips, *digits], out, cfg)
    rows = {r["item_id"]: r for r in read_jsonl(out / "items.jsonl")}
    assert m.counts["failed"] == 0, [r["error"] for r in rows.values() if r["error"]]
    assert {"mdn__flower", "mdn__rabbit320", "moviepy__big_buck_bunny_0_30", "brahms"} <= set(rows)
    # VP8/Vorbis webm and H.264/AAC mp4 both give frames and sound
    for iid in ("mdn__rabbit320", "moviepy__big_buck_bunny_0_30", "mdn__friday"):
        assert {"video", "audio"} <= set(rows[iid]["modalities"]), rows[iid]
    assert rows["vibeace"]["modalities"] == ["audio"]  # its cover picture is not a video
    assert "crown jewels" in rows["mdn__friday"]["text"] and "text" in rows["mdn__friday"]["modalities"]
    assert rows["moviepy__big_buck_bunny_0_30"]["duration"] == pytest.approx(30, abs=1)
    store = FeatureStore.open(out)
    bunny = rows["moviepy__big_buck_bunny_0_30"]
    assert len(store.frames(bunny)) == 8 and store.frames(bunny).std() > 10  # real pictures, not blank
    digit = rows[digits[0].stem]
    assert digit["duration"] < 2 and len(store.audio(digit)) == pytest.approx(digit["duration"] * 16000, rel=0.02)
