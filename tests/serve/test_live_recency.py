"""train.recency over HTTP: a user's live events outweigh their decayed history in the very
next list, and without recency the same events move it less."""

from __future__ import annotations

from conftest import Server, ok

from avrec_runner import run_avrec

K = 10


def _cluster_share(items: list[dict], taste, cluster: int) -> float:
    pos = {i: c for i, c in zip(taste.item_ids, taste.item_cluster)}
    return sum(pos[r["item_id"]] == cluster for r in items) / len(items)


def _after_events(index, db, user: str, watched: list[str]) -> list[dict]:
    s = Server(str(index), "--events", str(db))
    try:
        c = s.client
        assert c.post("/events", json=[{"user_id": user, "item_id": i} for i in watched]).status_code == 200
        r = c.get("/recommend", params={"user": user, "k": K})
        assert r.status_code == 200, r.text
        return r.json()["items"]
    finally:
        assert s.stop() == 0


def test_live_events_lead_the_next_list_with_recency(world, tmp_path):
    taste, p = world
    model, idx = tmp_path / "model", tmp_path / "index"
    ok(run_avrec("train", str(p["emb_part"]), "-i", str(p["interactions"]), "-o", str(model),
                 "--set", "train.hybrid.content_dim=8", "--set", "runtime.seed=0",
                 "--set", "train.recency=on", "--set", "train.recency_half_life=2"))
    ok(run_avrec("index", str(model), "-o", str(idx), "--n-trees", "10"))
    user = "u0"  # likes cluster 0 (taste.user_cluster); now watches three items of cluster 2
    new_taste = 2
    watched = [taste.item_ids[i] for i in range(60, 63)]
    decayed = _after_events(idx, tmp_path / "ev-recency.sqlite", user, watched)
    plain = _after_events(p["index"], tmp_path / "ev-plain.sqlite", user, watched)
    for items in (decayed, plain):
        assert not set(watched) & {r["item_id"] for r in items}  # what they just watched is excluded
    share, share_plain = _cluster_share(decayed, taste, new_taste), _cluster_share(plain, taste, new_taste)
    assert share >= 0.6 and share > share_plain, (share, share_plain)
    assert _cluster_share(decayed[:3], taste, new_taste) == 1.0
