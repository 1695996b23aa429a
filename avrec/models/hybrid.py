"""The default hybrid: a low-rank linear item-to-item model with content towers.

score(u, i) = (weighted mean over j in H_u of P_j) . Q_i + b_i, where

    P_j = E_j + A(c_j)      history side: free id embedding + projected content
    Q_i = F_i + B(c_i)      target side, likewise;  b_i = f_i + w . c_i

c is the item's content vector (the fused embedding). Training (PyTorch) masks a random
part of each user's history and predicts it from the rest with a softmax over all items
with training interactions (a denoising, leave-some-out objective, like a low-rank EASE).
Id embeddings are dropped per item at random so the content towers learn to carry an
item alone. Serving needs numpy only:

- warm items use E/F and content; items without interactions get Q from content alone;
- a user vector is the weighted mean of ``history_vectors`` rows (P with a trailing 1),
  so a fresh history is folded in without retraining.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .base import Progress, Recommender


def _holdout(seen, ratio: float, seed: int):
    """Split a CSR per user: (fit, held) with ``ratio`` of each user's items held (users with >= 3 only)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    coo = seen.tocoo()
    counts = np.diff(seen.indptr)
    order = np.lexsort((rng.random(coo.nnz), coo.row))
    starts = np.repeat(seen.indptr[:-1], counts)
    pos = np.arange(coo.nnz) - starts
    n_held = np.where(counts >= 3, np.floor(counts * ratio + rng.random(len(counts))), 0).astype(np.int64)
    held = np.zeros(coo.nnz, bool)
    held[order] = pos < np.repeat(n_held, counts)
    mk = lambda m: sp.csr_matrix((coo.data[m], (coo.row[m], coo.col[m])), shape=seen.shape)  # noqa: E731
    return mk(~held), mk(held)


