"""avrec index with bad inputs: each fails with one clear line and the right exit code."""

from __future__ import annotations

import numpy as np
import pytest

from avrec.artifacts import Manifest, save_npy, write_jsonl, write_manifest
from avrec.config import IndexConfig
from avrec.errors import ArtifactError, InputError
from avrec.index import add_items, build_index

from avrec_runner import run_avrec
from test_index_fixtures import make_embeddings, make_model, projection


def test_add_fails_clearly_without_projection_or_with_other_encoders(tmp_path):
    model = make_model(tmp_path, with_projection=False)
    idx_dir = build_index(model, tmp_path / "index", IndexConfig(n_trees=5))
    emb = make_embeddings(tmp_path / "new", [70], seed=1)
    with pytest.raises(InputError, match="content_projection"):
        add_items(idx_dir, emb, IndexConfig(n_trees=5))
    other = make_embeddings(tmp_path / "other", [71], text_encoder="text:another-model")
    save_npy(idx_dir / "content_projection.npy", projection())
    with pytest.raises(InputError, match="other encoders"):
        add_items(idx_dir, other, IndexConfig(n_trees=5))


def test_cli_index_declines_models_it_does_not_serve(tmp_path):
    model = make_model(tmp_path, name="ease")
    r = run_avrec("index", str(model), "-o", str(tmp_path / "idx"))
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "hybrid, mf, content, popular" in err[0] and "ease" in err[0]
    assert r.stdout == "" and not (tmp_path / "idx").exists()


def test_cli_index_bad_inputs(tmp_path):
    emb = make_embeddings(tmp_path / "emb", [1, 2])
    r = run_avrec("index", str(emb), "-o", str(tmp_path / "idx"))  # an embeddings artifact, not a model
    assert r.returncode == 2 and "'model'" in r.stderr
    r = run_avrec("index", str(tmp_path / "missing"), "-o", str(tmp_path / "idx"))
    assert r.returncode == 2 and "not found" in r.stderr
    model = make_model(tmp_path / "m")
    r = run_avrec("index", str(model), "-o", str(tmp_path / "idx"), "--set", "index.metric=cosine")
    assert r.returncode == 2 and "index.metric" in r.stderr
    r = run_avrec("index", str(model), "-o", str(tmp_path / "idx"), "--search-k", "0")
    assert r.returncode == 2 and "search_k" in r.stderr
    (model / "popularity.npy").unlink()
    r = run_avrec("index", str(model), "-o", str(tmp_path / "idx"))
    assert r.returncode == 2 and "popularity.npy" in r.stderr


def test_inconsistent_model_shapes_are_reported(tmp_path):
    model = make_model(tmp_path)
    save_npy(model / "user_vectors.npy", np.zeros((3, 8), np.float32))
    with pytest.raises(ArtifactError, match="user_vectors"):
        build_index(model, tmp_path / "idx", IndexConfig(n_trees=2))
    write_jsonl(model / "items.jsonl", [{"item_id": "a"}])
    with pytest.raises(ArtifactError, match="items.jsonl"):
        build_index(model, tmp_path / "idx", IndexConfig(n_trees=2))
    write_manifest(tmp_path / "notmodel", Manifest(artifact="features"))
    with pytest.raises(ArtifactError):
        build_index(tmp_path / "notmodel", tmp_path / "idx", IndexConfig(n_trees=2))

