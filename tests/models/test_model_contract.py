"""The model contract, run for every model (implicit-style data with planted taste)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
from taste import make_taste  # noqa: E402

from avrec.data import from_arrays  # noqa: E402
from avrec.models import MODEL_NAMES, Recommender, build_model  # noqa: E402
from avrec.models.registry import CONTENT_MODELS  # noqa: E402

FAST = {
    "hybrid": {"dim": 16, "epochs": 40, "patience": 5, "validation": 0.1, "lr": 0.02},
    "mf": {"factors": 8, "epochs": 4},
    "itemknn": {"neighbours": 20},
    "ease": {"l2": 10.0},
    "popular": {},
    "content": {},
}


@pytest.fixture(scope="module")
def taste_data():
    t = make_taste(n_users=40, items_per_cluster=15, per_user=8)
    data = from_arrays([r[0] for r in t.rows], [r[1] for r in t.rows], catalogue=t.item_ids)
    return t, data


class ModelContract:
    """Mixin: subclasses set ``name``; every check runs per model."""

    name = ""

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, taste_data):
        t, data = taste_data
        model = build_model(cls.name, None, seed=0, **FAST[cls.name])
        model.fit(data, t.content if cls.name in CONTENT_MODELS else None)
        return model, data

    def test_shapes_and_order(self, fitted):
        model, data = fitted
        ids, scores = model.recommend(np.arange(5), k=7)
        assert ids.shape == (5, 7) and scores.shape == (5, 7)
        assert ids.dtype.kind == "i" and (ids >= 0).all() and (ids < data.n_items).all()
        assert (np.diff(scores, axis=1) <= 1e-6).all(), "scores must be best first"
        assert model.score(np.arange(3)).shape == (3, data.n_items)

    def test_exclude_seen(self, fitted):
        model, data = fitted
        ids, _ = model.recommend(np.arange(data.n_users), k=10, exclude_seen=True)
        seen = data.to_csr()
        for u in range(data.n_users):
            assert not set(ids[u]) & set(seen[u].indices)
        ids_all, _ = model.recommend([0], k=data.n_items, exclude_seen=False)
        assert set(seen[0].indices) <= set(ids_all[0])

    def test_save_load_round_trip(self, fitted, tmp_path):
        model, data = fitted
        path = model.save(tmp_path / "w.npz")
        again = Recommender.load(path)
        assert type(again) is type(model)
        users = np.arange(data.n_users)
        np.testing.assert_array_equal(model.score(users), again.score(users))
        a, b = model.recommend(users, k=5), again.recommend(users, k=5)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        z = np.load(path, allow_pickle=False)  # no pickled objects inside
        assert "meta" in z.files

    def test_similar_items_and_fold_in(self, fitted):
        model, data = fitted
        ids, scores = model.similar_items([0, 1], k=4)
        assert ids.shape == (2, 4) and 0 not in ids[0] and 1 not in ids[1]
        hist = data.to_csr()[:3]
        ids_h, _ = model.recommend_history(hist, k=5)
        assert ids_h.shape == (3, 5)
        for u in range(3):
            assert not set(ids_h[u]) & set(hist[u].indices)

    def test_weights_are_relative(self, taste_data):
        """Ratings of 1-5 and the same log times 100 train the same model: the regularisers
        do not depend on the unit weights happen to be in."""
        t, data = taste_data
        w = np.random.default_rng(3).integers(1, 6, len(data)).astype(np.float32)
        seen = data.to_csr()
        seen.data = w
        content = t.content if self.name in CONTENT_MODELS else None
        users = np.arange(data.n_users)
        a = build_model(self.name, None, seed=0, **FAST[self.name]).fit(seen, content)
        big = seen.copy()
        big.data = big.data * 100.0
        b = build_model(self.name, None, seed=0, **FAST[self.name]).fit(big, content)
        np.testing.assert_allclose(a.score(users), b.score(users), rtol=2e-3, atol=2e-4)
        assert np.array_equal(big.data, seen.data * 100.0), "fit must not change the caller's matrix"

    def test_factors_reproduce_scores(self, fitted):
        model, data = fitted
        if not model.factor_model:
            with pytest.raises(NotImplementedError):
                model.factors()
            return
        f = model.factors()
        assert f["item_vectors"].shape[0] == data.n_items
        assert f["history_vectors"].shape == f["item_vectors"].shape
        assert f["user_vectors"].shape == (data.n_users, f["item_vectors"].shape[1])
        # the served vectors rank exactly as the model does (popular: up to a positive scale)
        served = f["user_vectors"] @ f["item_vectors"].T
        native = model.score(np.arange(data.n_users))
        scale = native.max(axis=1, keepdims=True) / np.maximum(served.max(axis=1, keepdims=True), 1e-12)
        np.testing.assert_allclose(served * scale, native, rtol=1e-4, atol=1e-4)


class TestPopular(ModelContract):
    name = "popular"


class TestItemKNN(ModelContract):
    name = "itemknn"


class TestEASE(ModelContract):
    name = "ease"


class TestMF(ModelContract):
    name = "mf"


class TestContent(ModelContract):
    name = "content"


class TestHybrid(ModelContract):
    name = "hybrid"


def test_every_registered_model_has_a_contract_test():
    tested = {c.name for c in ModelContract.__subclasses__()}
    assert tested == set(MODEL_NAMES)
