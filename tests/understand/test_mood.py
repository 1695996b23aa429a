"""The mood mappings on their own: the lexicon, the audio and visual signal mappings, the
classifier's label table, zero-shot prompts, the fusion rule and the mood block."""

from __future__ import annotations

import numpy as np
import pytest

from avrec.features.audio import audio_feature_names, audio_features
from avrec.features.visual import video_feature_names
from avrec.understand import MOOD_LABELS
from avrec.understand import mood as M

SR = 16000


def test_lexicon_valence_follows_known_polarity():
    positive = ["What a wonderful, happy day, I love it!", "A beautiful and relaxing evening with friends.",
                "Great music, truly delightful."]
    negative = ["A terrible, sad and painful loss.", "I hate this awful noise, it is horrible.",
                "The storm destroyed the village; people died."]
    assert all(M.lexicon_valence(s) > 0.3 for s in positive)
    assert all(M.lexicon_valence(s) < -0.3 for s in negative)
    assert M.lexicon_valence("The train leaves at nine.") == 0.0
    assert M.lexicon_valence("") == 0.0


def test_text_arousal_heuristic():
    calm, _ = M.lexicon_arousal("Calm, quiet and gentle waves for sleep.")
    busy, _ = M.lexicon_arousal("Busy rush hour traffic, loud horns and a fast train!")
    assert calm < -0.5 < 0.5 < busy
    assert M.lexicon_arousal("A table and a chair.") == (0.0, 0)
    est = M.text_mood(["Calm quiet beach.", "", "A table and a chair."])
    assert est[0]["arousal"][0] < 0 and est[0]["source"] == "text"
    assert est[1] is None
    assert est[2]["arousal"] is None and est[2]["valence"] is None  # neutral, no cue: says nothing


