"""`embed.modalities`: any number of named modalities, each with its kind. Two audio
embeddings (say VGGish and Whisper) are two modalities of their own names, so indexes,
filters and explanations name the right one instead of passing one off as "video"."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avrec_runner import run_avrec


def _ok(r) -> str:
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def named(sample_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("named")
    feats = _ok(run_avrec("extract", str(sample_data / "media"), "--metadata", str(sample_data / "metadata.csv"),
                          "-o", str(tmp / "features")))
    ids = [json.loads(x)["item_id"] for x in (tmp / "features" / "items.jsonl").read_text().splitlines()]
    worlds = sorted({i.split("_")[0] for i in ids})
    rng = np.random.default_rng(0)
    centre = {w: rng.normal(size=16) for w in worlds}
    # "vggish" knows the world of every item; "whisper" is noise (a shared direction plus jitter)
    vggish = np.stack([centre[i.split("_")[0]] + 0.2 * rng.normal(size=16) for i in ids]).astype(np.float32)
    whisper = (np.ones(12) + 0.5 * rng.normal(size=(len(ids), 12))).astype(np.float32)
    for name, mat in (("vggish", vggish), ("whisper", whisper)):
        np.save(tmp / f"{name}.npy", mat)
        (tmp / f"{name}.npy.ids.txt").write_text("".join(f"{i}\n" for i in ids))
    sets = ["--set", "embed.video=", "--set", "embed.audio=",
            "--set", f"embed.modalities.vggish=npy:{tmp / 'vggish.npy'}", "--set", "embed.kinds.vggish=audio",
            "--set", f"embed.modalities.whisper=npy:{tmp / 'whisper.npy'}", "--set", "embed.kinds.whisper=audio"]
    emb = _ok(run_avrec("embed", feats, "-o", str(tmp / "emb"), *sets))
    model = _ok(run_avrec("train", emb, "-i", str(sample_data / "interactions.csv"), "-o", str(tmp / "model")))
    idx = _ok(run_avrec("index", model, "-o", str(tmp / "index")))
    return tmp, ids, emb, idx


def test_named_modalities_are_stored_under_their_names_with_their_kinds(named):
    tmp, ids, emb, _idx = named
    man = json.loads((tmp / "emb" / "manifest.json").read_text())
    assert set(man["models"]) == {"text", "vggish", "whisper"}
    assert man["config"]["embed"]["kinds"] == {"text": "text", "vggish": "audio", "whisper": "audio"}
    assert [b["modality"] for b in man["extra"]["blocks"]] == ["text", "vggish", "whisper"]
    for m in ("vggish", "whisper"):
        assert (tmp / "emb" / f"{m}.npy").exists()
    fusion = json.loads((tmp / "emb" / "fusion.json").read_text())
    assert fusion["kinds"]["vggish"] == "audio"
    row = json.loads((tmp / "emb" / "items.jsonl").read_text().splitlines()[0])
    assert set(row["modalities"]) == {"text", "vggish", "whisper"}


def test_explanations_and_filters_name_the_modality_that_carries_it(named):
    _tmp, ids, _emb, idx = named
    said = []
    for item in [i for i in ids if i.endswith("_1")]:
        out = _ok(run_avrec("recommend", idx, "--item", item, "--k", "3", "--explain", "--json"))
        said += [json.loads(x)["explain"]["modality"] for x in out.splitlines()]
    assert said and said.count("vggish") > said.count("whisper")
    assert "video" not in said and "audio" not in said
    out = _ok(run_avrec("recommend", idx, "--item", "ocean_video_1", "--modality", "vggish", "--k", "3", "--json"))
    assert sum(json.loads(x)["item_id"].startswith("ocean") for x in out.splitlines()) >= 2
    out = _ok(run_avrec("recommend", idx, "--user", "u001", "--filter", "modality=vggish", "--json"))
    assert out


@pytest.mark.parametrize("sets, needle", [
    (["--set", "embed.modalities.Bad-Name=npy:x.npy"], "modality name"),
    (["--set", "embed.modalities.fused=npy:x.npy"], "modality name"),
    (["--set", "embed.modalities.extra=builtin"], "embed.kinds.extra"),
    (["--set", "embed.kinds.ghost=audio"], "no modality of that name"),
    (["--set", "embed.kinds.text=audio"], "holds text"),
    (["--set", "embed.modalities.speechy=text:sentence-transformers/all-MiniLM-L6-v2", "--set",
      "embed.kinds.speechy=audio"], "embeds text"),
    (["--set", "embed.kinds.video=smell"], "visual, audio, text or other"),
])
def test_bad_named_modalities_are_one_clear_line(named, sets, needle):
    tmp, _ids, _emb, _idx = named
    r = run_avrec("embed", str(tmp / "features"), "-o", str(tmp / "never"), *sets)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp / "never").exists()
