"""``clip:<hub id|path>``: frames and text in one space (CLIPModel, or any model with
``get_image_features`` + ``get_text_features``, e.g. SigLIP).

Frames are the stored RGB thumbnails. When they are already at the model's input size (extract
stores them so) the processor's resize and crop are no-ops, so the frames travel as uint8 and
are scaled and normalised on the model's device: a quarter of the bytes through the DataLoader
and almost no CPU work per frame, which is what keeps a GPU fed. Whether that holds is checked
against the processor itself on the first frame of each size; otherwise the processor runs in
the DataLoader workers. A video's vector is its frames' vectors pooled.
"""

from __future__ import annotations

import numpy as np

from .base import Encoder, TwoTowerText, Unit, l2n, load_two_tower, pooled, to_torch


def normaliser(image_processor) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, mean (3,), std (3,)) such that pixel_values = (uint8 * scale - mean) / std."""
    scale = float(image_processor.rescale_factor) if getattr(image_processor, "do_rescale", True) else 1.0
    if getattr(image_processor, "do_normalize", True):
        mean = np.asarray(image_processor.image_mean, dtype=np.float32).reshape(3)
        std = np.asarray(image_processor.image_std, dtype=np.float32).reshape(3)
    else:
        mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    return scale, mean, std


def normalise_np(pixels: np.ndarray, scale: float, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n, 3, H, W) float32 pixel_values."""
    x = (pixels.astype(np.float32) * np.float32(scale) - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class FramePreparer:
    """(f, S, S, 3) uint8 -> f units: {pixels: (S, S, 3) uint8} where the processor would only
    rescale and normalise frames of that size, else {pixel_values: (3, H, W) float32}. Picklable."""

    def __init__(self, image_processor):
        self.image_processor = image_processor
        self._plain: dict[tuple[int, ...], bool] = {}  # frame shape -> processor is rescale+normalise

    def _is_plain(self, frame: np.ndarray) -> bool:
        if frame.shape not in self._plain:
            try:
                ref = self.image_processor(images=[frame], return_tensors="np")["pixel_values"]
                ok = ref.shape[-2:] == frame.shape[:2] and np.allclose(
                    normalise_np(frame[None], *normaliser(self.image_processor)), ref, atol=1e-4)
            except Exception:  # noqa: BLE001 - an unusual processor: always run it
                ok = False
            self._plain[frame.shape] = bool(ok)
        return self._plain[frame.shape]

    def __call__(self, frames: np.ndarray) -> list[Unit]:
        if len(frames) == 0:
            return []
        if frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3 and self._is_plain(frames[0]):
            return [{"pixels": np.ascontiguousarray(f)} for f in frames]
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
        self._norm = normaliser(self.processor.image_processor)
        self._norm_t = None  # the same on the device, made on first use

    def frame_preparer(self) -> FramePreparer:
        return FramePreparer(self.processor.image_processor)

    def embed_units(self, units: list[Unit], modality: str) -> np.ndarray:
        import torch

        if modality != "video":
            return super().embed_units(units, modality)
        with torch.inference_mode():
            if all("pixels" in u for u in units):
                pixel_values = self._normalise_on_device(np.stack([u["pixels"] for u in units]))
            else:
                px = np.stack([u["pixel_values"] if "pixel_values" in u else normalise_np(u["pixels"][None], *self._norm)[0]
                               for u in units])
                pixel_values = to_torch({"pixel_values": px}, self.device, self.dtype)["pixel_values"]
            feats = pooled(self.model.get_image_features(pixel_values=pixel_values))
        return l2n(feats.float().cpu().numpy())

    def _normalise_on_device(self, pixels: np.ndarray):
        """(n, H, W, 3) uint8 -> (n, 3, H, W) pixel_values on the device, in the model's dtype."""
        import torch

        if self._norm_t is None:
            scale, mean, std = self._norm
            self._norm_t = (scale, torch.from_numpy(mean).to(self.device).view(1, 3, 1, 1),
                            torch.from_numpy(std).to(self.device).view(1, 3, 1, 1))
        scale, mean, std = self._norm_t
        x = torch.from_numpy(pixels).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        return ((x * scale - mean) / std).to(self.dtype).contiguous()
