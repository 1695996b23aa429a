"""caption: tiny random BLIP- and GIT-style captioners, saved locally and run through
`avrec embed` (a subprocess: the real loading, preprocessing and generation code)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from avrec_runner import run_avrec

pytest.importorskip("torch")
pytest.importorskip("transformers")

WORDS = "a wave on the beach city street at night piano keys forest trees green blue photo of with".split()


def _tokenizer(extra: tuple[str, ...] = ()):
    import transformers as T

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra, *sorted(set(WORDS)), ".", ","]
    return T.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})


def _no_specials(model, tok) -> None:
    """Greedy decoding of random weights: never a special token but the end, at least 3 words."""
    gc = model.generation_config
    gc.min_new_tokens = 3
    gc.bad_words_ids = [[i] for i in tok.all_special_ids if i != tok.sep_token_id]


def build_blip(d: Path, image: int = 32) -> Path:
    import torch
    import transformers as T

    tok = _tokenizer(("[DEC]",))
    tok.add_special_tokens({"bos_token": "[DEC]"})
    cfg = T.BlipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, encoder_hidden_size=32, max_position_embeddings=64,
                         bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id,
                         sep_token_id=tok.sep_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=image, patch_size=8),
        projection_dim=16)
    torch.manual_seed(0)
    model = T.BlipForConditionalGeneration(cfg).eval()
    _no_specials(model, tok)
    model.save_pretrained(d)
    model.generation_config.save_pretrained(d)
    T.BlipProcessor(image_processor=T.BlipImageProcessor(size={"height": image, "width": image}),
                    tokenizer=tok).save_pretrained(d)
    return d


def build_git(d: Path, image: int = 32) -> Path:
    import torch
    import transformers as T

    tok = _tokenizer()
    cfg = T.GitConfig(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=image, patch_size=8),
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=64, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
        pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = T.GitForCausalLM(cfg).eval()
    _no_specials(model, tok)
    model.save_pretrained(d)
    model.generation_config.save_pretrained(d)
    ip = T.CLIPImageProcessor(size={"shortest_edge": image}, crop_size={"height": image, "width": image})
    T.GitProcessor(image_processor=ip, tokenizer=tok).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def captioners(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioners")
    return {"blip": build_blip(root / "blip"), "git": build_git(root / "git")}


def read(out):
    manifest = json.loads((out / "manifest.json").read_text())
    rows = {r["item_id"]: r for r in map(json.loads, (out / "items.jsonl").read_text().splitlines())}
    return manifest, rows


@pytest.mark.parametrize("family", ["blip", "git"])
def test_captions_through_embed(family, captioners, features_dir, tmp_path):
    out = tmp_path / "emb"
    proc = run_avrec("embed", str(features_dir), "-o", str(out), "--device", "cpu",
                     "--set", f"understand.caption=caption:{captioners[family]}", "--set", "understand.caption_frames=2",
                     "--set", "embed.batch_size=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest, rows = read(out)
    # items a, b, c, g have 3, 2, 3 and 1 stored frames at 0, 1, 2 s: two of them, spread, are captioned
    times = {i: [c["t"] for c in rows[i].get("understand", {}).get("captions", [])] for i in rows}
    assert times == {"a": [0.0, 2.0], "b": [0.0, 1.0], "c": [0.0, 2.0], "d": [], "e": [], "g": [0.0]}
    for i in "abcg":
        for c in rows[i]["understand"]["captions"]:
            assert set(c) == {"t", "text"} and c["text"] and set(c["text"].replace(".", " ").replace(",", " ").split()) <= set(WORDS)
    info = manifest["extra"]["understand"]["caption"]
    assert info["name"] == f"caption:{captioners[family]}" and info["family"] == family
    assert info["frames"] == 2 and info["items"] == 4 and info["captions"] == 7 and info["revision"].startswith("local-")
    # the captions join the text: g (a video with no words at all) now has a text vector
    text_mask = np.load(out / "text_mask.npy").tolist()
    assert text_mask[list(rows).index("g")] is True
    assert manifest["counts"]["errors"] == 0


def test_caption_text_is_embedded_like_a_transcript(captioners, features_dir, tmp_path):
    """The text vector of a captioned item is the encoder's vector of its title + captions."""
    out = tmp_path / "emb"
    proc = run_avrec("embed", str(features_dir), "-o", str(out), "--device", "cpu", "--set", "embed.video=",
                     "--set", "embed.audio=", "--set", f"understand.caption=caption:{captioners['blip']}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, rows = read(out)
    from avrec.embed import item_text
    from avrec.encoders import load_encoder
    from avrec.understand.captions import caption_text

    enc = load_encoder("text:sentence-transformers/all-MiniLM-L6-v2")
    a = rows["a"]
    want = enc.encode_text([item_text(a, caption_text(a["understand"]["captions"]))])[0]
    got = np.load(out / "text.npy")[list(rows).index("a")]
    assert np.allclose(got, want, atol=1e-4)
    assert a["title"] in item_text(a, "") and "captions" in a["understand"]


def test_a_model_of_another_family_is_refused(tiny_models, features_dir, tmp_path):
    proc = run_avrec("embed", str(features_dir), "-o", str(tmp_path / "e"), "--device", "cpu",
                     "--set", f"understand.caption=caption:{tiny_models['clip']}")
    assert proc.returncode != 0 and "BLIP or GIT" in proc.stderr
    proc = run_avrec("embed", str(features_dir), "-o", str(tmp_path / "e"), "--device", "cpu",
                     "--set", f"understand.caption=clip:{tiny_models['clip']}")
    assert proc.returncode != 0 and "must be a caption:<id|path> model" in proc.stderr
