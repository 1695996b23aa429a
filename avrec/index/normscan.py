"""Exact top-k by inner product that reads only the items that can still win.

Items are stored in decreasing order of their norm. A query scans them in growing blocks
and stops once its k-th best score reaches the Cauchy-Schwarz bound ``|q| * |v|`` of the
largest item left, since no later item can beat it: the answer is the full scan's. On
factor-model vectors, whose norms spread with popularity, that bound is reached early: on
the 100k-item S3 model of benchmarks/scale_data.py a median user reads 4% of the items
(p90 12%), so a batch of 16 costs 0.45x one (b, d) x (d, n) product with its top-k.
Vectors whose norms are all alike prune nothing and pay the blocks' bookkeeping (1.5-1.9x
the full product), so :meth:`NormScan.calibrate` measures what the scan reads for sample
queries and falls back to the one full product where it would read most of the scores.

numpy only: the serving path imports it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .read import topk_batch

# the bound is computed in float32 like the scores; a score may round a hair above it
_SLACK = 1e-5


class NormScan:
    """Items (n, d) sorted by decreasing norm, for exact batched top-k (:meth:`topk`)."""

    def __init__(self, vectors: np.ndarray, *, first_block: int | None = None):
        v = np.asarray(vectors, dtype=np.float32)
        n = len(v)
        norms = np.linalg.norm(v, axis=1)
        self.order = np.argsort(-norms, kind="stable")  # sorted position -> row
        self.position = np.empty(n, np.int64)  # row -> sorted position
        self.position[self.order] = np.arange(n)
        self.vt = np.ascontiguousarray(v[self.order].T)  # (d, n) in norm order: each block one GEMM
        self.norms = norms[self.order].astype(np.float32)
        self.n = n
        # blocks double from a sixteenth of the items (at least 4096): one or two blocks
        # answer most queries, and a query that needs everything pays ~log2(16) more GEMM calls
        first = first_block or max(4096, n // 16)
        edges = [0]
        while edges[-1] < n:
            edges.append(min(n, edges[-1] + max(first, edges[-1])))
        self.edges = edges
        self.last_read = 0  # (query, item) scores the last topk computed: the work the bound saved
        self.full = False  # True: one product over every item (see calibrate)
        self.probe_share: float | None = None

    @classmethod
    def probed(cls, vectors: np.ndarray, queries: np.ndarray, *, k: int = 10, sample: int = 256, seed: int = 0
               ) -> "NormScan":
        """The scan over ``vectors``, calibrated on ``sample`` rows (seeded) of ``queries``: the
        model's own user vectors (or its items, for an index without users)."""
        scan = cls(vectors)
        if len(queries):
            pick = np.sort(np.random.default_rng(seed).choice(len(queries), min(sample, len(queries)), replace=False))
            scan.calibrate(np.asarray(queries[pick], np.float32), k=k)
        return scan

    def calibrate(self, probe: np.ndarray, *, k: int = 10, batch: int = 16, max_share: float = 0.5) -> float:
        """Choose between the scan and one full product from what the scan reads for sample
        queries (the index's own user vectors, say): where it would compute more than
        ``max_share`` of the scores (norms all alike: unit vectors), the blocks' bookkeeping
        costs more than it saves (1.5-1.9x the full product, benchmarks/normscan.py), so
        every batch then takes the full product. The answers are the same either way.
        Returns the share of scores the scan computed for the probe."""
        probe = np.asarray(probe, dtype=np.float32)
        self.full = False
        read = 0
        for a in range(0, len(probe), batch):
            self.topk(probe[a:a + batch], k)
            read += self.last_read
        self.probe_share = read / max(1, len(probe) * self.n)
        self.full = self.probe_share > max_share
        return self.probe_share

    def topk(self, q: np.ndarray, k: int, *, exclude: Sequence[np.ndarray | None] | None = None,
             allowed: Sequence[np.ndarray | None] | None = None,
             exclude_pairs: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row-wise top k of ``q @ vectors.T`` for q (b, d), best first: (b, k) rows and scores,
        with -inf scores (and row 0) where a query has fewer than k items left.

        ``exclude[j]``: item rows query j must not return, or all of them at once as
        ``exclude_pairs`` (query indices, item rows), as a CSR of seen items gives them;
        ``allowed[j]``: an (n,) bool mask of the rows it may return (None: all)."""
        q = np.asarray(q, dtype=np.float32)
        b = len(q)
        k = min(k, self.n)
        best_s = np.full((b, k), -np.inf, np.float32)
        best_p = np.zeros((b, k), np.int64)  # sorted positions
        if b == 0 or k == 0:
            return best_p, best_s
        qn = np.linalg.norm(q, axis=1)
        # every exclusion of the batch as (query, sorted position), sorted by position: each
        # block masks its slice of them in one fancy assignment
        ex_q, ex_p = np.zeros(0, np.int64), np.zeros(0, np.int64)
        if exclude is not None:
            sizes = [0 if e is None else len(e) for e in exclude]
            if sum(sizes):
                ex_q = np.repeat(np.arange(b), sizes)
                ex_p = self.position[np.concatenate([np.asarray(e, np.int64) for e in exclude if e is not None and len(e)])]
        if exclude_pairs is not None and len(exclude_pairs[0]):
            ex_q = np.concatenate([ex_q, np.asarray(exclude_pairs[0], np.int64)])
            ex_p = np.concatenate([ex_p, self.position[np.asarray(exclude_pairs[1], np.int64)]])
        if len(ex_p):
            o = np.argsort(ex_p, kind="stable")
            ex_q, ex_p = ex_q[o], ex_p[o]
        allow = list(allowed) if allowed is not None and any(m is not None for m in allowed) else None
        slot = np.arange(b)  # query -> its row among the active ones
        if self.full:
            return self._full(q, k, ex_q, ex_p, allow)
        active = np.arange(b)
        read = 0
        edges = self.edges
        if edges[1] < k:  # the first block holds k items at least
            edges = [0] + [e for e in edges[1:] if e >= k]
        for a, z in zip(edges[:-1], edges[1:]):
            s = q[active] @ self.vt[:, a:z]  # (active, z - a)
            read += s.size
            if allow is not None:
                for i, j in enumerate(active):
                    if allow[j] is not None:
                        s[i, ~allow[j][self.order[a:z]]] = -np.inf
            lo, hi = np.searchsorted(ex_p, (a, z))
            if hi > lo:
                qi, pi = slot[ex_q[lo:hi]], ex_p[lo:hi] - a
                live = qi >= 0
                s[qi[live], pi[live]] = -np.inf
            if a == 0:  # the first block: a plain top-k, kept best first (it holds >= k items)
                best_p[:], best_s[:] = topk_batch(s, k)
            else:  # later ones: only what beats a query's k-th best so far is merged in
                r, c = np.nonzero(s > best_s[active, -1][:, None])
                if len(r):
                    _merge(best_s, best_p, active, r, c + a, s[r, c], k)
            if z >= self.n:
                break
            bound = qn[active] * self.norms[z] * (1 + _SLACK)
            active = active[best_s[active, -1] < bound]
            slot[:] = -1
            slot[active] = np.arange(len(active))
            if not len(active):
                break
        self.last_read = read
        rows = self.order[best_p]
        rows[~np.isfinite(best_s)] = 0
        return rows, best_s

    def _full(self, q, k, ex_q, ex_p, allow) -> tuple[np.ndarray, np.ndarray]:
        s = q @ self.vt
        if allow is not None:
            for j, m in enumerate(allow):
                if m is not None:
                    s[j, ~m[self.order]] = -np.inf
        s[ex_q, ex_p] = -np.inf
        self.last_read = s.size
        pos, vals = topk_batch(s, k)
        rows = self.order[pos]
        rows[~np.isfinite(vals)] = 0
        return rows, vals


def _merge(best_s: np.ndarray, best_p: np.ndarray, active: np.ndarray, r: np.ndarray, pos: np.ndarray,
           vals: np.ndarray, k: int) -> None:
    """Fold candidates (active row r, position, value) into the best-first (b, k) lists in place."""
    rows = np.unique(r)  # the active rows with candidates
    q = active[rows]
    m = len(rows)
    rr = np.concatenate([np.repeat(np.arange(m), k), np.searchsorted(rows, r)])
    vv = np.concatenate([best_s[q].ravel(), vals])
    pp = np.concatenate([best_p[q].ravel(), pos])
    o = np.lexsort((-vv, rr))  # by row, then score descending
    rr, vv, pp = rr[o], vv[o], pp[o]
    rank = np.arange(len(rr)) - np.searchsorted(rr, np.arange(m))[rr]
    keep = rank < k
    best_s[q] = vv[keep].reshape(m, k)
    best_p[q] = pp[keep].reshape(m, k)
