"""Properties of the layered config: any YAML or --set gives a Config or a ConfigError,
unknown keys name a valid one, every number is checked against RANGES, and the layers
keep their documented precedence."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import tempfile
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from avrec.config import (
    _CHOICES,
    RANGES,
    Config,
    apply_set,
    load_config,
    range_text,
    validate,
)
from avrec.errors import ConfigError

SETTINGS = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}


def _fields(cls, prefix=""):
    """{dotted key: type} of every leaf, and the dotted names of the sections."""
    leaves, sections = {}, {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            sections[prefix + f.name] = tp
            sub_leaves, sub_sections = _fields(tp, f"{prefix}{f.name}.")
            leaves.update(sub_leaves)
            sections.update(sub_sections)
        else:
            leaves[prefix + f.name] = tp
    return leaves, sections


LEAVES, SECTIONS = _fields(Config)
NODES = {"": Config, **SECTIONS}  # every mapping level of the config, by dotted prefix
VALID = set(LEAVES) | set(SECTIONS)
STR_KEYS = sorted(k for k, tp in LEAVES.items() if tp is str or typing.get_args(tp) == (str, type(None)))


@contextlib.contextmanager
def _in_empty_dir():
    """A fresh working directory (load_config reads ./avrec.yaml when no file is given)."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def _get(cfg, key):
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _conforms(cfg: Config) -> None:
    """Every value of a returned config has its declared type and passes validation again."""
    for key, tp in LEAVES.items():
        v = _get(cfg, key)
        args = typing.get_args(tp)
        if tp is bool:
            assert isinstance(v, bool), key
        elif tp is int:
            assert isinstance(v, int) and not isinstance(v, bool), key
        elif tp is float:
            assert isinstance(v, float), key
        elif tp is str:
            assert isinstance(v, str), key
        elif type(None) in args:
            assert v is None or isinstance(v, args[0]), key
        elif typing.get_origin(tp) is list:
            assert isinstance(v, list) and all(isinstance(x, args[0]) for x in v), key
        elif typing.get_origin(tp) is dict:
            assert isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, float) for k, x in v.items()), key
    validate(cfg)


# ---------------------------------------------------------------------------------------
# anything: a Config or a ConfigError

_TRICKY = [
    "2001-13-45", "2001-02-29", "2001-01-01 25:00:00", "!!int abc", "!!float x", "!!float ''", "!!int ''",
    "!!int 0x", "!!timestamp abc", "!!bool maybe", "!!binary ###", "!!python/name:os.system x", ".inf", "-.inf",
    ".nan", "1" * 400, "-" + "1" * 400, "1" * 5000, "1e400", "1.0e+400", "0x1F", "0o17", "017", "1_000", "12:30:00",
    "[1, 2]", "[]", "{a: 1}", "{}", "~", "null", "yes", "off", "true", "&a [*a]", "'quoted'", '"\\u0000"', "2001-01-01",
    "- a", "<<: 5", "''", "[", "{", "'", "a: b: c", "|\n  text", ">\n  text", "*undefined", "%YAML 1.1", "---", "...",
    "\t", "\x00", "\ufeff", "\x85", "é", "cuda:²", "cuda:٣", "cuda:1", "cpu", "ease", "sgd", "-1", "0", "1.5", "3",
    "2.5e-3", "1e-05", "9007199254740993",
]
SCALAR_TEXT = st.one_of(st.sampled_from(_TRICKY), st.text(max_size=10))
_KEY_NAMES = st.one_of(st.sampled_from(sorted({k.split(".")[-1] for k in VALID})), st.text(max_size=6))
_PLAIN = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(10**400), 10**400), st.floats(), st.text(max_size=8),
    st.dates(), st.sampled_from(["2001-13-45", "yes", "017", ".inf"]),
)
STRUCTURE = st.recursive(
    _PLAIN, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEY_NAMES, inner, max_size=4)),
    max_leaves=10,
)


