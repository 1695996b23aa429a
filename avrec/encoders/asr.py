"""``asr:<hub id|path>``: a Whisper-style speech-to-text model (AutoModelForSpeechSeq2Seq
with its processor). Its transcripts join the item's text, so the spoken content of
lectures, podcasts and dialogue reaches the text encoder.

Audio is cut into the model's 30 s chunks; each chunk is transcribed with greedy decoding
and the pieces are joined in order.
"""

from __future__ import annotations

import numpy as np

from .base import Encoder, Unit, load_failed, quiet_transformers, to_torch, torch_dtype
from .pooling import resample, windows
from .resolve import resolve_model


SILENCE_RMS = 1e-3  # about -60 dBFS


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


class SpeechPreparer:
    """(t,) PCM at ``sr`` -> one unit per chunk {input_features, attention_mask}. Picklable."""

    def __init__(self, feature_extractor, sr: int):
        self.fe = feature_extractor
        self.sr = int(sr)
        self.target_sr = int(feature_extractor.sampling_rate)
        self.size = int(getattr(feature_extractor, "n_samples", 0) or 30 * self.target_sr)

    def __call__(self, pcm: np.ndarray) -> list[Unit]:
        x = resample(pcm, self.sr, self.target_sr)
        # Whisper invents words on silence, so silent chunks are not transcribed
        wins = [w for w in windows(x, size=self.size, min_fraction=0.0) if _rms(w) >= SILENCE_RMS]
        if not wins:
            return []
        feats = self.fe(wins, sampling_rate=self.target_sr, return_tensors="np", return_attention_mask=True)
        return [
            {"input_features": np.asarray(feats["input_features"][i], dtype=np.float32),
             "attention_mask": np.asarray(feats["attention_mask"][i], dtype=np.int64)}
            for i in range(len(wins))
        ]


class SpeechRecogniser(Encoder):
    def __init__(self, ref: str, *, device: str, precision: str = "fp32", max_new_tokens: int = 224):
        import torch  # noqa: F401
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        quiet_transformers()
        res = resolve_model(ref, kind="asr")
        try:
            self.processor = AutoProcessor.from_pretrained(str(res.path), trust_remote_code=False)
            self.model = AutoModelForSpeechSeq2Seq.from_pretrained(str(res.path), trust_remote_code=False)
        except Exception as e:  # noqa: BLE001
            raise load_failed(ref, "asr", e) from None
        self.dtype = torch_dtype(precision, device)
        self.model.to(device=device, dtype=self.dtype).eval()
        # a 30 s chunk of fast speech is ~150-200 tokens; the prompt and answer share 448 positions
        limit = int(getattr(self.model.config, "max_target_positions", 448) or 448)
        self.max_new_tokens = int(max(1, min(max_new_tokens, limit // 2)))
        super().__init__(name=f"asr:{ref}", kind="asr", dim=0, revision=res.revision, device=device,
                         modalities=("speech",), meta={"source": res.source, "path": str(res.path)})

    def audio_preparer(self, sr: int) -> SpeechPreparer:
        return SpeechPreparer(self.processor.feature_extractor, sr)

    def transcribe_units(self, units: list[Unit]) -> list[str]:
        """A batch of 30 s chunks -> one transcript string per chunk."""
        import torch

        arrays = {"input_features": np.stack([u["input_features"] for u in units])}
        batch = to_torch(arrays, self.device, self.dtype)
        mask = torch.from_numpy(np.stack([u["attention_mask"] for u in units])).to(self.device)
        kwargs = {"max_new_tokens": self.max_new_tokens, "attention_mask": mask}
        gen_cfg = getattr(self.model, "generation_config", None)
        if getattr(gen_cfg, "task_to_id", None):
            kwargs["task"] = "transcribe"  # multilingual Whisper would otherwise translate or guess
        with torch.inference_mode():
            ids = self.model.generate(batch["input_features"], **kwargs)
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]
