"""The model contract shared by every recommender.

``fit(interactions, item_content)`` learns from training interactions (an
:class:`~avrec.data.Interactions` or a users x items CSR) and optional item content vectors
(n_items, D); ``recommend(user_rows, k, exclude_seen)`` returns ``(ids, scores)`` of shape
(n, k) with item rows best first; ``score_history`` folds in any history without retraining;
``save`` / ``load`` use one ``.npz`` (no pickle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from ..errors import ArtifactError, InputError
from ..metrics import topk

Progress = Callable[[str], None]


def as_csr(interactions: Any, n_items: int | None = None):
    """A users x items float32 CSR from Interactions or any scipy sparse matrix."""
    import scipy.sparse as sp

    if hasattr(interactions, "to_csr"):
        m = interactions.to_csr()
    elif sp.issparse(interactions):
        m = sp.csr_matrix(interactions, dtype=np.float32)
    else:
        raise InputError(f"fit() needs Interactions or a sparse matrix, got {type(interactions).__name__}")
    if n_items is not None and m.shape[1] != n_items:
        raise InputError(f"interactions cover {m.shape[1]} items but item_content has {n_items} rows")
    m.sort_indices()
    return m


def scale_weights(m):
    """``m`` (CSR, float32) with its weights divided by their mean (a new CSR sharing ``m``'s
    indices: the caller's matrix is left as it was).

    Weights are relative: a log of 1-5 star ratings and one of play counts mean "more" the same
    way, but the regularisers (EASE's and the closed form's l2, ALS's reg and confidence alpha,
    the content prior) are sized for weights near 1. Without this, ratings weighing 3.5 on
    average made X'X 12x larger against the same l2 (MovieLens latest-small, every rating as
    its weight: hybrid NDCG@10 0.346 against 0.368 scaled). A binary log is unchanged."""
    import scipy.sparse as sp

    if m.nnz:
        mean = float(m.data.mean(dtype=np.float64))
        if mean > 0 and mean != 1.0:
            return sp.csr_matrix(((m.data / mean).astype(np.float32), m.indices, m.indptr), shape=m.shape)
    return m


def fold_mean(history, vectors: np.ndarray) -> np.ndarray:
    """(n, d) float32: each history row's weighted mean of ``vectors`` rows (n_items, d), the
    fold-in that serve and recommend apply to a user's history; an empty history gives 0."""
    s = np.asarray(history.sum(axis=1), np.float64)
    return (np.asarray(history @ vectors, np.float64) / np.where(s > 0, s, 1.0)).astype(np.float32)


def mask_seen(scores: np.ndarray, seen, rows: np.ndarray) -> None:
    """Set scores of items in ``seen[rows]`` (CSR) to -inf, in place."""
    sub = seen[rows]
    r = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    scores[r, sub.indices] = -np.inf


