"""The items' understand records (mood, captions, predicted tags) in the index, the mood and
tag filters of recommend, --explain's mood and because_you_like, and indexes without them.

The embeddings' items.jsonl is written here with "understand" records (the contract of
avrec/understand/__init__.py), so nothing depends on avrec embed computing them.
World w = i % 3 (tests/test_index_fixtures.py): world 0 is calm with the predicted tag
"surf", world 1 tense with "city", world 2 happy with no predicted tag; every fifth item
has no record at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avrec.artifacts import Manifest, write_jsonl, write_manifest
from avrec.config import IndexConfig
from avrec.errors import InputError
from avrec.index import Index, add_items, build_index
from avrec.recommend import Options, Recommender

from avrec_runner import run_avrec, run_light
from test_index_fixtures import item_rows, make_embeddings, make_model

MOODS = {0: ("calm", 0.5, -0.6), 1: ("tense", -0.5, 0.8), 2: ("happy", 0.8, 0.5)}
PREDICTED = {0: [("surf", 0.41), ("music", 0.3)], 1: [("city", 0.5)], 2: []}


def understand(i: int) -> dict | None:
    if i % 5 == 0:
        return None
    w = i % 3
    label, v, a = MOODS[w]
    labels = [{"label": label, "score": 0.7, "from": "audio"}]
    if i == 4:  # a classifier label outside MOOD_LABELS
        labels.append({"label": "dreamy", "score": 0.2, "from": "text"})
    rec = {"mood": {"valence": v, "arousal": a, "labels": labels, "from": {"valence": "audio", "arousal": "audio"}},
           "captions": [{"t": 1.0, "text": f"caption of {i}"}]}
    if PREDICTED[w]:
        rec["tags"] = [{"tag": t, "score": s, "from": "text"} for t, s in PREDICTED[w]]
    return rec


def remanifest(d: Path) -> None:
    """Rewrite a hand-edited artifact's manifest so that it lists the files as they are now."""
    m = json.loads((d / "manifest.json").read_text())
    keep = {k: m[k] for k in ("artifact", "config", "inputs", "models", "counts", "extra") if k in m}
    write_manifest(d, Manifest(**keep))


def with_understand(emb: Path, ids: list[int]) -> None:
    rows = item_rows(ids)
    for r, i in zip(rows, ids):
        u = understand(i)
        if u is not None:
            r["understand"] = u
    write_jsonl(emb / "items.jsonl", rows)
    remanifest(emb)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("und")
    model = make_model(tmp)
    with_understand(tmp / "embeddings", list(range(60)))
    return build_index(model, tmp / "index", IndexConfig(n_trees=5), seed=0)


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("plain")
    return build_index(make_model(tmp), tmp / "index", IndexConfig(n_trees=5), seed=0)


def rec(d: Path, **kw) -> Recommender:
    return Recommender(Index(d), Options(**kw))


def ids(rows) -> list[int]:
    return [int(r["item_id"][1:]) for r in rows]


# ------------------------------------------------------------------------------------------
# the index's columns


def test_index_stores_moods_predicted_tags_and_captions(index_dir):
    idx = Index(index_dir)
    man = json.loads((index_dir / "manifest.json").read_text())
    n_rec = sum(1 for i in range(60) if i % 5)
    assert man["counts"]["items_with_mood"] == n_rec and man["counts"]["items_with_captions"] == n_rec
    assert man["counts"]["items_with_predicted_tags"] == sum(1 for i in range(60) if i % 5 and i % 3 != 2)
    assert man["extra"]["understand"]["predicted_only"] == man["counts"]["items_with_predicted_tags"]  # surf, city
    val, aro = np.load(index_dir / "valence.npy"), np.load(index_dir / "arousal.npy")
    assert val.dtype == np.float32 and aro.dtype == np.float32
    assert np.isnan(val[0]) and np.isnan(aro[5]) and val[1] == np.float32(-0.5) and aro[3] == np.float32(-0.6)
    assert idx.mood_vocab[:9] == ["happy", "excited", "tense", "angry", "sad", "gloomy", "calm", "relaxed", "neutral"]
    assert "dreamy" in idx.mood_vocab and idx.item_moods(4) == [("tense", pytest.approx(0.7)),
                                                                  ("dreamy", pytest.approx(0.2))]
    # predicted tags sit beside the given ones; "music" is given to world 0, so it stays given
    assert idx.item_tags(3) == [("music", False, 1.0), ("surf", True, pytest.approx(0.41))]
    assert idx.item_tags(0) == [("music", False, 1.0)]  # no record
    assert np.load(index_dir / "tags_predicted.npy").dtype == bool
    assert np.load(index_dir / "tags_scores.npy").dtype == np.float32
    rows = [json.loads(line) for line in (index_dir / "items.jsonl").read_text().splitlines()]
    assert rows[3]["understand"]["captions"] == [{"t": 1.0, "text": "caption of 3"}] and "understand" not in rows[0]
    assert rows[3]["tags"] == ["music"]  # items.jsonl tags stay the given ones
    assert idx.item_mood(3) == {"valence": 0.5, "arousal": -0.6, "labels": ["calm"]} and idx.item_mood(0) is None


