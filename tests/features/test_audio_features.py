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


# --------------------------------------------------------------------------- equality with librosa


def _ms(x):
    """Mean and std over time (last axis), accumulated in float64 (see _librosa_reference)."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=-1), x.std(axis=-1)


def _librosa_reference(y, *, sr, n_mels):
    """The librosa implementation audio_features replaced, kept as its specification.

    Verbatim but for ``_ms``: the mean and std over frames are accumulated in float64 here,
    where the original took them in float32. Float32 accumulation is off by an ulp of the mean:
    for silence every frame's mfcc_0 is the same value, yet its float32 std came out 1.2e-4
    (n_mels=32) instead of 0. audio_features accumulates in float64, so the reference does too.
    """
    import warnings

    import librosa

    from avrec.features.audio import HOP, N_CONTRAST_BANDS, N_FFT, N_MFCC, SILENCE_DB

    y = np.asarray(y, dtype=np.float32)
    if len(y) < N_FFT:
        y = np.pad(y, (0, N_FFT - len(y)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2
        mel = librosa.feature.melspectrogram(S=S, sr=sr, n_mels=n_mels)
        logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
        logmel = np.maximum(logmel, -100.0)
        mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=N_MFCC)
        chroma = librosa.feature.chroma_stft(S=S, sr=sr, n_fft=N_FFT, tuning=0.0)
        mag = np.sqrt(S)
        nyq = sr / 2.0
        spec = np.vstack([
            librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=N_FFT) / nyq,
            librosa.feature.spectral_bandwidth(S=mag, sr=sr, n_fft=N_FFT) / nyq,
            librosa.feature.spectral_rolloff(S=mag, sr=sr, n_fft=N_FFT) / nyq,
            librosa.feature.spectral_flatness(S=mag),
            librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP)[:, : S.shape[1]],
            librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=N_FFT, n_bands=N_CONTRAST_BANDS) / 100.0,
        ])
        onset = librosa.onset.onset_strength(S=logmel, sr=sr, hop_length=HOP)
        tempo = librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=HOP)
        rms = librosa.feature.rms(S=mag, frame_length=N_FFT, hop_length=HOP)[0]
    rms_db = 20.0 * np.log10(np.maximum(rms, 1e-5))
    p10, p50, p95 = np.percentile(rms_db, [10, 50, 95])
    loud = [rms_db.mean(), rms_db.std(), p10, p50, p95, rms_db.max(), p95 - p10, float((rms_db < SILENCE_DB).mean())]
    parts = [*_ms(logmel), *_ms(mfcc), *_ms(chroma)]
    sm, ss = _ms(spec)
    parts += [sm, ss, np.array([float(np.atleast_1d(tempo)[0]), onset.mean(), onset.std()]), np.array(loud)]
    out = np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _chord_with_gaps():
    t = np.arange(4 * SR) / SR
    y = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)).astype(np.float32)  # C major
    y[SR : SR * 3 // 2] = 0.0
    y[3 * SR :] = 0.0
    return y


def _clicks_120bpm(seconds=8):
    y = np.zeros(SR * seconds, np.float32)
    for s in range(0, len(y), SR // 2):
        y[s : s + 200] = np.hanning(200) * 0.8
    return y


_RNG = np.random.default_rng(7)
SIGNALS = {
    "white_noise": (_RNG.standard_normal(SR * 5) * 0.1).astype(np.float32),
    "tone": _tone(440),
    "high_quiet_tone": _tone(3000, amp=0.001),  # near-silent mel bands: float64 STFT matters
    "chord_with_gaps": _chord_with_gaps(),
    "clicks_120bpm": _clicks_120bpm(),
    "silence": np.zeros(SR * 2, np.float32),
    "short": (_RNG.standard_normal(700) * 0.1).astype(np.float32),
    "very_short_zeros": np.zeros(10, np.float32),
}
# float32 round-off (librosa's float32 FFT rounding, mel/chroma sums, DCT, flatness) leaves
# about 1e-6 relative; the tolerance keeps a tenfold margin for other BLAS / SIMD paths
RTOL = ATOL = 1e-5


def _assert_matches_librosa(y, sr, n_mels):
    names = audio_feature_names(n_mels=n_mels)
    got = audio_features(y, sr=sr, n_mels=n_mels)
    want = _librosa_reference(y, sr=sr, n_mels=n_mels)
    assert got.shape == want.shape and got.dtype == np.float32
    tempo = names.index("tempo_bpm")
    assert got[tempo] == want[tempo]
    bad = ~np.isclose(got, want, rtol=RTOL, atol=ATOL)
    detail = [(names[i], float(got[i]), float(want[i])) for i in np.flatnonzero(bad)[:10]]
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=str(detail))


@pytest.mark.parametrize("n_mels", [32, 64])
@pytest.mark.parametrize("name", list(SIGNALS))
def test_matches_librosa(name, n_mels):
    pytest.importorskip("librosa")
    _assert_matches_librosa(SIGNALS[name], SR, n_mels)


def test_matches_librosa_on_real_audio(shared_media):
    pytest.importorskip("librosa")
    sf = pytest.importorskip("soundfile")
    folder = shared_media / "audio"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    files = sorted(folder.rglob("*.ogg"))[:9] + sorted(folder.rglob("*.wav"))[:3]
    if not files:
        pytest.skip(f"no .ogg / .wav files under {folder}")
    for path in files:
        info = sf.info(str(path))
        y, file_sr = sf.read(str(path), dtype="float32", always_2d=True, frames=30 * info.samplerate)
        y = y.mean(axis=1)
        sr = file_sr if file_sr >= 16000 else 16000  # lower rates: the samples as they are
        try:
            _assert_matches_librosa(y, sr, 64)
        except AssertionError as e:
            raise AssertionError(f"{path.name}: {e}") from None


def test_import_pulls_in_neither_scipy_nor_librosa_nor_numba():
    import subprocess
    import sys

    code = ("import sys, avrec.features.audio; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'librosa', 'numba'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_non_finite_input_is_refused():
    y = _tone(440)
    y[100] = np.nan
    with pytest.raises(ValueError):
        audio_features(y, sr=SR, n_mels=32)
