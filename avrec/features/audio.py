"""Builtin audio features: fixed-length statistics of a mono signal (numpy only).

One vector per item, its layout given by :func:`audio_feature_names` (recorded in the
features manifest): log-mel mean/std per band, MFCC mean/std, chroma mean/std, spectral
shape (centroid, bandwidth, roll-off, flatness, zero-crossing rate, contrast) mean/std,
rhythm (tempo, onset strength) and loudness statistics (RMS in dBFS, silence fraction).

The values are librosa's (0.11): ``stft``, ``filters.mel`` / ``melspectrogram``,
``power_to_db``, ``mfcc``, ``chroma_stft``, ``spectral_centroid`` / ``_bandwidth`` /
``_rolloff`` / ``_flatness`` / ``_contrast``, ``zero_crossing_rate``, ``onset.onset_strength``,
``feature.tempo`` and ``rms``, with the parameters used here, reimplemented with numpy alone
(``numpy.fft``), following librosa's source step by step. The reason is import cost: librosa's
feature and onset modules pull in scipy.signal, scipy.stats and numba, about 2 s per process,
more than extracting a whole minute of audio; this module imports nothing but numpy (check with
``python -X importtime -c "import avrec.features.audio"``). It is faster per call too: one pass
over blocks of STFT frames computes every per-frame spectral feature while the block is in
cache, the filterbanks are built once per (sr, n_fft, n_mels), and float32 is kept where
librosa computes in float32. ``tests/features/test_audio_features.py`` checks the vectors
against librosa itself, entry by entry.
"""

from __future__ import annotations

import functools

import numpy as np

N_FFT = 1024
HOP = 512
N_MFCC = 20
N_CONTRAST_BANDS = 4  # 5 rows; 4 octaves above 200 Hz stay under 8 kHz Nyquist at 16 kHz
_SPECTRAL = ("centroid", "bandwidth", "rolloff", "flatness", "zcr")
_LOUDNESS = ("rms_db_mean", "rms_db_std", "rms_db_p10", "rms_db_p50", "rms_db_p95", "rms_db_max",
             "dynamic_range_db", "silence_fraction")
SILENCE_DB = -50.0

_TINY32 = np.finfo(np.float32).tiny  # librosa.util.normalize's threshold for float32 input
_TINY64 = np.finfo(np.float64).tiny
_ZC_THRESHOLD = np.float32(1e-10)  # librosa.zero_crossings' default, compared in the signal's dtype
_BLOCK = 128  # frames per FFT block


def audio_feature_names(*, n_mels: int) -> list[str]:
    names = [f"logmel_mean_{i}" for i in range(n_mels)] + [f"logmel_std_{i}" for i in range(n_mels)]
    names += [f"mfcc_mean_{i}" for i in range(N_MFCC)] + [f"mfcc_std_{i}" for i in range(N_MFCC)]
    names += [f"chroma_mean_{i}" for i in range(12)] + [f"chroma_std_{i}" for i in range(12)]
    spec = list(_SPECTRAL) + [f"contrast_{i}" for i in range(N_CONTRAST_BANDS + 1)]
    names += [f"{s}_mean" for s in spec] + [f"{s}_std" for s in spec]
    names += ["tempo_bpm", "onset_mean", "onset_std"]
    names += list(_LOUDNESS)
    return names


# ----------------------------------------------------------------------------- filterbanks
# Each follows the librosa / scipy function named in its docstring operation for operation, so
# the float64 -> float32 roundings land where they land there.


@functools.lru_cache(maxsize=None)
def _hann(n: int) -> np.ndarray:
    """scipy.signal.get_window("hann", n, fftbins=True): periodic Hann, float64."""
    fac = np.linspace(-np.pi, np.pi, n + 1)
    w = 0.5 + 0.5 * np.cos(fac)
    w = w[:-1]
    w.flags.writeable = False
    return w


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """librosa.hz_to_mel(htk=False) (Slaney)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mels = f / f_sp
    log_t = f >= min_log_hz
    mels[log_t] = min_log_mel + np.log(f[log_t] / min_log_hz) / logstep
    return mels


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    """librosa.mel_to_hz(htk=False) (Slaney)."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    freqs = f_sp * m
    log_t = m >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (m[log_t] - min_log_mel))
    return freqs


