"""The train stage: embeddings + interactions -> a ``model`` artifact (docs/artifacts.md)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import InputError

def fit_model(name: str, seen, content, cfg, *, device: str, progress: Callable[[str], None],
              blocks: list[dict[str, Any]] | None = None, tune: bool = False) -> tuple[Any, dict[str, Any], dict[str, Any] | None]:
    """Fit model ``name`` the way ``avrec train`` does: the hybrid first chooses its solver,
    hyperparameters and modality weights on a validation split of ``seen`` (``train.tune:
    auto``, within ``train.tune_budget_s``; ``tune``: the whole search, no budget). evaluate
    calls this too, so what it measures is what train ships. Returns (model, the parameters
    chosen, the search's report or None)."""
    from .models.registry import CONTENT_MODELS, build_model
    from .tune import tune_hybrid

    overrides: dict[str, Any] = {"content_blocks": blocks} if name == "hybrid" and blocks else {}
    report, init = None, None
    if tune and name != "hybrid":
        raise InputError("--tune searches the hybrid's hyperparameters; use --model hybrid")
    private = cfg.train.privacy.epsilon > 0
    if private:
        _check_private(name, cfg, tune=tune)
        overrides["privacy"] = {**asdict(cfg.train.privacy), "seed": cfg.runtime.seed}
        if name == "hybrid" and cfg.train.tune == "auto":
            progress("tune: skipped (train.privacy.epsilon > 0: a search scored on the raw validation split would "
                     "not be private; the configured values are fitted)")
    if name == "hybrid" and not private and (tune or cfg.train.tune == "auto"):
        if cfg.train.validation <= 0 and not tune:
            progress("tune: skipped (train.validation is 0, so there is no split to choose on)")
        else:
            found = tune_hybrid(seen, content, cfg, device=device, progress=progress,
                                budget_s=None if tune else cfg.train.tune_budget_s, blocks=blocks)
            report = found.pop("report")
            init = found.pop("als_init", None)
            overrides.update(found)
    model = build_model(name, cfg.train, seed=cfg.runtime.seed, device=device, **overrides)
    model.fit(seen, content if name in CONTENT_MODELS else None, progress=progress,
              **({"als_init": init} if init is not None else {}))
    if report and report.get("chosen", {}).get("solver") and "solver" in model.info:
        model.info["solver"]["reason"] = (f"train.tune: {report['chosen']['solver']} scored highest on the validation "
                                          f"split (warm NDCG@{report['eval_k']} {report['warm_ndcg']})")
    if private:
        model.info["privacy"]["tuning"] = ("skipped: train.privacy.epsilon > 0 (the search would read the raw "
                                           "data); the configured values were fitted")
    return model, {k: v for k, v in overrides.items() if k != "content_blocks"}, report


PRIVATE_MODELS = ("hybrid", "popular")


def _check_private(name: str, cfg, *, tune: bool) -> None:
    """Refuse, in one line, what ``train.privacy.epsilon`` > 0 cannot make private."""
    from .errors import ConfigError

    if name not in PRIVATE_MODELS:
        raise ConfigError(f"train.privacy.epsilon > 0 is implemented for train.model hybrid (closed and als solvers) and "
                          f"popular; {name} fits on the raw interactions (set train.model=hybrid, or epsilon 0)")
    if tune:
        raise ConfigError("--tune scores its search on the raw validation split, which is not private; drop --tune "
                          "or set train.privacy.epsilon=0")
    if name == "hybrid" and cfg.train.hybrid.solver == "sgd":
        from .models.hybrid import PRIVATE_SGD

        raise ConfigError(PRIVATE_SGD)


def train(
    embeddings_dir: str | Path, interactions_path: str | Path, out_dir: str | Path, cfg, *,
    tune: bool = False, strict: bool = False, progress: Callable[[str], None] | None = None,
) -> Path:
    """Fit ``cfg.train.model`` and write the model artifact to ``out_dir``; returns its path.

    strict: unknown columns in the interactions table are errors, not warnings.
    """
    from .artifacts import transaction

    with transaction(out_dir, kind="model", inputs=[embeddings_dir, *_paths(interactions_path)]) as txn:
        _train(Path(embeddings_dir), interactions_path, txn.path, cfg, tune=tune, strict=strict,
               progress=progress or (lambda _m: None))
    return Path(out_dir)


def with_seen_only(seen, seen_only: tuple[np.ndarray, np.ndarray] | None, weights: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(indptr int64, indices int32, weights float32 or None) of what each user has seen: the
    training interactions (CSR ``seen``, ``weights`` parallel to its entries or None: each 1)
    and the zero-weight pairs (skips, dislikes), which weigh 0: the index excludes them from
    the user's lists, and every fold-in (the server's, ``--history``, profiles) drops them."""
    if seen_only is None or not len(seen_only[0]):
        return seen.indptr.astype(np.int64), seen.indices.astype(np.int32), weights
    n = seen.shape[0]
    rows = np.concatenate([np.repeat(np.arange(n), np.diff(seen.indptr)), seen_only[0]])
    cols = np.concatenate([seen.indices, seen_only[1]]).astype(np.int32)
    w = np.concatenate([np.ones(seen.nnz, np.float32) if weights is None else np.asarray(weights, np.float32),
                        np.zeros(len(seen_only[0]), np.float32)])
    order = np.lexsort((cols, rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int64)
    return indptr, cols[order], w[order]


MAX_PENDING_ITEMS = 100_000  # items with stored events but no embeddings, kept for the server (see serve.state)


def _paths(interactions: Any) -> list[Path]:
    return [Path(interactions)] if isinstance(interactions, (str, Path)) else [Path(p) for p in interactions]


def _load_sources(paths: list[Path], ids: list[str], cfg, *, strict: bool,
                  progress: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    """Every interactions source merged over the catalogue: files (user ids pseudonymised
    with ``privacy.pseudonymize``) and event stores (stored pseudonymised already); users
    erased in any event store read, or in the configured one, are dropped. Returns (data,
    the manifest's ``events`` record: the store's last seq read and when, which the server
    folds in live events after)."""
    from .data.interactions import drop_users, load_interactions, merge, pseudonymize
    from .privacy import erasure_digest, identity, pseudonymizer
    from .serve.events import EventStore, default_store_path, is_store, key_fingerprint

    pid = pseudonymizer(cfg)
    fp = key_fingerprint(pid)
    trained_at = time.time()
    parts, erased = [], set()
    events: dict[str, Any] = {"seq": 0, "trained_at": trained_at, "stores": []}
    stores = [p for p in paths if p.exists() and is_store(p)]
    configured = default_store_path(cfg)
    catalogue = set(ids)
    pending: set[str] = set()
    for p in stores:
        st = EventStore(p, pseudonyms=fp, create=False)  # refuses a store written with another key
        last = st.last_seq()
        events["seq"] = max(events["seq"], last)  # before reading: later events stay live too
        events["stores"].append(str(p.resolve()))
        erased |= st.erased_digests()
        # events on items the catalogue lacks (an upload not embedded yet) teach this model
        # nothing; the server folds them in live once index --add brings the item
        pending |= {i for i in st.item_ids(upto=last) if i not in catalogue}
    if pending:
        events["pending_items"] = sorted(pending)[:MAX_PENDING_ITEMS]
        if len(pending) > MAX_PENDING_ITEMS:
            progress(f"train: {len(pending)} items have events but no embeddings; the first {MAX_PENDING_ITEMS} are "
                     "recorded for the server to fold in once index --add brings them")
    if configured.exists() and is_store(configured) and configured.resolve() not in {p.resolve() for p in stores}:
        erased |= EventStore(configured, pseudonyms="any", create=False).erased_digests()
    for p in paths:
        d = load_interactions(p, catalogue=ids, min_weight=cfg.train.min_weight, strict=strict, warn=progress,
                              event_weights=cfg.serve.event_weights)
        for line in d.report.lines(str(p)):
            progress(line)
        if pid is not identity and p not in stores:
            d = pseudonymize(d, pid)
        parts.append(d)
    data = merge(parts)
    data, dropped = drop_users(data, erased, erasure_digest)
    if dropped:
        progress(f"train: {dropped} erased user(s) dropped (avrec forget)")
    events["erased_dropped"] = dropped
    return data, events


def _recency(model, name: str, data, content, cfg, overrides: dict[str, Any], blocks, *, device: str,
             progress: Callable[[str], None]) -> dict[str, Any] | None:
    """train.recency: refold the user vectors with decayed weights (avrec/recency.py); auto
    first chooses the half-life on each user's newest interactions. Returns the manifest's
    record (with the decayed weights under "seen_weights"), or None when off."""
    from . import recency
    from .models.registry import build_model

    mode = cfg.train.recency
    if mode == "off":
        return None
    recency.check(data, name)
    info: dict[str, Any] = {"mode": mode, "half_life": float(cfg.train.recency_half_life)}
    if mode == "auto":
        if cfg.train.privacy.epsilon > 0:
            progress("recency: auto skipped (train.privacy.epsilon > 0: choosing on the raw validation split would not "
                     "be private); no decay")
            return {"mode": mode, "half_life": 0.0, "reason": "skipped: train.privacy.epsilon > 0"}
        kw = {**overrides, **({"content_blocks": blocks} if blocks else {})}

        def fit(train):
            m = build_model(name, cfg.train, seed=cfg.runtime.seed, device=device, **kw)
            m.fit(train.to_csr(), content, progress=lambda s: None)
            return m

        ratio = cfg.train.validation if cfg.train.validation > 0 else 0.1
        info.update(recency.choose(data, fit, ratio=ratio, seed=cfg.runtime.seed,
                                   k=cfg.train.hybrid.eval_k, progress=progress))
        progress(f"recency: chose half-life {info['half_life']:g}" if info["half_life"] else
                 "recency: chose no decay (no half-life beat it on the newest interactions)")
    h = info["half_life"]
    if h > 0:
        decayed = recency.decayed_csr(data, half_life=h, weighting=model.info.get("weighting", "linear"))
        model.user_vectors = model._fold(decayed)
        info["seen_weights"] = decayed.data.astype(np.float32)
    return info


def _train(emb: Path, interactions_path: str | Path, tmp: Path, cfg, *, tune: bool, strict: bool,
           progress: Callable[[str], None]) -> None:
    from .artifacts import Manifest, fingerprint, save_npy, write_jsonl, write_manifest
    from .config import resolve_device
    from .data.embeddings import fusion_blocks, load_embeddings

    rows, content = load_embeddings(emb)
    ids = [str(r["item_id"]) for r in rows]
    data, events_info = _load_sources(_paths(interactions_path), ids, cfg, strict=strict, progress=progress)
    if len(data) == 0:
        from .data.interactions import why_empty

        raise InputError(why_empty(data.report, ", ".join(map(str, _paths(interactions_path))), str(emb)))
    name = cfg.train.model
    if name in ("hybrid", "content") and not np.any(content):
        raise InputError(f"{emb} holds no usable content: every item's fused vector is zero (no modality gave "
                         f"vectors; see embed's log); the {name} model needs content, or train --model mf / ease "
                         "without it")
    device = "cpu"
    if name == "hybrid" or (name == "mf" and cfg.runtime.device.startswith("cuda")):  # mf on auto: implicit's CPU
        device = resolve_device(cfg.runtime.device)
    if cfg.train.recency != "off":  # before the fit: a log without timestamps fails at once
        from .recency import check

        check(data, name)
    seen = data.to_csr()
    t0 = time.perf_counter()
    blocks = fusion_blocks(emb)
    model, overrides, report = fit_model(name, seen, content, cfg, device=device, progress=progress,
                                         blocks=blocks, tune=tune)
    recency_info = _recency(model, name, data, content, cfg, overrides, blocks, device=device, progress=progress)
    fit_s = time.perf_counter() - t0
    progress(f"{name}: trained on {len(data)} interactions of {data.n_users} users in {fit_s:.1f}s")
    cold = int((model.popularity == 0).sum())
    write_jsonl(tmp / "items.jsonl", rows)
    data.users.save(tmp / "users.txt")
    # the decayed weights the vectors were folded with (train.recency), 0 for a skip or a dislike
    sw = recency_info.pop("seen_weights", None) if recency_info else None
    indptr, indices, sw = with_seen_only(seen, data.seen_only, sw)
    save_npy(tmp / "seen_indptr.npy", indptr)
    save_npy(tmp / "seen_indices.npy", indices)
    if sw is not None:
        save_npy(tmp / "seen_weights.npy", sw)
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
        inputs={"embeddings": str(emb.resolve()),
                "interactions": [fingerprint(p) for p in _paths(interactions_path)] if len(_paths(interactions_path)) > 1
                else fingerprint(_paths(interactions_path)[0])},
        models={"name": name, "params": params, "factor_model": model.factor_model,
                "projections": sorted(projections)},
        counts={"users": data.n_users, "items": data.n_items, "interactions": len(data), "cold_items": cold,
                "seen_only": 0 if data.seen_only is None else int(len(data.seen_only[0]))},
        extra={"load_report": data.report.to_dict(), "fit_seconds": round(fit_s, 3), "info": model.info,
               "events": events_info,
               **({"tuned": report} if report else {}),
               **({"recency": recency_info} if recency_info else {}),
               **({"privacy": model.info["privacy"]} if "privacy" in model.info else {})},
    ))
