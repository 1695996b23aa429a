"""Matrix factorisation by implicit-feedback ALS (Hu, Koren, Volinsky 2008), through the
``implicit`` library: its conjugate-gradient ALS (C++, multi-threaded, with a CUDA build;
where that build is not installed, cuda runs the same steps in torch, avrec/models/torch_als.py)
ran 15 iterations of 64 factors on 0.5M interactions in seconds where this module's own
numpy ALS with exact per-user solves took minutes (benchmarks/scale.py). Confidence is
1 + alpha * weight, as in the paper; implicit reads the confidence from the matrix values.
"""

from __future__ import annotations

import numpy as np

from .base import Recommender


def als_engine(device: str) -> str:
    """Which ALS runs on ``device``: implicit's (CPU, or its CUDA build where installed), else
    torch's on the GPU (avrec/models/torch_als.py; pip's implicit wheels have no CUDA)."""
    if not device.startswith("cuda"):
        return "implicit"
    import implicit.gpu

    return "implicit" if implicit.gpu.HAS_CUDA else "torch"


def fit_als(seen, *, factors: int, iterations: int, reg: float, alpha: float, seed: int,
            device: str = "cpu", init_items: np.ndarray | None = None,
            engine: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(user factors (n_users, f), item factors (n_items, f)) float32 of ``seen`` (CSR weights).

    init_items: (n_items, f) item factors to start from instead of random ones (a warm start:
    the users start at the linear fold-in of their histories on them, so the first
    conjugate-gradient steps begin near the solution). On S3 of benchmarks/scale.py, 3-5
    iterations from a 17% user subset's factors matched 15 from random (NDCG@10 0.1207 against
    0.1200). Ignored by implicit's CUDA build, which keeps the factors on the device.
    engine: "implicit" or "torch" (default :func:`als_engine` of ``device``); a benchmark sets it
    to time torch's on the CPU.
    """
    from threadpoolctl import threadpool_limits

    conf = seen.astype(np.float32, copy=True)
    conf.data = 1.0 + alpha * conf.data
    gpu = device.startswith("cuda")
    if (engine or als_engine(device)) == "torch":  # by default: cuda without implicit's CUDA build
        from .torch_als import fit_als_torch

        return fit_als_torch(conf, factors=int(factors), iterations=int(iterations), reg=float(reg), seed=int(seed),
                             device=device, init_items=init_items)
    if gpu:
        from implicit.gpu.als import AlternatingLeastSquares
    else:
        from implicit.cpu.als import AlternatingLeastSquares
    # implicit parallelises over users itself: a BLAS pool underneath would only contend with it
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=int(factors), regularization=float(reg), alpha=1.0,
                                        iterations=int(iterations), random_state=int(seed))
        if init_items is not None and not gpu:
            y = np.ascontiguousarray(init_items, np.float32)
            if y.shape != (seen.shape[1], int(factors)):
                raise ValueError(f"init_items has shape {y.shape}; expected {(seen.shape[1], int(factors))}")
            g = np.linalg.inv(y.T.astype(np.float64) @ y + float(reg) * np.eye(y.shape[1]))
            model.item_factors = y.copy()
            model.user_factors = np.ascontiguousarray(seen @ (y @ g).astype(np.float32), np.float32)
        model.fit(conf, show_progress=False)
    if gpu:
        model = model.to_cpu()
    return np.asarray(model.user_factors, np.float32), np.asarray(model.item_factors, np.float32)


class MF(Recommender):
    name = "mf"
    factor_model = True

    def __init__(self, factors: int = 64, epochs: int = 15, reg: float = 0.01, alpha: float = 10.0, seed: int = 0,
                 device: str = "cpu", **params):
        super().__init__(factors=int(factors), epochs=int(epochs), reg=float(reg), alpha=float(alpha), seed=int(seed), **params)
        self.device = device
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None

    def _fit(self, seen, content, *, progress, **kw) -> None:
        p = self.params
        self.user_factors, self.item_factors = fit_als(seen, factors=p["factors"], iterations=p["epochs"], reg=p["reg"],
                                                       alpha=p["alpha"], seed=p["seed"], device=self.device)
        progress(f"mf: {p['epochs']} ALS iterations ({als_engine(self.device)}, {'cuda' if self.device.startswith('cuda') else 'cpu'})")

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