@functools.lru_cache(maxsize=None)
def _mel_basis_t(sr: float, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels) (fmin 0, fmax sr/2, Slaney scale and norm, float32),
    transposed: (1 + n_fft // 2, n_mels)."""
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    min_mel, max_mel = _hz_to_mel(np.array([0.0, float(sr) / 2]))
    mel_f = _mel_to_hz(np.linspace(min_mel, max_mel, n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]  # Slaney: ~constant energy
    out = np.ascontiguousarray(weights.T)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=None)
def _chroma_basis_t(sr: float, n_fft: int) -> np.ndarray:
    """librosa.filters.chroma(sr, n_fft, n_chroma=12, tuning=0) (float32), transposed:
    (1 + n_fft // 2, 12)."""
    n_chroma, ctroct, octwidth = 12, 5.0, 2.0
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * np.log2(frequencies / (440.0 / 16))  # hz_to_octs, A440 at tuning 0
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    D = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    D = np.remainder(D + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * D / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    length = np.sum(np.abs(wts) ** 2, axis=0) ** 0.5  # util.normalize(norm=2, axis=0)
    length[length < _TINY64] = 1.0
    wts = wts / length
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - ctroct) / octwidth) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)  # base_c
    out = np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)].astype(np.float32).T)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=None)
def _dct_t(n_mels: int, n_mfcc: int) -> np.ndarray:
    """Orthonormal DCT-II (scipy.fft.dct(type=2, norm="ortho")), first n_mfcc rows,
    transposed: (n_mels, n_mfcc) float64."""
    n = np.arange(n_mels)
    k = np.arange(n_mfcc)[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    out = np.ascontiguousarray(basis.T)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=None)
def _magnitude_weights(sr: float, n_fft: int) -> np.ndarray:
    """Powers 0..2 of librosa.fft_frequencies as one (1 + n_fft // 2, 3) float64 matrix: the
    spectral moments of a magnitude spectrum in one product."""
    f = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    out = np.column_stack([np.ones_like(f), f, f * f])
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=None)
def _contrast_bands(sr: float, n_fft: int, n_bands: int, fmin: float = 200.0,
                    quantile: float = 0.02) -> tuple[tuple[int, int, int], ...]:
    """librosa.feature.spectral_contrast's sub-bands as (first bin, end bin, quantile count)."""
    freq = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    if np.any(octa[:-1] >= 0.5 * sr):
        raise ValueError("Frequency band exceeds Nyquist. Reduce either fmin or n_bands.")
    bands = []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        current_band = np.logical_and(freq >= f_low, freq <= f_high)
        idx = np.flatnonzero(current_band)
        if k > 0:
            current_band[idx[0] - 1] = True
        if k == n_bands:
            current_band[idx[-1] + 1 :] = True
        rows = np.flatnonzero(current_band)  # a contiguous run of bins
        if k < n_bands:
            rows = rows[:-1]
        q = int(np.maximum(np.rint(quantile * np.sum(current_band)), 1))
        bands.append((int(rows[0]), int(rows[-1]) + 1, q))
    return tuple(bands)


