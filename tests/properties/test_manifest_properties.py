"""Properties of artifact manifests: what write_manifest lists verifies, any change to a
listed file is caught and named with the command that rebuilds it, hidden files are not
listed, and a damaged manifest.json is an ArtifactError."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from avrec.artifacts import manifest as mf
from avrec.artifacts.manifest import (
    MADE_BY,
    MANIFEST,
    Manifest,
    list_files,
    read_manifest,
    verify_files,
    write_manifest,
)
from avrec.errors import ArtifactError

SETTINGS = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
KINDS = sorted(MADE_BY)

# a file or folder name: any text but "/" and NUL, within the 255-byte limit of a name
NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=16).filter(
    lambda s: len(s.encode("utf-8")) <= 255 and s not in (".", "..")
)
VISIBLE = NAME.filter(lambda s: not s.startswith("."))
HIDDEN = NAME.map(lambda s: "." + s).filter(lambda s: len(s.encode("utf-8")) <= 255 and s not in (".", ".."))
SIZE = st.one_of(st.integers(0, 64), st.integers(0, 4096), st.integers(0, 200_000), st.sampled_from([0, 1, 65536]))


@st.composite
def trees(draw):
    """{relative path: size} of visible files (no path is a folder of another)."""
    files: dict[str, int] = {}
    for _ in range(draw(st.integers(1, 8))):
        depth = draw(st.integers(0, 3))
        parts = [draw(VISIBLE) for _ in range(depth + 1)]
        rel = "/".join(parts)
        if parts[0] == MANIFEST or any(rel.startswith(f + "/") or f.startswith(rel + "/") or f == rel for f in files):
            continue
        files[rel] = draw(SIZE)
    if draw(st.booleans()) and not any(f == "sub" or f.startswith("sub/manifest.json/") for f in files):
        files.setdefault("sub/manifest.json", draw(SIZE))  # only the top-level manifest.json is not data
    assume(files)
    return files


def _fill(root: Path, files: dict[str, int], seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    out = {}
    for rel, size in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        out[rel] = rng.randbytes(size)
        p.write_bytes(out[rel])
    return out


def _write(root: Path, kind: str) -> dict:
    write_manifest(root, Manifest(artifact=kind, libs={"python": "3"}))
    return json.loads((root / MANIFEST).read_text(encoding="utf-8"))


@settings(max_examples=60, **SETTINGS)
@given(files=trees(), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32))
@example(files={"a b/x..npy": 3, "日本/é.json": 0, "shard-000.npz": 70_000, "-/\n\t": 1}, kind="model", seed=1)
def test_what_write_manifest_lists_verifies_in_full(files, kind, seed):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        content = _fill(root, files, seed)
        _write(root, kind)
        data = read_manifest(root, kind, verify="full")
        assert data["artifact"] == kind
        # every data file, by its posix path, with its size and sha256
        assert data["files"] == {rel: {"size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                                 for rel, b in content.items()}
        assert list_files(root) == data["files"]
        verify_files(root, data, checksums=True)


@st.composite
def damages(draw):
    files = draw(trees())
    target = draw(st.sampled_from(sorted(files)))
    size = files[target]
    options = ["extend", "delete", "replace_by_folder"]
    if size:
        options += ["flip", "flip", "truncate", "truncate_to_zero"]
    how = draw(st.sampled_from(options))
    if how == "flip":
        arg = (draw(st.integers(0, size - 1)), draw(st.integers(1, 255)))
    elif how == "truncate":
        arg = draw(st.integers(0, size - 1))
    elif how == "extend":
        arg = draw(st.binary(min_size=1, max_size=100))
    else:
        arg = None
    return files, target, how, arg


def _damage(p: Path, how: str, arg) -> None:
    if how == "flip":
        pos, x = arg
        b = bytearray(p.read_bytes())
        b[pos] ^= x
        p.write_bytes(bytes(b))
    elif how == "truncate":
        os.truncate(p, arg)
    elif how == "truncate_to_zero":
        p.write_bytes(b"")
    elif how == "extend":
        with open(p, "ab") as f:
            f.write(arg)
    elif how == "delete":
        p.unlink()
    elif how == "replace_by_folder":
        p.unlink()
        p.mkdir()


@settings(max_examples=80, **SETTINGS)
@given(d=damages(), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32))
@example(d=({"a.npy": 100}, "a.npy", "flip", (99, 1)), kind="index", seed=0)
def test_any_change_to_a_listed_file_names_it_and_the_command_that_rebuilds_it(d, kind, seed):
    files, target, how, arg = d
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _fill(root, files, seed)
        _write(root, kind)
        _damage(root / target, how, arg)
        with pytest.raises(ArtifactError) as e:
            read_manifest(root, kind, verify="full")
        msg = str(e.value)
        assert str(root / target) in msg and f"`{MADE_BY[kind]}`" in msg
        # the cheap check on every open catches what changes the size; only "full" reads the bytes
        if how == "flip":
            read_manifest(root, kind, verify="size")
        else:
            with pytest.raises(ArtifactError) as e:
                read_manifest(root, kind, verify="size")
            assert str(root / target) in str(e.value) and f"`{MADE_BY[kind]}`" in str(e.value)
        read_manifest(root, kind, verify="none")  # what the manifest says is still readable
        # the other files still verify one by one
        others = [r for r in files if r != target]
        verify_files(root, json.loads((root / MANIFEST).read_text(encoding="utf-8")), checksums=True, only=others)


@settings(max_examples=50, **SETTINGS)
@given(files=trees(), hidden=st.lists(st.tuples(st.one_of(st.none(), VISIBLE, HIDDEN), HIDDEN, SIZE), min_size=1,
                                       max_size=4),
       hidden_dir=st.tuples(HIDDEN, VISIBLE), seed=st.integers(0, 2**32))
def test_hidden_files_are_not_listed_and_may_change(files, hidden, hidden_dir, seed):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        content = _fill(root, files, seed)
        extra = {}
        for folder, name, size in hidden:
            rel = f"{folder}/{name}" if folder else name
            if any(rel == f or f.startswith(rel + "/") or rel.startswith(f + "/") for f in [*files, *extra]):
                continue
            extra[rel] = size
        hd = "/".join(hidden_dir)  # a file inside a hidden folder
        if not any(hd == f or f.startswith(hd + "/") or hd.startswith(f + "/") for f in [*files, *extra]):
            extra[hd] = 10
        _fill(root, extra, seed + 1)
        data = _write(root, "embeddings")
        assert set(data["files"]) == set(content)  # temporaries (".name") are not data
        for rel in extra:  # ... so they may change or go
            p = root / rel
            if p.is_file():
                p.write_bytes(b"changed")
        read_manifest(root, "embeddings", verify="full")
        for rel in extra:
            p = root / rel
            if p.is_file():
                p.unlink()
        read_manifest(root, "embeddings", verify="full")


# ---------------------------------------------------------------------------------------
# a damaged manifest.json

_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
_ODD_NAMES = st.one_of(NAME, st.sampled_from(["", ".", "..", "sub", "sub/", "a\x00b", "\x00", "manifest.json",
                                              "sub/../a.bin", "a.bin/", "missing.npy", ".hidden"]))
_ODD_ENTRY = st.one_of(
    _JSON, st.fixed_dictionaries({"size": _JSON}), st.fixed_dictionaries({"sha256": _JSON}),
    st.fixed_dictionaries({"size": st.integers(-1, 5000), "sha256": st.one_of(st.text(max_size=64), _JSON)}),
    st.just({"sha256": "0" * 64}), st.just({}),
)


def _damaged(data, good: bytes) -> bytes:
    """Bytes for manifest.json, drawn given the good one."""
    how = data.draw(st.integers(0, 5), label="how")
    if how == 0:
        return data.draw(st.binary(max_size=200))
    if how == 1:
        return json.dumps(data.draw(_JSON)).encode()
    if how == 2:  # one byte of the real manifest changed, or the tail cut off
        pos = data.draw(st.integers(0, len(good) - 1))
        if data.draw(st.booleans()):
            return good[:pos]
        b = bytearray(good)
        b[pos] = data.draw(st.integers(0, 255))
        return bytes(b)
    doc = json.loads(good)
    if how == 3:  # the real manifest with odd file entries
        doc["files"] = data.draw(st.one_of(_JSON, st.dictionaries(_ODD_NAMES, _ODD_ENTRY, max_size=4)))
        return json.dumps(doc).encode()
    if how == 4:  # the real manifest with an odd field
        doc[data.draw(st.sampled_from(["artifact", "schema_version", "files", "build_id"]))] = data.draw(_JSON)
        return json.dumps(doc).encode()
    return data.draw(st.sampled_from([
        b"", b"\xef\xbb\xbf{}", b"\xff\xfe{", b"[" * 100_000, b'{"a": ' + b"1" * 5000 + b"}", b"\x00" * 10, b"null",
        b'{"artifact": "model", "schema_version": 1, "files": {"a.bin": {"size": 1e400}}}',
        b'{"artifact": "model", "schema_version": 1, "files": {"sub": {"sha256": "00"}}}',
        b'{"artifact": "model", "schema_version": 1, "files": {"sub": {}}}',
        b'{"artifact": "model", "schema_version": 1, "files": {"a\\u0000b": {"size": 1}}}',
        b'{"artifact": "model", "schema_version": 1, "files": {"\\ud800": {"size": 1}}}',
        b'{"artifact": ["model"], "schema_version": 1}', b'{"artifact": {"x": 1}, "schema_version": 1}',
    ]))


@settings(max_examples=150, **SETTINGS)
@given(data=st.data(), expect=st.sampled_from([None, "model", ("model", "index")]),
       verify=st.sampled_from(["none", "size", "full"]))
def test_a_damaged_manifest_is_an_artifact_error(data, expect, verify):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sub").mkdir()
        (root / "sub" / "x.bin").write_bytes(b"xyz")
        (root / "a.bin").write_bytes(b"a")
        _write(root, "model")
        (root / MANIFEST).write_bytes(_damaged(data, (root / MANIFEST).read_bytes()))
        try:
            got = read_manifest(root, expect, verify=verify)
        except ArtifactError as e:
            assert str(e)
            return
        assert isinstance(got, dict)


def test_files_past_the_checksum_limit_are_listed_by_size(monkeypatch, tmp_path):
    monkeypatch.setattr(mf, "CHECKSUM_MAX_BYTES", 10)
    (tmp_path / "small").write_bytes(b"x" * 10)
    (tmp_path / "big").write_bytes(b"x" * 11)
    data = _write(tmp_path, "index")
    assert set(data["files"]["small"]) == {"size", "sha256"} and data["files"]["big"] == {"size": 11}
    (tmp_path / "big").write_bytes(b"y" * 11)  # not hashed: same size passes
    read_manifest(tmp_path, "index", verify="full")
    (tmp_path / "big").write_bytes(b"y" * 12)
    with pytest.raises(ArtifactError, match="big has 12 bytes but the manifest lists 11.*`avrec index`"):
        read_manifest(tmp_path, "index", verify="full")
