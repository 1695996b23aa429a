"""The content-only reference model: cosine of an item with the user's history, cold items alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
from taste import as_data, make_taste, write_csv, write_embeddings  # noqa: E402

from avrec.data import cold_item_split  # noqa: E402
from avrec.errors import InputError  # noqa: E402
from avrec.evaluate import evaluate_scorer  # noqa: E402
from avrec.models import build_model  # noqa: E402


@pytest.fixture(scope="module")
def taste():
    return make_taste(n_users=60, items_per_cluster=20, per_user=10)


def test_scores_are_the_mean_cosine_to_the_history(taste):
    rng = np.random.default_rng(0)
    n_items, d = 12, 5
    content = rng.normal(size=(n_items, d)).astype(np.float32) + 3.0  # a shared offset that centring removes
    seen = sp.csr_matrix(np.array([[1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                                   [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0]], np.float32))
    m = build_model("content").fit(seen, content)
    c = content - content.mean(axis=0)

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    for u in range(2):
        row = seen[u]
        # the weighted mean over the history (train's scaling of the weights to mean 1 cancels in it)
        ref = np.array([sum(w * cos(c[i], c[j]) for j, w in zip(row.indices, row.data)) / row.data.sum()
                        for i in range(n_items)])
        np.testing.assert_allclose(m.score([u])[0], ref, rtol=1e-5, atol=1e-5)


def test_cold_items_score_like_warm_ones_and_go_to_their_cluster(taste):
    data = as_data(taste)
    split = cold_item_split(data, ratio=0.25, seed=0)
    m = build_model("content").fit(split.train, taste.content)
    assert (m.popularity[split.cold_items] == 0).all()
    scores = m.score(np.arange(data.n_users))[:, split.cold_items]
    best = split.cold_items[scores.argmax(axis=1)]
    user_cluster = np.array([int(u[1:]) % 4 for u in data.users.ids])
    assert np.mean(taste.item_cluster[best] == user_cluster) > 0.9
    assert evaluate_scorer(split, m.score, [10])["metrics"][10]["ndcg"] > 0.3
    # an item with no interactions and a warm item with the same content score the same
    content = np.vstack([taste.content, taste.content[:1]])
    seen = sp.hstack([data.to_csr(), sp.csr_matrix((data.n_users, 1), dtype=np.float32)]).tocsr()
    m2 = build_model("content").fit(seen, content)
    s = m2.score(np.arange(data.n_users))
    np.testing.assert_allclose(s[:, -1], s[:, 0], rtol=1e-5, atol=1e-6)


def test_fold_in_equals_the_trained_user_vectors(taste):
    data = as_data(taste)
    m = build_model("content").fit(data, taste.content)
    seen = data.to_csr()
    np.testing.assert_allclose(m.score_history(seen[:7]), m.score(np.arange(7)), rtol=1e-5, atol=1e-6)
    f = m.factors()
    hv, uv = f["history_vectors"], f["user_vectors"]
    row = seen[3]
    np.testing.assert_allclose((row.data[:, None] * hv[row.indices]).sum(0) / row.data.sum(), uv[3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(f["item_vectors"], axis=1), 1.0, rtol=1e-5)


def test_items_without_content_score_zero_and_no_content_is_an_error(taste):
    data = as_data(taste)
    content = taste.content.copy()
    content[:5] = 0.0
    m = build_model("content").fit(data, content)
    assert np.all(m.score(np.arange(3))[:, :5] == 0)
    assert np.all(np.isfinite(m.score(np.arange(data.n_users))))
    with pytest.raises(InputError, match="embeddings artifact"):
        build_model("content").fit(data, None)
    with pytest.raises(InputError, match="nothing to compare"):
        build_model("content").fit(data, np.ones_like(taste.content))


def test_train_index_and_recommend_serve_it_from_the_shell(taste, tmp_path):
    emb, ev = tmp_path / "emb", tmp_path / "ev.csv"
    write_embeddings(taste, emb)
    write_csv(taste, ev)
    run = [sys.executable, "-m", "avrec"]
    r = subprocess.run(run + ["train", str(emb), "-i", str(ev), "--model", "content", "-o", str(tmp_path / "m")],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    man = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert man["models"]["name"] == "content" and man["models"]["factor_model"] is True
    r = subprocess.run(run + ["index", str(tmp_path / "m"), "-o", str(tmp_path / "ix")], capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(run + ["recommend", str(tmp_path / "ix"), "--user", "u1", "--k", "5", "--json"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    got = [json.loads(line)["item_id"] for line in r.stdout.splitlines()]
    assert len(got) == 5
    # u1 likes cluster 1 (users cycle through the 4 clusters): what it is served is cluster 1's
    cluster = {i: c for i, c in zip(taste.item_ids, taste.item_cluster)}
    assert sum(cluster[i] == 1 for i in got) >= 4