@functools.lru_cache(maxsize=None)
def _tempo_setup(sr: float, hop: int, ac_size: float = 8.0, start_bpm: float = 120.0,
                 std_bpm: float = 1.0, max_tempo: float = 320.0):
    """librosa.feature.tempo's tempogram window length, bpm grid and log prior, plus an FFT size
    long enough for the linear autocorrelation of a window (librosa's 5-smooth one gives the
    same values up to round-off; a power of two is faster with numpy.fft)."""
    win_length = int(int(ac_size * sr) // hop)  # time_to_frames(ac_size)
    n_pad = 1 << (2 * win_length - 2).bit_length()  # >= 2 * win_length - 1
    bpms = np.zeros(win_length)
    bpms[0] = np.inf
    bpms[1:] = 60.0 * sr / (hop * np.arange(1.0, win_length))
    with np.errstate(invalid="ignore"):
        logprior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2
    logprior[: int(np.argmax(bpms < max_tempo))] = -np.inf
    return win_length, n_pad, bpms, logprior


# ----------------------------------------------------------------------------- features


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over time (axis 0, frames), accumulated in float64."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=0), x.std(axis=0)


@functools.lru_cache(maxsize=None)
def _power_weights(sr: float, n_fft: int, n_mels: int) -> np.ndarray:
    """Everything linear in the power spectrum, as one (1 + n_fft // 2, n_mels + 13) float32
    matrix: the mel filterbank, the chroma filterbank and rms's Parseval weights (a sum with DC
    and Nyquist at half weight, times 2 / n_fft**2)."""
    rms_w = np.full(1 + n_fft // 2, 2.0 / n_fft**2)
    rms_w[0] *= 0.5
    rms_w[-1] *= 0.5
    w = np.column_stack([_mel_basis_t(sr, n_fft, n_mels), _chroma_basis_t(sr, n_fft), rms_w]).astype(np.float32)
    w.flags.writeable = False
    return w


def _spectral_frames(y: np.ndarray, sr: float, n_mels: int) -> dict[str, np.ndarray]:
    """Per-frame spectral features of ``y`` in one pass over blocks of STFT frames.

    The spectrum is librosa.stft(y, n_fft=N_FFT, hop_length=HOP): centred with zero padding,
    periodic Hann window, 1 + len(y) // HOP frames. As there, the windowed frames and the FFT
    are float64 (in float32, round-off some 140 dB under the frame's peak swamps the quietest
    bins: spectral contrast's valleys of a tone move by 10 %, near-silent mel bands by 0.1 dB)
    and the spectrum is rounded to complex64, whose modulus is the magnitude ``mag`` and its
    square the power ``S``. Each block's features are taken while it is in cache; the
    spectrogram itself is never stored whole.

    Returns time-major arrays: ``mel`` (frames, n_mels) melspectrogram (power, float32),
    ``chroma`` (frames, 12) chroma_stft before normalisation (float32), ``power`` (frames,)
    rms**2 (float32), ``moments`` (frames, 3) sums of mag, f * mag and f**2 * mag (float64),
    ``rolloff`` (frames,) 85 % roll-off frequency, ``flatness`` (frames,), ``valley`` / ``peak``
    (frames, N_CONTRAST_BANDS + 1) spectral contrast's band quantile means (magnitude).
    """
    pad = N_FFT // 2
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, (pad, pad)), N_FFT)[::HOP]
    n, n_bins = frames.shape[0], 1 + N_FFT // 2
    window = _hann(N_FFT)
    weights = _power_weights(sr, N_FFT, n_mels)
    mag_w = _magnitude_weights(sr, N_FFT)
    freqs = mag_w[:, 1]
    bands = _contrast_bands(sr, N_FFT, N_CONTRAST_BANDS)
    # the single-quantile contrast bands: min / max over their bins with one reduceat each
    single = [k for k, (_, _, q) in enumerate(bands) if q == 1]
    edges = [e for k in single for e in bands[k][:2]]
    if edges and edges[-1] == n_bins:
        edges.pop()  # the last segment runs to the end anyway
    linear = np.empty((n, weights.shape[1]), np.float32)
    out = {"moments": np.empty((n, 3)), "rolloff": np.empty(n), "flatness": np.empty(n, np.float32),
           "valley": np.empty((n, len(bands))), "peak": np.empty((n, len(bands)))}
    for start in range(0, n, _BLOCK):
        sl = slice(start, min(start + _BLOCK, n))
        spec = np.fft.rfft(frames[sl] * window, axis=-1).astype(np.complex64)
        mag = np.abs(spec)
        S = mag * mag
        np.matmul(S, weights, out=linear[sl])  # melspectrogram, chroma_stft (unnormalised), rms**2
        # float64: the bandwidth, sqrt(E[f^2] - E[f]^2), must not cancel
        lin = mag @ mag_w
        out["moments"][sl] = lin
        # spectral_rolloff(S=mag, roll_percent=0.85): the first bin whose float32 running sum
        # reaches 0.85 of the frame's total
        cum = np.cumsum(mag, axis=1)
        out["rolloff"][sl] = freqs[np.count_nonzero(cum < cum[:, -1:] * np.float32(0.85), axis=1)]
        # spectral_flatness(S=mag, power=2): geometric over arithmetic mean of max(1e-10, mag**2)
        floored = np.maximum(np.float32(1e-10), S)
        out["flatness"][sl] = np.exp(np.log(floored).mean(axis=1)) / floored.mean(axis=1)
        # spectral_contrast(S=mag): mean of the q smallest / largest magnitudes per sub-band
        if single:
            out["valley"][sl, single] = np.minimum.reduceat(mag, edges, axis=1)[:, ::2]
            out["peak"][sl, single] = np.maximum.reduceat(mag, edges, axis=1)[:, ::2]
        for k, (lo, hi, q) in enumerate(bands):
            if q > 1:  # (numpy's vectorised sort beats partition here)
                srt = np.sort(mag[:, lo:hi], axis=1)
                out["valley"][sl, k], out["peak"][sl, k] = srt[:, :q].mean(axis=1), srt[:, -q:].mean(axis=1)
    out["mel"], out["chroma"], out["power"] = linear[:, :n_mels], linear[:, n_mels:-1], linear[:, -1]
    return out


