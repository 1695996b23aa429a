"""`avrec index --add` while the server answers: the new version is loaded within the poll
interval, no request fails through the swap, and the new items are servable at once."""

from __future__ import annotations

import threading
import time

import httpx
from conftest import NEW, Server, copy_index, ok, wait_for

from avrec_runner import run_avrec


def test_index_swap_under_traffic(world, tmp_path):
    taste, p = world
    idx = copy_index(p["index"], tmp_path / "index")
    s = Server(str(idx), "--events", str(tmp_path / "ev.sqlite"), "--set", "serve.poll_s=0.2")
    new_ids = [taste.item_ids[i] for i in NEW]
    statuses: list[int] = []
    stop = threading.Event()

    def hammer():
        with httpx.Client(base_url=s.url, timeout=30) as c:
            n = 0
            while not stop.is_set():
                r = c.get("/recommend", params={"user": f"u{n % 80}", "k": 10})
                statuses.append(r.status_code)
                r = c.get("/similar", params={"item": "item-003", "k": 5})
                statuses.append(r.status_code)
                n += 1

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    try:
        before = s.client.get("/health").json()["index"]
        assert s.client.get("/similar", params={"item": new_ids[0]}).status_code == 404
        # an event on an item the index does not hold yet is stored, and counts once it arrives
        r = s.client.post("/events", json={"user_id": "early", "item_id": new_ids[0], "event": "like"})
        assert r.status_code == 200 and r.json()["unknown_items"] == [new_ids[0]]
        for t in threads:
            t.start()
        time.sleep(0.5)
        ok(run_avrec("index", "--add", str(p["emb_full"]), "-o", str(idx), "--n-trees", "10"))
        t_added = time.monotonic()
        assert wait_for(lambda: s.client.get("/health").json()["index"] != before, timeout=10)
        lag = time.monotonic() - t_added
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    try:
        assert len(statuses) > 50
        assert set(statuses) == {200}, {c: statuses.count(c) for c in set(statuses)}
        assert lag < 5.0
        h = s.client.get("/health").json()
        assert h["items"] == len(taste.item_ids) and h["swaps"] == 1
        r = s.client.get("/similar", params={"item": new_ids[0], "k": 5})
        assert r.status_code == 200
        # "early" liked a new cluster-0 item before it existed: now it shapes the list
        items = s.client.get("/recommend", params={"user": "early", "k": 5}).json()["items"]
        assert sum(int(it["item_id"].split("-")[1]) < 30 for it in items) >= 4
        assert new_ids[0] not in {it["item_id"] for it in items}
    finally:
        assert s.stop() == 0


def test_events_on_an_upload_survive_a_retrain_that_could_not_embed_it(world, tmp_path):
    """A like on an item with no embeddings yet is stored; a retrain before the upload's
    embeddings exist cannot learn it, but once index --add brings the item the server folds
    the stored like in (the user's list excludes it, a user who had only that like is servable)."""
    import json

    _taste, p = world
    db = tmp_path / "events.sqlite"
    new_item = "item-025"  # in NEW: not in emb_part, so neither in the model nor in the first index
    ok(run_avrec("events", "add", "-", "--events", str(db), input="".join(json.dumps(e) + "\n" for e in [
        {"user_id": "u1", "item_id": new_item, "event": "like"},
        {"user_id": "fan", "item_id": new_item, "event": "like"}])))
    model = tmp_path / "model"
    ok(run_avrec("train", str(p["emb_part"]), "-i", str(p["interactions"]), "-i", str(db), "-o", str(model),
                 "--set", "train.hybrid.content_dim=8", "--set", "runtime.seed=0"))
    man = json.loads((model / "manifest.json").read_text())
    assert man["extra"]["events"]["pending_items"] == [new_item]
    idx = tmp_path / "index"
    ok(run_avrec("index", str(model), "-o", str(idx), "--n-trees", "10"))
    ok(run_avrec("index", "--add", str(p["emb_full"]), "-o", str(idx), "--n-trees", "10"))
    s = Server(str(idx), "--events", str(db))
    try:
        c = s.client
        r = c.get("/recommend", params={"user": "u1", "k": 100})
        assert r.status_code == 200 and new_item not in {it["item_id"] for it in r.json()["items"]}  # liked: seen
        assert c.get("/recommend", params={"user": "fan"}).status_code == 200  # servable from the stored like
        assert c.delete("/users/fan").status_code == 200
        assert c.get("/recommend", params={"user": "fan"}).status_code == 404  # and erasable
    finally:
        s.stop()
