"""Recommenders behind one contract (see :mod:`avrec.models.base`)."""

from .base import Recommender, topk
from .registry import MODEL_NAMES, build_model, get_model_class

__all__ = ["Recommender", "topk", "MODEL_NAMES", "build_model", "get_model_class"]
