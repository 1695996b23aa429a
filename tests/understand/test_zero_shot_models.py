"""The joint-space paths with tiny random CLIP and CLAP models (tests/encoders/tiny_models):
moods from zero-shot prompts (``from: audio:clap`` / ``video:clip``, preferred over the signal
mappings) and tags from every configured space, through `avrec embed`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from avrec_runner import run_avrec

pytest.importorskip("torch")
pytest.importorskip("transformers")

from encoders.features_kit import AUDIO_DIM, VIDEO_DIM, frames, make_features, tone  # noqa: E402
from encoders.tiny_models import build_clap, build_clip  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("zs")
    torch.manual_seed(0)
    clip, clap = build_clip(root / "clip"), build_clap(root / "clap")
    rng = np.random.default_rng(0)
    specs = [{"item_id": f"i{k}", "title": f"piano music {k}", "frames": frames(k, 2), "audio": tone(200 + 90 * k, 1.5),
              "video_features": rng.normal(size=VIDEO_DIM), "audio_features": rng.normal(size=AUDIO_DIM)}
             for k in range(5)]
    specs.append({"item_id": "quiet", "title": "a calm and quiet lecture", "no_shard": True})
    return clip, clap, make_features(root / "features", specs)


def test_clip_and_clap_moods_and_tags(setup, tmp_path):
    clip, clap, features = setup
    out = tmp_path / "emb"
    proc = run_avrec("embed", str(features), "-o", str(out), "--device", "cpu", "--set", f"embed.video=clip:{clip}",
                     "--set", f"embed.audio=clap:{clap}", "--set", "understand.tags=[dog, piano, news, cat]",
                     "--set", "understand.tag_threshold=-1", "--set", "understand.tag_top=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["item_id"]: r for r in map(json.loads, (out / "items.jsonl").read_text().splitlines())}
    m = rows["i1"]["understand"]["mood"]
    assert "audio:clap" in m["from"]["arousal"] and "video:clip" in m["from"]["valence"]
    assert set(m["modalities"]) == {"text", "audio", "video"} or set(m["modalities"]) == {"audio", "video"}
    assert 1 <= len(m["labels"]) <= 3
    q = rows["quiet"]["understand"]["mood"]  # text only: the lexicon
    assert q["from"] == {"valence": "text", "arousal": "text"} and q["arousal"] < 0
    # a threshold of -1 keeps tag_top tags per item, each from the best of the three spaces
    tags = rows["i2"]["understand"]["tags"]
    assert len(tags) == 2 and all(t["from"] in ("video", "audio", "text") for t in tags)
    info = json.loads((out / "manifest.json").read_text())["extra"]["understand"]
    assert set(info["tags"]["spaces"]) == {"video", "audio", "text"}
    assert info["mood"]["sources"]["arousal:audio:clap"] == 5
