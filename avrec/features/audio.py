"""Builtin audio features: fixed-length statistics of a mono signal (librosa).

One vector per item, its layout given by :func:`audio_feature_names` (recorded in the
features manifest): log-mel mean/std per band, MFCC mean/std, chroma mean/std, spectral
shape (centroid, bandwidth, roll-off, flatness, zero-crossing rate, contrast) mean/std,
rhythm (tempo, onset strength) and loudness statistics (RMS in dBFS, silence fraction).
"""

from __future__ import annotations

import warnings

import numpy as np

N_FFT = 1024
HOP = 512
N_MFCC = 20
N_CONTRAST_BANDS = 4  # 5 rows; 4 octaves above 200 Hz stay under 8 kHz Nyquist at 16 kHz
_SPECTRAL = ("centroid", "bandwidth", "rolloff", "flatness", "zcr")
_LOUDNESS = ("rms_db_mean", "rms_db_std", "rms_db_p10", "rms_db_p50", "rms_db_p95", "rms_db_max",
             "dynamic_range_db", "silence_fraction")
SILENCE_DB = -50.0


def audio_feature_names(*, n_mels: int) -> list[str]:
    names = [f"logmel_mean_{i}" for i in range(n_mels)] + [f"logmel_std_{i}" for i in range(n_mels)]
    names += [f"mfcc_mean_{i}" for i in range(N_MFCC)] + [f"mfcc_std_{i}" for i in range(N_MFCC)]
    names += [f"chroma_mean_{i}" for i in range(12)] + [f"chroma_std_{i}" for i in range(12)]
    spec = list(_SPECTRAL) + [f"contrast_{i}" for i in range(N_CONTRAST_BANDS + 1)]
    names += [f"{s}_mean" for s in spec] + [f"{s}_std" for s in spec]
    names += ["tempo_bpm", "onset_mean", "onset_std"]
    names += list(_LOUDNESS)
    return names


def _ms(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over time (last axis)."""
    return x.mean(axis=-1), x.std(axis=-1)


def audio_features(y: np.ndarray, *, sr: int, n_mels: int) -> np.ndarray:
    """(len(audio_feature_names(n_mels)),) float32 statistics of ``y`` (t,) float32 mono.

    Finite for any input, silence included; the caller skips empty signals.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if len(y) < N_FFT:  # shorter than one window: pad so every statistic is defined
        y = np.pad(y, (0, N_FFT - len(y)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns on very short or silent input
        S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2  # (1 + N_FFT/2, frames) power
        mel = librosa.feature.melspectrogram(S=S, sr=sr, n_mels=n_mels)
        logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
        logmel = np.maximum(logmel, -100.0)  # absolute dB floor, so silence is finite and level-aware
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
    rms_db = 20.0 * np.log10(np.maximum(rms, 1e-5))  # dBFS, floor -100
    p10, p50, p95 = np.percentile(rms_db, [10, 50, 95])
    loud = [rms_db.mean(), rms_db.std(), p10, p50, p95, rms_db.max(), p95 - p10, float((rms_db < SILENCE_DB).mean())]
    parts = [*_ms(logmel), *_ms(mfcc), *_ms(chroma)]
    sm, ss = _ms(spec)
    parts += [sm, ss, np.array([float(np.atleast_1d(tempo)[0]), onset.mean(), onset.std()]), np.array(loud)]
    out = np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
