"""train.recency (avrec/recency.py): decayed weights, the leave-newest split, auto's choice on
a log whose users changed taste, the stored weights, and the server's fold-in on their scale."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from taste import make_taste, write_csv, write_embeddings  # noqa: E402

from avrec import recency  # noqa: E402
from avrec.config import Config  # noqa: E402
from avrec.data import from_arrays  # noqa: E402
from avrec.errors import InputError  # noqa: E402


def test_newer_counts_rank_by_time_within_each_user_and_ties_share_a_rank():
    user = np.array([0, 0, 0, 0, 1, 1])
    t = np.array([10.0, 30.0, 20.0, 30.0, 5.0, 1.0])
    np.testing.assert_array_equal(recency.newer_counts(user, t), [3, 0, 2, 0, 0, 1])
    w = recency.decay(user, t, half_life=2.0)
    np.testing.assert_allclose(w, [0.5 ** 1.5, 1.0, 0.5, 1.0, 1.0, 0.5 ** 0.5], rtol=1e-6)
    with pytest.raises(ValueError):
        recency.decay(user, t, half_life=0.0)


def test_live_events_are_newer_than_the_whole_trained_history():
    trained, live = recency.live_weights(np.array([1.0, 0.5], np.float32), np.array([1.0, 0.0, 2.0], np.float32),
                                         half_life=1.0)
    np.testing.assert_allclose(trained, [0.125, 0.0625])  # three live events since training: 0.5 ** 3
    np.testing.assert_allclose(live, [0.25, 0.0, 2.0])  # the newest keeps its own weight


def test_newest_split_holds_out_each_users_newest_and_keeps_one_to_train_on():
    users = [f"u{u}" for u in range(30) for _ in range(10)] + ["solo"]
    items = [f"i{k}" for _ in range(30) for k in range(10)] + ["i0"]
    ts = [float(k) for _ in range(30) for k in range(10)] + [0.0]
    data = from_arrays(users, items, timestamps=ts)
    train, test = recency.newest_split(data, ratio=0.2, seed=0)
    assert len(train) + len(test) == len(data)
    for u in range(data.n_users):
        tr, te = data.timestamp[train_rows(data, train, u)], test.timestamp[test.user == u]
        assert len(tr) >= 1
        if len(te):
            assert te.min() > tr.max()
    assert 40 <= len(test) <= 80  # about 20% of the 300 interactions of users with ten


def train_rows(data, train, u):
    return np.flatnonzero(np.isin(data.timestamp, train.timestamp[train.user == u]) & (data.user == u))


def drift_log(seed: int = 0):
    """Each user liked one content cluster for their first 12 interactions and another for
    their last 8: their next interactions follow the newer taste."""
    t = make_taste(n_clusters=4, items_per_cluster=30, n_users=120, seed=seed)
    rng = np.random.default_rng(seed)
    rows, ts = [], 1_600_000_000
    for u in range(120):
        a, b = rng.choice(4, 2, replace=False)
        for k in range(20):
            ts += 10
            rows.append((f"u{u}", f"item-{(a if k < 12 else b) * 30 + int(rng.integers(30)):03d}", 1.0, ts))
    t.rows[:] = rows
    return t


def _train(tmp_path, t, **train_kw):
    from avrec.train import train

    write_embeddings(t, tmp_path / "emb")
    write_csv(t, tmp_path / "ev.csv")
    cfg = Config()
    for k, v in train_kw.items():
        setattr(cfg.train, k, v)
    msgs: list[str] = []
    out = train(tmp_path / "emb", tmp_path / "ev.csv", tmp_path / "model", cfg, progress=msgs.append)
    return out, msgs


def test_auto_chooses_a_half_life_where_users_changed_taste_and_the_vectors_hold_it(tmp_path):
    from avrec.artifacts import read_manifest

    t = drift_log()
    out, msgs = _train(tmp_path, t, recency="auto")
    rec = read_manifest(out, expect="model")["extra"]["recency"]
    assert rec["mode"] == "auto" and rec["half_life"] > 0, msgs
    tried = {x["half_life"]: x["ndcg"] for x in rec["tried"]}
    assert tried[rec["half_life"]] > 1.5 * tried[0.0]  # the newer taste is what comes next
    # the user vectors are the fold of the decayed weights, which are stored beside the history
    hv, uv = np.load(out / "history_vectors.npy"), np.load(out / "user_vectors.npy")
    indptr, indices, sw = (np.load(out / f"seen_{k}.npy") for k in ("indptr", "indices", "weights"))
    assert sw.shape == indices.shape and sw.min() < 0.5  # a repeated pair sums its weights, decayed by its newest
    a, b = indptr[0], indptr[1]
    u0 = (sw[a:b, None] * hv[indices[a:b]]).sum(0) / sw[a:b].sum()
    np.testing.assert_allclose(u0[:-1], uv[0, :-1], rtol=1e-4, atol=1e-5)
    # so a user's list follows their newest cluster
    users = (out / "users.txt").read_text().split("\n")[:-1]
    iv = np.load(out / "item_vectors.npy")
    item_cluster = np.arange(120) // 30
    newest = {r[0]: int(r[1][5:]) // 30 for r in t.rows}  # rows are in time order
    hits = [item_cluster[np.argmax(uv[k] @ iv.T)] == newest[u] for k, u in enumerate(users)]
    assert np.mean(hits) > 0.8


def test_off_by_default_and_on_uses_the_configured_half_life(tmp_path):
    from avrec.artifacts import read_manifest

    t = drift_log(seed=1)
    out, _ = _train(tmp_path, t)
    assert "recency" not in read_manifest(out, expect="model")["extra"] and not (out / "seen_weights.npy").exists()
    out, _ = _train(tmp_path / "on", t, recency="on", recency_half_life=3.0)
    assert read_manifest(out, expect="model")["extra"]["recency"] == {"mode": "on", "half_life": 3.0}
    sw = np.load(out / "seen_weights.npy")
    for n in (1, 2, 3):  # a user's second, third and fourth newest (each seen once)
        assert np.isclose(sw, 0.5 ** (n / 3), rtol=1e-5).any()


def test_recency_needs_timestamps_and_the_hybrid(tmp_path):
    from avrec.train import train

    t = drift_log()
    write_embeddings(t, tmp_path / "emb")
    (tmp_path / "ev.csv").write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i, _, _ in t.rows))
    cfg = Config()
    cfg.train.recency = "on"
    with pytest.raises(InputError, match="timestamp on every interaction: no interaction has a timestamp"):
        train(tmp_path / "emb", tmp_path / "ev.csv", tmp_path / "m", cfg)
    (tmp_path / "ev1.csv").write_text("user_id,item_id,timestamp\n" + "".join(
        f"{u},{i},{'' if n == 7 else t}\n" for n, (u, i, _, t) in enumerate(t.rows)))
    with pytest.raises(InputError, match=r"1 of \d+ interactions have no timestamp \(e.g. user 'u0'"):
        train(tmp_path / "emb", tmp_path / "ev1.csv", tmp_path / "m", cfg)
    write_csv(t, tmp_path / "ev2.csv")
    cfg.train.model = "ease"
    with pytest.raises(InputError, match="needs --model hybrid"):
        train(tmp_path / "emb", tmp_path / "ev2.csv", tmp_path / "m", cfg)
    assert not (tmp_path / "m").exists()


def test_the_server_folds_live_events_in_on_the_decayed_scale(tmp_path):
    from avrec.config import IndexConfig
    from avrec.index.build import build_index
    from avrec.recommend import Options
    from avrec.serve.events import Event, EventStore
    from avrec.serve.state import State

    out, _ = _train(tmp_path, drift_log(seed=2), recency="on", recency_half_life=2.0)
    idx_dir = build_index(out, tmp_path / "index", IndexConfig())
    store = EventStore(tmp_path / "events.sqlite")
    state = State(idx_dir, store=store, pid=lambda s: s)
    idx = state.index
    assert idx.extra["recency_half_life"] == 2.0 and idx.seen_weights is not None
    rec = state.recommender(idx, Options(k=5))
    row = idx.users.row("u0")
    a, b = int(idx.seen_indptr[row]), int(idx.seen_indptr[row + 1])
    hist, sw = np.asarray(idx.seen_indices[a:b]), np.asarray(idx.seen_weights[a:b])
    np.testing.assert_allclose(state.plan_user(idx, rec, "u0").q, idx.user_vectors[row], rtol=1e-5, atol=1e-6)
    live = ["item-001", "item-002"]
    store.add([Event("u0", i, 1.0) for i in live])
    plan = state.plan_user(idx, rec, "u0")
    rows = np.r_[hist, idx.items.rows(live)[0]]
    w = np.r_[sw * 0.5, [0.5 ** 0.5, 1.0]]  # two live events: the history decays by 0.5 ** (2 / 2)
    expect = (w[:, None] * np.asarray(idx.history_vectors)[rows]).sum(0) / w.sum()
    np.testing.assert_allclose(plan.q, expect, rtol=1e-5, atol=1e-6)
    prof = state.profile(idx, "u0")  # over the same decayed weights
    assert prof["user"] == "u0"
    store.close()