def _zero_crossing_rate(y: np.ndarray, n_frames: int) -> np.ndarray:
    """librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP) (centred with
    edge padding; samples within the 1e-10 threshold count as +0), first n_frames frames:
    (n_frames,) float64."""
    neg = y < -_ZC_THRESHOLD  # the sign bit after thresholding
    # cross[i]: sign change between y[i] and y[i + 1]; edge padding adds none. Frame k looks at
    # the 1023 pairs starting at y[(k - 1) * HOP], i.e. the HOP-long blocks k - 1 and k but for
    # the last pair of block k.
    cross = np.zeros((n_frames + 1) * HOP, dtype=np.uint8)
    cross[HOP : HOP + len(y) - 1] = neg[1:] != neg[:-1]
    blocks = np.add.reduce(cross.reshape(n_frames + 1, HOP), axis=1, dtype=np.int32)
    counts = blocks[:-1] + blocks[1:] - cross[2 * HOP - 1 :: HOP]
    return counts / N_FFT


def _power_to_db_top80(x: np.ndarray) -> np.ndarray:
    """librosa.power_to_db(x) with its defaults: ref 1, amin 1e-10, top_db 80 (over all of x)."""
    db = 10.0 * np.log10(np.maximum(1e-10, x))
    return np.maximum(db, db.max() - 80.0)