class Recommender:
    """Base class: subclasses implement ``_fit``, ``score_history`` and their arrays."""

    name: ClassVar[str] = ""
    factor_model: ClassVar[bool] = False  # exports user/item/history vectors for the index

    def __init__(self, **params: Any):
        self.params: dict[str, Any] = dict(params)
        self.seen = None  # (n_users, n_items) CSR of training interactions
        self.popularity: np.ndarray | None = None  # (n_items,) float32
        self.info: dict[str, Any] = {}  # what fitting found (epochs, validation score, ...)

    # -- training ------------------------------------------------------------------------
    def fit(self, interactions: Any, item_content: np.ndarray | None = None, *, progress: Progress | None = None, **kw: Any) -> "Recommender":
        content = None if item_content is None else np.asarray(item_content, np.float32)
        seen = self.weigh(as_csr(interactions, None if content is None else content.shape[0]))
        self.seen = seen
        self.popularity = np.asarray((seen > 0).sum(axis=0), np.float32).ravel()
        self._fit(seen, content, progress=progress or (lambda _m: None), **kw)
        return self

    def _fit(self, seen, content: np.ndarray | None, *, progress: Progress, **kw: Any) -> None:
        raise NotImplementedError

    def weigh(self, m):
        """``m`` (CSR of raw weights) as this model trains on it: ``params["weighting"]``
        (avrec/weighting.py), then divided by the mean. A new CSR; ``m`` is left as it was."""
        import scipy.sparse as sp

        from ..weighting import weigh

        how = self.params.get("weighting") or "linear"
        if how not in ("linear", "auto"):
            m = sp.csr_matrix((weigh(m.data, how), m.indices, m.indptr), shape=m.shape)
        self.info["weighting"] = "linear" if how == "auto" else how
        return scale_weights(m)

    @property
    def n_users(self) -> int:
        return 0 if self.seen is None else self.seen.shape[0]

    @property
    def n_items(self) -> int:
        return 0 if self.popularity is None else len(self.popularity)

    def _check_fitted(self) -> None:
        if self.seen is None:
            raise InputError(f"model '{self.name}' is not fitted; call fit() or load() first")

    # -- scoring ---------------------------------------------------------------------------
    def score_history(self, history) -> np.ndarray:
        """(n, n_items) float32 scores for users given by their histories: CSR (n, n_items) of weights."""
        raise NotImplementedError

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        """(n, n_items) float32 scores for training users (rows of ``seen``)."""
        self._check_fitted()
        return self.score_history(self.seen[np.asarray(user_rows)])

    def recommend(self, user_rows, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item rows and scores for training users: two (n, k) arrays."""
        self._check_fitted()
        rows = np.atleast_1d(np.asarray(user_rows, np.int64))
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_users):
            raise InputError(f"user row out of range (model has {self.n_users} users)")
        scores = self.score(rows)
        if exclude_seen:
            mask_seen(scores, self.seen, rows)
        return topk(scores, k)

    def recommend_history(self, history, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for fresh histories (CSR (n, n_items)), folded in without retraining."""
        import scipy.sparse as sp

        history = sp.csr_matrix(history, dtype=np.float32)
        scores = self.score_history(history)
        if exclude_seen:
            mask_seen(scores, history, np.arange(history.shape[0]))
        return topk(scores, k)

    def similar_items(self, item_rows, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items most recommended to a user whose history is just that item (itself excluded)."""
        import scipy.sparse as sp

        self._check_fitted()
        rows = np.atleast_1d(np.asarray(item_rows, np.int64))
        hist = sp.csr_matrix((np.ones(len(rows), np.float32), (np.arange(len(rows)), rows)), shape=(len(rows), self.n_items))
        scores = self.score_history(hist)
        scores[np.arange(len(rows)), rows] = -np.inf
        return topk(scores, k)

    # -- factor export (index / recommend serve these with numpy only) ---------------------
    def factors(self) -> dict[str, np.ndarray]:
        """{item_vectors (n_items, d), user_vectors (n_users, d), history_vectors (n_items, d)}."""
        raise NotImplementedError(f"model '{self.name}' is not a factor model")

    def projections(self) -> dict[str, np.ndarray]:
        """{content_projection, history_projection}: (D+1, d) affine maps [x, 1] @ M from a raw
        content vector x (D,) to the vectors the model gives an item without interactions;
        empty for models where no exact affine map exists (``avrec index --add`` then refuses)."""
        return {}

    # -- persistence ---------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """One ``.npz`` holding the parameters, the training CSR and popularity (no pickle)."""
        self._check_fitted()
        path = Path(path)
        meta = json.dumps({"name": self.name, "params": self.params, "info": self.info, "shape": list(self.seen.shape)})
        arrays = {f"w_{k}": v for k, v in self._arrays().items()}
        np.savez(
            path, meta=np.array(meta), popularity=self.popularity,
            seen_indptr=self.seen.indptr.astype(np.int64), seen_indices=self.seen.indices.astype(np.int32),
            seen_data=self.seen.data.astype(np.float32), **arrays,
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Recommender":
        """Load any model saved by :meth:`save`; the class comes from the file."""
        import scipy.sparse as sp

        from .registry import get_model_class

        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"cannot read model weights {path}: {e}") from None
        with z:
            meta = json.loads(str(z["meta"]))
            klass = get_model_class(meta["name"])
            if cls is not Recommender and not issubclass(klass, cls):
                raise ArtifactError(f"{path} holds a '{meta['name']}' model, not '{cls.name}'")
            model = klass(**meta["params"])
            model.info = meta.get("info", {})
            model.popularity = z["popularity"]
            model.seen = sp.csr_matrix((z["seen_data"], z["seen_indices"], z["seen_indptr"]), shape=tuple(meta["shape"]))
            model._restore({k[2:]: z[k] for k in z.files if k.startswith("w_")})
        return model