@st.composite
def yaml_documents(draw):
    how = draw(st.integers(0, 3))
    if how == 0:
        return draw(st.text(max_size=60))
    if how == 1:  # valid sections and keys, any values
        doc = {}
        for key in draw(st.lists(st.sampled_from(sorted(LEAVES)), max_size=4)):
            node, *rest = key.split(".")
            target = doc.setdefault(node, {})
            for part in rest[:-1]:
                target = target.setdefault(part, {}) if isinstance(target, dict) else {}
            if isinstance(target, dict):
                target[rest[-1]] = draw(STRUCTURE)
        return yaml.safe_dump(doc, allow_unicode=draw(st.booleans()))
    if how == 2:
        return yaml.safe_dump(draw(STRUCTURE), allow_unicode=True)
    # hand-written YAML: a valid key, then any value text, as a user would type it
    lines = []
    for key in draw(st.lists(st.sampled_from(sorted(LEAVES)), min_size=1, max_size=3)):
        parts = key.split(".")
        for depth, part in enumerate(parts):
            lines.append("  " * depth + part + ":" + (" " + draw(SCALAR_TEXT) if depth == len(parts) - 1 else ""))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


@settings(max_examples=200, **SETTINGS)
@given(doc=yaml_documents(), bom=st.booleans())
@example(doc="runtime:\n  workdir: 2001-13-45\n", bom=False)
@example(doc="runtime:\n  seed: !!int abc\n", bom=False)
@example(doc="runtime:\n  seed: !!timestamp abc\n", bom=False)
@example(doc="train:\n  model: !!bool maybe\n", bom=False)
@example(doc="runtime:\n  seed: !!int ''\n", bom=False)
@example(doc="runtime:\n  seed: " + "1" * 5000 + "\n", bom=False)
@example(doc="runtime:\n  seed: " + "[" * 3000 + "\n", bom=False)
@example(doc="runtime:\n  seed: .inf\n", bom=False)
@example(doc="runtime:\n  seed: .nan\n", bom=False)
@example(doc="extract:\n  fps: " + "1" * 400 + "\n", bom=False)
def test_any_yaml_file_gives_a_config_or_a_config_error(doc, bom):
    with _in_empty_dir() as d:
        p = d / "c.yaml"
        p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + doc.encode("utf-8", "surrogatepass"))
        try:
            cfg = load_config(p, env={})
        except ConfigError as e:
            assert str(e)
            return
        _conforms(cfg)


@settings(max_examples=200, **SETTINGS)
@given(key=st.one_of(st.sampled_from(sorted(LEAVES)), st.sampled_from(sorted(SECTIONS)), st.text(max_size=12)),
       value=SCALAR_TEXT, eq=st.sampled_from(["=", " = ", "=="]))
@example(key="runtime.workdir", value="2001-13-45", eq="=")
@example(key="runtime.seed", value=".inf", eq="=")
@example(key="runtime.seed", value=".nan", eq="=")
@example(key="runtime.seed", value="1e400", eq="=")
@example(key="runtime.seed", value="!!int abc", eq="=")
@example(key="extract.fps", value="1" * 400, eq="=")
@example(key="index.search_k", value="1" * 5000, eq="=")
def test_any_set_gives_a_config_or_a_config_error(key, value, eq):
    with _in_empty_dir():
        try:
            cfg = load_config(None, sets=[f"{key}{eq}{value}"], env={})
        except ConfigError as e:
            assert str(e)
            return
        _conforms(cfg)


# ---------------------------------------------------------------------------------------
# unknown keys


def _near_misses(name: str):
    """Typos of a valid name: a letter dropped, doubled or swapped, a case change."""
    opts = [name[:i] + name[i + 1:] for i in range(len(name))] + [name[:i] + name[i] + name[i:] for i in range(len(name))]
    opts += [name[:i] + name[i + 1] + name[i] + name[i + 2:] for i in range(len(name) - 1)] + [name.upper()]
    return st.sampled_from(opts)


@st.composite
def unknown_keys(draw):
    """(dotted prefix of a real section, a name that is not a field there)."""
    prefix = draw(st.sampled_from(sorted(NODES)))
    names = [f.name for f in dataclasses.fields(NODES[prefix])]
    bad = draw(st.one_of(
        st.sampled_from(names).flatmap(_near_misses),
        st.text(st.characters(blacklist_characters=".=", blacklist_categories=("Cs",)), min_size=1, max_size=12),
    ))
    assume(bad not in names and bad.strip() == bad and bad)
    return prefix, bad


def _hint(msg: str) -> str:
    m = re.search(r"did you mean '([^']*)'\?", msg)
    assert m, msg
    return m.group(1)