class Hybrid(Recommender):
    name = "hybrid"
    factor_model = True

    def __init__(
        self, dim: int = 128, epochs: int = 300, lr: float = 0.005, weight_decay: float = 0.0,
        batch_size: int = 256, negatives: int = 0, content_weight: float = 1.0, dropout: float = 0.3,
        patience: int = 20, mask_ratio: float = 0.25, content_hidden: int = 0, validation: float = 0.1,
        eval_k: int = 20, refit: bool = True, seed: int = 0, device: str = "cpu", **params: Any,
    ):
        super().__init__(
            dim=int(dim), epochs=int(epochs), lr=float(lr), weight_decay=float(weight_decay),
            batch_size=int(batch_size), negatives=int(negatives), content_weight=float(content_weight),
            dropout=float(dropout), patience=int(patience), mask_ratio=float(mask_ratio),
            content_hidden=int(content_hidden), validation=float(validation), eval_k=int(eval_k),
            refit=bool(refit), seed=int(seed), **params,
        )
        self.device = device
        self.item_vectors: np.ndarray | None = None  # (n_items, dim + 1)
        self.history_vectors: np.ndarray | None = None  # (n_items, dim + 1), last column 1
        self.user_vectors: np.ndarray | None = None  # (n_users, dim + 1)

    # ------------------------------------------------------------------------------------
    def _fit(self, seen, content, *, progress: Progress, **kw) -> None:
        p = self.params
        t0 = time.perf_counter()
        epochs = p["epochs"]
        if p["validation"] > 0 and p["patience"] > 0:
            fit, held = _holdout(seen, p["validation"], p["seed"])
            net, best_epoch, best = self._train(fit, content, epochs=epochs, held=held, progress=progress)
            self.info.update(best_epoch=best_epoch, validation_ndcg=best)
            progress(f"hybrid: best validation NDCG@{p['eval_k']} {best:.4f} at epoch {best_epoch}")
            if p["refit"]:
                # the held-out part is data too: retrain on everything for the chosen epochs
                net, _, _ = self._train(seen, content, epochs=max(best_epoch, 1), held=None, progress=progress)
        else:
            net, _, _ = self._train(seen, content, epochs=epochs, held=None, progress=progress)
        self._export(net, seen, content)
        self.info["fit_seconds"] = round(time.perf_counter() - t0, 3)

    def _train(self, seen, content, *, epochs: int, held, progress: Progress):
        import torch

        p = self.params
        torch.manual_seed(p["seed"])
        rng = np.random.default_rng(p["seed"])
        dev = torch.device(self.device)
        n_users, n_items = seen.shape
        active = np.flatnonzero(np.diff(seen.tocsc().indptr) > 0)
        net = _Net(n_items, content, dim=p["dim"], hidden=p["content_hidden"], content_weight=p["content_weight"]).to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        act_t = torch.as_tensor(active, device=dev)
        users = np.flatnonzero(np.diff(seen.indptr) >= 2)
        eval_users = None if held is None else np.flatnonzero(np.diff(held.indptr) > 0)
        best, best_epoch, best_state, bad = -1.0, 0, None, 0
        for epoch in range(1, epochs + 1):
            net.train()
            perm = rng.permutation(users)
            for s in range(0, len(perm), p["batch_size"]):
                rows = perm[s : s + p["batch_size"]]
                x = torch.as_tensor(seen[rows].toarray(), device=dev)
                loss = self._step_loss(net, x, act_t, rng, dev)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if held is None:
                continue
            score = self._validate(net, seen, held, eval_users, active, dev)
            if score > best + 1e-5:
                best, best_epoch, bad = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                bad += 1
            if epoch % 10 == 0:
                progress(f"hybrid: epoch {epoch} loss {float(loss.detach()):.4f} validation NDCG@{p['eval_k']} {score:.4f}")
            if bad >= p["patience"]:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        return net, best_epoch or epochs, best

    def _step_loss(self, net, x, act_t, rng, dev):
        import torch

        p = self.params
        pos = x > 0
        r = torch.rand(x.shape, device=dev)
        r = torch.where(pos, r, torch.full_like(r, 2.0))
        target = r < p["mask_ratio"]
        # every user predicts at least one item and keeps at least one as input
        first = r.argmin(dim=1, keepdim=True)
        target.scatter_(1, first, True)
        keep = torch.where(pos, r, torch.full_like(r, -1.0)).argmax(dim=1, keepdim=True)
        target.scatter_(1, keep, False)
        target &= pos
        inp = x * (~target)
        tw = (x * target)[:, act_t]
        drop_id = p["dropout"]
        P, Q, b = net.towers(drop_id=drop_id, rows=act_t)
        u = (inp @ P) / inp.sum(dim=1, keepdim=True).clamp_min(1e-8)
        neg = p["negatives"]
        if neg > 0 and neg < len(act_t):
            # sampled softmax: the batch's targets plus ``neg`` shared random items
            cand = torch.unique(torch.cat([tw.nonzero()[:, 1], torch.randint(len(act_t), (neg,), device=dev)]))
            logits = u @ Q[cand].T + b[cand]
            tw = tw[:, cand]
        else:
            logits = u @ Q.T + b
        logp = torch.log_softmax(logits, dim=1)
        return (-(tw * logp).sum(dim=1) / tw.sum(dim=1).clamp_min(1e-8)).mean()

    def _validate(self, net, seen, held, eval_users, active, dev) -> float:
        import torch

        k = self.params["eval_k"]
        net.eval()
        with torch.no_grad():
            P, Q, b = net.towers(drop_id=0.0, rows=None)
            P, Q, b = P.cpu().numpy(), Q.cpu().numpy(), b.cpu().numpy()
        h = seen[eval_users]
        u = np.asarray(h @ P) / np.maximum(np.asarray(h.sum(axis=1)), 1e-8)
        scores = np.full((len(eval_users), seen.shape[1]), -np.inf, np.float32)
        scores[:, active] = u @ Q[active].T + b[active]
        rr = np.repeat(np.arange(len(eval_users)), np.diff(h.indptr))
        scores[rr, h.indices] = -np.inf
        from ..evaluate import ndcg_at_k

        return ndcg_at_k(scores, held[eval_users], k)

    def _export(self, net, seen, content) -> None:
        import torch

        net.eval()
        with torch.no_grad():
            P, Q, b = net.towers(drop_id=0.0, rows=None)
            P, Q, b = P.cpu().numpy(), Q.cpu().numpy(), b.cpu().numpy()
        active = np.diff(seen.tocsc().indptr) > 0
        # untrained id parameters of items without interactions carry nothing: content only
        with torch.no_grad():
            Pc, Qc, bc = net.content_towers()
        P = np.where(active[:, None], P, Pc.cpu().numpy())
        Q = np.where(active[:, None], Q, Qc.cpu().numpy())
        b = np.where(active, b, bc.cpu().numpy())
        n = seen.shape[0]
        self.history_vectors = np.hstack([P, np.ones((len(P), 1))]).astype(np.float32)
        self.item_vectors = np.hstack([Q, b[:, None]]).astype(np.float32)
        self.user_vectors = self._fold(seen) if n else np.zeros((0, P.shape[1] + 1), np.float32)

    def _fold(self, history) -> np.ndarray:
        s = np.asarray(history.sum(axis=1), np.float64)
        u = np.asarray(history @ self.history_vectors, np.float64) / np.where(s > 0, s, 1.0)
        u[:, -1] = 1.0  # an empty history scores by the item bias alone
        return u.astype(np.float32)

    # ------------------------------------------------------------------------------------
    def score(self, user_rows) -> np.ndarray:
        self._check_fitted()
        return self.user_vectors[np.asarray(user_rows)] @ self.item_vectors.T

    def score_history(self, history) -> np.ndarray:
        return self._fold(history) @ self.item_vectors.T

    def factors(self) -> dict[str, np.ndarray]:
        return {"item_vectors": self.item_vectors, "user_vectors": self.user_vectors, "history_vectors": self.history_vectors}

    def _arrays(self) -> dict[str, np.ndarray]:
        return self.factors()

    def _restore(self, a) -> None:
        self.item_vectors, self.user_vectors, self.history_vectors = a["item_vectors"], a["user_vectors"], a["history_vectors"]