def test_index_stores_content_clusters_named_by_their_tags(index_dir):
    idx = Index(index_dir)
    man = json.loads((index_dir / "manifest.json").read_text())
    k = man["extra"]["clusters"]["k"]
    assert man["extra"]["clusters"]["on"] == "content_fused" and k == round(np.sqrt(30)) == man["counts"]["clusters"]
    cl = np.asarray(idx.clusters)
    assert cl.dtype == np.int32 and cl.shape == (60,) and cl.min() >= 0 and len(idx.cluster_names) == k
    # content worlds are well separated: no cluster mixes two worlds
    for c in range(k):
        assert len({i % 3 for i in np.flatnonzero(cl == c)}) <= 1
    names = {i % 3: idx.cluster_names[cl[i]] for i in range(60)}
    assert "surf" in names[0] and "news" in names[1] and "kids" in names[2]


# ------------------------------------------------------------------------------------------
# filters


def test_mood_filters_keep_only_matching_items(index_dir):
    for u in range(3):
        got = ids(rec(index_dir, k=30, filters=["mood=calm"]).for_user(f"u{u}"))
        assert got and all(i % 3 == 0 and i % 5 for i in got)
    got = ids(rec(index_dir, k=60, filters=["mood=calm,happy"]).for_user("u1"))
    assert got and {i % 3 for i in got} == {0, 2} and all(i % 5 for i in got)
    got = ids(rec(index_dir, k=60, filters=["mood!=calm"], exclude_seen=False).for_user("u0"))
    assert not [i for i in got if i % 3 == 0 and i % 5]  # no calm item; unknown moods pass !=
    assert 0 in got or 15 in got or 30 in got or 45 in got
    got = ids(rec(index_dir, k=60, filters=["MOOD=Dreamy"], exclude_seen=False).for_user("u1"))
    assert got == [4]


def test_valence_and_arousal_filters_are_numeric_and_skip_unknown_values(index_dir):
    got = ids(rec(index_dir, k=60, filters=["valence>0.3"], exclude_seen=False).for_user("u0"))
    assert sorted(got) == [i for i in range(60) if i % 5 and i % 3 in (0, 2)]
    got = ids(rec(index_dir, k=60, filters=["arousal<0"], exclude_seen=False).for_user("u1"))
    assert sorted(got) == [i for i in range(60) if i % 5 and i % 3 == 0]
    got = ids(rec(index_dir, k=60, filters=["valence!=0.8"], exclude_seen=False).for_user("u1"))
    assert sorted(got) == [i for i in range(60) if i % 5 and i % 3 in (0, 1)]  # NaN never passes
    got = ids(rec(index_dir, k=60, filters=["valence>=-1", "arousal>0.6"], exclude_seen=False).for_user("u0"))
    assert sorted(got) == [i for i in range(60) if i % 5 and i % 3 == 1]