@settings(max_examples=100, **SETTINGS)
@given(where=unknown_keys(), value=st.sampled_from([1, "x", None, [1], {"a": 1}]))
@example(where=("train", "modle"), value="ease")
def test_an_unknown_key_is_refused_naming_a_valid_key(where, value):
    prefix, bad = where
    dotted = f"{prefix}.{bad}" if prefix else bad
    # in a file
    doc: dict = {bad: value}
    for part in reversed(prefix.split(".") if prefix else []):
        doc = {part: doc}
    text = yaml.safe_dump(doc, allow_unicode=True)
    assume(yaml.safe_load(text) == doc)  # PyYAML folds a lone "\x85" into " ": not avrec's doing
    with _in_empty_dir() as d:
        (d / "c.yaml").write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as e:
            load_config(d / "c.yaml", env={})
        msg = str(e.value)
        assert "unknown config key" in msg and f"'{dotted}'" in msg
        hint = _hint(msg)  # a key beside the unknown one
        names = [f.name for f in dataclasses.fields(NODES[prefix])]
        assert hint in VALID and hint in [f"{prefix}.{n}" if prefix else n for n in names]
        # on the command line: the hint is a full key that --set accepts
        with pytest.raises(ConfigError) as e:
            load_config(None, sets=[f"{dotted}=1"], env={})
        msg = str(e.value)
        assert "unknown config key" in msg and f"'{dotted}'" in msg
        assert _hint(msg) in LEAVES


# ---------------------------------------------------------------------------------------
# numbers and RANGES


def _range_key(key):
    """How to set one value of a RANGES key: (dotted key to set, type of the value)."""
    tp = LEAVES[key]
    if typing.get_origin(tp) is dict:
        return f"{key}.video", float
    if typing.get_origin(tp) is list:
        return key, int
    return key, tp


def _number_text(v) -> str:
    if isinstance(v, float):
        return ".nan" if math.isnan(v) else (".inf" if v > 0 else "-.inf") if math.isinf(v) else repr(v)
    return str(v)


@st.composite
def in_range(draw):
    key = draw(st.sampled_from(sorted(RANGES)))
    lo, hi, lo_open, hi_open = RANGES[key]
    _, tp = _range_key(key)
    if tp is int:
        low = lo + 1 if lo_open else lo
        high = (hi - 1 if hi_open else hi) if hi is not None else lo + 10**30
        v = draw(st.one_of(st.integers(low, high), st.sampled_from([low, high])))
        if key == "index.search_k":
            assume(v != 0)  # -1 or >= 1
    else:
        v = draw(st.floats(lo, hi if hi is not None else 1e300, exclude_min=lo_open, exclude_max=hi_open))
    return key, v


@settings(max_examples=150, **SETTINGS)
@given(kv=in_range(), via=st.sampled_from(["set", "file"]), as_float=st.booleans())
@example(kv=("index.exact_below", 10**30 + 1), via="set", as_float=False)
@example(kv=("extract.max_failed", 10**400), via="file", as_float=False)
def test_a_number_inside_its_range_is_accepted_and_lands(kv, via, as_float):
    key, v = kv
    set_key, tp = _range_key(key)
    text = _number_text(v)
    if tp is int and as_float and abs(v) < 2**53:
        text = f"{v}.0"  # an integer written as a float is still that integer
    value_text = f"[{text}]" if typing.get_origin(LEAVES[key]) is list else text
    cfg = _load_one(set_key, value_text, via)
    got = _get(cfg, key)
    got = got["video"] if isinstance(got, dict) else got[0] if isinstance(got, list) else got
    assert got == v and type(got) is tp
    _conforms(cfg)


@st.composite
def out_of_range(draw):
    key = draw(st.sampled_from(sorted(RANGES)))
    lo, hi, lo_open, hi_open = RANGES[key]
    _, tp = _range_key(key)
    options = []
    if tp is int:
        options.append(st.integers(max_value=lo if lo_open else lo - 1))
        options.append(st.just(lo - 10**400))
        if hi is not None:
            options.append(st.integers(min_value=hi if hi_open else hi + 1))
            options.append(st.just(hi + 10**400))
    else:
        options.append(st.floats(max_value=lo, exclude_max=not lo_open, allow_nan=False))
        if hi is not None:
            options.append(st.floats(min_value=hi, exclude_min=not hi_open, allow_nan=False))
    return key, draw(st.one_of(options))


