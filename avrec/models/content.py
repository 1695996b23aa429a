"""Content-only baseline: an item scores its cosine with the user's history in content space.

score(u, i) = cos(c_i, mean_w c_j over u's history), with every c the item's content vector
(the fused embedding train reads) centred on the catalogue mean and scaled to unit length.
Up to a per-user factor this is the weighted sum of the item's cosines to each history item,
so it ranks as content kNN over the whole history does, in one matrix product. It needs no
interactions for an item, so it scores cold items exactly as warm ones: it is the reference
``avrec evaluate`` sets beside the hybrid on the cold protocol, where popularity has nothing
to rank. A factor model: users are the weighted means of their items' vectors, which is how
serve and recommend fold a history in.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Recommender, fold_mean


def unit_rows(content: np.ndarray) -> np.ndarray:
    """(n, D) float32: rows centred on the mean of the rows with any content, scaled to unit
    length; rows that are all zero (items no modality described) stay zero."""
    x = np.asarray(content, np.float32)
    has = np.any(x != 0, axis=1)
    out = np.zeros_like(x)
    if has.any():
        mu = x[has].mean(axis=0, dtype=np.float64).astype(np.float32)
        xc = x[has] - mu
        out[has] = xc / np.maximum(np.linalg.norm(xc, axis=1, keepdims=True), 1e-12)
    return out


class Content(Recommender):
    name = "content"
    factor_model = True

    def __init__(self, **params):
        super().__init__(**params)
        self.item_vectors: np.ndarray | None = None  # (n_items, D) unit rows (zero: no content)
        self.user_vectors: np.ndarray | None = None  # (n_users, D) weighted means of history rows

    def _fit(self, seen, content, *, progress, **kw) -> None:
        if content is None or content.shape[1] == 0:
            raise InputError("model content scores items by their content: pass an embeddings artifact with vectors")
        self.item_vectors = unit_rows(content)
        if not np.any(self.item_vectors):
            raise InputError("model content: every item's content vector is zero (or all are equal), so there is "
                             "nothing to compare; check embed's log")
        self.user_vectors = self._fold(seen)
        progress(f"content: cosine in {content.shape[1]} content dims over {seen.shape[1]} items "
                 f"({int(np.any(self.item_vectors != 0, axis=1).sum())} with content)")

    def _fold(self, history) -> np.ndarray:
        return fold_mean(history, self.item_vectors)

    def score(self, user_rows) -> np.ndarray:
        self._check_fitted()
        return self.user_vectors[np.asarray(user_rows)] @ self.item_vectors.T

    def score_history(self, history) -> np.ndarray:
        return self._fold(history) @ self.item_vectors.T

    def factors(self) -> dict[str, np.ndarray]:
        return {"item_vectors": self.item_vectors, "user_vectors": self.user_vectors,
                "history_vectors": self.item_vectors}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"item_vectors": self.item_vectors, "user_vectors": self.user_vectors}

    def _restore(self, a) -> None:
        self.item_vectors, self.user_vectors = a["item_vectors"], a["user_vectors"]
