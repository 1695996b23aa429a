"""The GPU paths of `avrec embed`: cuda, cuda:N, auto, fp16 and bf16, on the tiny saved models.

Skipped where torch sees no CUDA device (CI has none); run them on a GPU machine with
``python -m pytest tests/encoders -q``. The CPU fp32 run is the reference: fp32 on the GPU
must agree with it closely, and half precision must keep every vector pointing the same
way (cosine near 1), since the vectors feed the same index.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

from typer.testing import CliRunner  # noqa: E402

from avrec.cli import app  # noqa: E402
from avrec.encoders.query import encode_query  # noqa: E402

MODALITIES = ("video", "audio", "text")


def embed(features, out, device, *sets):
    args = ["embed", str(features), "-o", str(out), "--device", device]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.stderr + res.stdout
    return out


def models(tiny):
    return (f"embed.video=clip:{tiny['clip']}", f"embed.audio=clap:{tiny['clap']}",
            f"embed.text=text:{tiny['bert']}", "embed.batch_size=4")


def vectors(out):
    return {m: (np.load(out / f"{m}.npy"), np.load(out / f"{m}_mask.npy")) for m in MODALITIES}


def rowwise_cos(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def on_cpu(tiny_models, features_dir, tmp_path_factory):
    return vectors(embed(features_dir, tmp_path_factory.mktemp("cpu") / "emb", "cpu", *models(tiny_models)))


def test_fp32_on_cuda_matches_cpu(on_cpu, tiny_models, features_dir, tmp_path):
    out = embed(features_dir, tmp_path / "emb", "cuda", *models(tiny_models))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extra"]["device"] == "cuda" and manifest["extra"]["precision"] == "fp32"
    got = vectors(out)
    for m in MODALITIES:
        x, mask = got[m]
        ref, ref_mask = on_cpu[m]
        assert (mask == ref_mask).all()
        # cuDNN may use TF32 for convolutions (CLIP's patch embedding), hence not bit-equal
        assert np.allclose(x, ref, atol=2e-3), m


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_keeps_the_vectors(precision, on_cpu, tiny_models, features_dir, tmp_path):
    out = embed(features_dir, tmp_path / "emb", "cuda", *models(tiny_models), f"embed.precision={precision}")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extra"]["precision"] == precision
    got = vectors(out)
    for m in MODALITIES:
        x, mask = got[m]
        ref, ref_mask = on_cpu[m]
        assert x.dtype == np.float32 and (mask == ref_mask).all()
        assert np.allclose(np.linalg.norm(x[mask], axis=1), 1, atol=1e-3)
        assert rowwise_cos(x[mask], ref[mask]).min() > 0.99, m


def test_numbered_device_and_auto(on_cpu, tiny_models, features_dir, tmp_path):
    out = embed(features_dir, tmp_path / "n", "cuda:0", *models(tiny_models))
    assert json.loads((out / "manifest.json").read_text())["extra"]["device"] == "cuda:0"
    auto = embed(features_dir, tmp_path / "a", "auto", f"embed.video=clip:{tiny_models['clip']}", "embed.audio=",
                 "embed.text=")
    assert json.loads((auto / "manifest.json").read_text())["extra"]["device"] == "cuda"
    assert np.allclose(np.load(auto / "video.npy"), on_cpu["video"][0], atol=2e-3)


def test_a_missing_gpu_number_is_one_clear_line(tiny_models, features_dir, tmp_path):
    n = torch.cuda.device_count()
    res = CliRunner().invoke(app, ["embed", str(features_dir), "-o", str(tmp_path / "x"), "--device", f"cuda:{n}",
                                   "--set", f"embed.video=clip:{tiny_models['clip']}"])
    assert res.exit_code == 2
    error = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and f"cuda:{n}" in error[0] and "cuda:0" in error[0]
    assert not (tmp_path / "x").exists()


def test_dataloader_workers_feed_the_gpu(on_cpu, tiny_models, features_dir, tmp_path):
    out = embed(features_dir, tmp_path / "emb", "cuda", *models(tiny_models), "embed.workers=2",
                "embed.batch_size=3")
    got = vectors(out)
    for m in ("video", "audio"):
        assert np.allclose(got[m][0], on_cpu[m][0], atol=2e-3)


def test_speech_on_cuda_in_half_precision(tiny_models, features_dir, tmp_path):
    out = embed(features_dir, tmp_path / "emb", "cuda", f"embed.speech=asr:{tiny_models['whisper']}",
                "embed.video=", "embed.audio=", f"embed.text=text:{tiny_models['bert']}", "embed.precision=fp16")
    rows = {json.loads(line)["item_id"]: json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()}
    assert rows["e"]["transcript"] and rows["d"]["transcript"] == ""


def test_query_on_cuda_matches_cpu(tiny_models):
    for name in (f"clip:{tiny_models['clip']}", f"clap:{tiny_models['clap']}", f"text:{tiny_models['bert']}"):
        q_gpu = encode_query("slow piano music", encoder=name, device="cuda")
        q_cpu = encode_query("slow piano music", encoder=name, device="cpu")
        assert np.allclose(q_gpu, q_cpu, atol=2e-3), name