@settings(max_examples=150, **SETTINGS)
@given(kv=out_of_range(), via=st.sampled_from(["set", "file"]))
@example(kv=("extract.fps", 0.0), via="set")  # open bounds are refused at the bound
@example(kv=("train.validation", 1.0), via="file")
@example(kv=("runtime.seed", 2**32), via="set")
def test_a_number_outside_its_range_is_refused_with_the_key_and_the_range(kv, via):
    key, v = kv
    set_key, _ = _range_key(key)
    text = _number_text(v)
    value_text = f"[{text}]" if typing.get_origin(LEAVES[key]) is list else text
    with pytest.raises(ConfigError) as e:
        _load_one(set_key, value_text, via)
    msg = str(e.value)
    assert key in msg
    if isinstance(v, int) or math.isfinite(v):
        assert range_text(*RANGES[key]) in msg, msg


@settings(max_examples=60, **SETTINGS)
@given(key=st.sampled_from(sorted(k for k in LEAVES if LEAVES[k] in (int, float))),
       value=st.sampled_from([".nan", ".inf", "-.inf", "1" * 5000, "!!int abc", "1e400", "[1]", "{a: 1}", "abc"]),
       via=st.sampled_from(["set", "file"]))
def test_a_value_that_is_not_a_finite_number_is_refused_naming_the_key(key, value, via):
    tp = LEAVES[key]
    if tp is float and value in (".inf", "1e400", "1" * 5000) and RANGES[key][1] is None:
        return  # an unbounded float may be infinite (extract.item_timeout: .inf waits forever)
    with pytest.raises(ConfigError) as e:
        _load_one(key, value, via)
    if via == "set" or value not in ("1" * 5000, "!!int abc"):  # else YAML itself fails: the file is named
        assert key in str(e.value)


def _load_one(key: str, value_text: str, via: str) -> Config:
    with _in_empty_dir() as d:
        if via == "set":
            return load_config(None, sets=[f"{key}={value_text}"], env={})
        parts = key.split(".")
        lines = ["  " * i + p + ":" for i, p in enumerate(parts)]
        lines[-1] += " " + value_text
        (d / "c.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return load_config(d / "c.yaml", env={})


# ---------------------------------------------------------------------------------------
# choices, strings, devices


@settings(max_examples=80, **SETTINGS)
@given(key=st.sampled_from(sorted(k for k, c in _CHOICES.items() if c)), data=st.data())
def test_a_choice_is_accepted_exactly_when_it_is_listed(key, data):
    value = data.draw(st.one_of(st.sampled_from(_CHOICES[key]), st.text(st.characters(codec="ascii",
                                                                                        exclude_characters="\r\n"), max_size=8)))
    with _in_empty_dir():
        try:
            quoted = "'" + value.replace("'", "''") + "'"
            cfg = load_config(None, sets=[f"{key}={quoted}"], env={})
        except ConfigError as e:
            assert value not in _CHOICES[key] and key in str(e)
            for choice in _CHOICES[key]:
                assert choice in str(e)
        else:
            assert value in _CHOICES[key] and _get(cfg, key) == value


def _is_null(s: str) -> bool:
    """null, ~, Null: no value (what YAML cannot read is taken as the text itself)."""
    try:
        return yaml.safe_load(s) is None
    except Exception:  # noqa: BLE001 - PyYAML raises ValueError, KeyError, ... besides YAMLError
        return False


_PLAIN_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=12).filter(
    lambda s: s == s.strip() and s[0] not in "'\"[]{}&*!|>%@`#,?:-" and ": " not in s and " #" not in s
    and not s.endswith(":") and not _is_null(s)
)


@settings(max_examples=150, **SETTINGS)
@given(key=st.sampled_from([k for k in STR_KEYS if k not in _CHOICES]), value=st.one_of(
    _PLAIN_TEXT, st.sampled_from(["yes", "off", "017", "0o17", "0x10", "1_000", "12:30", "1.10", "1e3", "2001-01-01",
                                  "2024_01", "001", "True", "7", "-0", ".5", "out/run 1", "a=b", "models/v1.0"])))
def test_a_string_given_with_set_lands_as_typed(key, value):
    # --set runtime.workdir=017 is the folder "017", not the octal number 15
    with _in_empty_dir():
        cfg = Config()
        apply_set(cfg, f"{key}={value}")
        assert _get(cfg, key) == value


