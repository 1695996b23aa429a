"""Embedding backends chosen by prefixed name (see :mod:`avrec.encoders.registry`).

Importing this package is cheap: torch and transformers load inside each backend's loader.
"""

from .registry import REGISTRY, Backend, canonical, check_modality, clear_cache, load_encoder, parse_name

__all__ = ["REGISTRY", "Backend", "canonical", "check_modality", "clear_cache", "load_encoder", "parse_name"]
