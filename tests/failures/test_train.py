"""train's failures: every kind of bad interactions file is one line naming it and the fix
(exit 2), odd ids are data or refused rows, and no other stage's artifact is overwritten."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avrec_runner import run_avrec  # noqa: E402
from workspace_kit import FAST, SAMPLE, snapshot, workspace  # noqa: E402


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return workspace(tmp_path_factory.mktemp("train") / "work")


def _train(work: Path, interactions: Path, *extra: str, out: Path | None = None):
    return run_avrec("train", "-w", str(work), "--interactions", str(interactions), "-o",
                     str(out or work.parent / "model-out"), *FAST, *extra)


def _one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("UnicodeDecodeError", "ArrowInvalid", "IsADirectoryError", "ValueError:", "KeyError"):
        assert name not in proc.stderr
    return lines[0]


def _rows(n: int = 40) -> list[tuple[str, str]]:
    lines = (SAMPLE / "interactions.csv").read_text().splitlines()[1 : n + 1]
    return [tuple(ln.split(",")[:2]) for ln in lines]


@pytest.mark.parametrize("kind, content, needle", [
    ("png.csv", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "PNG"),
    ("fake.parquet", b"user_id,item_id\nu1,i1\n", "Parquet"),
    ("latin1.csv", "user_id,item_id\nu\xe9,ocean_article\n".encode("latin-1"), "UTF-8"),
    ("empty.csv", b"", "empty"),
    ("noitem.csv", b"user_id,thing\nu1,x\n", "item_id"),
])
def test_bad_interaction_files_are_exit_2_with_the_fix(work, tmp_path, kind, content, needle):
    p = tmp_path / kind
    p.write_bytes(content)
    proc = _train(work, p)
    assert proc.returncode == 2, proc.stderr
    line = _one_line(proc)
    assert needle in line and str(p) in line


def test_a_folder_as_interactions_or_as_config_is_exit_2(work, tmp_path):
    proc = _train(work, tmp_path)
    assert proc.returncode == 2 and "directory" in _one_line(proc)
    proc = _train(work, SAMPLE / "interactions.csv", "--config", str(tmp_path))
    assert proc.returncode == 2 and "directory" in _one_line(proc)


def test_bom_long_fields_and_unknown_columns(work, tmp_path):
    rows = _rows()
    p = tmp_path / "bom.csv"
    body = "".join(f"{u},{i},{'x' * 2_000_000 if n == 0 else 'note'}\n" for n, (u, i) in enumerate(rows))
    p.write_text("\ufeffuser_id,item_id,coment\n" + body, encoding="utf-8")
    proc = _train(work, p, out=tmp_path / "m")
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert "unknown column 'coment'" in proc.stderr and "--strict" in proc.stderr
    report = json.loads((tmp_path / "m" / "manifest.json").read_text())["extra"]["load_report"]
    assert report["kept"] == len(set(rows)) and report["malformed"] == 0
    strict = _train(work, p, "--strict", out=tmp_path / "m2")
    assert strict.returncode == 2 and "coment" in _one_line(strict)
    assert not (tmp_path / "m2").exists()


def test_odd_ids_are_data_and_control_characters_are_refused_rows(work, tmp_path):
    rows = _rows()
    odd = ["../../etc/passwd", "a/b", "日本語 user", "quote\"s", "  padded  "]
    recs = [{"user_id": u, "item_id": i} for u, i in rows]
    recs += [{"user_id": o, "item_id": rows[0][1]} for o in odd]
    recs += [{"user_id": "line\nbreak", "item_id": rows[0][1]}, {"user_id": "nul\u0000", "item_id": rows[1][1]}]
    p = tmp_path / "odd.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    out = tmp_path / "m"
    proc = _train(work, p, out=out)
    assert proc.returncode == 0, proc.stderr
    assert "2 malformed rows" in proc.stderr and "newline" in proc.stderr
    users = (out / "users.txt").read_text(encoding="utf-8").splitlines()
    assert {"../../etc/passwd", "a/b", "日本語 user", 'quote"s', "padded"} <= set(users)
    assert not any("\n" in u or "\0" in u for u in users)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "odd.jsonl"]  # no file made from an id
    idx = run_avrec("index", str(out), "-o", str(tmp_path / "idx"), "-q")
    assert idx.returncode == 0, idx.stderr
    rec = run_avrec("recommend", str(tmp_path / "idx"), "--user", "../../etc/passwd", "--k", "2")
    assert rec.returncode == 0 and json.loads(rec.stdout.splitlines()[0])["user"] == "../../etc/passwd"


def test_train_never_writes_over_another_artifact_or_its_input(work, tmp_path):
    for target in ("features", "embeddings", "index"):
        before = snapshot(work / target)
        proc = _train(work, SAMPLE / "interactions.csv", out=work / target)
        assert proc.returncode == 2, proc.stderr
        assert "another -o" in _one_line(proc) or "own input" in proc.stderr
        assert snapshot(work / target) == before
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    proc = _train(work, SAMPLE / "interactions.csv", out=tmp_path / "plain")
    assert proc.returncode == 2 and "not an avrec artifact" in _one_line(proc)
    assert (tmp_path / "plain" / "notes.txt").read_text() == "mine"


def test_a_hybrid_with_no_usable_content_is_an_error(work, tmp_path):
    import numpy as np

    from avrec.artifacts import Manifest, save_npy, write_jsonl, write_manifest

    emb = tmp_path / "emb"
    emb.mkdir()
    ids = sorted({i for _, i in _rows(200)})
    write_jsonl(emb / "items.jsonl", [{"item_id": i} for i in ids])
    save_npy(emb / "fused.npy", np.zeros((len(ids), 4), np.float32))
    write_manifest(emb, Manifest(artifact="embeddings", counts={"items": len(ids)}))
    proc = run_avrec("train", str(emb), "--interactions", str(SAMPLE / "interactions.csv"), "-o", str(tmp_path / "m"),
                     "-q")
    assert proc.returncode == 2 and "no usable content" in _one_line(proc)
    ok = run_avrec("train", str(emb), "--interactions", str(SAMPLE / "interactions.csv"), "-o", str(tmp_path / "m"),
                   "--model", "ease", "-q")
    assert ok.returncode == 0, ok.stderr
