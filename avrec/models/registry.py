"""Models by name."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import Recommender

MODEL_NAMES = ("popular", "itemknn", "ease", "mf", "content", "hybrid")
CONTENT_MODELS = ("hybrid", "content")  # models that read item content, so they can score items without interactions


def get_model_class(name: str) -> type[Recommender]:
    if name == "popular":
        from .popular import Popular as cls
    elif name == "itemknn":
        from .itemknn import ItemKNN as cls
    elif name == "ease":
        from .ease import EASE as cls
    elif name == "mf":
        from .mf import MF as cls
    elif name == "content":
        from .content import Content as cls
    elif name == "hybrid":
        from .hybrid import Hybrid as cls
    else:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return cls


def build_model(name: str, train_cfg: Any = None, *, seed: int = 0, device: str = "cpu", **overrides: Any) -> Recommender:
    """A model named ``name`` with parameters from the ``train`` config section (and overrides)."""
    import dataclasses

    cls = get_model_class(name)
    params: dict[str, Any] = {}
    if train_cfg is not None:
        section = getattr(train_cfg, name, None)
        if section is not None and dataclasses.is_dataclass(section):
            params.update(dataclasses.asdict(section))
    if name in ("mf", "hybrid"):
        params["seed"] = seed
    if name in ("hybrid", "mf"):
        params["device"] = device
        if train_cfg is not None:
            params.setdefault("validation", train_cfg.validation)
    if train_cfg is not None and getattr(train_cfg, "weighting", None):
        params.setdefault("weighting", train_cfg.weighting)
    params.update(overrides)
    return cls(**params)
