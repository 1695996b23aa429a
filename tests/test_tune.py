"""train.tune: the hybrid chooses its solver, hyperparameters and modality weights on a split
of the training interactions, within a time budget, and says what it chose."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from taste import make_taste, write_csv, write_embeddings  # noqa: E402

from avrec.config import Config  # noqa: E402
from avrec.data import from_arrays  # noqa: E402
from avrec.tune import COLD_GRID as GRIDS_COLD, GRIDS, cold_split, resize_factors, subsample_users, tune_hybrid  # noqa: E402

FAST = {"train.hybrid.content_dim": 8, "train.hybrid.als_iterations": 3}


@pytest.fixture(scope="module")
def taste():  # 240 items, 300 users: enough validation users for the search to run
    return make_taste(n_users=300, items_per_cluster=60, per_user=12)


def _cfg(**over):
    from avrec.config import apply_set

    cfg = Config()
    for k, v in {**FAST, **over}.items():
        apply_set(cfg, f"{k}={v}")
    return cfg


def _seen(t):
    return from_arrays([r[0] for r in t.rows], [r[1] for r in t.rows], catalogue=t.item_ids).to_csr()


def test_auto_tunes_by_default_and_records_what_it_chose(taste, tmp_path):
    from avrec.artifacts import read_manifest
    from avrec.train import train

    write_embeddings(taste, tmp_path / "emb")
    write_csv(taste, tmp_path / "ev.csv")
    lines: list[str] = []
    out = train(tmp_path / "emb", tmp_path / "ev.csv", tmp_path / "m", Config(), progress=lines.append)
    man = read_manifest(out)
    tuned = man["extra"]["tuned"]
    # a 240-item catalogue: auto's closed form, and als beside it, each from its defaults
    assert list(dict.fromkeys(t["params"]["solver"] for t in tuned["tried"]))[:2] == ["closed", "als"]
    assert tuned["chosen"]["solver"] in ("closed", "als") and tuned["fits"] == len(tuned["tried"]) > 5
    assert {t["protocol"] for t in tuned["tried"]} == {"warm", "cold"}
    # what was chosen is what was fitted, and the manifest says why that solver ran
    params = man["models"]["params"]
    assert all(params[k] == v for k, v in tuned["chosen"].items())
    assert man["extra"]["info"]["solver"]["chosen"] == tuned["chosen"]["solver"]
    assert "train.tune" in man["extra"]["info"]["solver"]["reason"]
    assert any(line.startswith("tune: chose") for line in lines)
    # the chosen values score at least the configured ones on the same validation split
    first = tuned["tried"][0]
    assert first["protocol"] == "warm" and tuned["warm_ndcg"] >= first["ndcg"]


def test_off_fits_the_configured_values(taste, tmp_path):
    from avrec.artifacts import read_manifest
    from avrec.train import train

    write_embeddings(taste, tmp_path / "emb")
    write_csv(taste, tmp_path / "ev.csv")
    lines: list[str] = []
    out = train(tmp_path / "emb", tmp_path / "ev.csv", tmp_path / "m", _cfg(**{"train.tune": "off"}), progress=lines.append)
    man = read_manifest(out)
    assert "tuned" not in man["extra"] and not any(line.startswith("tune:") for line in lines)
    assert man["extra"]["info"]["solver"]["reason"].startswith("auto:")


def test_yaml_off_is_off(tmp_path):
    from avrec.config import load_config

    (tmp_path / "c.yaml").write_text("train:\n  tune: off\n")  # YAML 1.1 reads this as false
    assert load_config(tmp_path / "c.yaml").train.tune == "off"


def test_the_budget_stops_the_search_after_the_reference_fit(taste):
    logs: list[str] = []
    found = tune_hybrid(_seen(taste), taste.content, _cfg(), device="cpu", progress=logs.append, budget_s=1e-6)
    report = found.pop("report")
    assert report["fits"] == 1 and "budget" in report["stopped"]
    assert found == {"solver": "closed", **{k: getattr(Config().train.hybrid, k) for k in GRIDS["closed"]}}


def _noisy_counts(t, seed=0):
    """The taste log with play-count-like weights that carry no taste: lognormal(0, 2.5)."""
    seen = _seen(t)
    seen.data = np.random.default_rng(seed).lognormal(0.0, 2.5, seen.nnz).astype(np.float32)
    return seen


def test_auto_weighting_drops_heavy_tailed_weights_that_carry_no_taste(taste):
    logs: list[str] = []
    found = tune_hybrid(_noisy_counts(taste), taste.content, _cfg(), device="cpu", progress=logs.append, budget_s=None)
    assert found["weighting"] in ("log", "binary") and found["report"]["warm_ndcg"] > 0.25
    tried = {t["params"].get("weighting") for t in found["report"]["tried"] if t["protocol"] == "warm"}
    assert {"linear", "log", "binary"} <= tried


def test_heavy_tailed_weightings_are_tried_whatever_the_budget(taste):
    """On play counts the weighting decides most: a budget spent by one slow first fit (a busy
    machine) must not ship linear untried against log and binary."""
    found = tune_hybrid(_noisy_counts(taste), taste.content, _cfg(), device="cpu", progress=lambda _m: None,
                        budget_s=1e-6)
    tried = [t["params"].get("weighting") for t in found["report"]["tried"] if t["protocol"] == "warm"]
    assert tried == ["linear", "log", "binary"] and found["weighting"] in ("log", "binary")
    assert "budget" in found["report"]["stopped"]  # and nothing else ran


def test_weighting_is_not_searched_on_a_binary_log_ratings_or_when_configured(taste):
    seen = _seen(taste)
    ratings = np.random.default_rng(1).integers(1, 6, seen.nnz).astype(np.float32)  # 1-5 stars: no heavy tail
    for data in (np.ones(seen.nnz, np.float32), ratings):
        seen.data = data
        found = tune_hybrid(seen, taste.content, _cfg(), device="cpu", progress=lambda _m: None, budget_s=None)
        assert "weighting" not in found
        assert all("weighting" not in t["params"] for t in found["report"]["tried"])
    found = tune_hybrid(_noisy_counts(taste), taste.content, _cfg(**{"train.weighting": "linear"}), device="cpu",
                        progress=lambda _m: None, budget_s=None)
    assert "weighting" not in found  # the configured one is built in (build_model), not chosen


def test_a_model_weighs_its_interactions_as_configured(taste):
    from avrec.models import build_model

    raw = _noisy_counts(taste)
    for how, expect in (("linear", raw.data), ("log", np.log1p(raw.data)), ("binary", np.ones_like(raw.data))):
        m = build_model("ease", _cfg(**{"train.weighting": how}).train, l2=10.0).fit(raw)
        np.testing.assert_allclose(m.seen.data, expect / expect.mean(), rtol=1e-5)
        assert m.info["weighting"] == how


def test_an_explicit_solver_is_the_only_one_searched(taste):
    found = tune_hybrid(_seen(taste), taste.content, _cfg(**{"train.hybrid.solver": "als"}), device="cpu",
                        progress=lambda _m: None, budget_s=None)
    assert {t["params"]["solver"] for t in found["report"]["tried"]} == {"als"} and found["solver"] == "als"


def test_modality_weights_follow_what_predicts_new_items():
    """Fused content of an informative block (16-d, the taste clusters) and a 64-d noise block
    twice its scale: tuning on the cold split drops the noise, and that helps on a test split
    of items it never saw."""
    from avrec.data import cold_item_split
    from avrec.encoders.fusion import l2n
    from avrec.evaluate import evaluate_scorer
    from avrec.models import build_model

    taste = make_taste(n_users=300, items_per_cluster=60, per_user=15, n_clusters=6, seed=0)
    noise = l2n(np.random.default_rng(3).normal(size=(len(taste.item_ids), 64)))
    fused = l2n(np.hstack([taste.content, 2.0 * noise])).astype(np.float32)
    d = taste.content.shape[1]
    blocks = [{"modality": "text", "start": 0, "end": d, "weight": 1.0},
              {"modality": "audio", "start": d, "end": d + 64, "weight": 1.0}]
    data = from_arrays([r[0] for r in taste.rows], [r[1] for r in taste.rows], catalogue=taste.item_ids)
    split = cold_item_split(data, ratio=0.2, seed=7)  # a test split the tuning never sees
    cfg = _cfg(**{"train.hybrid.content_dim": 0})
    found = tune_hybrid(split.train.to_csr(), fused, cfg, device="cpu", progress=lambda _m: None, blocks=blocks)
    report = found.pop("report")
    assert found["modality_weights"] == {"text": 1.0, "audio": 0.0}, report["chosen"]
    # the subsets were scored on the cold protocol, against all modalities together
    subsets = [t["params"].get("modality_weights") for t in report["tried"] if t["protocol"] == "cold"]
    assert None in subsets and {"text": 0.0, "audio": 1.0} in subsets
    scores = {}
    for name, over in (("default", {}), ("tuned", {**found, "content_blocks": blocks})):
        m = build_model("hybrid", cfg.train, seed=0, **{"content_dim": 0, **over}).fit(split.train, fused)
        scores[name] = evaluate_scorer(split, m.score, [10])["metrics"][10]["ndcg"]
    assert scores["tuned"] > 1.05 * scores["default"], scores


def test_splits_hold_what_they_say(taste):
    seen = _seen(taste)
    fit, held, items = cold_split(seen, 0.1, seed=0)
    assert len(items) == 24 and held.nnz + fit.nnz == seen.nnz  # a tenth of 240
    assert not fit[:, items].nnz and set(np.unique(held.indices)) <= set(items)
    sub, share = subsample_users(seen, seen.nnz // 4, seed=0)
    assert sub.shape[1] == seen.shape[1] and 0.1 < sub.nnz / seen.nnz < 0.45 and share == pytest.approx(0.25, abs=0.01)
    assert subsample_users(seen, seen.nnz, seed=0)[1] == 1.0


def test_too_little_data_to_choose_on_keeps_the_configured_values():
    small = make_taste(n_users=80, items_per_cluster=30, per_user=12)  # ~80 validation users
    logs: list[str] = []
    found = tune_hybrid(_seen(small), small.content, _cfg(), device="cpu", progress=logs.append, budget_s=10)
    assert found["report"]["skipped"] and not found["report"]["tried"] and "skipped" in logs[-1]
    assert set(found) == {"report"}


def test_als_search_reuses_factors_and_starts_the_final_fit_from_them(taste, tmp_path):
    """The cold search varies only the content side, so it reuses the ALS factors; other ALS
    fits start from the best warm fit's item factors, and so does the final fit."""
    from avrec.artifacts import read_manifest
    from avrec.train import train

    cfg = _cfg(**{"train.hybrid.solver": "als", "train.hybrid.als_factors": 8})
    found = tune_hybrid(_seen(taste), taste.content, cfg, device="cpu", progress=lambda _m: None, budget_s=None)
    starts = [(t["protocol"], t["start"]) for t in found["report"]["tried"]]
    assert starts[0] == ("warm", "random") and ("warm", "warm") in starts and ("cold", "given") in starts
    assert found["als_init"].shape == (len(taste.item_ids), found.get("als_factors", 8))

    write_embeddings(taste, tmp_path / "emb")
    write_csv(taste, tmp_path / "ev.csv")
    man = read_manifest(train(tmp_path / "emb", tmp_path / "ev.csv", tmp_path / "m", cfg))
    assert man["extra"]["info"]["als"] == {"iterations": cfg.train.hybrid.als_warm_iterations,
                                           "start": "validation search's item factors",
                                           "engine": "implicit"}
    # --set train.tune=off: nothing to start from
    from avrec.config import apply_set

    apply_set(cfg, "train.tune=off")
    man = read_manifest(train(tmp_path / "emb", tmp_path / "ev.csv", tmp_path / "m2", cfg))
    assert man["extra"]["info"]["als"]["start"] == "random"


