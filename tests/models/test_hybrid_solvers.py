"""The hybrid's solvers: auto picks by size and says why; als learns the planted taste,
serves items without interactions from content exactly through its projection, and folds
a history in through its history vectors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from taste import as_data, make_taste  # noqa: E402

from avrec.data import cold_item_split, random_split  # noqa: E402
from avrec.evaluate import evaluate_scorer  # noqa: E402
from avrec.models import build_model  # noqa: E402
from avrec.models.hybrid import choose_solver  # noqa: E402

ALS = {"solver": "als", "als_factors": 16, "als_iterations": 10, "als_reg": 0.1, "als_alpha": 10.0, "content_dim": 8}


@pytest.fixture(scope="module")
def taste():
    return make_taste(n_users=120, items_per_cluster=30, per_user=12)


def test_auto_picks_closed_while_its_dense_solve_is_small_and_says_why():
    params = {"solver": "auto", "closed_max": 12000}
    solver, why = choose_solver(params, n_users=600, n_active=9700, content_dim=128)  # MovieLens-small-sized
    assert solver == "closed" and "728" in why
    solver, why = choose_solver(params, n_users=100_000, n_active=20_000, content_dim=128)
    assert solver == "als" and "20000" in why and "closed_max" in why
    assert choose_solver({**params, "solver": "sgd"}, n_users=10**6, n_active=10**6, content_dim=0)[0] == "sgd"


def test_the_choice_is_recorded(taste):
    m = build_model("hybrid", None, seed=0, closed_max=10, als_factors=8, als_iterations=3).fit(as_data(taste), taste.content)
    assert m.info["solver"]["chosen"] == "als" and "closed_max 10" in m.info["solver"]["reason"]
    m = build_model("hybrid", None, seed=0, dim=8).fit(as_data(taste), taste.content)
    assert m.info["solver"]["chosen"] == "closed"


def test_als_learns_the_taste_and_beats_popular(taste):
    split = random_split(as_data(taste), ratio=0.25, seed=0)
    got = {}
    for name, params in (("popular", {}), ("hybrid", ALS)):
        m = build_model(name, None, seed=0, **params).fit(split.train, taste.content if params else None)
        got[name] = evaluate_scorer(split, m.score, [10])["metrics"][10]["ndcg"]
    assert got["hybrid"] > 1.5 * got["popular"], got


def test_als_serves_cold_items_from_content_through_the_projection(taste):
    split = cold_item_split(as_data(taste), ratio=0.25, seed=0)
    m = build_model("hybrid", None, seed=0, **ALS).fit(split.train, taste.content)
    cold = split.cold_items
    proj = m.projections()
    x = np.hstack([taste.content[cold].astype(np.float64), np.ones((len(cold), 1))])
    np.testing.assert_allclose(m.item_vectors[cold], x @ proj["content_projection"], atol=1e-5)
    np.testing.assert_allclose(m.history_vectors[cold], x @ proj["history_projection"], atol=1e-5)
    # the cold items are ranked by content: users find their own cluster's new items
    r = evaluate_scorer(split, m.score, [10])["metrics"][10]["ndcg"]
    assert r > 0.5, r


def test_als_fold_in_is_the_linear_als_solution(taste):
    data = as_data(taste)
    m = build_model("hybrid", None, seed=0, **ALS).fit(data, taste.content)
    seen = data.to_csr()
    y = m.item_vectors[:, :-1].astype(np.float64)
    active = np.flatnonzero(np.asarray(seen.sum(axis=0)).ravel() > 0)
    g = y[active].T @ y[active] + ALS["als_reg"] * np.eye(y.shape[1])
    u = 3
    h = seen[u].indices
    want = np.linalg.solve(g, y[h].sum(axis=0))  # (Y'Y + reg I)^-1 Y' h: ALS without its confidence term
    folded = np.asarray(m.history_vectors[h, :-1], np.float64).sum(axis=0)
    np.testing.assert_allclose(folded, want, rtol=1e-4, atol=1e-6)
    # and the fold-in ranks this user's unseen items much as the trained vector does
    s_fold = m.score_history(seen[[u]])[0]
    s_user = m.score(np.array([u]))[0]
    s_fold[h], s_user[h] = -np.inf, -np.inf
    top = lambda s: set(np.argsort(-s)[:10].tolist())  # noqa: E731
    assert len(top(s_fold) & top(s_user)) >= 6


def test_closed_fold_in_equals_the_trained_user_vectors(taste):
    data = as_data(taste)
    m = build_model("hybrid", None, seed=0, solver="closed", dim=16).fit(data, taste.content)
    seen = data.to_csr()
    np.testing.assert_allclose(m.score_history(seen[:20]), m.score(np.arange(20)), rtol=1e-5, atol=1e-6)


def test_tune_searches_the_solver_auto_picks():
    from avrec.config import Config
    from avrec.tune import GRIDS, tune_hybrid

    cfg = Config()
    cfg.train.hybrid.closed_max = 0  # this catalogue is "large": auto picks als, and only als is searched
    cfg.train.hybrid.als_iterations = 3
    cfg.train.hybrid.content_dim = 8
    logs: list[str] = []
    taste = make_taste(n_users=300, items_per_cluster=30, per_user=12)  # enough validation users to choose on
    best = tune_hybrid(as_data(taste).to_csr(), taste.content, cfg, device="cpu", progress=logs.append)
    report = best.pop("report")
    assert best["solver"] == "als" and set(GRIDS["als"]) <= set(best)
    assert {t["params"]["solver"] for t in report["tried"]} == {"als"}
    assert any("solvers ['als']" in m for m in logs)


def test_als_from_given_item_factors_needs_few_iterations(taste):
    """A warm start (the validation search's item factors) stays at the converged solution in
    2 iterations; 2 from random are farther from it."""
    ref = build_model("hybrid", None, seed=0, **{**ALS, "als_iterations": 30}).fit(as_data(taste), taste.content,
                                                                                 keep_als=True)
    assert ref.info["als"] == {"iterations": 30, "start": "random", "engine": "implicit"}
    users = np.arange(ref.n_users)

    def gap(**kw):  # relative distance of the user x item scores from the converged ones
        m = build_model("hybrid", None, seed=1, **{**ALS, "als_iterations": 2, "als_warm_iterations": 2})
        m.fit(as_data(taste), taste.content, **kw)
        a, b = m.score(users), ref.score(users)
        return m, float(np.linalg.norm(a - b) / np.linalg.norm(b))

    warm, warm_gap = gap(als_init=ref.als_[1])
    assert warm.info["als"] == {"iterations": 2, "start": "validation search's item factors", "engine": "implicit"}
    _, cold_gap = gap()
    assert warm_gap < 0.05 and warm_gap < cold_gap / 3, (warm_gap, cold_gap)
    # factors of another shape are not a start: the fit runs from random, all its iterations
    other, _ = gap(als_init=np.zeros((taste.content.shape[0], 3), np.float32))
    assert other.info["als"]["start"] == "random"


def test_als_given_factors_are_served_as_they_are(taste):
    ref = build_model("hybrid", None, seed=0, **ALS).fit(as_data(taste), taste.content, keep_als=True)
    assert build_model("hybrid", None, seed=0, **ALS).fit(as_data(taste), taste.content).als_ is None  # a final fit drops them
    x, y = ref.als_
    m = build_model("hybrid", None, seed=0, **{**ALS, "ridge": 10.0}).fit(as_data(taste), taste.content, als_given=(x, y))
    assert m.info["als"]["iterations"] == 0
    np.testing.assert_array_equal(m.user_vectors[:, :-1], x)
    active = np.flatnonzero(np.asarray(m.popularity) > 0)
    np.testing.assert_allclose(m.item_vectors[active, :-1], y[active], rtol=1e-6)


def test_closed_given_factors_equal_a_full_fit_at_another_ridge(taste):
    """The cold search's ridges reuse the closed form's factors: only the content map is
    refitted, and the model is the one a full fit at that ridge gives."""
    base = {"solver": "closed", "content_dim": 8, "dim": 16}
    cold = cold_item_split(as_data(taste), ratio=0.2, seed=0)
    seen = cold.train.to_csr()
    ref = build_model("hybrid", None, seed=0, **base).fit(seen, taste.content, keep_als=True)
    assert build_model("hybrid", None, seed=0, **base).fit(seen, taste.content).closed_ is None  # a final fit drops them
    full = build_model("hybrid", None, seed=0, **{**base, "ridge": 100.0}).fit(seen, taste.content)
    reused = build_model("hybrid", None, seed=0, **{**base, "ridge": 100.0}).fit(seen, taste.content,
                                                                                closed_given=ref.closed_)
    for key in ("item_vectors", "user_vectors", "history_vectors"):
        np.testing.assert_allclose(getattr(reused, key), getattr(full, key), rtol=1e-5, atol=1e-6)
    for key, arr in full.projections().items():
        np.testing.assert_allclose(reused.projections()[key], arr, rtol=1e-5, atol=1e-6)
    # and the ridge does move the items without interactions, so the reuse is not a no-op
    assert not np.allclose(ref.item_vectors[cold.cold_items], full.item_vectors[cold.cold_items])
