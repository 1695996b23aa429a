"""EASE (Steck 2019): closed-form item-item linear model with a zero diagonal."""

from __future__ import annotations

import numpy as np

from .base import Recommender


class EASE(Recommender):
    name = "ease"

    def __init__(self, l2: float = 500.0, **params):
        super().__init__(l2=float(l2), **params)
        self.active: np.ndarray | None = None  # (m,) item rows with training interactions
        self.B: np.ndarray | None = None  # (m, m) float32 item-item weights over active items

    def _fit(self, seen, content, *, progress, **kw) -> None:
        x = seen.astype(np.float64)
        self.active = np.flatnonzero(self.popularity > 0).astype(np.int64)
        xa = x[:, self.active]
        g = (xa.T @ xa).toarray()
        g[np.diag_indices_from(g)] += self.params["l2"]
        p = np.linalg.inv(g)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices_from(b)] = 0.0
        self.B = b.astype(np.float32)
        progress(f"ease: solved {len(self.active)} x {len(self.active)} system")

    def score_history(self, history) -> np.ndarray:
        out = np.zeros((history.shape[0], self.n_items), np.float32)
        # items never seen in training score below every active item
        out[:, :] = -1e9
        out[:, self.active] = history[:, self.active] @ self.B
        return out

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"active": self.active, "B": self.B}

    def _restore(self, a) -> None:
        self.active, self.B = a["active"], a["B"]
