"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

import numpy as np

from .base import Recommender


class Popular(Recommender):
    name = "popular"
    factor_model = True

    def _fit(self, seen, content, *, progress, **kw) -> None:
        priv = self.params.get("privacy") or {}
        if float(priv.get("epsilon") or 0.0) > 0:
            # train.privacy.epsilon > 0: the counts alone, released with the whole budget (avrec.models.dp)
            from .dp import release

            stats = release(seen, epsilon=float(priv["epsilon"]), delta=float(priv.get("delta") or 0.0),
                            max_items=int(priv.get("max_items_per_user") or 0), max_selected=0,
                            seed=int(priv.get("seed") or 0), noise_seed=priv.get("noise_seed"))
            self.popularity = stats.popularity()
            self.info["privacy"] = {**stats.info, "protected": "the popularity counts (every item's score)"}
        progress(f"popular: {int((self.popularity > 0).sum())} items with interactions")

    def score_history(self, history) -> np.ndarray:
        return np.broadcast_to(self.popularity, (history.shape[0], self.n_items)).astype(np.float32)

    def factors(self) -> dict[str, np.ndarray]:
        # 1-dim: user 1, item = normalised popularity, so it serves through the factor path
        top = max(float(self.popularity.max()), 1.0)
        return {
            "item_vectors": (self.popularity / top).reshape(-1, 1).astype(np.float32),
            "user_vectors": np.ones((self.n_users, 1), np.float32),
            "history_vectors": np.ones((self.n_items, 1), np.float32),
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, arrays) -> None:
        pass
