"""The HTTP contract of ``avrec serve``: every endpoint, the 4xx answers, fold-in of live
events on the next call, durability across a kill -9, and the bearer token."""

from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import Server, copy_index, wait_for

# user u0 likes cluster 0 (items 0-29), u1 cluster 1 (30-59), ... (tests/data/taste.py)


def cluster(item_id: str) -> int:
    return int(item_id.split("-")[1]) // 30


@pytest.fixture(scope="module")
def server(world, tmp_path_factory):
    _taste, p = world
    tmp = tmp_path_factory.mktemp("srv")
    s = Server(str(copy_index(p["index"], tmp / "index")), "--events", str(tmp / "events.sqlite"))
    yield s
    s.stop()


def test_recommend_a_known_user_matches_the_cli(server, world):
    from avrec_runner import run_avrec
    import json

    _taste, p = world
    r = server.client.get("/recommend", params={"user": "u1", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == "u1" and body["k"] == 5 and len(body["items"]) == 5
    assert [it["rank"] for it in body["items"]] == [1, 2, 3, 4, 5]
    assert {"item_id", "rank", "score", "title"} <= set(body["items"][0])
    cli = run_avrec("recommend", str(p["index"]), "--user", "u1", "--k", "5", "--json")
    assert cli.returncode == 0, cli.stderr
    assert [json.loads(line)["item_id"] for line in cli.stdout.splitlines()] == [it["item_id"] for it in body["items"]]


def test_concurrent_requests_scored_as_one_batch_get_their_own_answers(server):
    """Requests that arrive together are scored in one batch (with their own filters and
    seen items): each gets exactly what it gets alone."""
    import concurrent.futures
    import threading

    asks = [{"user": f"u{j % 4}", "k": 5 + j % 3} for j in range(24)] + [{"user": "u2", "k": 4, "filter": "tag=c1"},
                                                                          {"user": "u3", "candidates": "no-such-item"}]
    alone = [server.client.get("/recommend", params=a).json().get("items") for a in asks]
    assert alone[-1] is None  # its own 422, which must not reach the requests scored beside it

    import httpx

    start = threading.Barrier(len(asks))

    def call(a):
        with httpx.Client(base_url=server.url) as c:
            c.get("/health")  # the connection is open before the barrier: the requests leave together
            start.wait()
            return c.get("/recommend", params=a).json().get("items")

    with concurrent.futures.ThreadPoolExecutor(len(asks)) as pool:
        together = list(pool.map(call, asks))
    assert together[-1] is None
    assert [[it["item_id"] for it in x] for x in together[:-1]] == [[it["item_id"] for it in x] for x in alone[:-1]]
    m = dict(line.rsplit(" ", 1) for line in server.client.get("/metrics").text.splitlines() if line.startswith("avrec_scored"))
    # some of the 25 arrived together (batches < requests): the case the test is about
    assert float(m["avrec_scored_batches_total"]) < float(m["avrec_scored_batch_requests_total"])


def test_filters_explain_candidates_and_exclude_seen(server):
    c = server.client
    r = c.get("/recommend", params={"user": "u1", "k": 3, "filter": "tag=c2"})
    assert r.status_code == 200 and all(cluster(it["item_id"]) == 2 for it in r.json()["items"])
    r = c.get("/recommend", params={"user": "u1", "k": 2, "explain": "true"})
    assert all("because" in it["explain"] for it in r.json()["items"])
    r = c.get("/recommend", params={"user": "u1", "k": 5, "candidates": "item-000,item-031,item-095"})
    assert {it["item_id"] for it in r.json()["items"]} <= {"item-000", "item-031", "item-095"}
    seen_any = c.get("/recommend", params={"user": "u1", "k": 200, "exclude_seen": "false"}).json()["items"]
    unseen = c.get("/recommend", params={"user": "u1", "k": 200}).json()["items"]
    assert len(seen_any) > len(unseen)


def test_profile_follows_the_history_and_live_events(server):
    c = server.client
    r = c.get("/profile", params={"user": "u1"})
    assert r.status_code == 200 and r.json()["user"] == "u1"
    assert r.json()["tags"][0]["tag"] == "c1"  # u1 likes cluster 1, whose items carry tag c1
    events = [{"user_id": "profiled", "item_id": f"item-{i:03d}"} for i in range(60, 66)]
    assert c.post("/events", json=events).status_code == 200
    p = c.get("/profile", params={"user": "profiled", "top": 2}).json()
    assert p["history"] == 6 and p["tags"][0]["tag"] == "c2" and len(p["tags"]) <= 2
    assert c.get("/profile", params={"user": "nobody-at-all"}).status_code == 404
    for params, needle in (({"user": "u1", "top": 0}, "top: must be in [1, 100]"), ({"user": "u1", "bogus": 1}, "bogus"),
                           ({"user": " "}, "user: must be 1 to 1024 bytes"), ({"user": "u1", "top": "x"}, "top")):
        r = c.get("/profile", params=params)
        assert r.status_code == 422 and needle in r.json()["error"], (params, r.text)
    assert c.get("/profile", params={"user": " u1 "}).json()["user"] == "u1"  # ids are read stripped
    for params, needle in (({"q": "x", "bogus": 1}, "bogus"), ({"q": " "}, "q: must be 1 to 2000"), ({}, "q: required")):
        r = c.get("/search", params=params)
        assert r.status_code == 422 and needle in r.json()["error"], (params, r.text)


def test_unknown_user_is_404_or_popular(server):
    r = server.client.get("/recommend", params={"user": "nobody"})
    assert r.status_code == 404 and "nobody" in r.json()["error"] and "\n" not in r.json()["error"]
    r = server.client.get("/recommend", params={"user": "nobody", "fallback": "popular", "k": 3})
    assert r.status_code == 200 and all(it["source"] == "popular" for it in r.json()["items"])


@pytest.mark.parametrize("params, name", [
    ({"user": "u1", "k": 0}, "k"), ({"user": "u1", "k": "many"}, "k"), ({"user": "u1", "k": 10**6}, "k"),
    ({"user": "u1", "diversity": 2}, "diversity"), ({"user": "u1", "fallback": "maybe"}, "fallback"),
    ({"k": 3}, "user"), ({"user": "u1", "filter": "colour=red"}, "filter"),
])
def test_a_bad_parameter_is_a_422_naming_it(server, params, name):
    r = server.client.get("/recommend", params=params)
    assert r.status_code == 422
    assert name in r.json()["error"]


def test_post_recommend_serves_a_history_the_model_never_saw(server):
    r = server.client.post("/recommend", json={"history": ["item-031", {"item_id": "item-032", "weight": 2}], "k": 5})
    assert r.status_code == 200
    items = r.json()["items"]
    assert r.json()["history"] == 2 and len(items) == 5
    r = server.client.post("/recommend", json={"history": ["item-031", "not-an-item"], "k": 5})
    assert r.status_code == 200 and r.json()["history"] == 1  # the known ones, as the CLI counts them
    assert sum(cluster(it["item_id"]) == 1 for it in items) >= 4
    assert not {"item-031", "item-032"} & {it["item_id"] for it in items}
    for body, name in [({"history": []}, "history"), ({"history": ["item-001"], "k": -1}, "k"),
                       ({"history": [{"item_id": "item-001", "weight": -1}]}, "weight"), ({"hist": ["x"]}, "hist")]:
        r = server.client.post("/recommend", json=body)
        assert r.status_code == 422 and name in r.json()["error"], (body, r.text)


def test_similar_and_unknown_item(server):
    r = server.client.get("/similar", params={"item": "item-040", "k": 5})
    assert r.status_code == 200 and sum(cluster(it["item_id"]) == 1 for it in r.json()["items"]) >= 4
    assert "item-040" not in {it["item_id"] for it in r.json()["items"]}
    r = server.client.get("/similar", params={"item": "no-such-item"})
    assert r.status_code == 404 and "no-such-item" in r.json()["error"]


def test_search_without_a_text_space_is_a_clear_422(server):
    # the generated embeddings are npy vectors: there is no text space to search
    r = server.client.get("/search", params={"q": "calm piano"})
    assert r.status_code == 422 and "text" in r.json()["error"]


def test_an_event_changes_the_very_next_list(server):
    c = server.client
    before = c.get("/recommend", params={"user": "u2", "k": 10}).json()["items"]  # u2 likes cluster 2
    top = before[0]["item_id"]
    r = c.post("/events", json={"user_id": "u2", "item_id": top, "event": "view"})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    after = c.get("/recommend", params={"user": "u2", "k": 10}).json()["items"]
    assert top not in {it["item_id"] for it in after}  # seen now: excluded at once
    # a burst of likes in cluster 3 moves the taste
    likes = [{"user_id": "u2", "item_id": f"item-{i:03d}", "event": "like"} for i in range(90, 100)]
    assert c.post("/events", json=likes).json()["accepted"] == 10
    moved = c.get("/recommend", params={"user": "u2", "k": 10}).json()["items"]
    assert sum(cluster(it["item_id"]) == 3 for it in moved) > sum(cluster(it["item_id"]) == 3 for it in after)


def test_a_new_user_is_servable_from_the_first_event(server):
    c = server.client
    assert c.get("/recommend", params={"user": "brand-new"}).status_code == 404
    assert c.post("/events", json={"user_id": "brand-new", "item_id": "item-061"}).status_code == 200
    r = c.get("/recommend", params={"user": "brand-new", "k": 5})
    assert r.status_code == 200
    assert sum(cluster(it["item_id"]) == 2 for it in r.json()["items"]) >= 4


def test_only_skips_exclude_without_adding_taste(server):
    c = server.client
    c.post("/events", json={"user_id": "skipper", "item_id": "item-001", "event": "skip"})
    r = c.get("/recommend", params={"user": "skipper", "k": 5, "fallback": "popular"})
    assert r.status_code == 200 and "item-001" not in {it["item_id"] for it in r.json()["items"]}


def test_a_user_with_only_skips_is_a_404_without_fallback(server):
    # no taste to rank by: the unknown-user contract (popular items only when asked for)
    c = server.client
    c.post("/events", json={"user_id": "skips-only", "item_id": "item-002", "event": "skip"})
    r = c.get("/recommend", params={"user": "skips-only", "k": 5})
    assert r.status_code == 404 and "fallback=popular" in r.json()["error"], r.text


@pytest.mark.parametrize("body, needle", [
    ({"user_id": "u1"}, "item_id"), ({"user_id": "u1", "item_id": "i", "weight": -2}, "weight"),
    ({"user_id": "u1", "item_id": "i", "event": "teleport"}, "teleport"), ({"user_id": "a\nb", "item_id": "i"}, "user_id"),
    ({"user_id": "u1", "item_id": "i", "colour": 1}, "colour"), ([{"user_id": "u1", "item_id": "i"}, 5], "event 1"),
    ([], "empty"),
    (b'{"user_id": "u1", "item_id": "i", "timestamp": NaN}', "bad timestamp"),  # Python's json reads NaN
    ({"user_id": "u1", "item_id": "i", "timestamp": 1e30}, "bad timestamp"),
    ({"user_id": "u1", "item_id": "i", "timestamp": -5}, "bad timestamp"),
    ({"user_id": "u1", "item_id": "i", "timestamp": 1700000000000}, "milliseconds? divide by 1000"),
])
def test_a_bad_event_is_a_422_and_stores_nothing(server, body, needle):
    before = server.client.get("/health").json()["events"]
    r = server.client.post("/events", **({"content": body} if isinstance(body, bytes) else {"json": body}))
    assert r.status_code == 422 and needle in r.json()["error"], r.text
    assert server.client.get("/health").json()["events"] == before


def test_body_and_list_caps(server):
    many = [{"user_id": "u1", "item_id": "item-001"}] * 1001
    r = server.client.post("/events", json=many)
    assert r.status_code == 422 and "max_events" in r.json()["error"]
    r = server.client.post("/events", content=b"x" * (2 << 20), headers={"content-type": "application/json"})
    assert r.status_code == 413
    # chunked (no Content-Length): the same 413, not a 500 from a handler that had started reading
    for path in ("/events", "/recommend"):
        r = server.client.post(path, content=iter([b"x" * (1 << 19)] * 4), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "max_body_bytes" in r.json()["error"], (path, r.text)
    ok = json.dumps({"history": ["item-001"], "k": 2}).encode()
    r = server.client.post("/recommend", content=iter([ok[:5], ok[5:]]), headers={"content-type": "application/json"})
    assert r.status_code == 200 and len(r.json()["items"]) == 2, r.text


def test_health_metrics_and_docs(server):
    c = server.client
    assert c.get("/recommend", params={"user": "u1", "k": 0}).status_code == 422
    h = c.get("/health").json()
    assert h["status"] == "ok" and h["items"] == 115 and h["users"] == 80
    m = c.get("/metrics")
    assert m.status_code == 200 and "text/plain" in m.headers["content-type"]
    text = m.text
    for name in ("avrec_requests_total", "avrec_request_seconds_bucket", "avrec_events_accepted_total",
                 "avrec_events_rejected_total", "avrec_index_info"):
        assert name in text, name
    assert 'endpoint="/recommend",status="422"' in text
    assert c.get("/openapi.json").json()["paths"].keys() >= {"/recommend", "/similar", "/search", "/events"}
    assert c.get("/docs").status_code == 200


def test_events_survive_a_kill_9(world, tmp_path):
    _taste, p = world
    idx, db = copy_index(p["index"], tmp_path / "index"), tmp_path / "ev.sqlite"
    s = Server(str(idx), "--events", str(db))
    batch = [{"user_id": "dur", "item_id": f"item-{i:03d}", "event": "like"} for i in range(30, 40)]
    assert s.client.post("/events", json=batch).status_code == 200
    s.stop(signal.SIGKILL)
    s2 = Server(str(idx), "--events", str(db))
    try:
        assert s2.client.get("/health").json()["events"] == 10
        items = s2.client.get("/recommend", params={"user": "dur", "k": 5}).json()["items"]
        assert sum(cluster(it["item_id"]) == 1 for it in items) >= 4
    finally:
        assert s2.stop() == 0  # SIGTERM: requests drained, exit 0


def test_token_guards_writes_and_reveals_nothing(world, tmp_path):
    _taste, p = world
    tok = tmp_path / "token"
    tok.write_text("s3cret-token-0123456789\n")
    s = Server(str(copy_index(p["index"], tmp_path / "index")), "--events", str(tmp_path / "ev.sqlite"),
               "--token-file", str(tok))
    try:
        ev = {"user_id": "u1", "item_id": "item-001"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token-0123456789"}):
            r = s.client.post("/events", json=ev, headers=headers)
            assert r.status_code == 401 and r.json() == {"error": "unauthorized"}
        assert s.client.delete("/users/u1").status_code == 401
        good = {"Authorization": "Bearer s3cret-token-0123456789"}
        assert s.client.post("/events", json=ev, headers=good).status_code == 200
        assert s.client.get("/recommend", params={"user": "u1"}).status_code == 200  # reads are open (serve.auth=writes)
    finally:
        s.stop()


def test_reads_need_the_token_with_auth_all(world, tmp_path):
    _taste, p = world
    tok = tmp_path / "token"
    tok.write_text("another-token-0123456789")
    s = Server(str(copy_index(p["index"], tmp_path / "index")), "--token-file", str(tok), "--set", "serve.auth=all",
               "--no-events")
    try:
        assert s.client.get("/recommend", params={"user": "u1"}).status_code == 401
        r = s.client.get("/recommend", params={"user": "u1"}, headers={"Authorization": "Bearer another-token-0123456789"})
        assert r.status_code == 200
    finally:
        s.stop()


def test_a_public_bind_without_a_token_is_refused(world, avrec_cli):
    _taste, p = world
    r = avrec_cli("serve", str(p["index"]), "--host", "0.0.0.0", "--port", "0")
    assert r.returncode == 2
    assert "--token-file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_or_impossible_port_is_one_line_and_exit_2(world, avrec_cli, workers):
    import socket

    _taste, p = world
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = avrec_cli("serve", str(p["index"]), "--port", str(port), "--no-events", "--workers", workers)
    assert r.returncode == 2 and f"127.0.0.1:{port} is in use" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = avrec_cli("serve", str(p["index"]), "--port", "70000", "--no-events", "--workers", workers)
    assert r.returncode == 2 and "0..65535" in r.stderr and r.stdout == ""  # uvicorn took 70000 as 4464


def test_several_workers_share_the_store_and_count_together(world, tmp_path):
    _taste, p = world
    s = Server(str(copy_index(p["index"], tmp_path / "index")), "--events", str(tmp_path / "ev.sqlite"),
               "--workers", "2")
    try:
        import httpx

        # the URL is printed once the shared socket listens: the first request waits for a worker
        assert s.client.get("/health").status_code == 200
        # an event posted through one connection is in the next answer of any worker
        assert s.client.post("/events", json={"user_id": "multi", "item_id": "item-070"}).status_code == 200
        for _ in range(10):
            with httpx.Client(base_url=s.url, timeout=30) as c:  # new connections: either worker
                r = c.get("/recommend", params={"user": "multi", "k": 5})
                assert r.status_code == 200 and "item-070" not in {it["item_id"] for it in r.json()["items"]}
        for _ in range(20):
            s.client.get("/recommend", params={"user": "u1"})
        text = s.client.get("/metrics").text
        total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith('avrec_requests_total{endpoint="/recommend",status="200"'))
        assert total >= 30  # both workers' counts, whichever answered the scrape
    finally:
        assert s.stop() == 0


def test_workers_stop_when_their_supervisor_is_killed(world, tmp_path):
    """A kill -9 of the supervisor alone must not leave orphan workers answering on the port."""
    import httpx

    _taste, p = world
    s = Server(str(copy_index(p["index"], tmp_path / "index")), "--no-events", "--workers", "2",
               "--set", "serve.poll_s=0.2")
    assert s.client.get("/health").status_code == 200
    s.proc.kill()  # the supervisor only; its workers are still up
    s.proc.wait(10)

    def refused() -> bool:
        try:
            httpx.get(s.url + "/health", timeout=2)
            return False
        except httpx.TransportError:
            return True

    assert wait_for(refused, timeout=20), s.stderr()
    assert "supervisor process is gone" in s.stderr()
    s.stop(signal.SIGKILL)


def test_an_index_whose_single_requests_use_annoy_serves_users_exactly(world, tmp_path):
    """Where batches are exact, the server scores users by the exact scan even when the index
    sends single CLI requests through annoy: its lists are the exact index's."""
    import json

    from avrec_runner import run_avrec

    _taste, p = world
    idx = tmp_path / "annoy-index"
    r = run_avrec("index", str(p["model"]), "-o", str(idx), "--n-trees", "10", "--set", "index.exact_single_below=0")
    assert r.returncode == 0, r.stderr
    extra = json.loads((idx / "manifest.json").read_text())["extra"]
    assert (extra["serving"], extra["serving_batch"]) == ("annoy", "exact")
    s = Server(str(idx), "--no-events")
    try:
        assert wait_for(lambda: "scanned by norm" in s.stderr() or "one product per batch" in s.stderr())
        for u in ("u0", "u1", "u7", "u33"):
            got = [it["item_id"] for it in s.client.get("/recommend", params={"user": u, "k": 8}).json()["items"]]
            cli = run_avrec("recommend", str(p["index"]), "--user", u, "--k", "8", "--json")  # the exact index
            assert got == [json.loads(line)["item_id"] for line in cli.stdout.splitlines()]
    finally:
        s.stop()


def test_a_worker_started_after_its_supervisor_died_stops(world, tmp_path, monkeypatch):
    """The supervisor's pid comes from AVREC_SERVE, not from the worker's getppid() at start:
    a worker spawned just as the supervisor died would read init's pid there and live on."""
    import asyncio

    from avrec.serve.app import Settings, app_from_env

    _taste, p = world
    s = Settings(index=str(copy_index(p["index"], tmp_path / "index")), events=None, poll_s=0.05)
    # a pid that is not this process's parent: the supervisor this worker was started for is gone
    monkeypatch.setenv("AVREC_SERVE", json.dumps({**s.__dict__, "parent_pid": os.getppid() + 1_000_000}))
    app = app_from_env()
    stopped = []
    old = signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    try:
        async def run():
            async with app.api.router.lifespan_context(app.api):
                for _ in range(100):
                    if stopped:
                        return
                    await asyncio.sleep(0.02)

        asyncio.run(run())
    finally:
        signal.signal(signal.SIGTERM, old)
    assert stopped
