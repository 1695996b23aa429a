"""Bad input to the embed stage: wrong config, wrong or empty artifacts, missing models
and vector files. Each fails with one line on stderr, the right exit code and no output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from encoders.features_kit import frames, make_features, tone
from typer.testing import CliRunner

from avrec.cli import app
from avrec.config import load_config
from avrec.embed import embed
from avrec.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    specs = [{"item_id": f"v{i}", "title": f"clip {i}", "frames": frames(i, 1), "audio": tone(300 + 40 * i, 0.3),
              "video_features": np.arange(5.0) * i, "audio_features": np.arange(6.0) - i} for i in range(3)]
    return make_features(tmp_path_factory.mktemp("f") / "features", specs)


def cfg_with(*sets):
    return load_config(None, ["embed.text=", *sets], env={})


def test_bad_config_is_reported(features, tmp_path):
    with pytest.raises(ConfigError, match="embed.video=clap:x cannot embed video"):
        embed(features, tmp_path / "e", cfg_with("embed.video=clap:x"))
    with pytest.raises(ConfigError, match="embed.weights.vidoe: unknown modality"):
        embed(features, tmp_path / "e", cfg_with("embed.weights.vidoe=2"))
    with pytest.raises(ConfigError, match="all empty"):
        embed(features, tmp_path / "e", cfg_with("embed.video=", "embed.audio="))
    with pytest.raises(ConfigError, match="must be an asr"):
        embed(features, tmp_path / "e", cfg_with("embed.speech=builtin"))
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        embed(features, tmp_path / "e", load_config(None, ["embed.precision=fp16", "embed.text=text:whatever"],
                                                    device="cpu", env={}))
    assert not (tmp_path / "e").exists()


def test_no_ok_items_is_an_input_error(tmp_path):
    f = make_features(tmp_path / "f", [{"item_id": "x", "status": "failed", "error": "boom"}])
    with pytest.raises(InputError, match="no items with status ok"):
        embed(f, tmp_path / "e", cfg_with())


@pytest.mark.parametrize("args, code, message", [
    (["--set", "embed.video=nope:x"], 2, "unknown encoder 'nope:x'"),
    (["--set", "embed.pooling=median"], 2, "embed.pooling must be one of"),
    (["--set", "embed.text=text:./no/such/model"], 1, "model directory not found"),
    (["--set", "embed.text=text:someone/not-a-cached-model-42"], 1, "hf download someone/not-a-cached-model-42"),
])
def test_cli_errors_are_one_line_with_exit_codes(features, tmp_path, monkeypatch, args, code, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(app, ["embed", str(features), "-o", str(tmp_path / "e"), "--device", "cpu", "-q",
                                   *args])
    assert res.exit_code == code and message in res.stderr
    assert res.stdout == "" and len(res.stderr.strip().splitlines()) == 1


def test_cli_wrong_input_artifact(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text(json.dumps({"artifact": "model", "schema_version": 1}))
    res = CliRunner().invoke(app, ["embed", str(tmp_path / "m"), "-o", str(tmp_path / "e")])
    assert res.exit_code == 2 and "'model' artifact" in res.stderr


def test_cli_missing_or_empty_inputs(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["embed", str(tmp_path / "absent"), "-o", str(tmp_path / "e")])
    assert res.exit_code == 2 and "artifact directory not found" in res.stderr
    res = runner.invoke(app, ["embed", "-", "-o", str(tmp_path / "e")], input="")
    assert res.exit_code == 2 and "nothing arrived on stdin" in res.stderr
    res = runner.invoke(app, ["embed", "-w", str(tmp_path / "empty-work")], input="")
    assert res.exit_code == 2 and "no features artifact" in res.stderr
    assert res.stdout == "" and not (tmp_path / "e").exists()


def test_cli_bad_vector_file(features, tmp_path):
    np.save(tmp_path / "v.npy", np.ones((2, 4), np.float32))
    (tmp_path / "v.npy.ids.txt").write_text("v0\n")
    res = CliRunner().invoke(app, ["embed", str(features), "-o", str(tmp_path / "e"), "-q",
                                   "--text", f"npy:{tmp_path / 'v.npy'}"])
    assert res.exit_code == 2 and "2 rows but 1 ids" in res.stderr
    res = CliRunner().invoke(app, ["embed", str(features), "-o", str(tmp_path / "e"), "-q",
                                   "--audio", f"npy:{tmp_path / 'nope.npy'}"])
    assert res.exit_code == 2 and "file not found" in res.stderr


def test_cli_cuda_when_absent(features, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = CliRunner().invoke(app, ["embed", str(features), "-o", str(tmp_path / "e"), "--device", "cuda",
                                   "--text", "text:sentence-transformers/all-MiniLM-L6-v2"])
    assert res.exit_code == 2 and "CUDA is not available" in res.stderr
