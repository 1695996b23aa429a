"""The train stage: embeddings + interactions -> a ``model`` artifact (docs/artifacts.md)."""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import InputError

# the small search run by ``avrec train --tune`` (hybrid only), scored on the validation split
TUNE_GRID = {
    "closed": {"l2": (100.0, 200.0, 400.0), "content_prior": (0.0, 30.0, 100.0), "dim": (256, 384)},
    "als": {"als_factors": (64, 128), "als_reg": (0.01, 0.1, 1.0), "als_alpha": (1.0, 10.0)},
    "sgd": {"dim": (64, 128, 256), "dropout": (0.1, 0.3, 0.5), "weight_decay": (0.0, 1e-4)},
}


def tune_hybrid(seen, content, cfg, *, device: str, progress: Callable[[str], None]) -> dict[str, Any]:
    """Grid search over the hybrid's main hyperparameters: fit on the training part less a
    validation holdout (``train.validation`` of each user's items), score NDCG@eval_k there."""
    from .metrics import ndcg_at_k
    from .models.hybrid import _holdout
    from .models.registry import build_model

    if cfg.train.validation <= 0:
        raise InputError("--tune needs a validation split: set train.validation above 0")
    fit, held = _holdout(seen, cfg.train.validation, cfg.runtime.seed)
    users = np.flatnonzero(np.diff(held.indptr) > 0)
    from .models.hybrid import choose_solver

    hc = cfg.train.hybrid
    k = 0 if content is None else (min(hc.content_dim, content.shape[1]) if hc.content_dim else content.shape[1])
    solver, why = choose_solver({"solver": hc.solver, "closed_max": hc.closed_max}, n_users=seen.shape[0],
                                n_active=int((np.diff(seen.tocsc().indptr) > 0).sum()), content_dim=k)
    progress(f"tune: searching the {solver} solver ({why})")
    grid = TUNE_GRID[solver]
    keys = list(grid)
    best: tuple[float, dict[str, Any]] = (-1.0, {})
    for values in itertools.product(*(grid[k] for k in keys)):
        over = dict(zip(keys, values))
        m = build_model("hybrid", cfg.train, seed=cfg.runtime.seed, device=device, refit=False, solver=solver, **over)
        m.fit(fit, content)
        scores = m.score(users)
        h = fit[users]
        scores[np.repeat(np.arange(len(users)), np.diff(h.indptr)), h.indices] = -np.inf
        score = ndcg_at_k(scores, held[users], m.params["eval_k"])
        progress(f"tune: {over} -> validation NDCG@{m.params['eval_k']} {score:.4f}")
        if score > best[0]:
            best = (score, over)
    progress(f"tune: best {best[1]} (validation NDCG {best[0]:.4f})")
    return {"solver": solver, **best[1]}


def train(
    embeddings_dir: str | Path, interactions_path: str | Path, out_dir: str | Path, cfg, *,
    tune: bool = False, strict: bool = False, progress: Callable[[str], None] | None = None,
) -> Path:
    """Fit ``cfg.train.model`` and write the model artifact to ``out_dir``; returns its path.

    strict: unknown columns in the interactions table are errors, not warnings.
    """
    from .artifacts import transaction

    with transaction(out_dir, kind="model", inputs=[embeddings_dir, interactions_path]) as txn:
        _train(Path(embeddings_dir), interactions_path, txn.path, cfg, tune=tune, strict=strict,
               progress=progress or (lambda _m: None))
    return Path(out_dir)


def _train(emb: Path, interactions_path: str | Path, tmp: Path, cfg, *, tune: bool, strict: bool,
           progress: Callable[[str], None]) -> None:
    from .artifacts import Manifest, fingerprint, save_npy, write_jsonl, write_manifest
    from .config import resolve_device
    from .data.embeddings import load_embeddings
    from .data.interactions import load_interactions
    from .models.registry import build_model

    rows, content = load_embeddings(emb)
    ids = [str(r["item_id"]) for r in rows]
    data = load_interactions(interactions_path, catalogue=ids, min_weight=cfg.train.min_weight, strict=strict,
                             warn=progress)
    for line in data.report.lines(str(interactions_path)):
        progress(line)
    if len(data) == 0:
        raise InputError(
            f"{interactions_path}: no interaction matches an item of {emb} "
            "(item_id values must be the embeddings' item ids)"
        )
    name = cfg.train.model
    if name == "hybrid" and not np.any(content):
        raise InputError(f"{emb} holds no usable content: every item's fused vector is zero (no modality gave "
                         "vectors; see embed's log); the hybrid needs content, or train --model mf / ease without it")
    device = "cpu"
    if name == "hybrid" or (name == "mf" and cfg.runtime.device.startswith("cuda")):  # mf on auto: implicit's CPU
        device = resolve_device(cfg.runtime.device)
    seen = data.to_csr()
    overrides: dict[str, Any] = {}
    if tune:
        if name != "hybrid":
            raise InputError("--tune searches the hybrid's hyperparameters; use --model hybrid")
        overrides = tune_hybrid(seen, content, cfg, device=device, progress=progress)
    model = build_model(name, cfg.train, seed=cfg.runtime.seed, device=device, **overrides)
    t0 = time.perf_counter()
    model.fit(seen, content if name == "hybrid" else None, progress=progress)
    fit_s = time.perf_counter() - t0
    progress(f"{name}: trained on {len(data)} interactions of {data.n_users} users in {fit_s:.1f}s")
    cold = int((model.popularity == 0).sum())
    write_jsonl(tmp / "items.jsonl", rows)
    data.users.save(tmp / "users.txt")
    save_npy(tmp / "seen_indptr.npy", seen.indptr.astype(np.int64))
    save_npy(tmp / "seen_indices.npy", seen.indices.astype(np.int32))
    save_npy(tmp / "popularity.npy", model.popularity.astype(np.float32))
    if model.factor_model:
        for key, arr in model.factors().items():
            save_npy(tmp / f"{key}.npy", np.asarray(arr, np.float32))
    projections = model.projections()
    for key, arr in projections.items():  # what ``avrec index --add`` maps new items' content with
        save_npy(tmp / f"{key}.npy", np.asarray(arr, np.float32))
    model.save(tmp / "weights.npz")
    train_section = asdict(cfg.train)
    params = {**(train_section.get(name) or {}), **overrides} if isinstance(train_section.get(name), dict) else {}
    write_manifest(tmp, Manifest(
        artifact="model",
        config=cfg.to_dict(),
        inputs={"embeddings": str(emb.resolve()), "interactions": fingerprint(interactions_path)},
        models={"name": name, "params": params, "factor_model": model.factor_model,
                "projections": sorted(projections)},
        counts={"users": data.n_users, "items": data.n_items, "interactions": len(data), "cold_items": cold},
        extra={"load_report": data.report.to_dict(), "fit_seconds": round(fit_s, 3), "info": model.info,
               **({"tuned": overrides} if overrides else {})},
    ))