def _signal(bpm: float, amp: float, bright: bool, seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """Notes at ``bpm`` (decaying envelopes) of peak ``amp``: on noise (bright) or a 220 Hz sine (dull)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    carrier = rng.normal(0, 0.5, len(t)) if bright else np.sin(2 * np.pi * 220 * t)
    envelope = np.exp(-8 * ((t * bpm / 60) % 1.0))
    return np.clip(amp * envelope * carrier, -1, 1).astype(np.float32)


def test_audio_mapping_orders_generated_signals_by_arousal():
    names = audio_feature_names(n_mels=64)
    specs = [(60, 0.05, False), (90, 0.2, False), (120, 0.4, True), (180, 0.9, True)]  # calm .. energetic
    raw = np.stack([audio_features(_signal(*s, seed=i), sr=SR, n_mels=64) for i, s in enumerate(specs)])
    est, stats = M.audio_mood(raw, np.ones(len(raw), bool), names)
    arousal = [e["arousal"][0] for e in est]
    assert arousal == sorted(arousal), arousal
    assert arousal[0] < -0.3 and arousal[-1] > 0.3
    assert set(stats) >= {"loudness", "tempo", "onset", "brightness", "mode"}
    # the same statistics applied again (embed --like) give the same values
    again, _ = M.audio_mood(raw, np.ones(len(raw), bool), names, stats)
    assert [e["arousal"][0] for e in again] == arousal


def test_audio_mapping_on_feature_values():
    names = ["rms_db_mean", "tempo_bpm", "onset_mean", "centroid_mean"]
    raw = np.array([[-40, 70, 0.5, 0.1], [-30, 100, 1.0, 0.2], [-12, 170, 3.0, 0.4], [np.nan] * 4])
    est, _ = M.audio_mood(raw, np.array([True, True, True, False]), names)
    assert est[0]["arousal"][0] < est[1]["arousal"][0] < est[2]["arousal"][0]
    assert est[3] is None
    # loud vs quiet alone, all else equal
    est, _ = M.audio_mood(np.array([[-40, 100, 1, 0.2], [-10, 100, 1, 0.2]]), np.ones(2, bool), names)
    assert est[0]["arousal"][0] < 0 < est[1]["arousal"][0]


def _chroma(pitch_classes: list[int]) -> np.ndarray:
    c = np.full(12, 0.05)
    c[pitch_classes] = 1.0
    return c


def test_krumhansl_mode():
    c_major = _chroma([0, 4, 7, 2, 5, 9, 11])  # C major scale, tonic triad stressed below
    c_major[[0, 4, 7]] = 1.5
    a_minor = _chroma([9, 0, 4])
    a_minor[9] = 1.8
    c_minor = _chroma([0, 3, 7])
    c_minor[0] = 1.8
    mode, clarity = M.key_mode(np.stack([c_major, a_minor, c_minor, np.zeros(12)]))
    assert mode[0] > 0 > mode[1] and mode[2] < 0
    assert clarity[0] > 0.7 and mode[3] == 0 and clarity[3] == 0
    # major-mode music is more positive than the same sound in minor (Gabrielsson & Lindström 2010)
    names = [f"chroma_mean_{k}" for k in range(12)]
    est, _ = M.audio_mood(np.stack([c_major, c_minor, _chroma([2, 6, 9])]), np.ones(3, bool), names)
    assert est[0]["valence"][0] > est[1]["valence"][0]


def test_visual_mapping_bright_saturated_vs_dark():
    names = video_feature_names()
    col = {n: i for i, n in enumerate(names)}
    raw = np.zeros((3, len(names)))
    for i, (b, s) in enumerate([(0.9, 0.8), (0.5, 0.4), (0.1, 0.1)]):  # bright saturated, middle, dark grey
        raw[i, col["brightness_mean"]], raw[i, col["saturation_mean"]] = b, s
    est, stats = M.video_mood(raw, np.ones(3, bool), names)
    valence = [e["valence"][0] for e in est]
    assert valence[0] > valence[1] > valence[2]  # pleasure = .69 brightness + .22 saturation
    assert set(stats) == {"brightness", "saturation", "motion", "cuts"}
    # saturation raises arousal at equal brightness (Valdez & Mehrabian 1994); so does motion
    raw = np.zeros((3, len(names)))
    raw[:, col["brightness_mean"]] = 0.5
    raw[:, col["saturation_mean"]] = [0.1, 0.9, 0.1]
    raw[:, col["motion_mean"]] = [0.0, 0.0, 0.2]
    est, _ = M.video_mood(raw, np.ones(3, bool), names)
    assert est[0]["arousal"][0] < est[1]["arousal"][0]
    assert est[0]["arousal"][0] < est[2]["arousal"][0]


def test_classifier_labels_map_to_the_plane():
    labels = ["joy", "sadness", "anger", "fear", "surprise", "disgust", "neutral", "optimism"]
    probs = np.zeros((3, len(labels)))
    probs[0, 0] = 1.0  # joy -> happy
    probs[1, [1, 7]] = [0.6, 0.4]  # sadness + an unknown label
    est = M.classifier_mood(probs, labels, np.array([True, True, False]))
    happy = dict((m[0], m[1:]) for m in MOOD_LABELS)["happy"]
    assert est[0]["valence"][0] == pytest.approx(happy[0]) and est[0]["arousal"][0] == pytest.approx(happy[1])
    assert est[0]["labels"]["happy"] == 1.0 and est[0]["source"] == "text:sentiment"
    assert est[1]["valence"][0] < 0 and est[1]["labels"]["optimism"] == pytest.approx(0.4)
    assert est[1]["valence"][1] == pytest.approx(0.9 * 0.6)  # only the mapped mass counts as confidence
    assert est[2] is None


def test_zero_shot_mood_prefers_the_matching_prompt():
    rng = np.random.default_rng(0)
    prompts = rng.normal(size=(len(M.LABELS), 16))
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    calm, excited = M.LABELS.index("calm"), M.LABELS.index("excited")
    x = np.stack([prompts[calm] + 0.1 * rng.normal(size=16), prompts[excited] + 0.1 * rng.normal(size=16),
                  np.zeros(16)])
    est = M.zero_shot_mood(x, np.array([True, True, False]), None, prompts, "audio:clap")
    assert est[0]["arousal"][0] < 0 < est[1]["arousal"][0]
    assert max(est[0]["labels"], key=est[0]["labels"].get) == "calm"
    assert est[2] is None


def test_fusion_is_confidence_weighted_and_follows_the_contract():
    text = [M.Estimate.make("text", valence=(0.8, 0.6)), None]
    audio = [M.Estimate.make("audio", valence=(-0.2, 0.2), arousal=(-0.6, 0.8)), None]
    video = [M.Estimate.make("video:clip", valence=(0.4, 1.0), arousal=(-0.2, 1.0), labels={"calm": 0.9}), None]
    rec, none = M.fuse({"text": text, "audio": audio, "video": video}, 2)
    assert none is None
    assert rec["valence"] == pytest.approx(round((0.8 * 0.6 - 0.2 * 0.2 + 0.4) / 1.8, 4))
    assert rec["arousal"] == pytest.approx(round((-0.6 * 0.8 - 0.2) / 1.8, 4))
    assert rec["from"] == {"valence": "text+audio+video:clip", "arousal": "audio+video:clip"}
    assert rec["modalities"] == {"text": {"valence": 0.8}, "audio": {"valence": -0.2, "arousal": -0.6},
                                 "video": {"valence": 0.4, "arousal": -0.2}}
    labels = rec["labels"]
    assert 1 <= len(labels) <= 3 and labels[0] == {"label": "calm", "score": 0.9, "from": "video:clip"}
    assert [lb["score"] for lb in labels] == sorted((lb["score"] for lb in labels), reverse=True)
    assert all(set(lb) == {"label", "score", "from"} for lb in labels)
    x, mask = M.mood_vectors([rec, None])
    assert x.shape == (2, M.MOOD_DIM) and mask.tolist() == [True, False]
    assert x[0, 0] == pytest.approx(rec["valence"]) and np.all(x[1] == 0)
