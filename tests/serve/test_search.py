"""GET /search on the sample catalogue: the text encoder (the packaged all-MiniLM-L6-v2) is
loaded on the first call and kept, and a text query blends with a user's taste."""

from __future__ import annotations

import time

import pytest
from conftest import Server

from avrec_runner import run_avrec


@pytest.fixture(scope="module")
def demo_index(sample_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("demo-serve")
    r = run_avrec("demo", "-w", str(work), "--data", str(sample_data))
    assert r.returncode == 0, r.stderr
    return work / "avrec-demo" / "index" if (work / "avrec-demo" / "index").exists() else work / "index"


def test_search_loads_the_encoder_once_and_finds_the_topic(demo_index, tmp_path):
    s = Server(str(demo_index), "--events", str(tmp_path / "ev.sqlite"))
    try:
        t = time.perf_counter()
        r = s.client.get("/search", params={"q": "calm piano music", "k": 3})
        first = time.perf_counter() - t
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query"] == "calm piano music"
        assert sum("piano" in it["item_id"] for it in body["items"]) >= 2
        t = time.perf_counter()
        r2 = s.client.get("/search", params={"q": "ocean waves and surf", "k": 3})
        second = time.perf_counter() - t
        assert r2.status_code == 200 and sum("ocean" in it["item_id"] for it in r2.json()["items"]) >= 2
        assert second < first  # the model was loaded by the first request, not again
        r3 = s.client.get("/search", params={"q": "piano", "user": "u001", "k": 3, "explain": "true"})
        assert r3.status_code == 200 and all(it["explain"]["modality"] == "text" for it in r3.json()["items"])
        assert r3.json()["user"] == "u001"  # a blended answer names its user, as the CLI's lines do
        assert s.client.get("/search", params={"q": "piano", "user": "ghost"}).status_code == 404
        # a user known only from live events blends too, with what they watched excluded
        assert s.client.post("/events", json={"user_id": "ghost", "item_id": "piano_video_1"}).status_code == 200
        r4 = s.client.get("/search", params={"q": "piano", "user": "ghost", "k": 3})
        assert r4.status_code == 200 and r4.json()["user"] == "ghost"
        assert "piano_video_1" not in {it["item_id"] for it in r4.json()["items"]}
        # one known only from skips has no taste to blend: the plain search, not a 404
        assert s.client.post("/events", json={"user_id": "skipper", "item_id": "piano_video_1", "event": "skip"}).status_code == 200
        r5 = s.client.get("/search", params={"q": "piano", "user": "skipper", "k": 3})
        assert r5.status_code == 200 and sum("piano" in it["item_id"] for it in r5.json()["items"]) >= 2, r5.text
        assert s.client.get("/search", params={"q": ""}).status_code == 422
    finally:
        s.stop()
