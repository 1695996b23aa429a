"""Matrix factorisation by implicit-feedback ALS (Hu, Koren, Volinsky 2008), numpy only."""

from __future__ import annotations

import numpy as np

from .base import Recommender


def _solve_rows(m, fixed: np.ndarray, *, alpha: float, reg: float, chunk: int = 1024) -> np.ndarray:
    """For each row r of CSR ``m``: argmin_x sum_j c_rj (p_rj - x.y_j)^2 + reg |x|^2 (all j)."""
    n, f = m.shape[0], fixed.shape[1]
    base = fixed.T @ fixed + reg * np.eye(f)
    out = np.zeros((n, f), np.float64)
    indptr, indices, data = m.indptr, m.indices, m.data
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        rows = [r for r in range(start, stop) if indptr[r + 1] > indptr[r]]
        if not rows:
            continue
        a = np.empty((len(rows), f, f))
        b = np.empty((len(rows), f))
        for k, r in enumerate(rows):
            sl = slice(indptr[r], indptr[r + 1])
            y = fixed[indices[sl]]
            c = alpha * data[sl]  # confidence - 1
            a[k] = base + (y.T * c) @ y
            b[k] = (1.0 + c) @ y
        out[rows] = np.linalg.solve(a, b[..., None])[..., 0]
    return out


class MF(Recommender):
    name = "mf"
    factor_model = True

    def __init__(self, factors: int = 64, epochs: int = 15, reg: float = 0.01, alpha: float = 10.0, seed: int = 0, **params):
        super().__init__(factors=int(factors), epochs=int(epochs), reg=float(reg), alpha=float(alpha), seed=int(seed), **params)
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None

    def _fit(self, seen, content, *, progress, **kw) -> None:
        p = self.params
        rng = np.random.default_rng(p["seed"])
        n_users, n_items = seen.shape
        y = rng.normal(0, 0.01, (n_items, p["factors"]))
        x = np.zeros((n_users, p["factors"]))
        st = seen.T.tocsr()
        for it in range(p["epochs"]):
            x = _solve_rows(seen, y, alpha=p["alpha"], reg=p["reg"])
            y = _solve_rows(st, x, alpha=p["alpha"], reg=p["reg"])
            if (it + 1) % 5 == 0 or it + 1 == p["epochs"]:
                progress(f"mf: ALS iteration {it + 1}/{p['epochs']}")
        self.user_factors = x.astype(np.float32)
        self.item_factors = y.astype(np.float32)

    def score(self, user_rows) -> np.ndarray:
        self._check_fitted()
        return self.user_factors[np.asarray(user_rows)] @ self.item_factors.T

    def _history_matrix(self) -> np.ndarray:
        # linear fold-in: x = (Y'Y + reg I)^-1 Y' h, the ALS solution without the confidence term;
        # a positive rescaling of x (weighted mean instead of sum) leaves the ranking unchanged
        y = self.item_factors.astype(np.float64)
        g = y.T @ y + self.params["reg"] * np.eye(y.shape[1])
        return (y @ np.linalg.inv(g)).astype(np.float32)

    def score_history(self, history) -> np.ndarray:
        u = np.asarray(history @ self._history_matrix(), np.float32)
        return u @ self.item_factors.T

    def factors(self) -> dict[str, np.ndarray]:
        return {
            "item_vectors": self.item_factors,
            "user_vectors": self.user_factors,
            "history_vectors": self._history_matrix(),
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _restore(self, a) -> None:
        self.user_factors, self.item_factors = a["user_factors"], a["item_factors"]
