"""`avrec index --add` with the real hybrid: new items get exactly the vectors the trained
model gives an item without interactions, and users of the matching taste are offered them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from taste import make_taste, write_embeddings  # noqa: E402

from avrec_runner import run_avrec  # noqa: E402

# the least popular items of cluster 0: absent from the first embeddings, no interactions at all
NEW = [25, 26, 27, 28, 29]


def _write_interactions(taste, path: Path) -> None:
    new_ids = {taste.item_ids[i] for i in NEW}
    with open(path, "w", encoding="utf-8") as f:
        f.write("user_id,item_id,weight,timestamp\n")
        for u, i, w, t in taste.rows:
            if i not in new_ids:
                f.write(f"{u},{i},{w:g},{t}\n")


def _rows(directory: Path) -> dict[str, int]:
    lines = (directory / "items.jsonl").read_text().splitlines()
    return {json.loads(line)["item_id"]: r for r, line in enumerate(lines)}


def _ok(r) -> str:
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("add")
    taste = make_taste(n_users=80, items_per_cluster=30, per_user=12, seed=3)
    ev = tmp / "events.csv"
    _write_interactions(taste, ev)
    full, part = tmp / "emb-full", tmp / "emb-part"
    write_embeddings(taste, full)
    write_embeddings(taste, part, items=[i for i in range(len(taste.item_ids)) if i not in NEW])
    common = ("--set", "train.hybrid.content_dim=8", "--set", "runtime.seed=0")
    model_part = Path(_ok(run_avrec("train", str(part), "-i", str(ev), "-o", str(tmp / "model-part"), *common)))
    model_full = Path(_ok(run_avrec("train", str(full), "-i", str(ev), "-o", str(tmp / "model-full"), *common)))
    idx = tmp / "idx"
    _ok(run_avrec("index", str(model_part), "-o", str(idx), "--n-trees", "10"))
    r = run_avrec("index", "--add", str(full), "-o", str(idx), "--n-trees", "10")
    assert _ok(r) == str(idx)
    return taste, model_part, model_full, idx


def test_train_writes_the_affine_maps(setup):
    _, model_part, _, _ = setup
    d = np.load(model_part / "item_vectors.npy").shape[1]
    for name in ("content_projection", "history_projection"):
        proj = np.load(model_part / f"{name}.npy")
        assert proj.shape == (16 + 1, d)  # raw fused dims + bias row
    assert json.loads((model_part / "manifest.json").read_text())["models"]["projections"] == [
        "content_projection", "history_projection"]


def test_added_items_get_the_vectors_of_cold_items_in_a_model_trained_with_them(setup):
    taste, model_part, model_full, idx = setup
    new_ids = [taste.item_ids[i] for i in NEW]
    in_idx, in_full, in_part = _rows(idx), _rows(model_full), _rows(model_part)
    assert all(i in in_idx for i in new_ids) and not any(i in in_part for i in new_ids)
    manifest = json.loads((model_full / "manifest.json").read_text())
    assert manifest["counts"]["cold_items"] == len(NEW)
    for name in ("item_vectors", "history_vectors"):
        got = np.load(idx / f"{name}.npy")[[in_idx[i] for i in new_ids]]
        want = np.load(model_full / f"{name}.npy")[[in_full[i] for i in new_ids]]
        assert np.abs(want).max() > 1e-3  # content really gives them vectors
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        # and the items present from the start are untouched by the cold ones
        warm = [i for i in in_part]
        np.testing.assert_allclose(np.load(model_part / f"{name}.npy")[[in_part[i] for i in warm]],
                                   np.load(model_full / f"{name}.npy")[[in_full[i] for i in warm]], rtol=1e-4, atol=1e-6)


def test_recommend_offers_the_new_items_to_users_of_their_taste(setup):
    taste, _, _, idx = setup
    new_ids = {taste.item_ids[i] for i in NEW}

    def recs(user: str) -> list[str]:
        out = _ok(run_avrec("recommend", str(idx), "--user", user, "--k", "20", "--json"))
        return [json.loads(line)["item_id"] for line in out.splitlines()]

    fans = [u for u, c in zip(taste.user_ids, taste.user_cluster) if c == 0][:3]
    others = [u for u, c in zip(taste.user_ids, taste.user_cluster) if c != 0][:3]
    for u in fans:
        assert len(new_ids & set(recs(u))) >= 3, u
    for u in others:
        assert not new_ids & set(recs(u)), u
