"""The torch ALS that `--device cuda` runs where implicit has no CUDA build: run here on
torch's CPU device, against a dense reference solve and against implicit on the same data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from taste import as_data, make_taste  # noqa: E402

from avrec.data import random_split  # noqa: E402
from avrec.evaluate import evaluate_scorer  # noqa: E402
from avrec.models import mf  # noqa: E402
from avrec.models.torch_als import fit_als_torch, solve_rows  # noqa: E402

KW = {"factors": 16, "iterations": 10, "reg": 0.1, "seed": 0}


@pytest.fixture(scope="module")
def split():
    return random_split(as_data(make_taste(n_users=200, items_per_cluster=30, per_user=12)), ratio=0.25, seed=0)


def _conf(seen, alpha=10.0):
    conf = seen.astype(np.float32, copy=True)
    conf.data = 1.0 + alpha * conf.data
    return conf


def _ndcg(split, x, y) -> float:
    return evaluate_scorer(split, lambda u: x[u] @ y.T, [10])["metrics"][10]["ndcg"]


@pytest.mark.parametrize("max_nnz", [7, 1 << 20])  # many chunks (rows split across none), and one
def test_each_row_solves_its_normal_equations(split, max_nnz):
    conf = _conf(split.train.to_csr())
    y = np.random.default_rng(0).normal(size=(conf.shape[1], 8)).astype(np.float32)
    x = torch.zeros((conf.shape[0], 8))
    solve_rows(conf, x, torch.as_tensor(y), reg=0.1, cg_steps=40, max_nnz=max_nnz)
    y64 = y.astype(np.float64)
    for u in range(0, conf.shape[0], 17):
        row = conf[u]
        c = np.ones(conf.shape[1])
        c[row.indices] = row.data
        p = np.zeros(conf.shape[1])
        p[row.indices] = 1.0
        want = np.linalg.solve((y64.T * c) @ y64 + 0.1 * np.eye(8), (y64.T * c) @ p)  # (Y'C_uY + reg I)^-1 Y'C_u p_u
        np.testing.assert_allclose(x[u].numpy(), want, rtol=1e-3, atol=1e-4)


def test_its_alternations_are_implicits(split):
    # float64 on both sides: in float32 implicit's own iterates drift apart from its float64
    # ones by as much (0.39 of 4.8 after three alternations), CG's few steps amplify rounding
    from implicit.cpu.als import least_squares_cg  # implicit's reference (Python) solver

    conf = _conf(split.train.to_csr()).astype(np.float64)
    conf_t = conf.T.tocsr()
    rng = np.random.default_rng(0)
    x0, y0 = rng.random((conf.shape[0], 8)) * 0.01, rng.random((conf.shape[1], 8)) * 0.01
    xr, yr = x0.copy(), y0.copy()
    x, y = torch.as_tensor(x0.copy()), torch.as_tensor(y0.copy())
    for _ in range(3):
        least_squares_cg(conf, xr, yr, 0.1, cg_steps=3)
        least_squares_cg(conf_t, yr, xr, 0.1, cg_steps=3)
        solve_rows(conf, x, y, reg=0.1, cg_steps=3, max_nnz=500)
        solve_rows(conf_t, y, x, reg=0.1, cg_steps=3, max_nnz=500)
    np.testing.assert_allclose(x.numpy(), xr, atol=1e-4 * np.abs(xr).max())
    np.testing.assert_allclose(y.numpy(), yr, atol=1e-4 * np.abs(yr).max())


def test_it_learns_the_taste_as_implicit_does(split):
    seen = split.train.to_csr()
    got, ref = [], []
    for seed in range(3):  # float32 iterates depend on rounding (above): compare over seeds
        x, y = fit_als_torch(_conf(seen), device="cpu", **{**KW, "seed": seed})
        assert x.shape == (seen.shape[0], 16) and y.shape == (seen.shape[1], 16) and x.dtype == np.float32
        got.append(_ndcg(split, x, y))
        ref.append(_ndcg(split, *mf.fit_als(seen, alpha=10.0, **{**KW, "seed": seed})))
    assert np.mean(got) >= 0.9 * np.mean(ref), (got, ref)


def test_a_warm_start_begins_at_the_fold_in(split):
    seen = split.train.to_csr()
    _, y0 = mf.fit_als(seen, alpha=10.0, **KW)
    x, y = fit_als_torch(_conf(seen), device="cpu", init_items=y0, **{**KW, "iterations": 1})
    cold_x, cold_y = fit_als_torch(_conf(seen), device="cpu", **{**KW, "iterations": 1})
    assert _ndcg(split, x, y) > _ndcg(split, cold_x, cold_y)


def test_cuda_without_implicits_cuda_build_runs_the_torch_als(split, monkeypatch):
    import implicit.gpu

    import avrec.models.torch_als as torch_als

    assert mf.als_engine("cpu") == "implicit"
    monkeypatch.setattr(implicit.gpu, "HAS_CUDA", False)
    assert mf.als_engine("cuda:0") == "torch"
    calls = []
    monkeypatch.setattr(torch_als, "fit_als_torch", lambda conf, **kw: calls.append(kw) or ("x", "y"))
    assert mf.fit_als(split.train.to_csr(), alpha=10.0, device="cuda:0", **KW) == ("x", "y")
    assert calls[0]["device"] == "cuda:0" and calls[0]["factors"] == 16


def test_running_out_of_device_memory_retries_in_smaller_chunks(split, monkeypatch):
    import avrec.models.torch_als as torch_als

    conf = _conf(split.train.to_csr())
    want = fit_als_torch(conf, device="cpu", max_nnz=1 << 16, **KW)
    real, tried = torch_als.solve_rows, []

    def small_device(m, x, y, *, max_nnz, **kw):  # a device on which a chunk over 2^16 entries does not fit
        tried.append(max_nnz)
        if max_nnz > 1 << 16:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(m, x, y, max_nnz=max_nnz, **kw)

    monkeypatch.setattr(torch_als, "solve_rows", small_device)
    got = fit_als_torch(conf, device="cpu", **KW)  # the default 2^20, then 2^18, then 2^16
    assert sorted(set(tried), reverse=True) == [1 << 20, 1 << 18, 1 << 16]
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_a_device_too_small_even_for_the_smallest_chunks_is_one_clear_error(split, monkeypatch):
    import avrec.models.torch_als as torch_als
    from avrec.errors import DeviceError

    def no_memory(*_a, **_kw):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(torch_als, "solve_rows", no_memory)
    with pytest.raises(DeviceError, match=r"ran out of memory in ALS .* chunks of 16384 interactions; use --device cpu"):
        fit_als_torch(_conf(split.train.to_csr()), device="cpu", **KW)


HYBRID_ALS = {"solver": "als", "als_factors": 16, "als_iterations": 10, "als_reg": 0.1, "als_alpha": 10.0,
              "content_dim": 8}


def test_the_hybrid_on_the_torch_engine_learns_serves_cold_items_and_warm_starts(monkeypatch):
    """The hybrid as train --device cuda runs it without a CUDA implicit, on torch's CPU device:
    the same taste as on implicit, cold items through the content projection, and the
    validation search's item factors as a start."""
    from avrec.data import cold_item_split
    from avrec.models import build_model

    taste = make_taste(n_users=200, items_per_cluster=30, per_user=12)
    warm = random_split(as_data(taste), ratio=0.25, seed=0)
    fit = lambda split, **kw: build_model("hybrid", None, seed=0, **{**HYBRID_ALS, **kw}).fit(  # noqa: E731
        split.train, taste.content, keep_als=True)
    ndcg = lambda split, m: evaluate_scorer(split, m.score, [10])["metrics"][10]["ndcg"]  # noqa: E731
    ref = fit(warm)
    assert ref.info["als"]["engine"] == "implicit"
    import avrec.models.torch_als as torch_als

    monkeypatch.setattr(mf, "als_engine", lambda device: "torch")
    real, runs = torch_als.fit_als_torch, []
    monkeypatch.setattr(torch_als, "fit_als_torch", lambda conf, **kw: runs.append(kw) or real(conf, **kw))
    m = fit(warm)
    assert len(runs) == 1 and runs[0]["init_items"] is None
    assert m.info["als"] == {"iterations": 10, "start": "random", "engine": "torch"}
    pop = ndcg(warm, build_model("popular", None).fit(warm.train, None))
    assert ndcg(warm, m) >= 0.9 * ndcg(warm, ref) and ndcg(warm, m) > 1.5 * pop

    started = build_model("hybrid", None, seed=1, **{**HYBRID_ALS, "als_warm_iterations": 2}).fit(
        warm.train, taste.content, als_init=m.als_[1])
    assert started.info["als"] == {"iterations": 2, "start": "validation search's item factors", "engine": "torch"}
    assert len(runs) == 2 and runs[1]["init_items"] is m.als_[1]
    assert ndcg(warm, started) >= 0.9 * ndcg(warm, m)

    cold = cold_item_split(as_data(taste), ratio=0.25, seed=0)
    c = fit(cold)
    x = np.hstack([taste.content[cold.cold_items].astype(np.float64), np.ones((len(cold.cold_items), 1))])
    np.testing.assert_allclose(c.item_vectors[cold.cold_items], x @ c.projections()["content_projection"], atol=1e-4)
    assert ndcg(cold, c) > 0.5
