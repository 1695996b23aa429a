"""The encoder registry: a prefixed name -> a loader (open_clip style).

``builtin``, ``text:<hub id|path>``, ``clip:<id|path>``, ``clap:<id|path>``,
``audio:<id|path>``, ``asr:<id|path>``, ``npy:<file>``, and the understanding models
``caption:<id|path>`` (key-frame captions) and ``sentiment:<id|path>`` (text emotions),
named in the ``understand`` config section. Each backend lives in its own
module and is imported only when its loader runs, so listing the registry or parsing a
name costs nothing. Loaded models are cached per process: a model named twice (e.g. CLIP
for video and for text, or for ``--query``) is loaded once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError
from .base import Encoder


@dataclass(frozen=True)
class Backend:
    prefix: str
    modalities: tuple[str, ...]  # what it can embed ("speech": transcribes into text)
    needs_ref: bool
    summary: str
    examples: tuple[str, ...]
    loader: Callable[..., Encoder]


def _builtin(ref: str, **_: Any) -> Encoder:
    from .builtin import BuiltinEncoder

    return BuiltinEncoder()


def _text(ref: str, *, device: str, precision: str, batch_size: int, max_tokens: int, **_: Any) -> Encoder:
    from .text import TextEncoder

    return TextEncoder(ref, device=device, precision=precision, batch_size=batch_size, max_tokens=max_tokens)


def _clip(ref: str, *, device: str, precision: str, max_tokens: int, **_: Any) -> Encoder:
    from .clip import ClipEncoder

    return ClipEncoder(ref, device=device, precision=precision, max_tokens=max_tokens)


def _clap(ref: str, *, device: str, precision: str, max_tokens: int, **_: Any) -> Encoder:
    from .clap import ClapEncoder

    return ClapEncoder(ref, device=device, precision=precision, max_tokens=max_tokens)


def _audio(ref: str, *, device: str, precision: str, **_: Any) -> Encoder:
    from .audio import AudioEncoder

    return AudioEncoder(ref, device=device, precision=precision)


def _asr(ref: str, *, device: str, precision: str, **_: Any) -> Encoder:
    from .asr import SpeechRecogniser

    return SpeechRecogniser(ref, device=device, precision=precision)


def _caption(ref: str, *, device: str, precision: str, **_: Any) -> Encoder:
    from .caption import Captioner

    return Captioner(ref, device=device, precision=precision)


def _sentiment(ref: str, *, device: str, precision: str, batch_size: int, max_tokens: int, **_: Any) -> Encoder:
    from .sentiment import SentimentClassifier

    return SentimentClassifier(ref, device=device, precision=precision, batch_size=batch_size, max_tokens=max_tokens)


def _npy(ref: str, **_: Any) -> Encoder:
    from .npy import NpyVectors

    return NpyVectors(ref)


REGISTRY: dict[str, Backend] = {
    b.prefix: b
    for b in (
        Backend("builtin", ("video", "audio"), False,
                "extract's signal features, z-scored over the catalogue and L2-normalised (no weights)",
                ("builtin",), _builtin),
        Backend("text", ("text",), True,
                "transformer text encoder, attention-mask mean pooling (sentence-transformers style)",
                ("text:sentence-transformers/all-MiniLM-L6-v2", "text:BAAI/bge-small-en-v1.5",
                 "text:sentence-transformers/all-mpnet-base-v2"), _text),
        Backend("clip", ("video", "text"), True,
                "frames and text in one space (CLIPModel or any get_image/get_text_features model)",
                ("clip:openai/clip-vit-base-patch32", "clip:openai/clip-vit-large-patch14"), _clip),
        Backend("clap", ("audio", "text"), True,
                "audio and text in one space (ClapModel), 10 s windows pooled",
                ("clap:laion/clap-htsat-unfused", "clap:laion/larger_clap_music_and_speech"), _clap),
        Backend("audio", ("audio",), True,
                "audio transformer (AST, wav2vec2, HuBERT) via AutoModel, windows pooled",
                ("audio:MIT/ast-finetuned-audioset-10-10-0.4593", "audio:facebook/wav2vec2-base-960h"), _audio),
        Backend("asr", ("speech",), True,
                "Whisper-style speech recognition; transcripts join the text modality (embed.speech)",
                ("asr:openai/whisper-tiny", "asr:openai/whisper-base"), _asr),
        Backend("caption", ("caption",), True,
                "image-to-text captions of sampled key frames (BLIP or GIT); they join the text (understand.caption)",
                ("caption:Salesforce/blip-image-captioning-base", "caption:microsoft/git-base-coco"), _caption),
        Backend("sentiment", ("sentiment",), True,
                "text emotion classifier (AutoModelForSequenceClassification) for moods (understand.sentiment)",
                ("sentiment:j-hartmann/emotion-english-distilroberta-base",), _sentiment),
        Backend("npy", ("video", "audio", "text"), True,
                "your own vectors: a (n, d) .npy with <file>.ids.txt (one item_id per line)",
                ("npy:vectors.npy",), _npy),
    )
}

_CACHE: dict[tuple, Encoder] = {}
_LOCK = threading.Lock()


def parse_name(name: str) -> tuple[str, str]:
    """``"clip:openai/clip-vit-base-patch32"`` -> ``("clip", "openai/clip-vit-base-patch32")``."""
    name = (name or "").strip()
    prefix, sep, ref = name.partition(":")
    prefix = prefix.strip().lower()
    if prefix not in REGISTRY:
        known = ", ".join(f"{p}:" if b.needs_ref else p for p, b in REGISTRY.items())
        raise ConfigError(f"unknown encoder {name!r}; use one of {known} (e.g. clip:openai/clip-vit-base-patch32)")
    backend = REGISTRY[prefix]
    ref = ref.strip()
    if backend.needs_ref and not ref:
        raise ConfigError(f"encoder {name!r} needs a model after the colon, e.g. {backend.examples[0]}")
    if not backend.needs_ref and ref:
        raise ConfigError(f"encoder {prefix!r} takes no argument; got {name!r}")
    return prefix, ref


def check_modality(name: str, modality: str, key: str) -> tuple[str, str]:
    """Parse ``name`` and check that it can embed ``modality`` (``key`` names the config key)."""
    prefix, ref = parse_name(name)
    can = REGISTRY[prefix].modalities
    if modality not in can:
        fits = [f"{p}:" if b.needs_ref else p for p, b in REGISTRY.items() if modality in b.modalities]
        raise ConfigError(f"{key}={name} cannot embed {modality}; use {' or '.join(fits)}")
    return prefix, ref


def load_encoder(name: str, *, device: str = "cpu", precision: str = "fp32", batch_size: int = 32,
                 max_tokens: int = 256) -> Encoder:
    """Load (once per process) the encoder called ``name`` on ``device``.

    ``device`` must already be resolved (``avrec.config.resolve_device``).
    """
    prefix, ref = parse_name(name)
    if prefix in ("builtin", "npy"):  # no weights: cheap, and a changed file must be re-read
        return REGISTRY[prefix].loader(ref)
    key = (prefix, ref, device, precision, max_tokens)
    with _LOCK:
        enc = _CACHE.get(key)
        if enc is None:
            enc = REGISTRY[prefix].loader(ref, device=device, precision=precision, batch_size=batch_size,
                                          max_tokens=max_tokens)
            _CACHE[key] = enc
        elif hasattr(enc, "batch_size"):
            enc.batch_size = max(1, int(batch_size))
    return enc


def clear_cache() -> None:
    """Drop every loaded model (frees memory; the next load reads from disk again)."""
    with _LOCK:
        _CACHE.clear()


def canonical(name: str) -> str:
    prefix, ref = parse_name(name)
    return f"{prefix}:{ref}" if ref else prefix
