import numpy as np
import pytest

from avrec.features.audio import audio_feature_names, audio_features

SR = 16000


def _tone(freq, seconds=3.0, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _get(vec, name, n_mels=32):
    return vec[audio_feature_names(n_mels=n_mels).index(name)]


def test_fixed_dimension_matching_the_names():
    for n_mels in (32, 64):
        names = audio_feature_names(n_mels=n_mels)
        assert len(names) == len(set(names))
        for y in (_tone(440), np.zeros(10, np.float32), np.zeros(SR * 2, np.float32)):
            v = audio_features(y, sr=SR, n_mels=n_mels)
            assert v.shape == (len(names),) and v.dtype == np.float32 and np.isfinite(v).all()


def test_chroma_finds_the_pitch_class():
    a = audio_features(_tone(440), sr=SR, n_mels=32)  # A4
    c = audio_features(_tone(261.63), sr=SR, n_mels=32)  # C4
    chroma = [f"chroma_mean_{i}" for i in range(12)]
    names = audio_feature_names(n_mels=32)
    idx = [names.index(n) for n in chroma]
    assert int(np.argmax(a[idx])) == 9 and int(np.argmax(c[idx])) == 0  # librosa's C-based chroma


def test_loudness_and_silence():
    quiet, loud = audio_features(_tone(440, amp=0.01), sr=SR, n_mels=32), audio_features(_tone(440, amp=0.5), sr=SR, n_mels=32)
    assert _get(loud, "rms_db_mean") - _get(quiet, "rms_db_mean") == pytest.approx(20 * np.log10(50), abs=1.0)
    silence = audio_features(np.zeros(SR * 2, np.float32), sr=SR, n_mels=32)
    assert _get(silence, "silence_fraction") == 1.0 and _get(loud, "silence_fraction") == 0.0


def test_brighter_sound_has_higher_centroid_and_clicks_have_a_tempo():
    low, high = audio_features(_tone(200), sr=SR, n_mels=32), audio_features(_tone(3000), sr=SR, n_mels=32)
    assert _get(high, "centroid_mean") > _get(low, "centroid_mean")
    clicks = np.zeros(SR * 8, np.float32)
    period = int(SR * 0.5)  # 120 beats per minute
    for s in range(0, len(clicks), period):
        clicks[s : s + 200] = np.hanning(200) * 0.8
    assert _get(audio_features(clicks, sr=SR, n_mels=32), "tempo_bpm") == pytest.approx(120, rel=0.05)
