"""Properties of the ranking metrics evaluate reports: per-user NDCG is in [0, 1], averages to
the reported mean, is 1 exactly for an ideal ranking, and the paired comparison is
antisymmetric (a against b is b against a with the sign turned)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from avrec.metrics import metrics_at_k, ndcg_per_user, paired_difference


@st.composite
def rankings(draw):
    n_items = draw(st.integers(2, 30))
    n_users = draw(st.integers(1, 12))
    k = draw(st.integers(1, n_items))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rel = [sorted(rng.choice(n_items, size=int(rng.integers(0, n_items + 1)), replace=False).tolist())
           for _ in range(n_users)]
    top = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    r = [i for i, row in enumerate(rel) for _ in row]
    c = [j for row in rel for j in row]
    relevant = sp.csr_matrix((np.ones(len(c), np.float32), (r, c)), shape=(n_users, n_items))
    return top, relevant, k, rel


@settings(max_examples=150, deadline=None)
@given(rankings())
def test_per_user_ndcg_is_bounded_and_averages_to_the_reported_mean(case):
    top, relevant, k, rel = case
    per = ndcg_per_user(top, relevant, k)
    assert len(per) == sum(bool(r) for r in rel)
    assert np.all(per >= -1e-12) and np.all(per <= 1 + 1e-12)
    m = metrics_at_k(top, relevant, [k], n_candidates=relevant.shape[1])[k]
    assert m["ndcg"] == pytest.approx(float(per.mean()) if len(per) else 0.0)


@settings(max_examples=100, deadline=None)
@given(rankings())
def test_an_ideal_ranking_scores_one_for_every_user(case):
    top, relevant, k, rel = case
    n_items = relevant.shape[1]
    ideal = np.stack([np.array(r + [i for i in range(n_items) if i not in r])[:k] for r in rel])
    per = ndcg_per_user(ideal, relevant, k)
    np.testing.assert_allclose(per, 1.0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=60))
def test_the_paired_comparison_is_antisymmetric(pairs):
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    ab, ba = paired_difference(a, b), paired_difference(b, a)
    assert ab["diff"] == pytest.approx(-ba["diff"], abs=1e-9) and ab["se"] == pytest.approx(ba["se"])
    assert ab["users"] == ba["users"] == len(pairs)
    mirror = {"ahead": "behind", "behind": "ahead", "tie": "tie"}
    assert ba["verdict"] == mirror[ab["verdict"]]
    assert paired_difference(a, a)["verdict"] == "tie"