def test_the_closed_forms_cold_search_reuses_its_factors_across_ridges(taste):
    """Each ridge after the first cold fit reuses that fit's closed-form factors, so the
    cold search costs content maps, not items x items solves."""
    cfg = _cfg(**{"train.hybrid.solver": "closed"})
    found = tune_hybrid(_seen(taste), taste.content, cfg, device="cpu", progress=lambda _m: None, budget_s=None)
    cold = [t for t in found["report"]["tried"] if t["protocol"] == "cold"]
    ridges = [t["params"]["ridge"] for t in cold]
    assert len(set(ridges)) >= len(GRIDS_COLD) and cold[0]["start"] == "random"
    assert all(t["start"] == "given" for t in cold[1:] if "modality_weights" not in t["params"])


def test_the_budget_is_cut_to_a_few_first_fits_but_not_below_the_floor(taste):
    from avrec.tune import MIN_BUDGET_S

    found = tune_hybrid(_seen(taste), taste.content, _cfg(**{"train.tune_budget_fits": 1e-9}), device="cpu",
                        progress=lambda _m: None, budget_s=1000.0)
    assert found["report"]["budget_s"] == MIN_BUDGET_S and "train.tune_budget_fits" in found["report"]["budget_rule"]
    found = tune_hybrid(_seen(taste), taste.content, _cfg(**{"train.tune_budget_fits": 0}), device="cpu",
                        progress=lambda _m: None, budget_s=1000.0)
    assert found["report"]["budget_s"] == 1000.0


