"""avrec profile: a user's top tags (given and predicted), moods, modalities and content
clusters from an index built through the CLI on generated taste data (tests/data/taste.py),
whose embeddings carry hand-written "understand" records (no dependency on avrec embed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from taste import make_taste, write_csv, write_embeddings  # noqa: E402

from avrec.artifacts import Manifest, write_jsonl, write_manifest  # noqa: E402
from avrec.errors import InputError  # noqa: E402
from avrec.index import Index  # noqa: E402
from avrec.profile import all_profiles, profile, user_profile  # noqa: E402

from avrec_runner import run_avrec, run_light  # noqa: E402

# cluster c of the taste data: given tag c<c>, predicted tag p<c>, and one mood
MOOD = {0: ("calm", 0.5, -0.6), 1: ("tense", -0.5, 0.8), 2: ("happy", 0.8, 0.5), 3: ("sad", -0.7, -0.4)}


def _ok(r) -> str:
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _understand_embeddings(taste, d: Path) -> None:
    write_embeddings(taste, d)
    rows = [json.loads(x) for x in (d / "items.jsonl").read_text().splitlines()]
    for r, c in zip(rows, taste.item_cluster.tolist()):
        label, v, a = MOOD[c]
        r["understand"] = {
            "mood": {"valence": v, "arousal": a, "labels": [{"label": label, "score": 0.8, "from": "text"}]},
            "tags": [{"tag": f"p{c}", "score": 0.5, "from": "text"}],
            "captions": [{"t": 0.0, "text": f"a scene of world {c}"}],
        }
    write_jsonl(d / "items.jsonl", rows)
    m = json.loads((d / "manifest.json").read_text())
    write_manifest(d, Manifest(**{k: m[k] for k in ("artifact", "models", "counts", "extra", "inputs") if k in m}))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profile")
    taste = make_taste(n_users=40, items_per_cluster=30, per_user=12, seed=5)
    ev = tmp / "events.csv"
    write_csv(taste, ev)
    emb = tmp / "emb"
    _understand_embeddings(taste, emb)
    work = tmp / "work"
    model = Path(_ok(run_avrec("train", str(emb), "-i", str(ev), "-o", str(work / "model"),
                               "--set", "train.hybrid.content_dim=8", "--set", "runtime.seed=0")))
    idx = Path(_ok(run_avrec("index", str(model), "-o", str(work / "index"), "--n-trees", "10")))
    return taste, work, idx, ev, emb


def test_profile_puts_the_users_own_tags_moods_and_cluster_first(world):
    taste, _work, idx_dir, _ev, _emb = world
    idx = Index(idx_dir)
    for u, c in zip(taste.user_ids, taste.user_cluster.tolist()):
        p = user_profile(idx, u)
        hist = idx.seen(idx.users.row(u))
        assert p["user"] == u and p["history"] == len(hist)
        assert p["tags"][0] == {"tag": f"c{c}", "weight": p["tags"][0]["weight"], "predicted": False,
                                "items": p["tags"][0]["items"]}
        assert p["tags"][0]["weight"] > 0.5 and 1 <= len(p["tags"][0]["items"]) <= 3
        pred = [t for t in p["tags"] if t["predicted"]]
        assert pred[0]["tag"] == f"p{c}" and all(t["tag"].startswith("p") for t in pred)
        assert p["moods"][0]["label"] == MOOD[c][0]
        assert np.sign(p["valence"]) == np.sign(MOOD[c][1]) and np.sign(p["arousal"]) == np.sign(MOOD[c][2])
        assert f"c{c}" in p["clusters"][0]["name"] and p["clusters"][0]["weight"] >= 0.3
        # every supporting item carries what it supports
        rows = {idx.items.id(int(r)): int(r) for r in hist}
        for t in p["tags"]:
            assert all(t["tag"] in {x for x, _, _ in idx.item_tags(rows[i])} for i in t["items"])
        for cl in p["clusters"]:
            assert all(int(idx.clusters[rows[i]]) == cl["cluster"] for i in cl["items"])
        weights = [t["weight"] for t in p["tags"]]
        assert weights == sorted(weights, reverse=True)
        assert p["modalities"] == [{"modality": "text", "weight": 1.0, "coherence": p["modalities"][0]["coherence"]}]
        assert 0.5 < p["modalities"][0]["coherence"] <= 1.0


def test_profile_of_a_history_and_the_top_limit(world):
    _taste, _work, idx_dir, _ev, _emb = world
    idx = Index(idx_dir)
    rows = np.array([idx.items.row("item-000"), idx.items.row("item-031")])
    p = profile(idx, rows, np.array([3.0, 1.0]), top=2)
    # c0 given (0.75), p0 predicted (0.75 * its score 0.5), then c1 (0.25): two kept
    assert [(t["tag"], t["weight"], t["predicted"]) for t in p["tags"]] == [("c0", 0.75, False), ("p0", 0.375, True)]
    assert len(p["moods"]) == 2 and p["valence"] == round(0.75 * 0.5 + 0.25 * -0.5, 4)
    assert profile(idx, np.zeros(0, np.int64))["tags"] == []
    with pytest.raises(InputError, match="unknown user 'ghost'"):
        user_profile(idx, "ghost")


def test_cli_profile_user_json_and_all_users_streamed(world):
    taste, work, idx_dir, _ev, _emb = world
    out = _ok(run_avrec("profile", str(idx_dir), "--user", "u2"))  # piped stdout: JSON
    p = json.loads(out)
    assert p["user"] == "u2" and p["tags"][0]["tag"] == f"c{taste.user_cluster[2]}"
    assert set(p) == {"user", "history", "tags", "moods", "valence", "arousal", "modalities", "clusters"}
    # the workspace's index by default, and a piped path
    assert json.loads(_ok(run_avrec("profile", "--user", "u2", "-w", str(work)))) == p
    assert json.loads(_ok(run_avrec("profile", "--user", "u2", input=f"{idx_dir}\n"))) == p
    lines = _ok(run_avrec("profile", str(idx_dir), "--all-users", "--top", "3")).splitlines()
    assert len(lines) == len(taste.user_ids)
    for line, u, c in zip(lines, taste.user_ids, taste.user_cluster.tolist()):
        q = json.loads(line)
        assert q["user"] == u and q["tags"][0]["tag"] == f"c{c}" and len(q["tags"]) <= 3
        assert f"c{c}" in q["clusters"][0]["name"]
    assert [json.loads(x) for x in lines] == list(all_profiles(Index(idx_dir), top=3))


def test_cli_profile_errors_are_one_line_exit_2(world):
    _taste, _work, idx_dir, _ev, _emb = world
    for args, msg in ((("--user", "ghost"), "unknown user 'ghost'"), ((), "give exactly one of --user, --all-users"),
                      (("--user", "u1", "--all-users"), "got --user --all-users"), (("--user", "u1", "--top", "0"), "--top")):
        r = run_avrec("profile", str(idx_dir), *args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and r.stdout == "" and len(lines) == 1 and msg in lines[0], (args, r.stderr)


def test_profile_table_on_a_terminal(world, capsys):
    from avrec.cli.profile import _table

    _taste, _work, idx_dir, _ev, _emb = world
    _table(user_profile(Index(idx_dir), "u1"))
    out = capsys.readouterr().out
    assert "user u1" in out and "(predicted)" in out and "clusters" in out and "coherence" in out


def test_profile_stays_light(world):
    _taste, _work, idx_dir, _ev, _emb = world
    out, heavy = run_light("profile", str(idx_dir), "--user", "u1")
    assert heavy == []
    assert json.loads(out)["user"] == "u1"


def test_pseudonymised_users_are_looked_up_through_the_key_and_printed_as_given(world, tmp_path):
    taste, _work, _idx, ev, emb = world
    key = tmp_path / "avrec.key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    sets = ("--set", f"privacy.key_file={key}", "--set", "privacy.pseudonymize=true")
    model = Path(_ok(run_avrec("train", str(emb), "-i", str(ev), "-o", str(tmp_path / "model"),
                               "--set", "train.hybrid.content_dim=8", *sets)))
    idx = Path(_ok(run_avrec("index", str(model), "-o", str(tmp_path / "index"), "--n-trees", "5")))
    p = json.loads(_ok(run_avrec("profile", str(idx), "--user", "u3", *sets)))
    assert p["user"] == "u3" and p["tags"][0]["tag"] == f"c{taste.user_cluster[3]}"
    r = run_avrec("profile", str(idx), "--user", "u3")  # without the key: the raw id is unknown
    assert r.returncode == 2 and "unknown user 'u3'" in r.stderr
    first = json.loads(_ok(run_avrec("profile", str(idx), "--all-users", *sets)).splitlines()[0])
    assert len(first["user"]) == 64 and "u" not in first["user"]  # stored pseudonyms, never raw ids


def test_profile_of_a_history_the_model_never_saw(sample_data, tmp_path):
    """--history: a profile of item ids (with weights) from a file or stdin; unknown ids are skipped."""
    from avrec_runner import run_avrec as run

    work = tmp_path / "w"
    r = run("demo", "-w", str(work), "--data", str(sample_data))
    assert r.returncode == 0, r.stderr
    idx = next(p for p in (work / "avrec-demo" / "index", work / "index") if p.exists())
    r = run("profile", str(idx), "--history", "-", "--json", input="piano_video_1\npiano_audio_1,2\nnot-an-item\n")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    assert p["history"] == 2 and "piano" in [t["tag"] for t in p["tags"][:3]]
    r = run("profile", str(idx), "--history", "-", input="not-an-item\n")
    assert r.returncode == 2 and "none of the --history items" in r.stderr
