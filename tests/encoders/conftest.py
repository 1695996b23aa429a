"""Fixtures for the encoder tests: tiny saved models (built once per session) and a
features artifact with video, audio, text-only and failed items."""

from __future__ import annotations

import numpy as np
import pytest
from features_kit import AUDIO_DIM, VIDEO_DIM, frames, make_features, tone
from tiny_models import BUILDERS


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{"bert"|"clip"|"clap"|"ast"|"whisper": saved model directory}."""
    import torch

    root = tmp_path_factory.mktemp("tiny-models")
    out = {}
    for name, build in BUILDERS.items():
        torch.manual_seed(0)  # the same random weights every run: generation (Whisper) is then repeatable
        out[name] = build(root / name)
    return out


@pytest.fixture(scope="session")
def features_dir(tmp_path_factory):
    """7 items: a/b/c media + text, d text only (no shard), e audio only, f failed, g video only."""
    rng = np.random.default_rng(0)
    specs = [
        {"item_id": "a", "title": "a dog barking", "tags": ["dog"], "frames": frames(1, 3), "audio": tone(220, 2.5),
         "video_features": rng.normal(size=VIDEO_DIM), "audio_features": rng.normal(size=AUDIO_DIM)},
        {"item_id": "b", "title": "piano music", "description": "slow", "frames": frames(2, 2), "audio": tone(440, 1.0),
         "video_features": rng.normal(size=VIDEO_DIM), "audio_features": rng.normal(size=AUDIO_DIM)},
        {"item_id": "c", "title": "stock market report", "text": "the news of the market",
         "frames": frames(1, 3), "audio": tone(220, 2.5),
         "video_features": rng.normal(size=VIDEO_DIM), "audio_features": rng.normal(size=AUDIO_DIM)},
        {"item_id": "d", "title": "lecture about physics", "no_shard": True},
        {"item_id": "e", "audio": (0.3 * rng.normal(size=16000)).astype(np.float32),
         "audio_features": rng.normal(size=AUDIO_DIM)},
        {"item_id": "f", "status": "failed", "error": "corrupt file"},
        {"item_id": "g", "frames": frames(7, 1), "video_features": rng.normal(size=VIDEO_DIM)},
    ]
    return make_features(tmp_path_factory.mktemp("features") / "features", specs)