def test_a_peak_between_grid_points_is_refined_and_an_edge_followed():
    from avrec.tune import Search, coordinate_search

    search = Search(None, lambda m: None)
    calls = []

    def evaluate(p):  # a score peaked at l2 = 280 (between the grid's 200 and 400), content_prior at 100+
        calls.append(dict(p))
        return 1.0 - abs(np.log(p["l2"] / 280.0)) - 0.01 * abs(np.log((p["cp"] + 1) / 1000.0))

    score, best = coordinate_search(evaluate({"l2": 100.0, "cp": 10.0}), {"l2": 100.0, "cp": 10.0},
                                    {"l2": (50.0, 100.0, 200.0, 400.0, 800.0), "cp": (0.0, 10.0, 30.0, 100.0)},
                                    evaluate, search)
    assert best["l2"] == pytest.approx(282.8, rel=1e-3)  # sqrt(200 x 400), not a grid value
    assert best["cp"] > 100.0  # followed past the grid's edge while rising
    assert len({tuple(sorted(c.items())) for c in calls}) == len(calls)  # nothing scored twice


def test_a_warm_start_of_another_factor_count_keeps_what_the_factors_knew():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((50, 8)).astype(np.float32)
    wide = resize_factors(y, 12, seed=0)
    assert wide.shape == (50, 12) and np.array_equal(wide[:, :8], y)
    assert 0 < np.sqrt(np.mean(wide[:, 8:] ** 2)) < 0.5 * np.sqrt(np.mean(y ** 2))  # small: the fit grows them
    low = (rng.standard_normal((50, 3)) @ rng.standard_normal((3, 8))).astype(np.float32)  # rank 3 in 8 columns
    narrow = resize_factors(low, 3, seed=0)
    assert narrow.shape == (50, 3)
    np.testing.assert_allclose(narrow @ narrow.T, low @ low.T, rtol=1e-3, atol=1e-3)  # the item-item scores survive
    assert resize_factors(y, 8, seed=0) is y


