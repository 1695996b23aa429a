"""`avrec embed` with distributed.engine=ray: actors that each load the models once and embed a
slice of the items must give the artifact the local engine gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from avrec.cli import app  # noqa: E402


def run_embed(features, out, *sets, flags=(), device="cpu"):
    args = ["embed", str(features), "-o", str(out), "--device", device, *flags]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.stderr + res.stdout
    return out


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)  # a cluster without GPUs
    yield ray
    ray.shutdown()


def test_ray_actors_give_the_local_artifact(local_ray, tiny_models, features_dir, tmp_path):
    sets = (f"embed.video=clip:{tiny_models['clip']}", f"embed.audio=clap:{tiny_models['clap']}",
            f"embed.text=text:{tiny_models['bert']}", f"embed.speech=asr:{tiny_models['whisper']}",
            "embed.batch_size=3")
    local = run_embed(features_dir, tmp_path / "local", *sets)
    # auto: the cluster has no GPUs, so the actors run on the CPU
    distributed = run_embed(features_dir, tmp_path / "ray", *sets, flags=("--engine", "ray", "--actors", "2"),
                            device="auto")
    manifest = json.loads((distributed / "manifest.json").read_text())
    assert manifest["extra"]["engine"] == "ray" and manifest["extra"]["actors"] == 2
    assert manifest["extra"]["device"] == "cpu"
    assert (distributed / "items.jsonl").read_text() == (local / "items.jsonl").read_text()  # transcripts too
    for name in ("video", "audio", "text", "fused"):
        assert np.allclose(np.load(distributed / f"{name}.npy"), np.load(local / f"{name}.npy"), atol=1e-5), name
    for m in ("video", "audio", "text"):
        assert (np.load(distributed / f"{m}_mask.npy") == np.load(local / f"{m}_mask.npy")).all()


def test_a_model_that_cannot_load_on_the_actors_is_one_line(local_ray, tiny_models, features_dir, tmp_path):
    res = CliRunner().invoke(app, ["embed", str(features_dir), "-o", str(tmp_path / "x"), "--device", "cpu",
                                   "--set", f"embed.video=clip:{tiny_models['bert']}",
                                   "--set", "distributed.engine=ray"])
    assert res.exit_code == 1
    error = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "CLIP-style" in error[0] and not (tmp_path / "x").exists()


def test_the_clusters_gpus_decide_the_device_not_the_drivers(local_ray, tiny_models, features_dir, tmp_path):
    # --device cuda asks for GPU actors: refused because the cluster has none (whatever this
    # process has), with the exit code of a device error and nothing written
    res = CliRunner().invoke(app, ["embed", str(features_dir), "-o", str(tmp_path / "x"), "--device", "cuda",
                                   "--set", f"embed.video=clip:{tiny_models['clip']}", "--engine", "ray"])
    assert res.exit_code == 2
    error = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Ray cluster has no GPUs" in error[0] and not (tmp_path / "x").exists()
