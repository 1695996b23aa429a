"""NormScan: the norm-ordered early-stopping scan returns exactly the full scan's top k."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avrec.index.normscan import NormScan


def full_topk(v, q, k, exclude, allowed):
    s = q @ v.T
    for j in range(len(q)):
        if exclude[j] is not None:
            s[j, exclude[j]] = -np.inf
        if allowed[j] is not None:
            s[j, ~allowed[j]] = -np.inf
    return s, -np.sort(-s, axis=1)[:, :k]


def assert_same_scores(vals, ref, q, v) -> np.ndarray:
    """vals equal ref up to float32 rounding; returns the per-query tolerance. A block's product
    may round differently from the full one (BLAS picks its kernel by shape and CPU), so allow
    the dot-product error bound d * eps * |q| . |v| (Higham, Accuracy and Stability, 3.1)."""
    tol = v.shape[1] * np.finfo(np.float32).eps * (np.abs(q) @ np.abs(v).T).max(axis=1)
    np.testing.assert_array_equal(np.isneginf(vals), np.isneginf(ref))
    fin = np.isfinite(ref)
    assert (np.abs(vals[fin] - ref[fin]) <= np.broadcast_to(tol[:, None], ref.shape)[fin]).all()
    return tol


def check(v, q, k, exclude, allowed, first_block=None):
    rows, vals = NormScan(v, first_block=first_block).topk(q, k, exclude=exclude, allowed=allowed)
    s, ref = full_topk(v, q, k, exclude, allowed)
    assert rows.shape == vals.shape == (len(q), min(k, len(v)))
    tol = assert_same_scores(vals, ref, q, v)
    for j in range(len(q)):
        fin = np.isfinite(vals[j])
        assert (np.abs(s[j, rows[j][fin]] - vals[j][fin]) <= tol[j]).all()  # each row's own score
        assert len(set(rows[j][fin].tolist())) == fin.sum()  # no item twice
        if exclude[j] is not None:
            assert not set(rows[j][fin].tolist()) & set(exclude[j].tolist())


@pytest.mark.parametrize("n,d,k", [(50, 4, 10), (5000, 16, 10), (30000, 32, 100), (3000, 8, 3000)])
def test_matches_the_full_scan_with_seen_items_and_filters(n, d, k):
    rng = np.random.default_rng(n + k)
    # factor-like vectors: norms spread over orders of magnitude, so the scan stops early
    v = (rng.standard_normal((n, d)) * rng.lognormal(0, 1, (n, 1))).astype(np.float32)
    q = rng.standard_normal((9, d)).astype(np.float32)
    exclude = [rng.choice(n, int(rng.integers(0, n // 3 + 1)), replace=False) for _ in range(8)] + [None]
    allowed = [None if j % 2 else rng.random(n) < 0.5 for j in range(9)]
    check(v, q, k, exclude, allowed, first_block=max(1, n // 50))


def test_a_query_with_fewer_than_k_items_left_gets_minus_inf_after_them():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((100, 4)).astype(np.float32)
    allowed = np.zeros(100, bool)
    allowed[[3, 70, 99]] = True
    rows, vals = NormScan(v, first_block=10).topk(rng.standard_normal((1, 4)), 10, allowed=[allowed])
    assert sorted(rows[0][:3].tolist()) == [3, 70, 99]
    assert np.isfinite(vals[0][:3]).all() and np.isneginf(vals[0][3:]).all()


def test_equal_norms_scan_everything_and_still_agree():
    """Unit vectors give the bound nothing to prune: the scan reads every block."""
    rng = np.random.default_rng(1)
    v = rng.standard_normal((20000, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    check(v, rng.standard_normal((5, 16)).astype(np.float32), 10, [None] * 5, [None] * 5, first_block=1000)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), d=st.integers(1, 6), b=st.integers(1, 5), k=st.integers(1, 30),
       block=st.integers(1, 64), seed=st.integers(0, 2**31 - 1))
def test_property_any_sizes_and_blocks(n, d, b, k, block, seed):
    rng = np.random.default_rng(seed)
    v = (rng.standard_normal((n, d)) * rng.lognormal(0, 1.5, (n, 1))).astype(np.float32)
    q = rng.standard_normal((b, d)).astype(np.float32)
    exclude = [rng.choice(n, int(rng.integers(0, n + 1)), replace=False) for _ in range(b)]
    check(v, q, k, exclude, [None] * b, first_block=block)


def test_calibrate_keeps_the_scan_where_it_prunes_and_drops_it_where_it_cannot():
    rng = np.random.default_rng(3)
    spread = (rng.standard_normal((20000, 16)) * rng.lognormal(0, 1.5, (20000, 1))).astype(np.float32)
    unit = spread / np.linalg.norm(spread, axis=1, keepdims=True)
    probe = rng.standard_normal((64, 16)).astype(np.float32)
    pruned, flat = NormScan(spread), NormScan(unit)
    assert pruned.calibrate(probe) < 0.5 and not pruned.full
    assert flat.calibrate(probe) > 0.5 and flat.full
    # the full product answers the same, seen items and filters included
    exclude = [rng.choice(20000, 500, replace=False) for _ in range(4)]
    allowed = [None, rng.random(20000) < 0.3, None, None]
    rows, vals = flat.topk(probe[:4], 10, exclude=exclude, allowed=allowed)
    _s, ref = full_topk(unit, probe[:4], 10, exclude, allowed)
    assert_same_scores(vals, ref, probe[:4], unit)
