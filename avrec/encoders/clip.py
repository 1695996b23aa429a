"""``clip:<hub id|path>``: frames and text in one space (CLIPModel, or any model with
``get_image_features`` + ``get_text_features``, e.g. SigLIP).

Frames are the stored RGB thumbnails; the model's own image processor resizes, crops and
normalises them (in DataLoader workers). A video's vector is its frames' vectors pooled.
"""

from __future__ import annotations

import numpy as np

from .base import Encoder, TwoTowerText, Unit, l2n, load_two_tower, pooled, to_torch


class FramePreparer:
    """(f, S, S, 3) uint8 -> f units {pixel_values: (3, H, W) float32}. Picklable."""

    def __init__(self, image_processor):
        self.image_processor = image_processor

    def __call__(self, frames: np.ndarray) -> list[Unit]:
        if len(frames) == 0:
            return []
        px = self.image_processor(images=list(frames), return_tensors="np")["pixel_values"]
        return [{"pixel_values": np.asarray(p, dtype=np.float32)} for p in px]


class ClipEncoder(TwoTowerText, Encoder):
    def __init__(self, ref: str, *, device: str, precision: str = "fp32", max_tokens: int = 77):
        res, self.processor, self.model, self.dtype = load_two_tower(
            ref, kind="clip", tower="get_image_features", example="openai/clip-vit-base-patch32", device=device, precision=precision
        )
        cfg = self.model.config
        dim = int(getattr(cfg, "projection_dim", 0) or 0) or int(cfg.text_config.hidden_size)
        text_cfg = getattr(cfg, "text_config", None)
        self.max_tokens = int(min(max_tokens, getattr(text_cfg, "max_position_embeddings", 77) or 77))
        super().__init__(name=f"clip:{ref}", kind="clip", dim=dim, revision=res.revision, device=device,
                         modalities=("video", "text"), meta={"source": res.source, "path": str(res.path)})

    def frame_preparer(self) -> FramePreparer:
        return FramePreparer(self.processor.image_processor)

    def embed_units(self, units: list[Unit], modality: str) -> np.ndarray:
        import torch

        if modality != "video":
            return super().embed_units(units, modality)
        batch = to_torch({"pixel_values": np.stack([u["pixel_values"] for u in units])}, self.device, self.dtype)
        with torch.inference_mode():
            feats = pooled(self.model.get_image_features(**batch))
        return l2n(feats.float().cpu().numpy())