def test_factors_are_searched_on_a_user_subset_too(taste):
    """Above train.tune_max_interactions the search runs on a subset of users; the factor
    count is still a candidate there, and fits of another count start from resized factors."""
    seen = _seen(taste)
    cfg = _cfg(**{"train.hybrid.solver": "als", "train.hybrid.als_factors": 8,
                  "train.tune_max_interactions": int(seen.nnz * 0.8)})
    found = tune_hybrid(seen, taste.content, cfg, device="cpu", progress=lambda _m: None, budget_s=None)
    assert found["report"]["users_share"] < 1
    warm = [t for t in found["report"]["tried"] if t["protocol"] == "warm"]
    assert {t["params"]["als_factors"] for t in warm} >= {8, 64}
    assert all(t["start"] == "warm" for t in warm[1:])


def test_heavy_tailed_tells_counts_from_ratings_and_event_weights():
    from avrec.weighting import heavy_tailed

    rng = np.random.default_rng(0)
    assert heavy_tailed(rng.lognormal(0.0, 1.5, 10000))  # play counts: p99 / median ~ 33
    assert not heavy_tailed(rng.integers(1, 6, 10000).astype(float))  # ratings
    assert not heavy_tailed(rng.choice([1.0, 2.0, 3.0], 10000, p=[0.8, 0.15, 0.05]))  # view / like / share
    assert not heavy_tailed(np.zeros(5)) and not heavy_tailed(np.ones(5))