@settings(max_examples=100, **SETTINGS)
@given(key=st.sampled_from(STR_KEYS), value=st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))
def test_a_string_in_a_file_lands_as_written(key, value):
    parts = key.split(".")
    doc: dict = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        doc = {part: doc}
    text = yaml.safe_dump(doc, allow_unicode=True)
    assume(yaml.safe_load(text) == doc)  # PyYAML folds a lone "\x85" into " ": not avrec's doing
    with _in_empty_dir() as d:
        (d / "c.yaml").write_text(text, encoding="utf-8")
        try:
            cfg = load_config(d / "c.yaml", env={})
        except ConfigError as e:  # only a choice or the device is checked
            assert key in _CHOICES and key in str(e)
            return
        assert _get(cfg, key) == value


DEVICE_RE = re.compile(r"auto|cpu|cuda|mps|cuda:[0-9]+")


@settings(max_examples=100, **SETTINGS)
@given(device=st.one_of(st.sampled_from(["auto", "cpu", "cuda", "mps", "cuda:0", "cuda:12", "cuda:", "cuda:-1", "gpu",
                                         "CPU", "cuda:1 ", "cuda:²", "cuda:٣", "cuda:1a"]),
                        st.text(max_size=4).map(lambda s: "cuda:" + s)))
def test_a_device_is_accepted_exactly_when_torch_can_parse_it(device):
    with _in_empty_dir():
        try:
            cfg = load_config(None, device=device, env={})
        except ConfigError as e:
            assert not DEVICE_RE.fullmatch(device) and "runtime.device" in str(e)
        else:
            assert DEVICE_RE.fullmatch(device) and cfg.runtime.device == device
            if device.startswith("cuda:"):
                assert int(device[5:]) >= 0  # what resolve_device does with it


# ---------------------------------------------------------------------------------------
# layers

DEVICES = st.sampled_from(["auto", "cpu", "cuda", "mps", "cuda:0", "cuda:3"])
MAYBE_DEVICE = st.one_of(st.none(), DEVICES)


@settings(max_examples=100, **SETTINGS)
@given(file_dev=MAYBE_DEVICE, env_dev=st.one_of(MAYBE_DEVICE, st.just("")), set_devs=st.lists(DEVICES, max_size=2),
       flag=st.one_of(MAYBE_DEVICE, st.just("")), file_model=st.one_of(st.none(), st.sampled_from(_CHOICES["train.model"])),
       set_model=st.one_of(st.none(), st.sampled_from(_CHOICES["train.model"])),
       file_dir=st.one_of(st.none(), st.just("from-file")), env_dir=st.one_of(st.none(), st.just("from-env")),
       set_dir=st.one_of(st.none(), st.just("from-set")), how=st.sampled_from(["arg", "env", "cwd", "none"]))
def test_layers_keep_their_precedence(file_dev, env_dev, set_devs, flag, file_model, set_model, file_dir, env_dir,
                                      set_dir, how):
    """defaults < file < $AVREC_DEVICE / $AVREC_WORKDIR < --set (last wins) < --device."""
    doc: dict = {}
    if file_dev:
        doc.setdefault("runtime", {})["device"] = file_dev
    if file_dir:
        doc.setdefault("runtime", {})["workdir"] = file_dir
    if file_model:
        doc["train"] = {"model": file_model}
    sets = [f"runtime.device={d}" for d in set_devs]
    if set_model:
        sets.append(f"train.model={set_model}")
    if set_dir:
        sets.append(f"runtime.workdir={set_dir}")
    env = {}
    if env_dev is not None:
        env["AVREC_DEVICE"] = env_dev
    if env_dir:
        env["AVREC_WORKDIR"] = env_dir
    with _in_empty_dir() as d:
        name = "avrec.yaml" if how == "cwd" else "mine.yaml"
        (d / name).write_text(yaml.safe_dump(doc), encoding="utf-8")
        if how == "env":
            env["AVREC_CONFIG"] = str(d / name)
        cfg = load_config(d / name if how == "arg" else None, sets=sets, device=flag or None, env=env)
    uses_file = how != "none"
    want_dev = next(x for x in (flag, *reversed(set_devs), env_dev, file_dev if uses_file else None, "auto") if x)
    want_model = next(x for x in (set_model, file_model if uses_file else None, "hybrid") if x)
    want_dir = next(x for x in (set_dir, env_dir, file_dir if uses_file else None, "avrec-work") if x)
    assert (cfg.runtime.device, cfg.train.model, cfg.runtime.workdir) == (want_dev, want_model, want_dir)
    rest = dataclasses.replace(cfg, runtime=Config().runtime, train=Config().train)
    assert rest == Config()  # nothing else moved
