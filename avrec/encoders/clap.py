"""``clap:<hub id|path>``: audio and text in one space (ClapModel).

The stored PCM is resampled to the feature extractor's rate and cut into windows of its
native length (10 s for laion/clap-htsat-*), each embedded, then pooled. Windows are never
longer than the extractor's maximum, so its random crop/fusion never fires and the
embedding is deterministic.

The extractor computes its log-mel spectrogram with one numpy FFT call per frame (about 40 ms
per 10 s window), which starves a GPU. The same spectrogram is computed here with one batched
``torch.stft``, after checking on the first window that it
agrees with the extractor; if it does not (another extractor), the extractor runs.
"""

from __future__ import annotations

import numpy as np

from .base import Encoder, TwoTowerText, Unit, l2n, load_two_tower, pooled, to_torch
from .pooling import resample, windows


MEL_DB_TOLERANCE = 0.05  # dB; float32 STFT rounding stays near 0.003 dB, a different recipe is off by far more


def repeat_pad(x: np.ndarray, size: int) -> np.ndarray:
    """The extractor's ``padding="repeatpad"``: whole repeats of a short window, then zeros."""
    if len(x) >= size:
        return x[:size]
    reps = np.tile(x, int(size / len(x)))
    return np.pad(reps, (0, size - len(reps)))


def log_mel_db_torch(waves, *, n_fft: int, hop_length: int, mel_filters):
    """(n, L) float32 tensor -> (n, 1, frames, n_mels) float32 tensor on the same device:
    centred (reflect) periodic-Hann STFT, power, mel filters (n_fft // 2 + 1, n_mels) tensor,
    floor 1e-10, 10 log10 — transformers' ``spectrogram`` with CLAP's settings."""
    import torch

    window = torch.hann_window(n_fft, periodic=True, device=waves.device)
    spec = torch.stft(waves, n_fft, hop_length=hop_length, window=window, center=True, pad_mode="reflect",
                      return_complex=True)  # (n, F, T)
    power = spec.real.square() + spec.imag.square()
    mel = torch.matmul(mel_filters.T, power)  # (n, M, T)
    return (10.0 * torch.log10(mel.clamp_min(1e-10))).transpose(1, 2).unsqueeze(1)


