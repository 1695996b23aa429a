"""What every encoder offers, and helpers shared by the transformer-backed ones.

An encoder embeds some of the three modalities. Media goes through two steps so that the
CPU work (resizing frames, computing spectrograms) can run in DataLoader workers while the
model runs in the main process:

- ``prepare_frames(frames)`` / ``prepare_audio(pcm, sr)``: numpy in, a list of *units*
  (dicts of numpy arrays, one per frame or audio window) out; picklable, no model.
- ``embed_units(units, modality)``: a batch of units -> (B, d) float32.

Text is small, so ``encode_text(texts)`` does both at once and returns (n, d) L2-normalised rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import ModelError
from .fusion import l2n  # noqa: F401 - the encoders normalise with it

Unit = dict[str, np.ndarray]


@dataclass
class Encoder:
    name: str  # registry name, e.g. "clip:openai/clip-vit-base-patch32"
    kind: str  # registry prefix: builtin, text, clip, clap, audio, asr, npy
    dim: int = 0
    revision: str = ""
    device: str = "cpu"
    modalities: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    # --- media ------------------------------------------------------------------------
    def frame_preparer(self) -> Callable[[np.ndarray], list[Unit]]:
        raise ModelError(f"{self.name} cannot embed video frames")

    def audio_preparer(self, sr: int) -> Callable[[np.ndarray], list[Unit]]:
        raise ModelError(f"{self.name} cannot embed audio")

    def embed_units(self, units: list[Unit], modality: str) -> np.ndarray:
        raise ModelError(f"{self.name} cannot embed {modality}")

    # --- text -------------------------------------------------------------------------
    def encode_text(self, texts: list[str]) -> np.ndarray:
        raise ModelError(f"{self.name} cannot embed text")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dim": int(self.dim), "revision": self.revision}


def collate_units(units: list[Unit]) -> dict[str, np.ndarray]:
    """Stack units key by key; ragged first axes are zero-padded (and get an attention_mask)."""
    out: dict[str, np.ndarray] = {}
    for key in units[0]:
        arrays = [np.asarray(u[key]) for u in units]
        shapes = {a.shape for a in arrays}
        if len(shapes) == 1:
            out[key] = np.stack(arrays)
            continue
        n = max(a.shape[0] for a in arrays)
        padded = np.zeros((len(arrays), n, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
        mask = np.zeros((len(arrays), n), dtype=np.int64)
        for i, a in enumerate(arrays):
            padded[i, : a.shape[0]] = a
            mask[i, : a.shape[0]] = 1
        out[key] = padded
        if "attention_mask" not in units[0]:
            out["attention_mask"] = mask
    return out


def torch_dtype(precision: str, device: str):
    """fp32 everywhere; fp16/bf16 only on CUDA (CPU kernels for them are slow or missing)."""
    import torch

    if precision == "fp32" or not device.startswith("cuda"):
        return torch.float32
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def quiet_transformers() -> None:
    """Keep transformers' load reports and progress bars off stderr (our progress is there)."""
    import warnings

    # AST's own default filter bank (128 mels over 257 bins) trips this on every load: harmless
    warnings.filterwarnings("ignore", message="At least one mel filter has all zero values", category=UserWarning)
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except Exception:  # noqa: BLE001
        pass


def to_torch(batch: dict[str, np.ndarray], device: str, dtype) -> dict[str, Any]:
    """numpy batch -> tensors on ``device``; floating inputs take the model's dtype."""
    import torch

    out = {}
    for k, v in batch.items():
        t = torch.from_numpy(np.ascontiguousarray(v))
        if t.is_floating_point():
            t = t.to(dtype)
        out[k] = t.to(device, non_blocking=True)
    return out


def pooled(output: Any):
    """``get_*_features`` returns a tensor in transformers 4.x and an output object in 5.x."""
    return getattr(output, "pooler_output", output)


def load_failed(ref: str, kind: str, err: Exception) -> ModelError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelError(f"cannot load {kind}:{ref} ({type(err).__name__}: {first})")


def load_two_tower(ref: str, *, kind: str, tower: str, example: str, device: str, precision: str):
    """Resolve and load a CLIP- or CLAP-style model with its processor, on ``device``.

    ``tower`` is the non-text feature method (``get_image_features`` / ``get_audio_features``);
    a model without it and ``get_text_features`` is refused with a hint (``example``).
    Returns (resolution, processor, model, dtype).
    """
    from transformers import AutoModel, AutoProcessor

    from .resolve import resolve_model

    quiet_transformers()
    res = resolve_model(ref, kind=kind)
    try:
        processor = AutoProcessor.from_pretrained(str(res.path), trust_remote_code=False)
        model = AutoModel.from_pretrained(str(res.path), trust_remote_code=False)
    except Exception as e:  # noqa: BLE001
        raise load_failed(ref, kind, e) from None
    if not (hasattr(model, tower) and hasattr(model, "get_text_features")):
        what = tower.removeprefix("get_").removesuffix("_features")
        raise ModelError(
            f"{kind}:{ref} is a '{model.config.model_type}' model without {what} and text towers; "
            f"use a {kind.upper()}-style model (e.g. {kind}:{example})"
        )
    dtype = torch_dtype(precision, device)
    model.to(device=device, dtype=dtype).eval()
    return res, processor, model, dtype


class TwoTowerText:
    """``encode_text`` shared by CLIP and CLAP: the model's text tower, in its joint space.

    Needs ``self.processor.tokenizer``, ``self.model.get_text_features``, ``self.dim``,
    ``self.device`` and ``self.max_tokens``. Empty texts get zero rows.
    """

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """(n,) strings -> (n, d) L2-normalised, truncated at ``self.max_tokens`` tokens."""
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        idx = [i for i, t in enumerate(texts) if t and t.strip()]
        if not idx:
            return out
        tok = self.processor.tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        batch = {k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            feats = pooled(self.model.get_text_features(**batch))
        out[idx] = l2n(feats.float().cpu().numpy())
        return out