def _Net(n_items: int, content: np.ndarray | None, *, dim: int, hidden: int, content_weight: float):
    """The towers as a torch module (built lazily so importing this file needs no torch)."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.E = nn.Parameter(torch.randn(n_items, dim) * 0.01)
            self.F = nn.Parameter(torch.randn(n_items, dim) * 0.01)
            self.f = nn.Parameter(torch.zeros(n_items))
            self.cw = content_weight
            if content is not None and content.shape[1] > 0 and content_weight > 0:
                c = content.astype(np.float32)
                c = c - c.mean(axis=0, keepdims=True)
                c /= max(float(np.linalg.norm(c, axis=1).mean()), 1e-8)
                self.register_buffer("c", torch.as_tensor(c))
                d_in = c.shape[1]
                mk = (lambda: nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, dim))) if hidden else (lambda: nn.Linear(d_in, dim, bias=False))
                self.A, self.B = mk(), mk()
                self.w = nn.Linear(d_in, 1)
            else:
                self.c = None

        def content_towers(self):
            if self.c is None:
                z = torch.zeros(n_items, dim, device=self.E.device)
                return z, z, torch.zeros(n_items, device=self.E.device)
            return self.cw * self.A(self.c), self.cw * self.B(self.c), self.w(self.c).squeeze(1)

        def towers(self, *, drop_id: float, rows):
            """P (n, dim) for all items; Q (m, dim), b (m,) for the target ``rows`` (all when None)."""
            E, F, f = self.E, self.F, self.f
            if drop_id > 0 and self.c is not None:
                E = E * (torch.rand(n_items, 1, device=E.device) >= drop_id)
                keep = (torch.rand(n_items, device=E.device) >= drop_id).float()
                F = F * keep[:, None]
                f = f * keep
            Pc, Qc, bc = self.content_towers()
            P = E + Pc
            Q, b = F + Qc, f + bc
            if rows is not None:
                Q, b = Q[rows], b[rows]
            return P, Q, b

    return Net()