def test_tag_filter_matches_given_or_predicted_tags_and_ptag_gtag_split_them(index_dir):
    surf = [i for i in range(60) if i % 3 == 0 and i % 5]
    for spec in ("tag=surf", "ptag=surf", "tag=SURF,nothing"):
        got = ids(rec(index_dir, k=60, filters=[spec], exclude_seen=False).for_user("u2"))
        assert sorted(got) == surf, spec
    assert rec(index_dir, k=60, filters=["gtag=surf"]).for_user("u0") == []
    assert rec(index_dir, k=60, filters=["ptag=music"]).for_user("u0") == []  # given as well: given
    got = ids(rec(index_dir, k=60, filters=["gtag=music"], exclude_seen=False).for_user("u0"))
    assert sorted(got) == [i for i in range(60) if i % 3 in (0, 2)]
    got = ids(rec(index_dir, k=60, filters=["ptag!=surf"], exclude_seen=False).for_user("u0"))
    assert not set(got) & set(surf) and len(got) == 60 - len(surf)


def test_an_unknown_mood_label_is_an_input_error_naming_the_valid_ones(index_dir, plain_dir):
    with pytest.raises(InputError, match=r"unknown mood 'sleepy' in --filter; known: happy, excited, .*neutral, "
                                         r"dreamy$"):
        rec(index_dir, filters=["mood=sleepy"]).for_user("u0")
    with pytest.raises(InputError, match="unknown mood 'sleepy'.*calm"):  # no moods indexed: MOOD_LABELS
        rec(plain_dir, filters=["mood=calm,sleepy"]).for_user("u0")
    for bad, msg in (("mood<calm", "mood takes = or !="), ("valence>high", "valence needs a number"),
                     ("ptag>2", "ptag takes = or !="), ("arousal<nan", "finite")):
        with pytest.raises(InputError, match=msg):
            rec(index_dir, filters=[bad])
    r = run_avrec("recommend", str(index_dir), "--user", "u0", "--filter", "mood=sleepy")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown mood 'sleepy' in --filter; known: happy")


# ------------------------------------------------------------------------------------------
# explanations


def test_explain_carries_mood_and_because_you_like(index_dir):
    out = rec(index_dir, k=8, explain=True).for_user("u0")  # u0 likes world 0: music, surf, calm
    assert all(i % 3 == 0 for i in ids(out))
    for o in out:
        ex = o["explain"]
        assert {"because", "because_title", "contribution", "modality", "modalities", "because_you_like"} <= set(ex)
        i = int(o["item_id"][1:])
        if i % 5:
            assert ex["mood"] == {"valence": 0.5, "arousal": -0.6, "labels": ["calm"]}
            assert ex["because_you_like"][:1] == ["music"] and {"surf", "calm"} <= set(ex["because_you_like"])
        else:
            assert "mood" not in ex and ex["because_you_like"] == ["music"]
    # a fresh history of world-1 items: tense and city
    out = rec(index_dir, k=4, explain=True).for_history([("i1", 1.0), ("i7", 1.0)])
    assert all("tense" in o["explain"]["because_you_like"] for o in out if int(o["item_id"][1:]) % 5)
    # item-to-item and popular explanations carry the item's mood too
    ex = rec(index_dir, k=3, explain=True).for_item("i3")[0]["explain"]
    assert ex["mood"]["labels"] == ["calm"] or ex.get("mood") is None
    pop = rec(index_dir, k=5, explain=True, fallback="popular").for_user("ghost")
    assert pop[0]["explain"]["reason"] == "popular"


def test_explain_cli_json_and_table(index_dir, capsys):
    r = run_avrec("recommend", str(index_dir), "--user", "u0", "--k", "3", "--explain", "--filter", "mood=calm")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 3 and all(x["explain"]["mood"]["labels"] == ["calm"] for x in lines)
    assert all("surf" in x["explain"]["because_you_like"] for x in lines)
    from avrec.cli.recommend import _table, _why

    rows = rec(index_dir, k=2, explain=True, filters=["mood=calm"]).for_user("u0")
    assert "because you like: music, surf, calm" in _why(rows[0]["explain"])
    assert _why(rows[0]["explain"]).endswith("mood calm")
    _table(rows)
    out = capsys.readouterr().out
    assert "surf" in out and rows[0]["item_id"] in out


