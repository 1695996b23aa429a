"""privacy.pseudonymize end to end: no artifact or event store holds a raw user id; and
erasure: DELETE /users and avrec forget remove a user's events and served state, and the
next train leaves the user out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Server, ok

from avrec_runner import run_avrec

RAW = "raw-user-"  # every raw id starts with this; a pseudonym is 64 hex digits


def _all_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def private(world, tmp_path_factory):
    taste, p = world
    tmp = tmp_path_factory.mktemp("private")
    key = tmp / "secret" / "avrec.key"
    key.parent.mkdir()
    key.write_text("0123456789abcdef0123456789abcdef\n")
    work = tmp / "work"
    ev = work / "interactions.csv"
    work.mkdir()
    with open(ev, "w", encoding="utf-8") as f:
        f.write("user_id,item_id,weight\n")
        for u, i, w, _t in taste.rows:
            f.write(f"{RAW}{u},{i},{w:g}\n")
    sets = ("--set", f"privacy.key_file={key}", "--set", "privacy.pseudonymize=true")
    model = work / "model"
    ok(run_avrec("train", str(p["emb_full"]), "-i", str(ev), "-o", str(model), "--set", "train.hybrid.content_dim=8",
                 *sets))
    ev.unlink()  # the platform's own log; what avrec wrote is checked below
    idx = work / "index"
    ok(run_avrec("index", str(model), "-o", str(idx), "--n-trees", "10"))
    return taste, work, model, idx, sets, p["emb_full"]

def test_nothing_avrec_writes_holds_a_raw_user_id(private):
    taste, work, model, idx, sets, _emb_dir = private
    db = work / "events.sqlite"
    s = Server(str(idx), "--events", str(db), *sets)
    try:
        c = s.client
        r = c.get("/recommend", params={"user": f"{RAW}u1", "k": 3})
        assert r.status_code == 200 and r.json()["user"] == f"{RAW}u1"  # answers name the user as asked
        assert c.post("/events", json={"user_id": f"{RAW}u1", "item_id": "item-050", "event": "like"}).status_code == 200
        assert c.post("/events", json={"user_id": f"{RAW}newcomer", "item_id": "item-050"}).status_code == 200
        assert c.get("/recommend", params={"user": f"{RAW}newcomer"}).status_code == 200
        assert c.get("/recommend", params={"user": "raw-user-never-seen"}).status_code == 404
    finally:
        s.stop()
    ok(run_avrec("events", "add", "-", "--events", str(db), *sets,
                 input=json.dumps({"user_id": f"{RAW}cli", "item_id": "item-001"}) + "\n"))
    cli = run_avrec("recommend", str(idx), "--user", f"{RAW}u2", "--k", "3", "--json", *sets)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout.splitlines()[0])["user"] == f"{RAW}u2"
    # a retrain from the store reads its pseudonyms as they are (not hashed twice)
    ok(run_avrec("train", str(_emb_dir), "-i", str(db),
                 "-o", str(work / "model-events"), "--set", "train.tune=off", *sets))
    import hashlib
    import hmac

    want = hmac.new(b"0123456789abcdef0123456789abcdef", f"{RAW}newcomer".encode(), hashlib.sha256).hexdigest()
    assert want in (work / "model-events" / "users.txt").read_text().split()
    files = _all_bytes(work)
    assert any(p.name == "events.sqlite" for p, _ in files) and any(p.name == "users.txt" for p, _ in files)
    leaks = [str(p) for p, b in files if RAW.encode() in b]
    assert leaks == []
    users = (model / "users.txt").read_text().split()
    assert len(users) == 80 and all(len(u) == 64 and int(u, 16) >= 0 for u in users)


def test_an_unknown_user_is_named_as_given(private):
    _taste, _work, _model, idx, sets, _emb_dir = private
    r = run_avrec("recommend", str(idx), "--user", "raw-user-nobody", *sets)
    assert r.returncode == 2 and "'raw-user-nobody'" in r.stderr


def test_a_store_is_never_read_with_another_key(private, tmp_path):
    _taste, work, _model, idx, sets, _emb_dir = private
    db = tmp_path / "ev.sqlite"
    ok(run_avrec("events", "add", "-", "--events", str(db), input='{"user_id": "x", "item_id": "item-001"}\n'))
    r = run_avrec("events", "add", "-", "--events", str(db), *sets, input='{"user_id": "y", "item_id": "item-001"}\n')
    assert r.returncode == 2 and "raw user ids" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_missing_key_is_one_clear_line(world, avrec_cli, tmp_path):
    _taste, p = world
    r = avrec_cli("recommend", str(p["index"]), "--user", "u1", "--set", "privacy.pseudonymize=true")
    assert r.returncode == 2 and "privacy.key_file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = avrec_cli("recommend", str(p["index"]), "--user", "u1", "--set", "privacy.pseudonymize=true",
                  "--set", f"privacy.key_file={tmp_path / 'nope'}")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_erasure_on_the_server_and_at_the_next_train(world, tmp_path):
    taste, p = world
    import shutil

    idx = tmp_path / "index"
    shutil.copytree(p["index"], idx)
    db = tmp_path / "events.sqlite"
    s = Server(str(idx), "--events", str(db))
    try:
        c = s.client
        assert c.post("/events", json=[{"user_id": "u7", "item_id": "item-090", "event": "like"},
                                       {"user_id": "u8", "item_id": "item-091"}]).status_code == 200
        assert c.get("/recommend", params={"user": "u7"}).status_code == 200
        r = c.delete("/users/u7")
        assert r.status_code == 200 and r.json()["events_deleted"] == 1
        # the trained vector is no longer served and the events are gone
        assert c.get("/recommend", params={"user": "u7"}).status_code == 404
        pop = c.get("/recommend", params={"user": "u7", "fallback": "popular"}).json()["items"]
        assert all(it.get("source") == "popular" for it in pop)
        assert c.get("/recommend", params={"user": "u8"}).status_code == 200
        # an id holding "/" (ids are data) is erasable too, encoded or not; a bad id is a 422
        for path in ("/users/a%2Fb", "/users/a/b"):
            assert c.post("/events", json={"user_id": "a/b", "item_id": "item-001"}).status_code == 200
            assert c.get("/recommend", params={"user": "a/b"}).status_code == 200
            r = c.delete(path)
            assert r.status_code == 200 and r.json()["user"] == "a/b", (path, r.text)
            assert c.get("/recommend", params={"user": "a/b"}).status_code == 404
        for path, needle in (("/users/x%00y", "NUL"), ("/users/u8?bogus=1", "bogus: unknown parameter")):
            r = c.delete(path)
            assert r.status_code == 422 and needle in r.json()["error"], (path, r.text)
        assert c.get("/recommend", params={"user": "u8"}).status_code == 200  # not erased by the refused call
        r = c.get("/nowhere")
        assert r.status_code == 404 and "no such endpoint" in r.json()["error"]
    finally:
        s.stop()
    assert b"item-090" not in db.read_bytes() + (Path(str(db) + "-wal").read_bytes() if Path(str(db) + "-wal").exists() else b"")
    # the CLI erasure works the same way
    ok(run_avrec("forget", "--user", "u9", "--events", str(db)))
    model2 = tmp_path / "model2"
    ok(run_avrec("train", str(p["emb_part"]), "-i", str(p["interactions"]), "-i", str(db), "-o", str(model2),
                 "--set", "train.hybrid.content_dim=8"))
    users = set((model2 / "users.txt").read_text().split())
    assert "u7" not in users and "u9" not in users and "u8" in users and "u1" in users
    man = json.loads((model2 / "manifest.json").read_text())
    assert man["extra"]["events"]["erased_dropped"] == 2 and man["extra"]["events"]["seq"] >= 2


def test_evaluate_writes_no_raw_user_id(world, tmp_path):
    taste, p = world
    key = tmp_path / "k"
    key.write_text("fedcba9876543210fedcba9876543210")
    ev = tmp_path / "raw.csv"
    ev.write_text("user_id,item_id\n" + "".join(f"{RAW}{u},{i}\n" for u, i, _w, _t in taste.rows))
    out = tmp_path / "evaluation"
    ok(run_avrec("evaluate", str(p["emb_full"]), "-i", str(ev), "-o", str(out), "--models", "popular",
                 "--set", "privacy.pseudonymize=true", "--set", f"privacy.key_file={key}"))
    files = _all_bytes(out)
    assert any("splits" in str(f) for f, _ in files)
    assert [str(f) for f, b in files if RAW.encode() in b] == []


def test_the_cli_stops_serving_an_erased_user_at_once(world, tmp_path):
    """avrec forget (or DELETE /users) stops the CLI serving the user's trained vector too, not
    only the server: --user is exit 2, --all-users leaves them out, until the next train."""
    _taste, p = world
    db = tmp_path / "events.sqlite"
    store = ["--set", f"serve.events={db}"]
    r = run_avrec("recommend", str(p["index"]), "--all-users", *store)
    before = {json.loads(line)["user"] for line in r.stdout.splitlines()}
    assert {"u3", "u4"} <= before
    ok(run_avrec("forget", "--user", "u3", "--events", str(db)))
    r = run_avrec("recommend", str(p["index"]), "--user", "u3", *store)
    assert r.returncode == 2 and "erased (avrec forget)" in r.stderr and r.stdout == ""
    r = run_avrec("recommend", str(p["index"]), "--user", "u3", "--fallback", "popular", "--json", *store)
    assert r.returncode == 0 and all(json.loads(line).get("source") == "popular" for line in r.stdout.splitlines())
    for extra in ([], ["--explain"]):
        r = run_avrec("recommend", str(p["index"]), "--all-users", *extra, *store)
        assert {json.loads(line)["user"] for line in r.stdout.splitlines()} == before - {"u3"}
    assert run_avrec("recommend", str(p["index"]), "--user", "u4", *store).returncode == 0
    r = run_avrec("profile", str(p["index"]), "--user", "u3", *store)
    assert r.returncode == 2 and "erased" in r.stderr
