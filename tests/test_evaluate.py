"""Metrics on hand-computed cases; the evaluate stage and its command line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from taste import make_taste, write_csv, write_embeddings  # noqa: E402

from avrec.config import Config  # noqa: E402
from avrec.evaluate import intra_list_diversity, metrics_at_k, rank_users  # noqa: E402


def _csr(rows, n):
    r = [i for i, row in enumerate(rows) for _ in row]
    c = [j for row in rows for j in row]
    return sp.csr_matrix((np.ones(len(c), np.float32), (r, c)), shape=(len(rows), n))


def test_metrics_match_hand_computed_values():
    # user 0: relevant {1, 3}; ranked [1, 2, 3] -> hits at ranks 1 and 3
    # user 1: relevant {4};    ranked [0, 2, 4] -> hit at rank 3
    top = np.array([[1, 2, 3], [0, 2, 4]])
    rel = _csr([[1, 3], [4]], 6)
    pop = np.array([4, 3, 2, 1, 1, 0], np.float32)
    m = metrics_at_k(top, rel, [1, 3], n_candidates=6, popularity=pop, n_train_users=8)
    d = 1 / np.log2(np.arange(2, 5))
    ndcg0 = (d[0] + d[2]) / (d[0] + d[1])
    ndcg1 = d[2] / d[0]
    assert m[3]["ndcg"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m[3]["recall"] == pytest.approx((1.0 + 1.0) / 2)
    assert m[3]["precision"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m[3]["map"] == pytest.approx(((1 + 2 / 3) / 2 + (1 / 3) / 1) / 2)
    assert m[3]["mrr"] == pytest.approx((1 + 1 / 3) / 2)
    assert m[3]["hitrate"] == 1.0
    assert m[3]["coverage"] == pytest.approx(5 / 6)  # items 0..4 recommended
    assert m[1]["ndcg"] == pytest.approx(0.5) and m[1]["recall"] == pytest.approx(0.25)
    assert m[1]["mrr"] == pytest.approx(0.5) and m[1]["hitrate"] == pytest.approx(0.5)
    # novelty: mean of -log2(pop / users) over the recommended items (pop 0 counts as 1)
    pops = np.maximum(pop[top.ravel()], 1)
    assert m[3]["novelty"] == pytest.approx(np.mean(-np.log2(pops / 8)))


def test_per_user_ndcg_its_standard_error_and_the_paired_verdict():
    from avrec.metrics import ndcg_per_user, paired_difference

    rng = np.random.default_rng(0)
    rel = _csr([sorted(rng.choice(30, size=3, replace=False).tolist()) for _ in range(50)] + [[]], 30)
    top = np.argsort(rng.random((51, 30)), axis=1)[:, :10]
    per = ndcg_per_user(top, rel, 10)
    m = metrics_at_k(top, rel, [10], n_candidates=30)[10]
    assert len(per) == 50  # the user with nothing relevant is not scored
    assert m["ndcg"] == pytest.approx(per.mean())
    assert m["ndcg_se"] == pytest.approx(per.std(ddof=1) / np.sqrt(50))
    # a gap inside two standard errors is a tie; a consistent one is not; the sign says who
    noise = rng.normal(0, 0.1, 50)
    noise -= noise.mean()
    se = noise.std(ddof=1) / np.sqrt(50)
    tie = paired_difference(per + noise + se, per)  # one standard error ahead: noise
    assert tie["verdict"] == "tie" and tie["diff"] == pytest.approx(se, abs=1e-5) and tie["se"] == pytest.approx(se, abs=1e-5)
    assert paired_difference(per + noise + 3 * se, per)["verdict"] == "ahead"
    assert paired_difference(per, per) == {"diff": 0.0, "se": 0.0, "users": 50, "verdict": "tie"}
    up = paired_difference(per + 0.05 + 0.01 * noise, per)
    assert up["verdict"] == "ahead" and up["diff"] == pytest.approx(0.05, abs=1e-5)
    assert paired_difference(per, per + 0.05)["verdict"] == "behind"


def test_diversity_and_ranking_helpers():
    content = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    assert intra_list_diversity(np.array([[0, 1]]), content) == pytest.approx(0.0)
    assert intra_list_diversity(np.array([[0, 2]]), content) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[0, 1, 2]]), content) == pytest.approx(2 / 3)
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.4, 0.3, 0.2, 0.1]], np.float32)
    seen = _csr([[1], []], 4)
    top = rank_users(lambda rows: scores[rows], np.array([0, 1]), k=2, exclude=seen)
    assert top.tolist() == [[3, 2], [0, 1]]
    top = rank_users(lambda rows: scores[rows], np.array([0, 1]), k=3, exclude=seen, candidates=np.array([1, 2]))
    assert top.tolist() == [[2, -1, -1], [1, 2, -1]]  # only candidates, seen ones removed


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    t = make_taste(n_users=60, items_per_cluster=20, per_user=10)
    write_csv(t, d / "ev.csv")
    write_embeddings(t, d / "emb")
    return t, d


def _cfg():
    cfg = Config()
    cfg.train.hybrid.dim, cfg.train.hybrid.epochs, cfg.train.hybrid.patience, cfg.train.hybrid.lr = 16, 40, 5, 0.02
    return cfg


def test_evaluate_stage_writes_metrics_report_plot_and_splits(world, tmp_path):
    from avrec.artifacts import read_manifest
    from avrec.evaluate import evaluate

    t, d = world
    out, rows = evaluate(d / "emb", d / "ev.csv", tmp_path / "ev", _cfg(), models=["popular", "ease", "hybrid"],
                         protocols=["random", "cold"], ks=[5, 10])
    read_manifest(out, expect="evaluation")
    m = json.loads((out / "metrics.json").read_text())
    rnd, cold = m["protocols"]["random"], m["protocols"]["cold"]
    assert set(rnd["models"]) == {"popular", "ease", "hybrid"}
    assert rnd["models"]["hybrid"]["metrics"]["10"]["ndcg"] > rnd["models"]["popular"]["metrics"]["10"]["ndcg"]
    assert set(cold["models"]) == {"hybrid"} and any("ranked among the held-out items only" in n for n in cold["notes"])
    assert cold["models"]["hybrid"]["metrics"]["10"]["ndcg"] > 0.3
    assert {"light_users", "heavy_users"} <= set(rnd["models"]["hybrid"]["slices"])
    for p in ("random", "cold"):
        assert (out / "splits" / p / "train.csv").exists() and (out / "splits" / p / "test.csv").exists()
    report = (out / "report.txt").read_text()
    assert "held-out items only" in report and "hybrid" in report
    pytest.importorskip("matplotlib")
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert len(rows) == (3 + 1) * 2 and {r["k"] for r in rows} == {5, 10}


def test_the_default_models_set_the_content_reference_beside_the_hybrid_on_cold_items(world, tmp_path):
    """With no --models, the cold protocol has a baseline: content-only cosine (popularity has
    nothing to rank among items nobody has seen)."""
    from avrec.config import Config as C
    from avrec.evaluate import evaluate

    t, d = world
    assert C().evaluate.models == ["popular", "content", "hybrid"]
    out, _ = evaluate(d / "emb", d / "ev.csv", tmp_path / "ev", _cfg(), protocols=["random", "cold"], ks=[10])
    m = json.loads((out / "metrics.json").read_text())["protocols"]
    assert set(m["random"]["models"]) == {"popular", "content", "hybrid"}
    assert set(m["cold"]["models"]) == {"content", "hybrid"}
    assert any("popular: skipped on the cold split" in n for n in m["cold"]["notes"])
    # planted content taste: both content readers beat popularity warm and rank cold items well
    nd = {p: {k: v["metrics"]["10"]["ndcg"] for k, v in m[p]["models"].items()} for p in m}
    assert nd["random"]["content"] > nd["random"]["popular"] and nd["cold"]["content"] > 0.3
    assert "content" in (out / "report.txt").read_text()
    # the best model against each other one, user by user, on the same users
    pr = m["random"]["paired"]
    assert pr["k"] == 10 and pr["best"] == max(nd["random"], key=nd["random"].get)
    vs = {a["model"]: a for a in pr["against"]}
    assert set(vs) == {"popular", "content", "hybrid"} - {pr["best"]}
    users = m["random"]["models"][pr["best"]]["users"]
    for name, a in vs.items():
        assert a["users"] == users and a["diff"] == pytest.approx(nd["random"][pr["best"]] - nd["random"][name], abs=1e-4)
    assert vs["popular"]["verdict"] == "ahead"
    # the standard error is over users and items: the held-out items are a draw too
    for a in vs.values():
        assert a["test"] == "users and items" and a["draws"] == 200
        assert a["users_only"]["se"] > 0 and a["se"] > 0
        assert a["verdict"] == ("tie" if abs(a["diff"]) <= 2 * a["se"] else "ahead")
    cold = {a["model"]: a for a in m["cold"]["paired"]["against"]}
    n_cold = m["cold"]["split"]["n_cold_items"]
    assert all(a["items"] == n_cold for a in cold.values()) and all(a["items"] > n_cold for a in vs.values())
    from avrec.evaluate import ROUGH_ITEMS, paired_lines

    cold_lines = paired_lines(m["cold"])
    assert len(cold_lines) == 2 and ("error bar is itself rough" in cold_lines[1]) == (n_cold < ROUGH_ITEMS)
    assert "paired NDCG@10, over users and held-out items" in (out / "report.txt").read_text()


def test_recs_file_scored_on_the_same_split(world, tmp_path):
    from avrec.data import load_interactions
    from avrec.evaluate import evaluate

    t, d = world
    cfg = _cfg()
    # first run writes the split; a perfect "other system" recommends each user's test items
    out, _ = evaluate(d / "emb", d / "ev.csv", tmp_path / "a", cfg, models=["popular"], protocols=["random"], ks=[5])
    test = load_interactions(out / "splits" / "random" / "test.csv")
    recs = tmp_path / "recs.jsonl"
    with open(recs, "w") as f:
        for u in range(test.n_users):
            items = [test.items[i] for i in test.item[test.user == u]]
            f.write(json.dumps({"user_id": test.users[u], "items": items + ["unknown-item"]}) + "\n")
        f.write(json.dumps({"user_id": "nobody", "items": ["item-000"]}) + "\n")
    out, _ = evaluate(d / "emb", d / "ev.csv", tmp_path / "b", cfg, models=["popular"], protocols=["random"], ks=[5], recs=recs)
    r = json.loads((out / "metrics.json").read_text())["protocols"]["random"]["models"]["recs:recs"]
    assert r["metrics"]["5"]["recall"] == pytest.approx(1.0) and r["metrics"]["5"]["hitrate"] == 1.0
    assert r["recs"]["unknown_users"] == 1 and r["recs"]["test_users_missing"] == 0
    # users missing from the file count as misses, not as absent
    lines = recs.read_text().splitlines()
    half = tmp_path / "half.jsonl"
    half.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    out, _ = evaluate(d / "emb", d / "ev.csv", tmp_path / "c", cfg, models=["popular"], protocols=["random"], ks=[5], recs=half)
    r = json.loads((out / "metrics.json").read_text())["protocols"]["random"]["models"]["recs:half"]
    assert r["recs"]["test_users_missing"] > 0
    assert r["metrics"]["5"]["hitrate"] == pytest.approx(r["recs"]["scored_users"] / r["users"])


def test_a_recs_file_with_long_lists_gets_the_comparison_over_users_and_items(world, tmp_path):
    """Another system's lists are resampled like avrec's own when they are long enough
    (PAIRED_DEPTH items for each of its test users); shorter ones are compared over users only,
    and the line says why."""
    from avrec.data import load_interactions
    from avrec.evaluate import PAIRED_DEPTH, evaluate, paired_lines

    t, d = world
    cfg = _cfg()
    out, _ = evaluate(d / "emb", d / "ev.csv", tmp_path / "a", cfg, models=["popular"], protocols=["random"], ks=[10])
    test, train = (load_interactions(out / "splits" / "random" / f"{p}.csv") for p in ("test", "train"))
    catalogue = list(train.items.ids)
    long, short = tmp_path / "long.jsonl", tmp_path / "short.jsonl"
    with open(long, "w") as fl, open(short, "w") as fs:
        for u in range(test.n_users):
            mine = [test.items[i] for i in test.item[test.user == u]]
            rest = [i for i in catalogue if i not in mine]
            fl.write(json.dumps({"user_id": test.users[u], "items": (mine + rest)[:PAIRED_DEPTH]}) + "\n")
            fs.write(json.dumps({"user_id": test.users[u], "items": mine[:5]}) + "\n")
    got = {}
    for f in (long, short):
        o, _ = evaluate(d / "emb", d / "ev.csv", tmp_path / f.stem, cfg, models=["popular"], protocols=["random"],
                        ks=[10], recs=f)
        m = json.loads((o / "metrics.json").read_text())["protocols"]["random"]
        assert m["paired"]["best"] == f"recs:{f.stem}"  # it lists each user's test items first
        got[f.stem] = (m["paired"]["against"][0], paired_lines(m))
        assert m["models"][f"recs:{f.stem}"]["recs"]["unknown_items"] == 0
    assert got["long"][0]["test"] == "users and items" and got["long"][0]["items"] > 0
    assert got["short"][0]["test"] == "users only" and "too few to resample items" in got["short"][1][1]
    # the first K of the long lists are what is scored: both files rank the same items first
    assert got["long"][0]["diff"] == pytest.approx(got["short"][0]["diff"], abs=0.02)


def test_cli_evaluate_json_lines_when_piped(world, tmp_path):
    t, d = world
    cmd = [sys.executable, "-m", "avrec", "evaluate", str(d / "emb"), "--interactions", str(d / "ev.csv"),
           "--models", "popular,itemknn", "--protocol", "random", "--k", "5,10", "-o", str(tmp_path / "ev")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 4 and {(x["model"], x["k"]) for x in rows} == {("popular", 5), ("popular", 10), ("itemknn", 5), ("itemknn", 10)}
    assert all(0 <= x["ndcg"] <= 1 and not math.isnan(x["recall"]) for x in rows)
    assert all(0 < x["ndcg_se"] < x["ndcg"] for x in rows)  # each mean with its standard error over users
    assert "avrec evaluate" in r.stderr  # the table goes to stderr, with the paired comparison under it
    assert "random:\n   paired NDCG@10, over users and held-out items" in r.stderr and " items, " in r.stderr
    q = subprocess.run(cmd + ["--quiet"], capture_output=True, text=True, timeout=120)
    assert q.returncode == 0 and q.stderr == "" and len(q.stdout.splitlines()) == 4
    bad = subprocess.run(cmd[:-2] + ["--models", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown model" in bad.stderr
    bad = subprocess.run(cmd[:-4] + ["--k", "ten"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2


def test_models_without_content_need_no_embeddings(world, tmp_path):
    from avrec.errors import InputError
    from avrec.evaluate import evaluate

    t, d = world
    out, rows = evaluate(None, d / "ev.csv", tmp_path / "ev", _cfg(), models=["popular", "itemknn"], protocols=["random", "temporal", "last"], ks=[10])
    assert {r["protocol"] for r in rows} == {"random", "temporal", "last"}
    with pytest.raises(InputError, match="needs item content"):
        evaluate(None, d / "ev.csv", tmp_path / "ev2", _cfg(), models=["hybrid"], protocols=["random"], ks=[10])


def test_nothing_to_score_is_an_error_not_an_empty_pass(world, tmp_path):
    """One interaction per user leaves no user on both sides of any split: exit 2, no artifact."""
    from avrec.errors import InputError
    from avrec.evaluate import evaluate

    p = tmp_path / "one.csv"
    p.write_text("user_id,item_id\n" + "".join(f"u{n},item-{n % 40:03d}\n" for n in range(200)))
    with pytest.raises(InputError, match="nothing to score under any protocol"):
        evaluate(None, p, tmp_path / "ev", _cfg(), models=["popular"], protocols=["random", "cold"], ks=[10])
    assert not (tmp_path / "ev").exists()


def _shared_items_world(seed: int, *, n_users: int = 600, n_items: int = 60):
    """Every user ranks the same few items, some far more liked than others (a cold pool)."""
    rng = np.random.default_rng(seed)
    pop = rng.pareto(1.0, n_items) + 0.05
    rel = [sorted(rng.choice(n_items, size=3, replace=False, p=pop / pop.sum()).tolist()) for _ in range(n_users)]
    return rng, _csr(rel, n_items)


def test_the_two_way_comparison_calls_shared_item_luck_a_tie_where_the_users_only_one_does_not():
    # two rankers that know nothing (each a fixed random order of the pool, the same for every
    # user): which of them happens to put the popular items first decides the users-only test,
    # as a model's luck with the held-out items does on a cold split
    from avrec.metrics import ndcg_per_user, paired_difference, paired_difference_two_way

    users_only, two_way = [], []
    for seed in range(10):
        rng, rel = _shared_items_world(seed)
        n, m = rel.shape
        a = np.tile(rng.permutation(m), (n, 1))
        b = np.tile(rng.permutation(m), (n, 1))
        users_only.append(paired_difference(ndcg_per_user(a, rel, 10), ndcg_per_user(b, rel, 10))["verdict"])
        two_way.append(paired_difference_two_way(a, b, rel, 10, items=np.arange(m), seed=seed)["verdict"])
    assert sum(v != "tie" for v in users_only) >= 6, users_only
    assert sum(v == "tie" for v in two_way) >= 9, two_way


def test_the_two_way_comparison_still_sees_a_real_difference_and_is_antisymmetric():
    from avrec.metrics import paired_difference_two_way

    rng, rel = _shared_items_world(3)
    n, m = rel.shape
    dense = rel.toarray()
    # a knows each user's items (an ideal ranking up to ties), b is a random order per user
    good = np.argsort(-(dense + 0.01 * rng.random((n, m))), axis=1)
    bad = np.argsort(rng.random((n, m)), axis=1)
    ab = paired_difference_two_way(good, bad, rel, 10, items=np.arange(m), seed=1)
    ba = paired_difference_two_way(bad, good, rel, 10, items=np.arange(m), seed=1)
    assert ab["verdict"] == "ahead" and ba["verdict"] == "behind"
    assert ab["diff"] == pytest.approx(-ba["diff"]) and ab["se"] == pytest.approx(ba["se"])
    assert ab["users"] == n and ab["items"] == m and ab["draws"] == 200
    same = paired_difference_two_way(good, good, rel, 10, items=np.arange(m))
    assert same["diff"] == 0.0 and same["se"] == 0.0 and same["verdict"] == "tie"


def test_a_filtered_ranked_list_is_the_ranking_over_the_kept_items():
    # the replicates rank over half the items by filtering the full lists: that must be what
    # ranking the same scores over only those items gives
    from avrec.metrics import _first_kept, topk

    rng = np.random.default_rng(0)
    scores = rng.random((40, 50)).astype(np.float32)
    full, _ = topk(scores, 50)
    keep = rng.random(50) < 0.5
    got = _first_kept(full, keep, 5)
    masked = np.where(keep[None, :], scores, -np.inf)
    want, _ = topk(masked, 5)
    np.testing.assert_array_equal(got, want)
    short = _first_kept(full[:, :3], keep, 5)  # a list shorter than k after filtering pads with -1
    assert short.shape == (40, 5) and (short[:, 3:] == -1).all()
