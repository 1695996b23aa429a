"""Implicit-feedback ALS in torch, for ``--device cuda`` where ``implicit`` has no CUDA build
(pip's wheels have none): the same loss and conjugate-gradient steps as implicit's
(Takacs, Pilaszy, Tikk 2011), batched over all users (then all items) on the device.

For user u with confidences c_ui (1 off the history) the solve is
(Y'Y + reg I + Y' (C_u - I) Y) x_u = Y' C_u p_u; the sparse term is a gather of the
history's item vectors and a scatter-add back, in chunks of at most ``max_nnz`` stored
entries, so memory grows with max_nnz x factors, not with nnz x factors.
"""

from __future__ import annotations

import numpy as np


MIN_NNZ = 1 << 14  # the smallest chunk an out-of-memory retry goes down to


def _chunks(indptr: np.ndarray, max_nnz: int):
    """[start, stop) row ranges whose stored entries number at most max_nnz (one row may exceed it)."""
    n, start = len(indptr) - 1, 0
    while start < n:
        stop = int(np.searchsorted(indptr, indptr[start] + max_nnz, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        yield start, stop
        start = stop


def solve_rows(m, x, y, *, reg: float, cg_steps: int, max_nnz: int):
    """Update ``x`` (rows of ``m``, a CSR of confidences) in place by ``cg_steps`` conjugate-
    gradient steps on each row's ALS normal equations, given the other side's factors ``y``.

    m: scipy CSR (n_rows, n_cols), values c_ui > 0 (preference 1 where stored);
    x: (n_rows, f) torch tensor, the starting point; y: (n_cols, f) torch tensor.
    """
    import torch

    dev, f = y.device, y.shape[1]
    gram = y.T @ y + reg * torch.eye(f, device=dev, dtype=y.dtype)
    indptr = m.indptr
    for a, b in _chunks(indptr, max_nnz):
        lo, hi = int(indptr[a]), int(indptr[b])
        rows = torch.as_tensor(np.repeat(np.arange(b - a), np.diff(indptr[a:b + 1])), device=dev)
        cols = torch.as_tensor(m.indices[lo:hi].astype(np.int64), device=dev)
        c = torch.as_tensor(m.data[lo:hi].astype(np.float32), device=dev)
        yi = y[cols]  # (nnz, f): the history's item vectors, gathered once for every step

        def times(v):  # A v for each row: gram v + sum_i (c_ui - 1) (y_i . v) y_i
            dots = (yi * v[rows]).sum(1) * (c - 1.0)
            return (v @ gram).index_add_(0, rows, yi * dots[:, None])

        xs = x[a:b]
        rhs = torch.zeros_like(xs).index_add_(0, rows, yi * c[:, None])
        r = rhs - times(xs)
        p = r.clone()
        rs = (r * r).sum(1)
        for _ in range(cg_steps):
            ap = times(p)
            step = rs / (p * ap).sum(1).clamp_min(1e-20)
            xs += step[:, None] * p
            r -= step[:, None] * ap
            rs_new = (r * r).sum(1)
            p = r + (rs_new / rs.clamp_min(1e-20))[:, None] * p
            rs = rs_new
        x[a:b] = xs


def fit_als_torch(conf, *, factors: int, iterations: int, reg: float, seed: int, device: str,
                  cg_steps: int = 3, max_nnz: int = 1 << 20,
                  init_items: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(user factors (n_users, f), item factors (n_items, f)) float32 of ``conf``, a CSR of
    confidences (1 + alpha * weight), as :func:`avrec.models.mf.fit_als` returns them.

    init_items: (n_items, f) item factors to start from; the users then start at their
    linear fold-in on them (as fit_als's warm start does).

    A device that runs out of memory is tried again from the start with chunks a quarter the
    size (the chunk's gather is the part that grows with the data), down to ``MIN_NNZ``; then
    it is a DeviceError naming the way out.
    """
    import torch

    conf = conf.tocsr()
    conf.sort_indices()
    conf_t = conf.T.tocsr()
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    while True:
        try:
            return _fit(conf, conf_t, factors=factors, iterations=iterations, reg=reg, seed=seed, device=device,
                        cg_steps=cg_steps, max_nnz=max_nnz, init_items=init_items)
        except oom:
            if max_nnz <= MIN_NNZ:
                from ..errors import DeviceError

                raise DeviceError(f"{device} ran out of memory in ALS ({conf.shape[0]} users, {conf.shape[1]} items, "
                                  f"{factors} factors) even in chunks of {max_nnz} interactions; use --device cpu "
                                  "or fewer factors") from None
        max_nnz = max(MIN_NNZ, max_nnz // 4)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the failed try's tensors are unreferenced once its exception is gone


def _fit(conf, conf_t, *, factors, iterations, reg, seed, device, cg_steps, max_nnz, init_items):
    """One try of fit_als_torch on the CSR ``conf`` and its transpose ``conf_t``."""
    import torch

    dev = torch.device(device)
    n_users, n_items = conf.shape
    g = torch.Generator().manual_seed(int(seed))
    if init_items is not None:
        y = torch.as_tensor(np.ascontiguousarray(init_items, np.float32)).to(dev)
        x = torch.zeros((n_users, factors), dtype=torch.float32, device=dev)
        solve_rows(conf, x, y, reg=reg, cg_steps=factors, max_nnz=max_nnz)  # near the exact fold-in
    else:
        # implicit's start: small random factors, so the first steps are not dominated by them
        x = (torch.rand((n_users, factors), generator=g) * 0.01).to(dev)
        y = (torch.rand((n_items, factors), generator=g) * 0.01).to(dev)
    for _ in range(int(iterations)):
        solve_rows(conf, x, y, reg=reg, cg_steps=cg_steps, max_nnz=max_nnz)
        solve_rows(conf_t, y, x, reg=reg, cg_steps=cg_steps, max_nnz=max_nnz)
    return x.cpu().numpy().astype(np.float32), y.cpu().numpy().astype(np.float32)
