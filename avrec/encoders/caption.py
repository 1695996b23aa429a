"""``caption:<hub id|path>``: an image-to-text model describing sampled key frames
(``understand.caption``).

Two model families, chosen from the model's ``config.json`` ``model_type``:

- ``blip``: BlipForConditionalGeneration with BlipProcessor (e.g.
  Salesforce/blip-image-captioning-base), unconditional captioning;
- ``git``: GitForCausalLM through AutoModelForCausalLM with GitProcessor (e.g.
  microsoft/git-base-coco).

Both run ``generate(pixel_values=...)`` greedily (deterministic, ``max_new_tokens`` 30) and
decode with the processor, special tokens skipped; the same code on transformers 4.x and 5.x.
``understand.caption_frames`` frames, spread evenly over the stored key frames of a video,
are captioned; the processor prepares them in the DataLoader workers.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .base import Encoder, Unit, load_failed, quiet_transformers, to_torch, torch_dtype
from .resolve import resolve_model

FAMILIES = ("blip", "git")


def pick_frames(n: int, k: int) -> np.ndarray:
    """Indices of ``k`` frames spread evenly over ``n`` (all of them when n <= k)."""
    if n <= 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


class CaptionPreparer:
    """((f, S, S, 3) uint8 frames, (f,) times) -> one unit per chosen frame
    {pixel_values: (3, H, W) float32, t: () float32}. Picklable."""

    def __init__(self, image_processor, frames: int):
        self.image_processor = image_processor
        self.k = int(frames)

    def __call__(self, frames: np.ndarray, times: np.ndarray | None = None) -> list[Unit]:
        idx = pick_frames(len(frames), self.k)
        if not len(idx):
            return []
        times = np.arange(len(frames), dtype=np.float32) if times is None or len(times) != len(frames) else times
        px = self.image_processor(images=[np.asarray(frames[i]) for i in idx], return_tensors="np")["pixel_values"]
        return [{"pixel_values": np.asarray(p, dtype=np.float32), "t": np.asarray(times[i], dtype=np.float32)}
                for p, i in zip(px, idx)]


class Captioner(Encoder):
    def __init__(self, ref: str, *, device: str, precision: str = "fp32", max_new_tokens: int = 30):
        import torch  # noqa: F401 - fail early and clearly if torch is missing
        from transformers import AutoConfig, AutoProcessor

        quiet_transformers()
        res = resolve_model(ref, kind="caption")
        try:
            config = AutoConfig.from_pretrained(str(res.path), trust_remote_code=False)
        except Exception as e:  # noqa: BLE001
            raise load_failed(ref, "caption", e) from None
        family = str(getattr(config, "model_type", ""))
        if family not in FAMILIES:
            raise ModelError(f"caption:{ref} is a '{family}' model; use an image captioner of the BLIP or GIT family "
                             "(e.g. caption:Salesforce/blip-image-captioning-base or caption:microsoft/git-base-coco)")
        try:
            self.processor = AutoProcessor.from_pretrained(str(res.path), trust_remote_code=False)
            if family == "blip":
                from transformers import BlipForConditionalGeneration

                self.model = BlipForConditionalGeneration.from_pretrained(str(res.path), trust_remote_code=False)
            else:
                from transformers import AutoModelForCausalLM

                self.model = AutoModelForCausalLM.from_pretrained(str(res.path), trust_remote_code=False)
        except Exception as e:  # noqa: BLE001
            raise load_failed(ref, "caption", e) from None
        self.family = family
        self.dtype = torch_dtype(precision, device)
        self.model.to(device=device, dtype=self.dtype).eval()
        self.max_new_tokens = int(max_new_tokens)
        super().__init__(name=f"caption:{ref}", kind="caption", dim=0, revision=res.revision, device=device,
                         modalities=("caption",), meta={"source": res.source, "path": str(res.path), "family": family})

    def caption_preparer(self, frames: int) -> CaptionPreparer:
        return CaptionPreparer(self.processor.image_processor, frames)

    def caption_units(self, units: list[Unit]) -> list[dict]:
        """A batch of prepared frames -> [{t, text}] in unit order."""
        import torch

        batch = to_torch({"pixel_values": np.stack([u["pixel_values"] for u in units])}, self.device, self.dtype)
        with torch.inference_mode():
            ids = self.model.generate(pixel_values=batch["pixel_values"], max_new_tokens=self.max_new_tokens,
                                      do_sample=False, num_beams=1)
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [{"t": float(u["t"]), "text": " ".join(str(t).split())} for u, t in zip(units, texts)]
