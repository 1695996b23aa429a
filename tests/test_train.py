"""The hybrid learns planted taste; the train stage writes the documented model artifact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from taste import as_data, make_taste, write_csv, write_embeddings  # noqa: E402

from avrec.config import Config  # noqa: E402
from avrec.data import cold_item_split, random_split  # noqa: E402
from avrec.evaluate import evaluate_scorer  # noqa: E402
from avrec.models import build_model  # noqa: E402

HYB = {"dim": 16, "epochs": 60, "patience": 8, "lr": 0.02}


@pytest.fixture(scope="module")
def taste():
    return make_taste(n_users=80, items_per_cluster=30, per_user=12)


def test_hybrid_beats_popular_on_held_out(taste):
    split = random_split(as_data(taste), ratio=0.25, seed=0)
    got = {}
    for name in ("popular", "hybrid"):
        m = build_model(name, None, seed=0, **(HYB if name == "hybrid" else {}))
        m.fit(split.train, taste.content if name == "hybrid" else None)
        got[name] = evaluate_scorer(split, m.score, [10])["metrics"][10]
    assert got["hybrid"]["ndcg"] > 1.5 * got["popular"]["ndcg"]
    assert got["hybrid"]["recall"] > got["popular"]["recall"]


def test_cold_items_go_to_users_of_their_cluster(taste):
    data = as_data(taste)
    split = cold_item_split(data, ratio=0.2, seed=1)
    m = build_model("hybrid", None, seed=0, **HYB).fit(split.train, taste.content)
    cold = split.cold_items
    scores = m.score(np.arange(data.n_users))[:, cold]
    # each user's best cold item belongs to the user's cluster
    best = cold[scores.argmax(axis=1)]
    agree = np.mean(taste.item_cluster[best] == taste.user_cluster[[int(data.users[u][1:]) for u in range(data.n_users)]])
    assert agree > 0.9
    r = evaluate_scorer(split, m.score, [10])
    assert r["metrics"][10]["ndcg"] > 0.3


def test_fold_in_fresh_history_without_retraining(taste):
    data = as_data(taste)
    m = build_model("hybrid", None, seed=0, **HYB).fit(data, taste.content)
    import scipy.sparse as sp

    n = data.n_items
    for cluster in range(4):
        items = np.flatnonzero(taste.item_cluster == cluster)[:3]
        hist = sp.csr_matrix((np.ones(3, np.float32), (np.zeros(3, int), items)), shape=(1, n))
        ids, _ = m.recommend_history(hist, k=10)
        assert np.mean(taste.item_cluster[ids[0]] == cluster) >= 0.8
        assert not set(ids[0]) & set(items)
        # the documented numpy-only path: weighted mean of history_vectors rows
        f = m.factors()
        u = f["history_vectors"][items].mean(axis=0)
        np.testing.assert_allclose(u @ f["item_vectors"].T, m.score_history(hist)[0], rtol=1e-5, atol=1e-5)


def test_train_stage_writes_the_model_artifact(taste, tmp_path):
    import dataclasses

    from avrec.artifacts import read_jsonl, read_manifest
    from avrec.train import train

    taste = dataclasses.replace(taste, rows=list(taste.rows))

    cold_rows = [i for i in range(len(taste.item_ids)) if i % 30 == 29]  # never interacted with
    ev = tmp_path / "ev.csv"
    taste.rows[:] = [r for r in taste.rows if int(r[1][5:]) not in cold_rows]
    write_csv(taste, ev)
    with open(ev, "a") as f:
        f.write("u1,not-in-catalogue,1,5\nbroken-line\n")
    emb = tmp_path / "emb"
    write_embeddings(taste, emb)
    cfg = Config()
    cfg.train.hybrid.dim, cfg.train.hybrid.epochs, cfg.train.hybrid.patience, cfg.train.hybrid.lr = 16, 40, 5, 0.02
    messages: list[str] = []
    out = train(emb, ev, tmp_path / "model", cfg, progress=messages.append)
    man = read_manifest(out, expect="model")
    assert man["counts"]["cold_items"] == len(cold_rows)
    assert man["extra"]["load_report"]["unknown_item_lines"] and man["extra"]["load_report"]["malformed_lines"]
    assert any("have no embeddings" in m for m in messages)
    assert [r["item_id"] for r in read_jsonl(out / "items.jsonl")] == taste.item_ids
    users = (out / "users.txt").read_text().split("\n")[:-1]
    iv, uv, hv = (np.load(out / f"{k}.npy") for k in ("item_vectors", "user_vectors", "history_vectors"))
    assert iv.shape[0] == hv.shape[0] == len(taste.item_ids) and uv.shape[0] == len(users)
    assert iv.dtype == np.float32
    indptr, indices = np.load(out / "seen_indptr.npy"), np.load(out / "seen_indices.npy")
    assert indptr.shape == (len(users) + 1,) and indices.shape == (indptr[-1],)
    # user vectors are the weighted mean of their history rows (the fold-in contract)
    u0 = hv[indices[indptr[0] : indptr[1]]].mean(axis=0)
    np.testing.assert_allclose(u0, uv[0], rtol=1e-5, atol=1e-5)
    assert (np.load(out / "popularity.npy")[cold_rows] == 0).all()
    # a cold item is still served from content: it scores like its cluster's warm items
    c = cold_rows[0]
    fans = [k for k, u in enumerate(users) if int(u[1:]) % 4 == taste.item_cluster[c]]
    others = [k for k, u in enumerate(users) if int(u[1:]) % 4 != taste.item_cluster[c]]
    assert (uv[fans] @ iv[c]).mean() > (uv[others] @ iv[c]).mean()
    # popular serves through the same 1-dim factor path
    cfg.train.model = "popular"
    pout = train(emb, ev, tmp_path / "pop", cfg)
    assert np.load(pout / "item_vectors.npy").shape == (len(taste.item_ids), 1)
    # ease keeps its own weights only
    cfg.train.model = "ease"
    eout = train(emb, ev, tmp_path / "ease", cfg)
    assert (eout / "weights.npz").exists() and not (eout / "item_vectors.npy").exists()


def test_cli_train_prints_only_the_path_and_fails_clearly(taste, tmp_path):
    emb = tmp_path / "emb"
    write_embeddings(taste, emb)
    ev = tmp_path / "ev.csv"
    write_csv(taste, ev)
    cmd = [sys.executable, "-m", "avrec", "train", str(emb), "--interactions", str(ev), "--model", "popular", "-o", str(tmp_path / "m")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["models"]["name"] == "popular"
    bad = subprocess.run(cmd[:6] + [str(tmp_path / "missing.csv")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not found" in bad.stderr and bad.stdout == ""
    bad = subprocess.run(cmd[:4] + ["--model", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2


def test_tune_flag_searches_without_a_budget(tmp_path):
    from avrec.artifacts import read_manifest
    from avrec.train import train
    from avrec.tune import GRIDS

    taste = make_taste(n_users=300, items_per_cluster=30, per_user=12)  # enough validation users to choose on
    emb = tmp_path / "emb"
    write_embeddings(taste, emb)
    ev = tmp_path / "ev.csv"
    write_csv(taste, ev)
    cfg = Config()
    cfg.train.tune_budget_s = 1e-6  # --tune ignores the budget of the default search
    lines: list[str] = []
    out = train(emb, ev, tmp_path / "m", cfg, tune=True, progress=lines.append)
    tuned = read_manifest(out)["extra"]["tuned"]
    assert tuned["budget_s"] is None and tuned["stopped"] is None
    # every value of the winning solver's grid was scored on the warm split
    warm = [t["params"] for t in tuned["tried"] if t["protocol"] == "warm" and t["params"]["solver"] == tuned["chosen"]["solver"]]
    for key, values in GRIDS[tuned["chosen"]["solver"]].items():
        assert set(values) <= {p[key] for p in warm}, key
    assert sum(line.startswith("tune: warm") for line in lines) == sum(t["protocol"] == "warm" for t in tuned["tried"])


def test_sgd_solver_early_stopping(taste):
    split = random_split(as_data(taste), ratio=0.25, seed=0)
    m = build_model("hybrid", None, seed=0, solver="sgd", **HYB).fit(split.train, taste.content)
    assert 1 <= m.info["best_epoch"] <= HYB["epochs"] and m.info["validation_ndcg"] > 0.2
    pop = build_model("popular", None).fit(split.train)
    assert evaluate_scorer(split, m.score, [10])["metrics"][10]["ndcg"] > evaluate_scorer(split, pop.score, [10])["metrics"][10]["ndcg"]


def test_closed_form_factors_equal_content_ease_off_the_history():
    """The low-rank (Woodbury) path reproduces the full EASE solve on every item a user has not seen."""
    data = as_data(make_taste(n_users=20, items_per_cluster=30, per_user=10, seed=3))
    t = make_taste(n_users=20, items_per_cluster=30, per_user=10, seed=3)
    m = build_model("hybrid", None, dim=10_000, content_dim=0, l2=5.0, content_prior=3.0).fit(data, t.content)
    x = data.to_csr().toarray().astype(np.float64)
    x /= x[x > 0].mean()  # fit scales the weights to mean 1 (models/base.py: scale_weights)
    active = np.flatnonzero(x.sum(axis=0) > 0)
    assert data.n_users + t.content.shape[1] < len(active)  # the Woodbury path is the one taken
    c = m._prepare_content(t.content, active)[0].astype(np.float64)[active]
    g = x[:, active].T @ x[:, active] + 3.0 * c @ c.T + 5.0 * np.eye(len(active))
    inv = np.linalg.inv(g)
    b = -inv / np.diag(inv)[None, :]
    np.fill_diagonal(b, 0.0)
    direct = x[:, active] @ b
    served = m.score(np.arange(data.n_users))[:, active] * x.sum(axis=1, keepdims=True)  # mean -> sum
    unseen = x[:, active] == 0
    np.testing.assert_allclose(served[unseen], direct[unseen], rtol=1e-3, atol=1e-4)