# ------------------------------------------------------------------------------------------
# older artifacts and index --add


def test_an_index_without_understand_records_still_works(plain_dir):
    idx = Index(plain_dir)
    assert np.isnan(np.asarray(idx.valence)).all() and not np.asarray(idx.tags_predicted).any()
    man = json.loads((plain_dir / "manifest.json").read_text())
    assert man["counts"]["items_with_mood"] == 0 and man["counts"]["items_with_predicted_tags"] == 0
    assert rec(plain_dir, filters=["mood=calm"]).for_user("u0") == []
    assert rec(plain_dir, filters=["valence>0"]).for_user("u0") == []
    got = ids(rec(plain_dir, k=5, filters=["tag=news"]).for_user("u0"))
    assert got and all(i % 3 == 1 for i in got)
    out = rec(plain_dir, k=3, explain=True).for_user("u1")
    assert all("mood" not in o["explain"] and o["explain"]["because_you_like"] == ["news"] for o in out)


def test_an_index_built_before_the_understand_columns_reads_as_nothing_known(tmp_path):
    d = build_index(make_model(tmp_path), tmp_path / "index", IndexConfig(n_trees=5), seed=0)
    for f in ("valence", "arousal", "tags_predicted", "tags_scores", "moods_vocab_utf8", "moods_vocab_offsets",
              "moods_indptr", "moods_indices", "moods_scores", "clusters", "cluster_centroids",
              "cluster_names_utf8", "cluster_names_offsets"):
        (d / f"{f}.npy").unlink()
    remanifest(d)
    idx = Index(d)
    assert idx.clusters is None and idx.mood_vocab == [] and idx.item_mood(0) is None
    assert rec(d, filters=["mood=calm"]).for_user("u0") == []
    assert ids(rec(d, k=3, filters=["tag=news", "ptag!=x"]).for_user("u1"))
    out = rec(d, k=2, explain=True).for_user("u1")
    assert out[0]["explain"]["because_you_like"] == ["news"]
    from avrec.profile import user_profile

    p = user_profile(idx, "u1")
    assert p["tags"][0]["tag"] == "news" and p["moods"] == [] and p["clusters"] == [] and p["valence"] is None


def test_index_add_carries_moods_predicted_tags_and_clusters(tmp_path):
    model = make_model(tmp_path)
    with_understand(tmp_path / "embeddings", list(range(60)))
    idx_dir = build_index(model, tmp_path / "index", IndexConfig(n_trees=5))
    before = np.asarray(Index(idx_dir).clusters).copy()
    new_ids = [61, 62, 63, 64, 66]
    emb = make_embeddings(tmp_path / "new-emb", new_ids, seed=5)
    with_understand(emb, new_ids)
    assert add_items(idx_dir, emb, IndexConfig(n_trees=5))[1] == 5
    idx = Index(idx_dir)
    assert idx.n_items == 65
    assert np.asarray(idx.clusters[:60]).tolist() == before.tolist()  # old items keep their clusters
    cl = np.asarray(idx.clusters)
    for r, i in zip(range(60, 65), new_ids):  # new items join a cluster of their own world
        assert {j % 3 for j in np.flatnonzero(cl[:60] == cl[r])} == {i % 3}
    assert idx.item_mood(idx.items.row("i63"))["labels"] == ["calm"]
    assert ("surf", True, pytest.approx(0.41)) in idx.item_tags(idx.items.row("i66"))
    got = ids(rec(idx_dir, k=65, filters=["ptag=surf"], exclude_seen=False).for_user("u0"))
    assert {63, 66} <= set(got) and all(i % 3 == 0 for i in got)
    man = json.loads((idx_dir / "manifest.json").read_text())
    assert man["counts"]["items_with_mood"] == sum(1 for i in list(range(60)) + new_ids if i % 5)
    rows = [json.loads(line) for line in (idx_dir / "items.jsonl").read_text().splitlines()]
    assert rows[idx.items.row("i62")]["understand"]["captions"][0]["text"] == "caption of 62"
    # and again: the carried records survive a second add
    emb2 = make_embeddings(tmp_path / "new-emb2", [67], seed=6)
    add_items(idx_dir, emb2, IndexConfig(n_trees=5))
    assert Index(idx_dir).item_mood(idx.items.row("i63"))["labels"] == ["calm"]


