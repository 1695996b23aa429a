"""Zero-weight interactions (skip, dislike, weight 0): seen, never taste.

The server has always taken ``skip`` and ``dislike`` as "seen, adds no taste"
(serve.event_weights 0). Train must agree: such a row keeps the item out of that user's
lists after the next train, and no model learns from it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from taste import make_taste, write_embeddings  # noqa: E402

from avrec.config import Config  # noqa: E402


def _log(tmp_path: Path, *, skips: bool):
    """Taste rows as view events, and (with ``skips``) each of the first 20 users skipping
    or disliking the three most popular items of their own cluster that they have not seen:
    the items their list would otherwise open with."""
    t = make_taste(n_clusters=4, items_per_cluster=30, n_users=120, seed=3)
    lines = ["user_id,item_id,event"] + [f"{u},{i},view" for u, i, _w, _t in t.rows]
    pushed: dict[str, list[str]] = {}
    if skips:
        seen = {(u, i) for u, i, _w, _t in t.rows}
        for k in range(20):
            u, c = f"u{k}", k % 4
            fresh = [f"item-{c * 30 + j:03d}" for j in range(30) if (f"u{k}", f"item-{c * 30 + j:03d}") not in seen]
            pushed[u] = fresh[:3]
            lines += [f"{u},{fresh[0]},skip", f"{u},{fresh[1]},dislike", f"{u},{fresh[2]},SKIP"]
        lines.append("lonely,item-000,skip")  # a user who only ever skipped
    write_embeddings(t, tmp_path / "emb")
    (tmp_path / "ev.csv").write_text("\n".join(lines) + "\n")
    return t, pushed


def _train(tmp_path: Path, *, skips: bool, **serve_weights):
    from avrec.train import train

    t, pushed = _log(tmp_path, skips=skips)
    cfg = Config()
    cfg.train.tune = "off"
    cfg.serve.event_weights.update(serve_weights)
    msgs: list[str] = []
    out = train(tmp_path / "emb", tmp_path / "ev.csv", tmp_path / "model", cfg, progress=msgs.append)
    return out, pushed, msgs


def test_skips_are_excluded_after_train_and_teach_the_model_nothing(tmp_path):
    from avrec.artifacts import read_manifest
    from avrec.config import IndexConfig
    from avrec.index.build import build_index
    from avrec.index.read import Index
    from avrec.recommend import Options, Recommender

    out, pushed, msgs = _train(tmp_path / "a", skips=True)
    plain, _, _ = _train(tmp_path / "b", skips=False)
    assert any("61 (user, item) pairs weigh 0" in m for m in msgs), msgs
    assert any("1 users have only zero-weight rows" in m for m in msgs), msgs
    man = read_manifest(out, expect="model")
    assert man["counts"]["seen_only"] == 60 and man["counts"]["users"] == 120  # "lonely" is no trained user
    # the same factors as a log without the skips: they are no taste, not even a zero entry
    np.testing.assert_allclose(np.load(out / "user_vectors.npy"), np.load(plain / "user_vectors.npy"), atol=1e-5)
    np.testing.assert_allclose(np.load(out / "item_vectors.npy"), np.load(plain / "item_vectors.npy"), atol=1e-5)
    # ... and what was skipped never comes back, where the plain model opens with it
    for model, expect_back in ((out, False), (plain, True)):
        idx = Index(build_index(model, model.parent / "index", IndexConfig()))
        rec = Recommender(idx, Options(k=10))
        back = [i for u, items in pushed.items() for i in items
                if i in {r["item_id"] for r in rec.for_user(u)}]
        assert bool(back) == expect_back, back
        if not expect_back:
            row = idx.users.row("u0")
            rows, w = idx.history(row)
            skipped = set(idx.items.rows(pushed["u0"])[0].tolist())
            assert {int(r) for r, x in zip(rows, w) if x == 0} == skipped  # stored as seen, weight 0
            # a --history fold-in over the trained history: the skips weigh nothing
            q = Recommender(idx, Options(k=5, exclude_seen=True)).for_history([("item-001", 1.0)], "u0")
            assert not {r["item_id"] for r in q} & set(pushed["u0"])


def test_the_servers_fold_in_drops_trained_skips_and_excludes_them(tmp_path):
    from avrec.config import IndexConfig
    from avrec.index.build import build_index
    from avrec.recommend import Options
    from avrec.serve.events import Event, EventStore
    from avrec.serve.state import State

    out, pushed, _ = _train(tmp_path, skips=True)
    store = EventStore(tmp_path / "events.sqlite")
    state = State(build_index(out, tmp_path / "index", IndexConfig()), store=store, pid=lambda s: s)
    idx = state.index
    rec = state.recommender(idx, Options(k=5))
    row = idx.users.row("u1")
    store.add([Event("u1", "item-005", 1.0)])
    plan = state.plan_user(idx, rec, "u1")
    rows, w = idx.history(row)
    taste = np.r_[rows[w > 0], idx.items.rows(["item-005"])[0]]
    expect = np.asarray(idx.history_vectors)[taste].mean(0)  # every taste weighs 1, the skips 0
    np.testing.assert_allclose(plan.q, expect, rtol=1e-5, atol=1e-6)
    assert set(idx.items.rows(pushed["u1"])[0].tolist()) <= set(plan.exclude.tolist())
    store.close()


def test_serve_event_weights_configure_train_too(tmp_path):
    from avrec.artifacts import read_manifest

    out, _, msgs = _train(tmp_path, skips=True, skip=0.5)  # skip now counts as a little taste
    man = read_manifest(out, expect="model")
    assert man["counts"]["seen_only"] == 20  # the dislikes alone
    assert man["counts"]["users"] == 121  # "lonely" skipped something, so has a vector


def test_an_unknown_event_names_the_known_ones(tmp_path):
    from avrec.data import load_interactions

    p = tmp_path / "ev.csv"
    p.write_text("user_id,item_id,event\nu1,a,view\nu1,b,teleport\n")
    d = load_interactions(p)
    (line, why), = d.report.malformed_lines
    assert line == 3 and "teleport" in why and "skip" in why and "serve.event_weights" in why
