"""avrec.models.dp_als: private ALS, the hybrid's als solver under train.privacy.epsilon."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
from taste import make_taste  # noqa: E402

from avrec.config import Config  # noqa: E402
from avrec.models import dp  # noqa: E402
from avrec.models.dp_als import PrivateALS, unit_rows, user_step  # noqa: E402


def _taste_csr(**kw):
    from avrec.data import from_arrays

    t = make_taste(**kw)
    data = from_arrays([r[0] for r in t.rows], [r[1] for r in t.rows], catalogue=t.item_ids)
    return t, data.to_csr(binary=True)


def _stats(xb, u):
    """The item step's statistics before noise: (b over all items, G's upper triangle)."""
    return np.asarray(xb.T @ u), (u.T @ u)[np.triu_indices(u.shape[1])]


def test_one_users_contribution_to_the_item_step_is_within_the_sensitivity():
    rng = np.random.default_rng(0)
    n_users, n_items, d, c = 50, 40, 6, 5
    x = sp.random(n_users, n_items, density=0.5, format="csr", random_state=rng, dtype=np.float32)
    x.data[:] = 1.0
    xb = dp.bound_contributions(x, max_items=c, seed=0)
    u = unit_rows(rng.normal(size=(n_users, d)) * rng.uniform(0.01, 100, size=(n_users, 1)))
    b, g = _stats(xb, u)
    for drop in range(n_users):
        keep = np.arange(n_users) != drop
        b2, g2 = _stats(xb[keep], u[keep])
        moved = math.sqrt(float(((b - b2) ** 2).sum() + ((g - g2) ** 2).sum()))
        assert moved <= math.sqrt(c + 1) + 1e-9


def test_without_noise_the_item_step_is_the_least_squares_solve_on_the_users():
    t, x = _taste_csr(n_users=200, items_per_cluster=15, per_user=8)
    content = t.content
    rel = PrivateALS(x, epsilon=1e9, delta=1e-6, max_items=1000, seed=0, noise_seed=0)
    assert len(rel.kept) == int((np.diff(x.tocsc().indptr) > 0).sum())  # no noise: every item with users
    users, items = rel.fit(factors=8, iterations=1, reg=0.5, alpha=4.0, init_items=content)
    # the same first user step by hand, then the unweighted ALS item solve on the unit users
    from avrec.models.dp_als import _start

    y0 = _start(content, x.shape[1], 8, 0)
    conf = x.copy()
    conf.data = 1.0 + 4.0 * conf.data
    u = unit_rows(user_step(conf, y0, reg=0.5))
    lam = 0.5 + 2.0 * rel.info["sigma"]["item_step"] * math.sqrt(8)
    ref = np.linalg.solve(u.T.astype(np.float64) @ u + lam * np.eye(8), (x.T @ u).T).T
    np.testing.assert_allclose(items[rel.kept], ref[rel.kept], atol=1e-3)  # float32, and sigma is tiny, not 0
    # and the served users are each one's own solve on the released items
    np.testing.assert_allclose(users, user_step(conf, items, reg=0.5), rtol=1e-4, atol=1e-6)


def test_private_als_ranks_taste_clusters_at_a_workable_epsilon():
    t, x = _taste_csr(n_users=2000, items_per_cluster=25, per_user=10, n_clusters=4)
    rel = PrivateALS(x, epsilon=8.0, delta=0.0, max_items=0, seed=0, noise_seed=3)
    users, items = rel.fit(factors=8, iterations=1, reg=0.01, alpha=10.0, init_items=t.content)
    scores = users @ items.T
    scores[x.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :5]
    same = (t.item_cluster[top] == t.user_cluster[:, None]).mean()
    pop = np.argsort(-rel.popularity())[:5]
    same_pop = (t.item_cluster[pop][None, :] == t.user_cluster[:, None]).mean()
    assert same > 0.8 and same > same_pop + 0.3
    assert rel.info["delta"] == pytest.approx(2000 ** -1.1) and rel.info["sigma"]["item_step"] > 0


def test_items_the_counts_cannot_tell_from_none_get_no_factors_and_noise_is_fresh_unless_seeded():
    _, x = _taste_csr(n_users=300, items_per_cluster=20, per_user=6)
    a = PrivateALS(x, epsilon=0.5, delta=0.0, max_items=0, seed=0, noise_seed=1)
    _, ya = a.fit(factors=4, iterations=1, reg=0.01, alpha=10.0)
    outside = np.setdiff1d(np.arange(x.shape[1]), a.kept)
    assert len(outside) > 0 and not ya[outside].any()
    assert (a.popularity()[outside] == 0).all() and (a.counts[a.kept] >= a.threshold).all()
    b = PrivateALS(x, epsilon=0.5, delta=0.0, max_items=0, seed=0, noise_seed=1)
    np.testing.assert_array_equal(b.counts, a.counts)
    c = PrivateALS(x, epsilon=0.5, delta=0.0, max_items=0, seed=0)
    assert not np.array_equal(c.counts, a.counts) and c.info["noise"] == "fresh OS entropy"


def test_the_hybrid_trains_privately_with_als_and_auto_picks_it_above_closed_max():
    from avrec.train import fit_model

    t, x = _taste_csr(n_users=400, items_per_cluster=20, per_user=8)
    cfg = Config()
    cfg.train.privacy.epsilon = 4.0
    cfg.train.hybrid.closed_max = 50  # fewer than the 80 items: auto goes to private ALS
    lines: list[str] = []
    model, _, _ = fit_model("hybrid", x, t.content, cfg, device="cpu", progress=lines.append)
    p = model.info["privacy"]
    assert model.info["solver"]["chosen"] == "als" and "closed_max" in model.info["solver"]["reason"]
    assert p["solver"] == "als" and p["iterations"] == 1 and p["start"].startswith("public content")
    assert p["tuning"].startswith("skipped") and p["sigma"]["item_step"] > 0
    kept = np.zeros(x.shape[1], bool)
    kept[np.flatnonzero(model.popularity > 0)] = True
    assert not model.history_vectors[~kept, :-1].any()  # no taste carried by items the release cannot see
    assert np.isfinite(model.item_vectors).all() and np.abs(model.item_vectors[~kept]).sum() > 0  # content
    assert not np.allclose(model.popularity, np.asarray(x.sum(axis=0)).ravel())
    cfg.train.hybrid.closed_max = 12000
    small, _, _ = fit_model("hybrid", x, t.content, cfg, device="cpu", progress=lambda m: None)
    assert small.info["solver"]["chosen"] == "closed" and small.info["privacy"]["solver"] == "closed"