def log_mel_db(waves: np.ndarray, *, n_fft: int, hop_length: int, mel_filters: np.ndarray) -> np.ndarray:
    """(n, L) PCM -> (n, 1, frames, n_mels) float32 on the CPU (see ``log_mel_db_torch``).

    float32 throughout: a twelfth of the extractor's float64 numpy time; bins agree to a few
    thousandths of a dB (the largest gaps are in bands 80 dB below the frame's peak).
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))
    filters = torch.from_numpy(np.asarray(mel_filters, dtype=np.float32))
    return log_mel_db_torch(x, n_fft=n_fft, hop_length=hop_length, mel_filters=filters).numpy()


class ClapAudioPreparer:
    """(t,) PCM at ``sr`` -> one unit per window. Picklable.

    Units are {wave: (L,) float32, the window at the model's rate, repeat-padded} when the
    spectrogram is left to the model's device (``wave_units``, for GPUs: a batched STFT there
    costs nothing and keeps the DataLoader workers nearly idle), else {input_features, is_longer}.
    """

    def __init__(self, feature_extractor, sr: int, *, wave_units: bool = False):
        self.fe = feature_extractor
        self.sr = int(sr)
        self.target_sr = int(feature_extractor.sampling_rate)
        self.size = int(getattr(feature_extractor, "nb_max_samples", 0) or 10 * self.target_sr)
        self.wave_units = wave_units
        self._fast: bool | None = None  # does log_mel_db reproduce this extractor? (checked once)

    def _extract(self, wins: list[np.ndarray]) -> dict[str, np.ndarray]:
        return self.fe(wins, sampling_rate=self.target_sr, return_tensors="np", truncation="rand_trunc",
                       padding="repeatpad")

    def _mel(self, wins: list[np.ndarray]) -> np.ndarray:
        return log_mel_db(np.stack([repeat_pad(w, self.size) for w in wins]), n_fft=int(self.fe.fft_window_size),
                          hop_length=int(self.fe.hop_length), mel_filters=self.fe.mel_filters_slaney)

    def __call__(self, pcm: np.ndarray) -> list[Unit]:
        x = resample(pcm, self.sr, self.target_sr)
        wins = windows(x, size=self.size)
        if not wins:
            return []
        if self._fast is None:
            try:
                ref = np.asarray(self._extract(wins[:1])["input_features"], dtype=np.float32)
                self._fast = bool(ref.shape == (1, *self._mel(wins[:1]).shape[1:])
                                  and np.allclose(self._mel(wins[:1]), ref, rtol=0, atol=MEL_DB_TOLERANCE))
            except Exception:  # noqa: BLE001 - an extractor of another shape: use it as it is
                self._fast = False
        if self._fast and self.wave_units:
            return [{"wave": np.ascontiguousarray(repeat_pad(w, self.size), dtype=np.float32)} for w in wins]
        if self._fast:
            feats = {"input_features": self._mel(wins), "is_longer": np.zeros((len(wins), 1), dtype=bool)}
        else:
            feats = self._extract(wins)
        units = []
        for i in range(len(wins)):
            unit = {"input_features": np.asarray(feats["input_features"][i], dtype=np.float32)}
            if "is_longer" in feats:
                unit["is_longer"] = np.asarray(feats["is_longer"][i], dtype=bool)
            units.append(unit)
        return units


class ClapEncoder(TwoTowerText, Encoder):
    def __init__(self, ref: str, *, device: str, precision: str = "fp32", max_tokens: int = 77):
        res, self.processor, self.model, self.dtype = load_two_tower(
            ref, kind="clap", tower="get_audio_features", example="laion/clap-htsat-unfused", device=device, precision=precision
        )
        cfg = self.model.config
        dim = int(getattr(cfg, "projection_dim", 0) or 0)
        text_cfg = getattr(cfg, "text_config", None)
        # RoBERTa reserves two position slots for its padding offset
        limit = (getattr(text_cfg, "max_position_embeddings", 514) or 514) - 2
        self.max_tokens = int(max(8, min(max_tokens, limit)))
        super().__init__(name=f"clap:{ref}", kind="clap", dim=dim, revision=res.revision, device=device,
                         modalities=("audio", "text"), meta={"source": res.source, "path": str(res.path)})

    def audio_preparer(self, sr: int) -> ClapAudioPreparer:
        # on a GPU the spectrogram is computed there, batched (see embed_units)
        return ClapAudioPreparer(self.processor.feature_extractor, sr, wave_units=self.device.startswith("cuda"))

    def _mel_on_device(self, waves: np.ndarray):
        """(n, L) windows -> (n, 1, frames, n_mels) input_features on the device, model dtype."""
        import torch

        fe = self.processor.feature_extractor
        if getattr(self, "_filters", None) is None:
            self._filters = torch.from_numpy(np.asarray(fe.mel_filters_slaney, dtype=np.float32)).to(self.device)
        x = torch.from_numpy(waves).to(self.device, non_blocking=True)
        mel = log_mel_db_torch(x, n_fft=int(fe.fft_window_size), hop_length=int(fe.hop_length),
                               mel_filters=self._filters)
        return mel.to(self.dtype)

    def embed_units(self, units: list[Unit], modality: str) -> np.ndarray:
        import torch

        if modality != "audio":
            return super().embed_units(units, modality)
        with torch.inference_mode():
            waves = [i for i, u in enumerate(units) if "wave" in u]
            mels = [i for i, u in enumerate(units) if "wave" not in u]
            parts = []
            if waves:
                parts.append(self._mel_on_device(np.stack([units[i]["wave"] for i in waves])))
            if mels:  # also in a batch with both kinds of unit (not made by one preparer)
                parts.append(to_torch({"x": np.stack([units[i]["input_features"] for i in mels])},
                                      self.device, self.dtype)["x"])
            features = torch.cat(parts)[torch.from_numpy(np.argsort(waves + mels)).to(self.device)]
            # windows never exceed the extractor's length: not "longer" (no fusion), as it says
            longer = np.stack([np.asarray(u.get("is_longer", [False]), dtype=bool).reshape(1) for u in units])
            batch = {"input_features": features, "is_longer": torch.from_numpy(longer).to(self.device)}
            feats_out = pooled(self.model.get_audio_features(**batch))
        return l2n(feats_out.float().cpu().numpy())