def _tempo(onset: np.ndarray, sr: float) -> float:
    """librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=HOP).

    The tempogram is the autocorrelation of Hann-windowed, linear-ramp-centred frames of the
    onset envelope (8 s), each normalised by its largest magnitude -- the lag-0 value, the
    frame's energy -- and averaged over time; the autocorrelation being linear in the power
    spectrum, the average is taken on the frames' power spectra, so one inverse FFT remains.
    The best period maximises log1p(1e6 * tempogram) plus the log-normal prior.
    """
    win_length, n_pad, bpms, logprior = _tempo_setup(float(sr), HOP)
    n = onset.shape[0]
    env = np.pad(onset, win_length // 2, mode="linear_ramp", end_values=(0, 0))
    frames = np.lib.stride_tricks.sliding_window_view(env, win_length)[:n]
    window = _hann(win_length)
    power = np.zeros(n_pad // 2 + 1)
    for start in range(0, n, _BLOCK):
        x = frames[start : start + _BLOCK] * window
        energy = np.einsum("ij,ij->i", x, x)  # lag-0 autocorrelation
        energy[energy < _TINY64] = 1.0  # normalize()'s threshold: an all-zero frame stays zero
        spec = np.fft.rfft(x, n=n_pad, axis=1)
        power += (1.0 / energy) @ (spec.real**2 + spec.imag**2)
    tg = np.fft.irfft(power / n, n=n_pad)[:win_length]
    return float(bpms[int(np.argmax(np.log1p(1e6 * tg) + logprior))])


def audio_features(y: np.ndarray, *, sr: int, n_mels: int) -> np.ndarray:
    """(len(audio_feature_names(n_mels)),) float32 statistics of ``y`` (t,) float32 mono.

    Finite for any finite input, silence included; the caller skips empty signals. Raises
    ValueError if ``y`` holds nan or inf, as librosa did.
    """
    y = np.asarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise ValueError("Audio buffer is not finite everywhere")
    if len(y) < N_FFT:  # shorter than one window: pad so every statistic is defined
        y = np.pad(y, (0, N_FFT - len(y)))
    sr = float(sr)
    with np.errstate(all="ignore"):  # overflow in extreme input: non-finite values are zeroed at the end
        fr = _spectral_frames(y, sr, n_mels)
        n_frames = fr["mel"].shape[0]

        logmel = fr["mel"]
        np.log10(np.maximum(logmel, np.float32(1e-10)), out=logmel)  # power_to_db(ref=1, amin=1e-10)
        logmel *= np.float32(10.0)
        np.maximum(logmel, np.float32(-100.0), out=logmel)  # absolute dB floor: silence is finite, level-aware
        mfcc = logmel.astype(np.float64) @ _dct_t(n_mels, N_MFCC)

        chroma = fr["chroma"]  # normalize(norm=inf) per frame
        length = np.abs(chroma).max(axis=1).astype(np.float64)
        length[length < _TINY32] = 1.0
        chroma = chroma / length[:, None]

        m0, m1, m2 = fr["moments"].T
        total = np.where(m0 < _TINY32, 1.0, m0)  # normalize(norm=1)'s threshold
        centroid = m1 / total
        bandwidth = np.sqrt(np.maximum((m2 - 2.0 * centroid * m1 + centroid**2 * m0) / total, 0.0))
        contrast = _power_to_db_top80(fr["peak"]) - _power_to_db_top80(fr["valley"])
        nyq = sr / 2.0
        spec = np.column_stack([centroid / nyq, bandwidth / nyq, fr["rolloff"] / nyq, fr["flatness"],
                                _zero_crossing_rate(y, n_frames), contrast / 100.0])

        # onset strength (lag 1, max_size 1, mean over mel bands, centred as for n_fft=2048) and tempo
        onset = np.zeros(n_frames, dtype=np.float32)
        if n_frames > 1:
            flux = np.maximum(np.float32(0.0), logmel[1:] - logmel[:-1]).mean(axis=1)
            pad = 1 + 2048 // (2 * HOP)
            onset[pad:] = flux[: max(n_frames - pad, 0)]
        tempo = _tempo(onset, sr)

        rms_db = 20.0 * np.log10(np.maximum(np.sqrt(fr["power"]), np.float32(1e-5)))  # dBFS, floor -100
    p10, p50, p95 = np.percentile(rms_db, [10, 50, 95])
    loud = [rms_db.mean(), rms_db.std(), p10, p50, p95, rms_db.max(), p95 - p10, float((rms_db < SILENCE_DB).mean())]
    parts = [*_stats(logmel), *_stats(mfcc), *_stats(chroma)]
    sm, ss = _stats(spec)
    parts += [sm, ss, np.array([tempo, onset.mean(), onset.std()]), np.array(loud)]
    out = np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
