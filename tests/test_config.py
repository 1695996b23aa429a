from __future__ import annotations

from pathlib import Path

import pytest

from avrec.config import Config, apply_set, load_config, resolve_device
from avrec.errors import ConfigError, DeviceError

ROOT = Path(__file__).resolve().parent.parent


def test_default_yaml_lists_exactly_the_defaults():
    # configs/default.yaml documents every key; it must not drift from the dataclasses
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            if isinstance(v, dict) and k != "weights":
                out |= keys(v, f"{prefix}{k}.")
            else:
                out.add(f"{prefix}{k}")
        return out

    assert keys(raw) == keys(Config().to_dict())
    assert load_config(ROOT / "configs" / "default.yaml", env={}) == Config()


@pytest.mark.parametrize("preset", ["cpu", "cuda"])
def test_presets_load(preset):
    cfg = load_config(ROOT / "configs" / f"{preset}.yaml", env={})
    assert cfg.runtime.device == preset


def test_unknown_key_names_the_closest_valid_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  modle: ease\n")
    with pytest.raises(ConfigError, match=r"train\.modle.*did you mean 'train\.model'"):
        load_config(p, env={})
    with pytest.raises(ConfigError, match=r"did you mean 'index\.n_trees'"):
        load_config(sets=["index.ntrees=10"], env={})


def test_unknown_section_is_an_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("embedd:\n  text: ''\n")
    with pytest.raises(ConfigError, match="did you mean 'embed'"):
        load_config(p, env={})


def test_bad_yaml_says_where(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  model: [ease\n")
    with pytest.raises(ConfigError, match="invalid YAML .* line"):
        load_config(p, env={})


def test_precedence_file_env_set_flag(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("runtime:\n  device: cpu\ntrain:\n  model: ease\n  ease:\n    l2: 10\n")
    cfg = load_config(p, env={})
    assert (cfg.runtime.device, cfg.train.model, cfg.train.ease.l2) == ("cpu", "ease", 10.0)
    assert load_config(p, env={"AVREC_DEVICE": "cuda"}).runtime.device == "cuda"
    cfg = load_config(p, sets=["runtime.device=cuda:1", "train.ease.l2=3"], env={"AVREC_DEVICE": "cuda"})
    assert (cfg.runtime.device, cfg.train.ease.l2) == ("cuda:1", 3.0)
    assert load_config(p, sets=["runtime.device=cuda"], device="cpu", env={}).runtime.device == "cpu"


def test_set_parses_yaml_values_and_merges_mappings():
    cfg = Config()
    apply_set(cfg, "evaluate.k=[1, 5]")
    apply_set(cfg, "embed.weights.text=2")
    apply_set(cfg, "extract.keyframes=true")
    assert cfg.evaluate.k == [1, 5]
    assert cfg.embed.weights == {"video": 1.0, "audio": 1.0, "text": 2.0}
    assert cfg.extract.keyframes is True


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("extract.fps=fast", "expected a number"),
        ("train.hybrid.dim=1.5", "expected an integer"),
        ("train.model=deepfm", "train.model must be one of"),
        ("runtime.device=tpu", "runtime.device must be"),
        ("noequals", "key=value"),
    ],
)
def test_bad_values_are_config_errors(assignment, message):
    with pytest.raises(ConfigError, match=message):
        load_config(sets=[assignment], env={})


def test_cuda_requested_without_cuda_is_a_clear_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto") in ("cpu", "mps")


def test_cpu_devices_resolve_without_importing_torch():
    """The ALS path never needs torch: resolving cpu (and auto on a machine with no GPU device
    node) must not import it (~2 s of every train)."""
    import subprocess
    import sys

    from avrec.config import _gpu_nodes

    code = ("import sys; from avrec.config import resolve_device; "
            "print(resolve_device('cpu'), resolve_device('auto'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "cpu"
    if not _gpu_nodes() and sys.platform.startswith("linux"):
        assert out[1:] == ["cpu", "False"]


def test_bare_off_and_on_in_yaml_are_the_words_not_booleans(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  tune: off\n  recency: on\n")  # YAML 1.1 reads both as booleans
    cfg = load_config(p)
    assert cfg.train.tune == "off" and cfg.train.recency == "on"
