"""Recommenders behind one contract (see :mod:`avrec.models.base`)."""

from ..metrics import topk
from .base import Recommender
from .registry import MODEL_NAMES, build_model, get_model_class

__all__ = ["Recommender", "topk", "MODEL_NAMES", "build_model", "get_model_class"]
