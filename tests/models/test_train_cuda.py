"""`avrec train --device cuda`: the hybrid's ALS and `mf` (implicit's CUDA build where it is
installed, else avrec/models/torch_als.py), and the hybrid's sgd solver, on the device.

Skipped where there is no CUDA device (CI has none);
run them on a GPU machine with ``python -m pytest tests/models/test_train_cuda.py -q``. The
CPU fit of the same data is the reference: the GPU must learn the same planted taste, serve
cold items from content through the same projection, and fold histories in the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from taste import as_data, make_taste  # noqa: E402

from avrec.data import cold_item_split, random_split  # noqa: E402
from avrec.evaluate import evaluate_scorer  # noqa: E402
from avrec.models import build_model  # noqa: E402

ALS = {"solver": "als", "als_factors": 16, "als_iterations": 10, "als_reg": 0.1, "als_alpha": 10.0, "content_dim": 8}


@pytest.fixture(scope="module")
def taste():
    return make_taste(n_users=120, items_per_cluster=30, per_user=12)


def _ndcg(split, model) -> float:
    return evaluate_scorer(split, model.score, [10])["metrics"][10]["ndcg"]


@pytest.mark.parametrize("name, params", [("hybrid", ALS), ("mf", {"factors": 16, "epochs": 10}),
                                          ("hybrid", {"solver": "sgd", "dim": 16, "epochs": 20})])
def test_cuda_learns_the_taste_as_the_cpu_does(taste, name, params):
    split = random_split(as_data(taste), ratio=0.25, seed=0)
    content = taste.content if name == "hybrid" else None
    got = {dev: _ndcg(split, build_model(name, None, seed=0, device=dev, **params).fit(split.train, content))
           for dev in ("cpu", "cuda")}
    pop = _ndcg(split, build_model("popular", None).fit(split.train, None))
    assert got["cuda"] > 1.5 * pop, (got, pop)
    assert got["cuda"] >= 0.9 * got["cpu"], got


def test_cuda_als_serves_cold_items_through_the_projection(taste):
    split = cold_item_split(as_data(taste), ratio=0.25, seed=0)
    m = build_model("hybrid", None, seed=0, device="cuda", **ALS).fit(split.train, taste.content)
    assert m.info["solver"]["chosen"] == "als"
    cold = split.cold_items
    proj = m.projections()
    x = np.hstack([taste.content[cold].astype(np.float64), np.ones((len(cold), 1))])
    np.testing.assert_allclose(m.item_vectors[cold], x @ proj["content_projection"], atol=1e-4)
    assert isinstance(m.item_vectors, np.ndarray)  # the artifact holds host arrays, not device tensors
    assert _ndcg(split, m) > 0.5


def test_cuda_fold_in_ranks_as_the_trained_user_vector(taste):
    data = as_data(taste)
    m = build_model("hybrid", None, seed=0, device="cuda", **ALS).fit(data, taste.content)
    seen = data.to_csr()
    for u in range(5):
        s_fold, s_user = m.score_history(seen[[u]])[0], m.score(np.array([u]))[0]
        h = seen[u].indices
        s_fold[h], s_user[h] = -np.inf, -np.inf
        top = lambda s: set(np.argsort(-s)[:10].tolist())  # noqa: E731
        assert len(top(s_fold) & top(s_user)) >= 5
