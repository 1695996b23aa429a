"""The hybrid's content/history projections reproduce its vectors for items without interactions."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
from taste import make_taste  # noqa: E402

from avrec.data import from_arrays  # noqa: E402
from avrec.models import build_model  # noqa: E402


@pytest.fixture(scope="module")
def taste_cold():
    t = make_taste(n_users=40, items_per_cluster=15, per_user=8, seed=5)
    cold = {t.item_ids[i] for i in (3, 20, 47)}
    rows = [r for r in t.rows if r[1] not in cold]
    data = from_arrays([r[0] for r in rows], [r[1] for r in rows], catalogue=t.item_ids)
    return t, data, np.array([3, 20, 47])


def _apply(x, proj):
    return np.hstack([x, np.ones((len(x), 1))]) @ proj


@pytest.mark.parametrize("over", [
    {"solver": "closed", "content_dim": 8},
    {"solver": "closed", "content_dim": 0, "content_prior": 0.0},
    {"solver": "sgd", "epochs": 3, "patience": 0, "dim": 8, "content_dim": 8},
    # tuned modality weights scale blocks of the raw fused vector: still one exact affine map
    {"solver": "closed", "content_dim": 8, "modality_weights": {"a": 0.25, "b": 4.0},
     "content_blocks": [{"modality": "a", "start": 0, "end": 10, "weight": 1.0},
                        {"modality": "b", "start": 10, "end": 16, "weight": 1.0}]},
    {"solver": "als", "als_iterations": 3, "content_dim": 0, "modality_weights": {"a": 0.0, "b": 1.0},
     "content_blocks": [{"modality": "a", "start": 0, "end": 10, "weight": 1.0},
                        {"modality": "b", "start": 10, "end": 16, "weight": 1.0}]},
])
def test_projections_give_the_cold_items_vectors(taste_cold, over, tmp_path):
    t, data, cold = taste_cold
    m = build_model("hybrid", None, seed=0, **over).fit(data, t.content)
    assert (m.popularity[cold] == 0).all()
    proj = m.projections()
    assert set(proj) == {"content_projection", "history_projection"}
    np.testing.assert_allclose(_apply(t.content[cold], proj["content_projection"]), m.item_vectors[cold], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(_apply(t.content[cold], proj["history_projection"]), m.history_vectors[cold], rtol=1e-4, atol=1e-6)
    assert np.abs(m.item_vectors[cold]).max() > 1e-4
    # saved and loaded with the model
    m.save(tmp_path / "w.npz")
    back = type(m).load(tmp_path / "w.npz")
    np.testing.assert_array_equal(back.projections()["content_projection"], proj["content_projection"])


def test_no_projection_where_no_affine_map_exists(taste_cold):
    t, data, _ = taste_cold
    m = build_model("hybrid", None, seed=0, solver="sgd", epochs=2, patience=0, dim=8, content_hidden=8).fit(data, t.content)
    assert m.projections() == {}
    assert build_model("hybrid", None, seed=0).fit(data, None).projections() == {}
    assert build_model("ease", None).fit(data).projections() == {}
