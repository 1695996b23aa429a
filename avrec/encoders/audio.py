"""``audio:<hub id|path>``: an audio transformer (AST, wav2vec2, HuBERT, ...) through
``AutoModel`` and its ``AutoFeatureExtractor``; one vector per window, pooled.

A window's vector is the model's ``pooler_output`` when it has one (AST: the mean of its
[CLS] and distillation tokens, what its classifier reads), otherwise the mean of the last
hidden states over the valid (unpadded) time steps.
"""

from __future__ import annotations

import numpy as np

from .base import Encoder, Unit, collate_units, l2n, load_failed, quiet_transformers, to_torch, torch_dtype
from .pooling import resample, windows
from .resolve import resolve_model

DEFAULT_WINDOW_S = 10.0


def native_window_seconds(fe) -> float:
    """The window a feature extractor was trained on (AST: max_length frames of 10 ms)."""
    if getattr(fe, "max_length", None) and type(fe).__name__.startswith("AST"):
        return float(fe.max_length) * 0.01 + 0.015  # 1024 frames -> 10.24 s
    if getattr(fe, "chunk_length", None):
        return float(fe.chunk_length)
    return DEFAULT_WINDOW_S


class AudioPreparer:
    """(t,) PCM at ``sr`` -> one unit per window (the extractor's outputs). Picklable."""

    def __init__(self, feature_extractor, sr: int, window_s: float):
        self.fe = feature_extractor
        self.sr = int(sr)
        self.target_sr = int(feature_extractor.sampling_rate)
        self.size = int(round(window_s * self.target_sr))

    def __call__(self, pcm: np.ndarray) -> list[Unit]:
        x = resample(pcm, self.sr, self.target_sr)
        units = []
        for w in windows(x, size=self.size):
            feats = self.fe(w, sampling_rate=self.target_sr, return_tensors="np")
            unit = {k: np.asarray(v[0]) for k, v in feats.items() if k != "attention_mask"}
            units.append(unit)
        return units


class AudioEncoder(Encoder):
    def __init__(self, ref: str, *, device: str, precision: str = "fp32"):
        import torch  # noqa: F401
        from transformers import AutoFeatureExtractor, AutoModel

        quiet_transformers()
        res = resolve_model(ref, kind="audio")
        try:
            self.fe = AutoFeatureExtractor.from_pretrained(str(res.path), trust_remote_code=False)
            self.model = AutoModel.from_pretrained(str(res.path), trust_remote_code=False)
        except Exception as e:  # noqa: BLE001
            raise load_failed(ref, "audio", e) from None
        self.dtype = torch_dtype(precision, device)
        self.model.to(device=device, dtype=self.dtype).eval()
        self.window_s = native_window_seconds(self.fe)
        dim = int(getattr(self.model.config, "hidden_size", 0) or 0)
        super().__init__(name=f"audio:{ref}", kind="audio", dim=dim, revision=res.revision, device=device,
                         modalities=("audio",), meta={"source": res.source, "path": str(res.path),
                                                      "window_s": self.window_s})

    def audio_preparer(self, sr: int) -> AudioPreparer:
        return AudioPreparer(self.fe, sr, self.window_s)

    def embed_units(self, units: list[Unit], modality: str) -> np.ndarray:
        import torch

        if modality != "audio":
            return super().embed_units(units, modality)
        arrays = collate_units(units)
        mask = arrays.pop("attention_mask", None)
        batch = to_torch(arrays, self.device, self.dtype)
        if mask is not None and "input_values" in batch:  # raw-waveform models (wav2vec2)
            batch["attention_mask"] = torch.from_numpy(mask).to(self.device)
        with torch.inference_mode():
            out = self.model(**batch)
            vec = getattr(out, "pooler_output", None)
            if vec is None:
                hidden = out.last_hidden_state.float()  # (B, T', d)
                if mask is not None and hasattr(self.model, "_get_feature_vector_attention_mask"):
                    m = self.model._get_feature_vector_attention_mask(hidden.shape[1], batch["attention_mask"])
                    m = m.unsqueeze(-1).float()
                    vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
                else:
                    vec = hidden.mean(1)
        return l2n(vec.float().cpu().numpy())
