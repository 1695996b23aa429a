"""avrec.models.dp: the calibration, the contribution bound, the noise, and private training
(train.privacy.epsilon) end to end."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avrec_runner import run_avrec  # noqa: E402
from taste import make_taste, write_csv, write_embeddings  # noqa: E402

from avrec.config import Config  # noqa: E402
from avrec.errors import ConfigError  # noqa: E402
from avrec.models import dp  # noqa: E402


def _random_csr(n_users=300, n_items=80, density=0.2, seed=0, weights=False):
    rng = np.random.default_rng(seed)
    x = sp.random(n_users, n_items, density=density, format="csr", random_state=rng, dtype=np.float32)
    if not weights:
        x.data[:] = 1.0
    return x


def test_analytic_calibration_matches_the_reference_and_grows_as_epsilon_shrinks():
    # Balle & Wang (2018): epsilon 1, delta 1e-5, sensitivity 1 -> sigma 3.73 (the classic formula's
    # sqrt(2 ln(1.25e5)) = 4.84 is looser, and holds for epsilon < 1 only)
    assert dp.analytic_sigma(epsilon=1.0, delta=1e-5, sensitivity=1.0) == pytest.approx(3.7306, abs=1e-3)
    assert dp.classic_sigma(epsilon=0.5, delta=1e-5, sensitivity=1.0) == pytest.approx(2 * math.sqrt(2 * math.log(1.25e5)))
    with pytest.raises(ValueError):
        dp.classic_sigma(epsilon=2.0, delta=1e-5, sensitivity=1.0)
    sigmas = [dp.analytic_sigma(epsilon=e, delta=1e-4, sensitivity=2.0) for e in (8, 4, 2, 1, 0.5, 0.1)]
    assert all(a < b for a, b in zip(sigmas, sigmas[1:]))
    for e in (0.1, 0.5, 0.9):  # the analytic calibration is never noisier than the classic one
        assert dp.analytic_sigma(epsilon=e, delta=1e-4, sensitivity=1.0) <= dp.classic_sigma(epsilon=e, delta=1e-4, sensitivity=1.0)
    mu = dp.gaussian_mu(epsilon=2.0, delta=1e-6)
    assert dp.gaussian_delta(epsilon=2.0, mu=mu) == pytest.approx(1e-6, rel=1e-6)
    assert dp.default_delta(n_users=1000) == pytest.approx(1000 ** -1.1)
    assert dp.gram_sensitivity(max_items=4) == pytest.approx(math.sqrt(10)) and dp.count_sensitivity(max_items=4) == 2.0


def test_no_user_keeps_more_than_the_bound_and_the_sensitivity_holds():
    x = _random_csr(weights=True)
    xb = dp.bound_contributions(x, max_items=5, seed=3)
    n, nb = np.diff(x.indptr), np.diff(xb.indptr)
    assert (nb == np.minimum(n, 5)).all()
    assert set(np.unique(xb.data)) == {1.0}
    assert not (xb.multiply(x > 0) != xb).nnz  # a subset of each user's own items
    assert (dp.bound_contributions(x, max_items=5, seed=3) != xb).nnz == 0  # seeded
    # one user's contribution to the released upper triangle of X'X meets the bound, with
    # binary weights exactly and with weights in [0, 1] below it
    for row in (xb[0].toarray().ravel(), np.clip(x[0].toarray().ravel(), 0, 1)):
        c = int((row > 0).sum())
        iu = np.triu_indices(len(row))
        assert np.linalg.norm(np.outer(row, row)[iu]) <= dp.gram_sensitivity(max_items=c) + 1e-9
    iu = np.triu_indices(x.shape[1])
    assert np.linalg.norm(np.outer(xb[0].toarray(), xb[0].toarray())[iu]) == pytest.approx(dp.gram_sensitivity(max_items=5))


def test_symmetric_noise_has_the_calibrated_std():
    z = dp.symmetric_noise(800, sigma=2.5, rng=np.random.default_rng(0))
    assert z.dtype == np.float32 and (z == z.T).all()
    upper = z[np.triu_indices(800)]
    assert upper.std() == pytest.approx(2.5, rel=0.01) and abs(upper.mean()) < 0.02


def test_release_adds_noise_to_a_symmetric_gram_and_the_counts():
    x = _random_csr(n_users=400, n_items=60, density=0.1)
    st = dp.release(x, epsilon=1.0, delta=1e-5, max_items=4, max_selected=50, seed=0, noise_seed=1)
    xb = dp.bound_contributions(x, max_items=4, seed=0)[:, st.items]
    exact = (xb.T @ xb).toarray()
    assert 2 <= len(st.items) <= 50 and (np.diff(st.items) > 0).all()
    assert (st.gram == st.gram.T).all() and not np.allclose(st.gram, exact)
    mu = dp.gaussian_mu(epsilon=1.0, delta=1e-5)
    assert st.sigma_gram == pytest.approx(dp.gram_sensitivity(max_items=4) / (mu * math.sqrt(1 - dp.COUNT_SHARE)))
    assert st.sigma_counts == pytest.approx(2.0 / (mu * math.sqrt(dp.COUNT_SHARE)))
    noise = (st.gram - exact)[np.triu_indices(len(st.items))]
    assert noise.std() == pytest.approx(st.sigma_gram, rel=0.15)
    assert not np.allclose(st.counts, np.asarray(dp.bound_contributions(x, max_items=4, seed=0).sum(axis=0)).ravel())
    assert st.info["sigma"]["gram"] == st.sigma_gram and st.info["epsilon"] == 1.0 and st.info["delta"] == 1e-5
    looser = dp.release(x, epsilon=8.0, delta=1e-5, max_items=4, max_selected=50, seed=0, noise_seed=1)
    assert looser.sigma_gram < st.sigma_gram
    # counts only (the popular model): the whole budget on them
    pop = dp.release(x, epsilon=1.0, delta=1e-5, max_items=4, max_selected=0, seed=0, noise_seed=1)
    assert pop.gram.shape == (0, 0) and pop.sigma_counts == pytest.approx(2.0 / mu)


def test_the_bound_chosen_from_the_data_follows_user_activity():
    hist = np.zeros(31)
    hist[4] = 500  # users with 16..31 items
    assert 16 <= dp.choose_bound(hist) <= 32
    hist[10] = 500  # and heavy ones: the pair signal of the light ones still decides
    assert dp.choose_bound(hist) <= 64
    x = _random_csr(n_users=500, n_items=200, density=0.1)  # about 20 items per user
    st = dp.release(x, epsilon=2.0, delta=1e-5, max_items=0, max_selected=100, seed=0, noise_seed=0)
    c = st.info["max_items_per_user"]["value"]
    assert 8 <= c <= 45 and st.info["shares_of_mu2"]["activity"] == dp.ACTIVITY_SHARE


@pytest.fixture(scope="module")
def taste_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dp")
    t = make_taste(n_users=120, items_per_cluster=20, per_user=12)
    write_embeddings(t, d / "emb")
    write_csv(t, d / "ev.csv")
    return t, d


def _cfg(**privacy) -> Config:
    cfg = Config()
    cfg.train.hybrid.dim = 16
    for k, v in privacy.items():
        setattr(cfg.train.privacy, k, v)
    return cfg


def test_private_training_records_epsilon_and_delta_in_the_manifest(taste_files, tmp_path):
    from avrec.artifacts import read_manifest
    from avrec.train import train

    t, d = taste_files
    lines: list[str] = []
    out = train(d / "emb", d / "ev.csv", tmp_path / "m", _cfg(epsilon=1.0), progress=lines.append)
    man = read_manifest(out, expect="model")
    p = man["extra"]["privacy"]
    n_users = man["counts"]["users"]
    assert p["epsilon"] == 1.0 and p["delta"] == pytest.approx(n_users ** -1.1)
    assert "Gaussian" in p["mechanism"] and p["sigma"]["gram"] > 0 and p["sigma"]["counts"] > 0
    assert p["max_items_per_user"]["value"] >= 1 and p["solver"] == "closed" and "item-side" in p["protected"]
    assert p["tuning"].startswith("skipped") and "tuned" not in man["extra"]
    assert man["extra"]["info"]["solver"]["chosen"] == "closed"
    assert any(line.startswith("tune: skipped (train.privacy.epsilon") for line in lines)
    # the served popularity is the noisy one, not the raw counts
    pop = np.load(out / "popularity.npy")
    seen = sp.csr_matrix((np.ones(len(np.load(out / "seen_indices.npy"))), np.load(out / "seen_indices.npy"),
                          np.load(out / "seen_indptr.npy")), shape=(n_users, len(pop)))
    assert not np.allclose(pop, np.asarray(seen.sum(axis=0)).ravel())
    assert np.isfinite(np.load(out / "item_vectors.npy")).all()


def test_epsilon_zero_leaves_training_unchanged(taste_files):
    from avrec.train import fit_model

    t, d = taste_files
    from avrec.data import from_arrays

    data = from_arrays([r[0] for r in t.rows], [r[1] for r in t.rows], catalogue=t.item_ids)
    seen = data.to_csr()
    base = _cfg()
    base.train.tune = "off"
    off = _cfg(epsilon=0.0, delta=0.5, max_items_per_user=2)  # the other keys do nothing while epsilon is 0
    off.train.tune = "off"
    a, pa, _ = fit_model("hybrid", seen, t.content, base, device="cpu", progress=lambda m: None)
    b, pb, _ = fit_model("hybrid", seen, t.content, off, device="cpu", progress=lambda m: None)
    assert pa == pb and "privacy" not in b.info
    for key, arr in a.factors().items():
        np.testing.assert_array_equal(arr, b.factors()[key])
    np.testing.assert_array_equal(a.popularity, b.popularity)


def test_impossible_combinations_are_refused(taste_files):
    from avrec.train import fit_model

    t, _ = taste_files
    from avrec.data import from_arrays

    seen = from_arrays([r[0] for r in t.rows], [r[1] for r in t.rows], catalogue=t.item_ids).to_csr()
    cfg = _cfg(epsilon=1.0)
    cfg.train.hybrid.solver = "sgd"
    with pytest.raises(ConfigError, match="closed and als solvers"):
        fit_model("hybrid", seen, t.content, cfg, device="cpu", progress=lambda m: None)
    with pytest.raises(ConfigError, match="implemented for train.model hybrid"):
        fit_model("ease", seen, None, _cfg(epsilon=1.0), device="cpu", progress=lambda m: None)
    with pytest.raises(ConfigError, match="--tune"):
        fit_model("hybrid", seen, t.content, _cfg(epsilon=1.0), device="cpu", progress=lambda m: None, tune=True)


def test_cli_train_with_epsilon_end_to_end(taste_files, tmp_path):
    _, d = taste_files
    base = ("train", str(d / "emb"), "--interactions", str(d / "ev.csv"), "--set", "train.hybrid.dim=16",
            "--set", "train.privacy.epsilon=1")
    r = run_avrec(*base, "-o", str(tmp_path / "m"), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "m")
    man = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert man["extra"]["privacy"]["epsilon"] == 1.0 and man["extra"]["privacy"]["delta"] > 0
    bad = run_avrec(*base, "--set", "train.hybrid.solver=sgd", "-o", str(tmp_path / "bad"), timeout=120)
    assert bad.returncode == 2 and "closed and als solvers" in bad.stderr and bad.stdout == ""
    assert len([line for line in bad.stderr.splitlines() if "error" in line.lower()]) <= 1
