from __future__ import annotations

import io
import json

import numpy as np
import pytest

from avrec import artifacts
from avrec.artifacts import Manifest, atomic_dir, read_manifest, resolve_input, write_manifest
from avrec.errors import ArtifactError, InputError


def test_manifest_round_trip_and_kind_check(tmp_path):
    write_manifest(tmp_path, Manifest(artifact="features", counts={"items": 3}))
    m = read_manifest(tmp_path, "features")
    assert m["counts"] == {"items": 3} and m["schema_version"] == artifacts.SCHEMA_VERSION
    assert {"numpy", "python"} <= set(m["libs"]) and m["created"]
    with pytest.raises(ArtifactError, match="is a 'features' artifact, but this stage needs 'model'"):
        read_manifest(tmp_path, "model")


def test_wrong_schema_and_missing_manifest(tmp_path):
    with pytest.raises(ArtifactError, match="not an avrec artifact"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"artifact": "model", "schema_version": 99}))
    with pytest.raises(ArtifactError, match="schema_version 99"):
        read_manifest(tmp_path, "model")


def test_atomic_dir_keeps_old_artifact_on_failure(tmp_path):
    final = tmp_path / "model"
    with atomic_dir(final) as d:
        (d / "a.txt").write_text("old")
        write_manifest(d, Manifest(artifact="model"))
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as d:
            (d / "a.txt").write_text("half")
            raise RuntimeError("killed")
    assert (final / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp or lock leftovers
    with atomic_dir(final) as d:
        (d / "a.txt").write_text("new")
        write_manifest(d, Manifest(artifact="model"))
    assert (final / "a.txt").read_text() == "new"


def test_save_npy_refuses_objects(tmp_path):
    artifacts.save_npy(tmp_path / "x.npy", np.eye(2, dtype=np.float32))
    assert artifacts.load_npy(tmp_path / "x.npy").dtype == np.float32
    with pytest.raises(ValueError):
        artifacts.save_npy(tmp_path / "y.npy", np.array([{"a": 1}], dtype=object))


def test_resolve_input_order(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "features").mkdir(parents=True)
    # nothing given, nothing piped, no upstream artifact: a usage error naming the fix
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(InputError, match="run the previous stage first"):
        resolve_input(None, stage="embed", work=work)
    write_manifest(work / "features", Manifest(artifact="features"))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert resolve_input(None, stage="embed", work=work) == work / "features"
    monkeypatch.setattr("sys.stdin", io.StringIO("/some/where/features\n"))
    assert str(resolve_input(None, stage="embed", work=work)) == "/some/where/features"
    monkeypatch.setattr("sys.stdin", io.StringIO("/piped\n"))
    assert str(resolve_input("-", stage="embed", work=work)) == "/piped"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(InputError, match="nothing arrived on stdin"):
        resolve_input("-", stage="embed", work=work)
    # a real pipe or file that is empty means the upstream failed: an error, not the workspace
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with open(empty) as f:
        monkeypatch.setattr("sys.stdin", f)
        with pytest.raises(InputError, match="most likely failed"):
            resolve_input(None, stage="embed", work=work)
    with open("/dev/null") as f:  # a CI step with no stdin: the workspace
        monkeypatch.setattr("sys.stdin", f)
        assert resolve_input(None, stage="embed", work=work) == work / "features"
    assert str(resolve_input("given", stage="embed", work=work)) == "given"


def test_artifacts_are_readable_by_others(tmp_path):
    # mkstemp/mkdtemp make 0600/0700 entries; a serving account must be able to read artifacts
    import os
    import stat

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "index") as d:
            write_manifest(d, Manifest(artifact="index"))
            artifacts.save_npy(d / "x.npy", np.zeros(2, np.float32))
            artifacts.write_jsonl(d / "items.jsonl", [{"a": 1}])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "index").stat().st_mode) == 0o755
    for name in ("manifest.json", "x.npy", "items.jsonl"):
        assert stat.S_IMODE((tmp_path / "index" / name).stat().st_mode) == 0o644, name
