"""Every config value is range-checked with the valid range in the message; the habit is
kept by checking that no number in the config dataclasses lacks a range."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from avrec.config import RANGES, Config, load_config
from avrec.errors import ConfigError


def _numeric_keys(obj, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            out.extend(_numeric_keys(v, f"{prefix}{f.name}."))
            continue
        tp = hints[f.name]
        args = typing.get_args(tp)
        if tp in (int, float) or (args and args[-1] in (int, float) and typing.get_origin(tp) in (list, dict)):
            out.append(f"{prefix}{f.name}")
    return out


def test_every_number_in_the_config_has_a_range():
    missing = sorted(set(_numeric_keys(Config())) - set(RANGES))
    assert not missing, f"add these keys to avrec.config.RANGES: {missing}"
    assert not set(RANGES) - set(_numeric_keys(Config())), "RANGES names keys the config does not have"


def test_the_defaults_are_in_range():
    load_config(None, [], env={})  # validate() runs on the defaults


@pytest.mark.parametrize("assignment, shown", [
    ("extract.max_frames=-3", "[1, 100000]"),
    ("extract.thumb_size=0", "[16, 4096]"),
    ("train.validation=5", "[0, 1)"),
    ("train.hybrid.dropout=1", "[0, 1)"),
    ("evaluate.k=[10, 0]", "evaluate.k[1]"),
    ("embed.weights.audio=-0.5", "embed.weights.audio"),
    ("recommend.diversity=1.5", "[0, 1]"),
    ("index.search_k=0", "-1"),
    ("extract.fps=nan", "(0, 1000]"),
])
def test_out_of_range_values_name_the_key_and_the_range(assignment, shown):
    with pytest.raises(ConfigError) as e:
        load_config(None, [assignment], env={})
    assert assignment.split("=")[0].split(".")[-1] in str(e.value) and shown in str(e.value)


def test_an_unknown_choice_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="train.hybrid.solver must be one of auto, closed, als, sgd"):
        load_config(None, ["train.hybrid.solver=magic"], env={})
