"""``sentiment:<hub id|path>``: a text emotion / sentiment classifier (``understand.sentiment``).

Any ``AutoModelForSequenceClassification`` with its tokenizer (e.g.
j-hartmann/emotion-english-distilroberta-base, 7 emotions). Its ``id2label`` names are what
:data:`avrec.understand.mood.EMOTION_MAP` maps onto the valence/arousal plane. Probabilities
are a softmax over the classes, or per-class sigmoids for a multi-label model
(``problem_type: multi_label_classification``, e.g. GoEmotions models). Text longer than the
model's positions is cut (the title, description and tags come first in an item's text).
"""

from __future__ import annotations

import numpy as np

from .base import Encoder, load_failed, quiet_transformers, torch_dtype
from .resolve import resolve_model


class SentimentClassifier(Encoder):
    def __init__(self, ref: str, *, device: str, precision: str = "fp32", batch_size: int = 32,
                 max_tokens: int = 256):
        import torch  # noqa: F401
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        quiet_transformers()
        res = resolve_model(ref, kind="sentiment")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(res.path), trust_remote_code=False)
            self.model = AutoModelForSequenceClassification.from_pretrained(str(res.path), trust_remote_code=False)
        except Exception as e:  # noqa: BLE001
            raise load_failed(ref, "sentiment", e) from None
        self.dtype = torch_dtype(precision, device)
        self.model.to(device=device, dtype=self.dtype).eval()
        cfg = self.model.config
        n = int(cfg.num_labels)
        id2label = {int(k): str(v) for k, v in (getattr(cfg, "id2label", None) or {}).items()}
        self.labels = [id2label.get(i, f"LABEL_{i}") for i in range(n)]
        self.multi_label = getattr(cfg, "problem_type", None) == "multi_label_classification"
        limit = int(getattr(cfg, "max_position_embeddings", 512) or 512)
        # RoBERTa-style models reserve two positions for their padding offset
        self.max_tokens = int(max(8, min(max_tokens, limit - 2 if cfg.model_type in ("roberta", "xlm-roberta") else limit)))
        self.batch_size = max(1, int(batch_size))
        super().__init__(name=f"sentiment:{ref}", kind="sentiment", dim=n, revision=res.revision, device=device,
                         modalities=("sentiment",), meta={"source": res.source, "path": str(res.path),
                                                          "labels": self.labels})

    def classify(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(n,) texts -> ((n, L) class probabilities, (n,) present); empty texts get zero rows."""
        import torch

        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        present = np.array([bool(t and t.strip()) for t in texts])
        idx = np.flatnonzero(present)
        with torch.inference_mode():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                enc = self.tokenizer([texts[i] for i in chunk], padding=True, truncation=True,
                                     max_length=self.max_tokens, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in enc.items()
                         if k in ("input_ids", "attention_mask", "token_type_ids")}
                logits = self.model(**batch).logits.float()
                p = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
                out[chunk] = p.cpu().numpy()
        return out, present
