"""sentiment: a tiny sequence classifier (BERT config class, saved locally) whose output is
fixed by its bias, run through `avrec embed`: its emotions reach the mood record through the
label table, an unknown label is kept, and the manifest says what ran."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from avrec_runner import run_avrec

pytest.importorskip("torch")
pytest.importorskip("transformers")

LABELS = ["joy", "sadness", "anger", "fear", "surprise", "disgust", "neutral", "optimism"]
PROBS = [0.55, 0.05, 0.02, 0.02, 0.02, 0.02, 0.02, 0.30]  # what it says about every text


def build_classifier(d: Path) -> Path:
    import torch
    import transformers as T

    words = "a dog barking puppy noises stock market report piano music slow the of and news".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(words)), ".", ","]
    tok = T.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    cfg = T.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                       intermediate_size=37, max_position_embeddings=64, num_labels=len(LABELS),
                       id2label=dict(enumerate(LABELS)), label2id={lb: i for i, lb in enumerate(LABELS)})
    torch.manual_seed(0)
    model = T.BertForSequenceClassification(cfg).eval()
    with torch.no_grad():  # logits = log(PROBS) whatever the text
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.log(torch.tensor(PROBS)))
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return build_classifier(tmp_path_factory.mktemp("sentiment") / "clf")


def test_classifier_loads_and_classifies(classifier):
    from avrec.encoders import load_encoder

    enc = load_encoder(f"sentiment:{classifier}")
    assert enc.labels == LABELS and enc.kind == "sentiment" and enc.revision.startswith("local-")
    probs, present = enc.classify(["a dog barking", "", "piano music, slow"])
    assert present.tolist() == [True, False, True]
    assert np.allclose(probs[0], PROBS, atol=1e-5) and np.all(probs[1] == 0)


def test_emotions_reach_the_mood_record(classifier, features_dir, tmp_path):
    from avrec.understand import MOOD_LABELS

    out = tmp_path / "emb"
    proc = run_avrec("embed", str(features_dir), "-o", str(out), "--device", "cpu", "--set", "embed.text=",
                     "--set", f"understand.sentiment=sentiment:{classifier}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["item_id"]: r for r in map(json.loads, (out / "items.jsonl").read_text().splitlines())}
    pos = {m[0]: m[1:] for m in MOOD_LABELS}
    mapped = {"happy": 0.55, "sad": 0.05, "angry": 0.04, "tense": 0.02, "excited": 0.02, "neutral": 0.02}
    want_v = sum(p * pos[lb][0] for lb, p in mapped.items()) / sum(mapped.values())
    d = rows["d"]["understand"]["mood"]  # text only: "lecture about physics"
    assert d["from"] == {"valence": "text:sentiment", "arousal": "text:sentiment"}
    assert d["valence"] == pytest.approx(want_v, abs=1e-3) and d["valence"] > 0.5
    labels = {lb["label"]: lb for lb in d["labels"]}
    assert labels["optimism"]["score"] == pytest.approx(0.3, abs=1e-3)  # unknown: kept, moves nothing
    assert labels["optimism"]["from"] == "text:sentiment"
    assert d["labels"][0]["label"] == "happy"
    # an item with no text at all has no text mood
    assert "text" not in rows["g"].get("understand", {}).get("mood", {}).get("modalities", {})
    info = json.loads((out / "manifest.json").read_text())["extra"]["understand"]["sentiment"]
    assert info["name"] == f"sentiment:{classifier}" and info["labels"] == LABELS and info["items"] == 4


def test_sentiment_name_is_checked(features_dir, tmp_path):
    proc = run_avrec("embed", str(features_dir), "-o", str(tmp_path / "e"), "--set", "understand.sentiment=text:x")
    assert proc.returncode != 0 and "must be a sentiment:<id|path> model" in proc.stderr
