"""``clap:<hub id|path>``: audio and text in one space (ClapModel).

The stored PCM is resampled to the feature extractor's rate and cut into windows of its
native length (10 s for laion/clap-htsat-*), each embedded, then pooled. Windows are never
longer than the extractor's maximum, so its random crop/fusion never fires and the
embedding is deterministic.
"""

from __future__ import annotations

import numpy as np

from .base import Encoder, TwoTowerText, Unit, l2n, load_two_tower, pooled, to_torch
from .pooling import resample, windows


class ClapAudioPreparer:
    """(t,) PCM at ``sr`` -> one unit per window {input_features, is_longer}. Picklable."""

    def __init__(self, feature_extractor, sr: int):
        self.fe = feature_extractor
        self.sr = int(sr)
        self.target_sr = int(feature_extractor.sampling_rate)
        self.size = int(getattr(feature_extractor, "nb_max_samples", 0) or 10 * self.target_sr)

    def __call__(self, pcm: np.ndarray) -> list[Unit]:
        x = resample(pcm, self.sr, self.target_sr)
        wins = windows(x, size=self.size)
        if not wins:
            return []
        feats = self.fe(wins, sampling_rate=self.target_sr, return_tensors="np",
                        truncation="rand_trunc", padding="repeatpad")
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
        return ClapAudioPreparer(self.processor.feature_extractor, sr)

    def embed_units(self, units: list[Unit], modality: str) -> np.ndarray:
        import torch

        if modality != "audio":
            return super().embed_units(units, modality)
        arrays = {"input_features": np.stack([u["input_features"] for u in units])}
        if "is_longer" in units[0]:
            arrays["is_longer"] = np.stack([u["is_longer"] for u in units])
        batch = to_torch(arrays, self.device, self.dtype)
        with torch.inference_mode():
            feats = pooled(self.model.get_audio_features(**batch))
        return l2n(feats.float().cpu().numpy())
