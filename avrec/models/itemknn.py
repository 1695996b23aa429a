"""Item-based k-nearest neighbours: shrunk cosine similarity, top-N neighbours per item."""

from __future__ import annotations

import numpy as np

from .base import Recommender


class ItemKNN(Recommender):
    name = "itemknn"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0, **params):
        super().__init__(neighbours=int(neighbours), shrink=float(shrink), **params)
        self.sim = None  # (n_items, n_items) sparse CSR: sim[j, i] = similarity of i to history item j

    def _fit(self, seen, content, *, progress, block: int = 2048, **kw) -> None:
        import scipy.sparse as sp

        x = (seen > 0).astype(np.float32).tocsc()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        xt = x.T.tocsr()
        n = x.shape[1]
        kn = min(self.params["neighbours"], max(n - 1, 1))
        rows, cols, vals = [], [], []
        for start in range(0, n, block):
            stop = min(start + block, n)
            co = (xt @ x[:, start:stop]).toarray()  # (n, b) co-occurrence
            sim = co / (norms[:, None] * norms[None, start:stop] + self.params["shrink"] + 1e-9)
            sim[np.arange(start, stop), np.arange(stop - start)] = 0.0  # no self-similarity
            # keep the top-kn neighbours of each target column
            top = np.argpartition(-sim, kn - 1, axis=0)[:kn]
            v = np.take_along_axis(sim, top, axis=0)
            keep = v > 0
            rows.append(top[keep])
            cols.append(np.broadcast_to(np.arange(start, stop), top.shape)[keep])
            vals.append(v[keep])
        self.sim = sp.csr_matrix(
            (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
        progress(f"itemknn: {self.sim.nnz} similarities over {n} items")

    def score_history(self, history) -> np.ndarray:
        return np.asarray((history @ self.sim).toarray(), np.float32)

    def _arrays(self) -> dict[str, np.ndarray]:
        s = self.sim
        return {"indptr": s.indptr.astype(np.int64), "indices": s.indices.astype(np.int32), "data": s.data.astype(np.float32)}

    def _restore(self, a) -> None:
        import scipy.sparse as sp

        n = self.n_items
        self.sim = sp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=(n, n))