def test_embeddings_rows_in_another_order_are_aligned_by_item_id(tmp_path):
    model = make_model(tmp_path)
    emb = tmp_path / "embeddings"
    rows = [json.loads(x) for x in (emb / "items.jsonl").read_text().splitlines()]
    for r in rows:
        u = understand(int(r["item_id"][1:]))
        if u is not None:
            r["understand"] = u
    write_jsonl(emb / "items.jsonl", rows[::-1])
    remanifest(emb)
    # the model's items.jsonl order is what the index follows; the embeddings' vectors are
    # aligned by id too, so reversing the rows only would misalign them: keep the vectors' order
    # by reversing them as well
    for name in ("fused", "video", "audio", "text", "video_mask", "audio_mask", "text_mask"):
        a = np.load(emb / f"{name}.npy")
        np.save(emb / f"{name}.npy", a[::-1].copy())
    remanifest(emb)
    idx = Index(build_index(model, tmp_path / "index", IndexConfig(n_trees=5)))
    assert idx.item_mood(3)["labels"] == ["calm"] and idx.item_mood(1)["labels"] == ["tense"]
    assert idx.item_mood(0) is None


def test_recommend_with_mood_filters_and_explain_stays_light(index_dir):
    out, heavy = run_light("recommend", str(index_dir), "--user", "u1", "--explain", "--filter", "mood=tense",
                           "--filter", "valence<0", "--filter", "tag=city")
    assert heavy == []
    first = json.loads(out.splitlines()[0])
    assert first["explain"]["mood"]["labels"][0] == "tense"


# ------------------------------------------------------------------------------------------
# end to end on sample_data: avrec embed's own records (calm ocean against the busy city)


@pytest.fixture(scope="module")
def sample_index(sample_data, tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("sample-und")
    steps = (
        ("extract", str(sample_data / "media"), "--metadata", str(sample_data / "metadata.csv"), "-o", str(w / "f")),
        ("embed", str(w / "f"), "-o", str(w / "e"), "--device", "cpu", "--set", "understand.tags=[ocean, city, piano, forest]"),
        ("train", str(w / "e"), "-i", str(sample_data / "interactions.csv"), "-o", str(w / "m"),
         "--set", "train.hybrid.epochs=40"),
        ("index", str(w / "m"), "-o", str(w / "index")),
    )
    for args in steps:
        r = run_avrec(*args, "-q")
        assert r.returncode == 0, r.stderr[-2000:]
    return w / "index"


def test_sample_catalogue_end_to_end_moods_filters_and_profiles(sample_index):
    idx = Index(sample_index)
    man = json.loads((sample_index / "manifest.json").read_text())
    assert man["counts"]["items_with_mood"] >= 24 and man["extra"]["clusters"]["k"] >= 2
    assert man["counts"]["items_with_predicted_tags"] >= 10  # zero-shot tags (here all also given)
    aro = np.asarray(idx.arousal)
    r = run_avrec("recommend", str(sample_index), "--user", "u002", "--filter", "arousal<0", "--k", "28",
                  "--explain")
    assert r.returncode == 0, r.stderr
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert got and all(aro[idx.items.row(x["item_id"])] < 0 and x["explain"]["mood"]["arousal"] < 0 for x in got)
    calm = [x["item_id"] for x in rec(sample_index, k=28, filters=["mood=calm"], exclude_seen=False).for_user("u001")]
    assert calm and all("calm" in idx.item_mood(idx.items.row(i))["labels"] for i in calm)
    from avrec.profile import user_profile

    ocean, city = user_profile(idx, "u001"), user_profile(idx, "u002")
    assert ocean["tags"][0]["tag"] == "ocean" and "ocean" in ocean["clusters"][0]["name"]
    assert city["tags"][0]["tag"] == "city" and "city" in city["clusters"][0]["name"]
    assert ocean["arousal"] < city["arousal"]  # the calm ocean against the busy city
