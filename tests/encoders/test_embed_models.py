"""The real loading and embedding code on tiny saved CLIP, CLAP, BERT, AST and Whisper models,
through `avrec embed` (in-process CLI runner, so each model loads once per session)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from avrec.cli import app  # noqa: E402
from avrec.encoders.query import encode_query  # noqa: E402
from avrec.features.store import FeatureStore  # noqa: E402


def run_embed(features, out, *sets):
    args = ["embed", str(features), "-o", str(out), "--device", "cpu"]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.stderr + res.stdout
    assert res.stdout.strip() == str(out)
    return out


def load(out):
    manifest = json.loads((out / "manifest.json").read_text())
    ids = [json.loads(line)["item_id"] for line in (out / "items.jsonl").read_text().splitlines()]
    return manifest, ids


def cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def multimodal(tiny_models, features_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("emb") / "embeddings"
    return run_embed(features_dir, out, f"embed.video=clip:{tiny_models['clip']}",
                     f"embed.audio=clap:{tiny_models['clap']}", f"embed.text=text:{tiny_models['bert']}",
                     "embed.batch_size=4")


def test_artifact_layout_and_masks(multimodal):
    manifest, ids = load(multimodal)
    assert manifest["artifact"] == "embeddings"
    assert ids == ["a", "b", "c", "d", "e", "g"]  # ok items only, catalogue order
    dims = {m: manifest["models"][m]["dim"] for m in ("video", "audio", "text")}
    assert dims == {"video": 16, "audio": 16, "text": 32}
    for m in dims:
        assert manifest["models"][m]["revision"].startswith("local-")
    masks = {m: np.load(multimodal / f"{m}_mask.npy") for m in dims}
    assert masks["video"].tolist() == [True, True, True, False, False, True]
    assert masks["audio"].tolist() == [True, True, True, False, True, False]
    assert masks["text"].tolist() == [True, True, True, True, False, False]
    for m in dims:
        x = np.load(multimodal / f"{m}.npy")
        assert x.dtype == np.float32 and x.shape == (6, dims[m])
        norms = np.linalg.norm(x, axis=1)
        assert np.allclose(norms[masks[m]], 1, atol=1e-5) and np.all(norms[~masks[m]] == 0)
    fused = np.load(multimodal / "fused.npy")
    assert fused.shape == (6, 64) and np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-5)
    # the text-only item d gets a fused vector from its text block alone (centred on the text mean)
    want = np.load(multimodal / "text.npy")[3] - np.load(multimodal / "centre_text.npy")
    assert np.allclose(fused[3, 32:], want / np.linalg.norm(want), atol=1e-5)
    assert manifest["extra"]["text_spaces"] == {
        "video": manifest["models"]["video"]["name"], "audio": manifest["models"]["audio"]["name"],
        "text": manifest["models"]["text"]["name"]}


def test_clip_video_matches_the_model_run_directly(multimodal, tiny_models, features_dir):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(tiny_models["clip"]).eval()
    proc = CLIPProcessor.from_pretrained(tiny_models["clip"])
    store = FeatureStore.open(features_dir)
    video = np.load(multimodal / "video.npy")
    for row, item in ((0, store.items[0]), (1, store.items[1])):
        px = proc(images=list(store.frames(item)), return_tensors="pt")
        with torch.inference_mode():
            f = model.get_image_features(**px)
        f = getattr(f, "pooler_output", f).numpy()
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        expect = f.mean(0) / np.linalg.norm(f.mean(0))  # mean pooling over frames
        assert np.allclose(video[row], expect, atol=1e-4)
    # identical media -> identical vectors; different media -> different vectors
    assert cos(video[0], video[2]) > 0.9999 and cos(video[0], video[1]) < 0.9999


def test_clap_audio_windows_are_pooled(multimodal, tiny_models, features_dir):
    import torch
    from transformers import ClapModel, ClapProcessor

    model = ClapModel.from_pretrained(tiny_models["clap"]).eval()
    fe = ClapProcessor.from_pretrained(tiny_models["clap"]).feature_extractor
    store = FeatureStore.open(features_dir)
    pcm = store.audio(store.items[0])  # 2.5 s -> windows of 1 s: 1, 1, 0.5 (kept: >= 25%)
    wins = [pcm[:16000], pcm[16000:32000], pcm[32000:]]
    x = fe(wins, sampling_rate=16000, return_tensors="pt", truncation="rand_trunc", padding="repeatpad")
    with torch.inference_mode():
        f = model.get_audio_features(**x)
    f = getattr(f, "pooler_output", f).numpy()
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    expect = f.mean(0) / np.linalg.norm(f.mean(0))
    assert np.allclose(np.load(multimodal / "audio.npy")[0], expect, atol=1e-4)


def test_text_is_mean_pooled_over_the_attention_mask(multimodal, tiny_models):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["bert"])
    model = AutoModel.from_pretrained(tiny_models["bert"]).eval()
    texts = ["a dog barking. dog", "lecture about physics"]  # items a and d: title (+ tags)
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    v = ((h * m).sum(1) / m.sum(1)).numpy()
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    text = np.load(multimodal / "text.npy")
    assert np.allclose(text[0], v[0], atol=1e-4) and np.allclose(text[3], v[1], atol=1e-4)


def test_queries_land_in_each_modality_space(multimodal, tiny_models):
    import torch
    from transformers import CLIPModel, CLIPTokenizer

    manifest, _ = load(multimodal)
    spaces = manifest["extra"]["text_spaces"]
    for m, dim in (("video", 16), ("audio", 16), ("text", 32)):
        q = encode_query("slow piano music", encoder=spaces[m], device="cpu")
        assert q.shape == (dim,) and q.dtype == np.float32 and abs(np.linalg.norm(q) - 1) < 1e-5
    tok = CLIPTokenizer.from_pretrained(tiny_models["clip"])
    model = CLIPModel.from_pretrained(tiny_models["clip"]).eval()
    with torch.inference_mode():
        f = model.get_text_features(**tok(["slow piano music"], return_tensors="pt"))
    f = getattr(f, "pooler_output", f).numpy()[0]
    assert np.allclose(encode_query("slow piano music", encoder=spaces["video"]), f / np.linalg.norm(f), atol=1e-4)


def test_ast_audio_and_max_pooling(tiny_models, features_dir, tmp_path):
    import torch
    from transformers import ASTFeatureExtractor, ASTModel

    out = run_embed(features_dir, tmp_path / "emb", f"embed.audio=audio:{tiny_models['ast']}", "embed.video=",
                    "embed.text=", "embed.pooling=max")
    manifest, ids = load(out)
    assert set(manifest["models"]) == {"audio"} and manifest["models"]["audio"]["dim"] == 32
    audio = np.load(out / "audio.npy")
    assert np.load(out / "audio_mask.npy").tolist() == [True, True, True, False, True, False]
    # item e: 1 s of noise, one AST window (0.655 s native window -> two windows, the last kept)
    store = FeatureStore.open(features_dir)
    pcm = store.audio(store.items[4])
    fe = ASTFeatureExtractor.from_pretrained(tiny_models["ast"])
    model = ASTModel.from_pretrained(tiny_models["ast"]).eval()
    size = int(round((64 * 0.01 + 0.015) * 16000))
    wins = [pcm[i : i + size] for i in range(0, len(pcm), size)]
    with torch.inference_mode():
        f = model(**fe(wins, sampling_rate=16000, return_tensors="pt")).pooler_output.numpy()
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    expect = f.max(0) / np.linalg.norm(f.max(0))
    assert np.allclose(audio[4], expect, atol=1e-4)


def test_speech_transcripts_feed_the_text(tiny_models, features_dir, tmp_path):
    out = run_embed(features_dir, tmp_path / "emb", f"embed.speech=asr:{tiny_models['whisper']}", "embed.video=",
                    "embed.audio=", f"embed.text=text:{tiny_models['bert']}")
    manifest, ids = load(out)
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    by_id = {r["item_id"]: r for r in rows}
    assert manifest["extra"]["speech"]["revision"].startswith("local-")
    assert by_id["e"]["transcript"]  # noise is "speech" to a random model
    assert by_id["d"]["transcript"] == "" and by_id["g"]["transcript"] == ""  # no audio
    # item e has no title or tags: its only text is the transcript
    assert np.load(out / "text_mask.npy")[ids.index("e")]
    assert "text" in by_id["e"]["modalities"]


def test_wrong_model_kind_is_a_clear_error(tiny_models, features_dir, tmp_path):
    res = CliRunner().invoke(app, ["embed", str(features_dir), "-o", str(tmp_path / "x"), "--device", "cpu",
                                   "--set", f"embed.video=clip:{tiny_models['bert']}"])
    assert res.exit_code == 1
    assert "CLIP-style" in res.stderr and not (tmp_path / "x").exists()


def test_dataloader_workers_give_the_same_vectors(multimodal, tiny_models, features_dir, tmp_path):
    out = run_embed(features_dir, tmp_path / "emb", f"embed.video=clip:{tiny_models['clip']}",
                    f"embed.audio=clap:{tiny_models['clap']}", "embed.text=", "embed.workers=2",
                    "embed.batch_size=3")
    for m in ("video", "audio"):
        assert np.allclose(np.load(out / f"{m}.npy"), np.load(multimodal / f"{m}.npy"), atol=1e-5)
        assert (np.load(out / f"{m}_mask.npy") == np.load(multimodal / f"{m}_mask.npy")).all()


def test_a_failing_item_loses_only_its_modality(features_dir):
    from avrec.embed import _MediaDataset, _run_units

    store = FeatureStore.open(features_dir)
    items = store.ok_items

    def prepare(frames):
        return [{"x": f.astype(np.float32).mean(keepdims=True)} for f in frames]

    def run(units):  # the model chokes on item b's second frame only
        if any(u["x"][0] == np.float32(marker) for u in units):
            raise RuntimeError("bad frame")
        return [u["x"] for u in units]

    marker = store.frames(items[1])[1].astype(np.float32).mean()
    outputs, errors = _run_units(_MediaDataset(store.path, items, "frames", prepare), run, batch_size=4,
                                 workers=0, label="test", progress=None)
    assert errors == {1: "RuntimeError: bad frame"}
    assert sorted(outputs) == [0, 2, 5]  # a, c, g have frames; b failed; d, e have none
    assert len(outputs[0]) == 3 and all(o is not None for o in outputs[0])


def test_frames_at_the_model_size_skip_the_processor_exactly(tiny_models):
    from transformers import CLIPProcessor

    from avrec.encoders.clip import FramePreparer, normalise_np, normaliser
    from features_kit import frames

    ip = CLIPProcessor.from_pretrained(tiny_models["clip"]).image_processor
    prep = FramePreparer(ip)
    at_size = frames(3, 4, size=32)  # the tiny CLIP's input size: stored as uint8, normalised by the model
    units = prep(at_size)
    assert [sorted(u) for u in units] == [["pixels"]] * 4 and units[0]["pixels"].dtype == np.uint8
    expect = ip(images=list(at_size), return_tensors="np")["pixel_values"]
    got = normalise_np(np.stack([u["pixels"] for u in units]), *normaliser(ip))
    assert np.allclose(got, expect, atol=1e-5)
    other = prep(frames(3, 2, size=48))  # another size needs the processor's resize and crop
    assert [sorted(u) for u in other] == [["pixel_values"]] * 2 and other[0]["pixel_values"].shape == (3, 32, 32)


def test_mixed_frame_units_in_one_batch_match_separate_batches(tiny_models):
    from avrec.encoders import clear_cache, load_encoder
    from features_kit import frames

    clear_cache()
    enc = load_encoder(f"clip:{tiny_models['clip']}", device="cpu")
    prep = enc.frame_preparer()
    fast = prep(frames(5, 2, size=32))
    slow = prep(frames(6, 2, size=40))
    alone = np.concatenate([enc.embed_units(fast, "video"), enc.embed_units(slow, "video")])
    mixed = enc.embed_units(fast + slow, "video")
    assert np.allclose(mixed, alone, atol=1e-5)


def test_clap_spectrogram_matches_the_feature_extractor(tiny_models):
    from transformers import ClapProcessor

    from avrec.encoders.clap import ClapAudioPreparer

    fe = ClapProcessor.from_pretrained(tiny_models["clap"]).feature_extractor
    prep = ClapAudioPreparer(fe, fe.sampling_rate)
    rng = np.random.default_rng(3)
    pcm = (0.2 * rng.normal(size=int(2.4 * fe.nb_max_samples))).astype(np.float32)
    pcm[: fe.nb_max_samples // 2] *= 1e-4  # a near-silent stretch: the dB floor matters there
    units = prep(pcm)  # windows 1, 1 and a 0.4 tail that the extractor repeat-pads
    assert prep._fast is True and len(units) == 3
    wins = [pcm[i : i + fe.nb_max_samples] for i in range(0, len(pcm), fe.nb_max_samples)]
    ref = fe(wins, sampling_rate=fe.sampling_rate, return_tensors="np", truncation="rand_trunc", padding="repeatpad")
    for u, r, longer in zip(units, ref["input_features"], ref["is_longer"]):
        assert u["input_features"].shape == r.shape and np.allclose(u["input_features"], r, atol=1e-3)
        assert bool(u["is_longer"][0]) == bool(longer[0])


def test_clap_wave_units_give_the_same_vectors_as_spectrogram_units(tiny_models):
    """On a GPU the preparer hands over padded windows and the spectrogram is made on the device;
    the vectors must be those of the CPU route, also for a batch mixing both kinds of unit."""
    from avrec.encoders import clear_cache, load_encoder
    from avrec.encoders.clap import ClapAudioPreparer

    clear_cache()
    enc = load_encoder(f"clap:{tiny_models['clap']}", device="cpu")
    fe = enc.processor.feature_extractor
    rng = np.random.default_rng(5)
    pcm = (0.2 * rng.normal(size=int(2.5 * fe.nb_max_samples))).astype(np.float32)
    as_mel = ClapAudioPreparer(fe, fe.sampling_rate)(pcm)
    as_wave = ClapAudioPreparer(fe, fe.sampling_rate, wave_units=True)(pcm)
    assert [sorted(u) for u in as_wave] == [["wave"]] * 3 and all(len(u["wave"]) == fe.nb_max_samples for u in as_wave)
    ref = enc.embed_units(as_mel, "audio")
    assert np.allclose(enc.embed_units(as_wave, "audio"), ref, atol=1e-5)
    assert np.allclose(enc.embed_units([as_wave[0], as_mel[1], as_wave[2]], "audio"), ref, atol=1e-5)
