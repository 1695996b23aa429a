"""``text:<hub id|path>``: a transformer encoder, attention-mask mean pooling, L2-normalised.

This is how sentence-transformers' all-MiniLM-L6-v2 is meant to be used (mean pooling,
normalise), done with plain ``AutoModel`` + ``AutoTokenizer``. Text longer than
``max_tokens`` is split into windows whose embeddings are averaged (weighted by their
token counts), so a long transcript is not cut off after its first paragraph.
"""

from __future__ import annotations

import numpy as np

from .base import Encoder, l2n, load_failed, quiet_transformers, torch_dtype
from .resolve import resolve_model


class TextEncoder(Encoder):
    def __init__(self, ref: str, *, device: str, precision: str = "fp32", batch_size: int = 32,
                 max_tokens: int = 256):
        import torch  # noqa: F401 - fail early and clearly if torch is missing
        from transformers import AutoModel, AutoTokenizer

        quiet_transformers()
        res = resolve_model(ref, kind="text")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(res.path), trust_remote_code=False)
            self.model = AutoModel.from_pretrained(str(res.path), trust_remote_code=False)
        except Exception as e:  # noqa: BLE001
            raise load_failed(ref, "text", e) from None
        self.dtype = torch_dtype(precision, device)
        self.model.to(device=device, dtype=self.dtype).eval()
        limit = getattr(self.model.config, "max_position_embeddings", 512) or 512
        # BERT-style models with absolute positions cannot read past max_position_embeddings
        self.max_tokens = int(max(8, min(max_tokens, limit)))
        self.batch_size = max(1, int(batch_size))
        dim = int(getattr(self.model.config, "hidden_size", 0) or 0)
        super().__init__(name=f"text:{ref}", kind="text", dim=dim, revision=res.revision, device=device,
                         modalities=("text",), meta={"source": res.source, "path": str(res.path)})

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """list of n strings -> (n, d) float32 L2-normalised; empty strings give zero rows."""
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        idx = [i for i, t in enumerate(texts) if t and t.strip()]
        if not idx:
            return out
        enc = self.tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_tokens,
            return_overflowing_tokens=True, return_tensors="np",
        )
        owner = np.asarray(enc.pop("overflow_to_sample_mapping"))
        keep = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        sums = np.zeros((len(idx), self.dim), dtype=np.float64)
        counts = np.zeros(len(idx), dtype=np.float64)
        with torch.inference_mode():
            for s in range(0, len(owner), self.batch_size):
                batch = {k: torch.from_numpy(np.asarray(v[s : s + self.batch_size])).to(self.device)
                         for k, v in keep.items()}
                hidden = self.model(**batch).last_hidden_state.float()  # (b, L, d)
                mask = batch["attention_mask"].unsqueeze(-1).float()
                summed = (hidden * mask).sum(dim=1).cpu().numpy()  # (b, d)
                n_tok = mask.sum(dim=(1, 2)).cpu().numpy()  # (b,)
                np.add.at(sums, owner[s : s + self.batch_size], summed)
                np.add.at(counts, owner[s : s + self.batch_size], n_tok)
        # token-weighted mean over all windows == mean pooling over the whole text
        out[idx] = l2n(sums / np.maximum(counts, 1.0)[:, None])
        return out
