"""Offline evaluation: protocols, reports, plots (the metrics are in :mod:`avrec.metrics`).

Per slice: light / heavy users (training history up to / above the median) and, when both
exist, warm / cold test items.

Protocols (``avrec.data.splits``): ``random`` (per-user holdout), ``temporal`` (global time
cut), ``last`` (leave-last-n), ``cold`` (items held out entirely; each user's held-out
items are ranked among the held-out items only, and only models that use item content
are scored). Training-set items are excluded from each user's ranking.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import InputError
from .metrics import METRICS, Scorer, intra_list_diversity, metrics_at_k, ndcg_at_k, rank_users  # noqa: F401
from .models.registry import CONTENT_MODELS  # noqa: F401  (models that can score items without interactions)


# ---------------------------------------------------------------------------------------
# protocol runner


def test_users(split) -> np.ndarray:
    """Users with test items and at least one training interaction."""
    has_test = np.bincount(split.test.user, minlength=split.test.n_users) > 0
    has_train = np.bincount(split.train.user, minlength=split.train.n_users) > 0
    return np.flatnonzero(has_test & has_train)


def score_topk(split, top: np.ndarray, users: np.ndarray, ks: list[int], *, content=None) -> dict[str, Any]:
    """All metrics and slices for ranked lists ``top`` of ``users`` on ``split``."""
    test = split.test.to_csr(binary=True)[users]
    train = split.train.to_csr(binary=True)
    popularity = np.asarray(train.sum(axis=0)).ravel()
    n_train_users = int((np.diff(train.indptr) > 0).sum())
    cand = len(split.cold_items) if split.name == "cold" else split.train.n_items
    common = dict(n_candidates=cand, popularity=popularity, n_train_users=n_train_users, content=content)
    result: dict[str, Any] = {"users": int(len(users)), "metrics": metrics_at_k(top, test, ks, **common), "slices": {}}
    # user slices: light / heavy by training history length
    hist = np.diff(train.indptr)[users]
    med = float(np.median(hist)) if len(hist) else 0.0
    for name, sel in (("light_users", hist <= med), ("heavy_users", hist > med)):
        if sel.any():
            result["slices"][name] = {"users": int(sel.sum()), "metrics": metrics_at_k(top[sel], test[np.flatnonzero(sel)], ks, **common)}
    # item slices: test items that were warm / cold in training
    if split.name != "cold":
        import scipy.sparse as sp

        warm = popularity > 0
        parts = {}
        for name, mask in (("warm_items", warm), ("cold_items", ~warm)):
            t = test.multiply(sp.csr_matrix(mask[None, :].astype(np.float32))).tocsr()
            t.eliminate_zeros()
            parts[name] = t
        if parts["warm_items"].nnz and parts["cold_items"].nnz:  # only informative when both exist
            for name, t in parts.items():
                n = int((np.diff(t.indptr) > 0).sum())
                result["slices"][name] = {"users": n, "metrics": metrics_at_k(top, t, ks, **common)}
    return result


PAIRED_DEPTH = 60  # ranked list length behind the paired comparison's replicates (half the items dropped)
ROUGH_ITEMS = 24  # below this many candidate items the item replicates are few (measured calibration: see
# metrics.paired_difference_two_way), and the line says so
PAIRED_MAX_USERS = 20000  # users the replicates draw from, at random above this (a wider interval, never a narrower one)


def candidate_items(split) -> np.ndarray:
    """The item rows a test user ranks on ``split``: the held-out items (cold), else every item."""
    return split.cold_items.astype(np.int64) if split.name == "cold" else np.arange(split.train.n_items)


def rank_split(split, scorer: Scorer, k: int, *, users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(test users, (n, k) ranked item rows) for ``scorer`` on ``split``: seen items excluded,
    the cold protocol's candidates only. ``users``: these user rows instead of every test user."""
    users = test_users(split) if users is None else users
    exclude = split.train.to_csr(binary=True)
    cand = candidate_items(split) if split.name == "cold" else None  # every item: no restriction needed
    batch = int(min(1024, max(16, 5e7 // max(split.train.n_items, 1))))  # about 200 MB of scores at a time
    return users, rank_users(scorer, users, k=k, exclude=exclude, candidates=cand, batch=batch)


def evaluate_scorer(split, scorer: Scorer, ks: list[int], *, content=None) -> dict[str, Any]:
    """Rank every test user's items with ``scorer`` and compute all metrics."""
    users, top = rank_split(split, scorer, max(ks))
    return score_topk(split, top, users, ks, content=content)


def paired_sample(users: np.ndarray, seed: int) -> np.ndarray:
    """Positions in ``users`` of the users the paired comparison's replicates draw from."""
    if len(users) <= PAIRED_MAX_USERS:
        return np.arange(len(users))
    return np.sort(np.random.default_rng(seed + 7).choice(len(users), PAIRED_MAX_USERS, replace=False))


def paired(split, tops: dict[str, np.ndarray], users: np.ndarray, k: int, *, deep: dict[str, np.ndarray] | None = None,
           sample: np.ndarray | None = None, seed: int = 0) -> dict[str, Any] | None:
    """The best model by NDCG@k against each other one on the same split: which gaps are
    larger than the split's noise. The difference is over every test user; its standard error
    over users and items crossed (:func:`avrec.metrics.paired_difference_two_way`, from
    ``deep``: (len(sample), PAIRED_DEPTH) lists of the users at positions ``sample``), or over
    users only (:func:`avrec.metrics.paired_difference`) for a model without deep lists (a
    --recs file with short lists). Users only is far too confident where users share few
    candidates (cold)."""
    from .metrics import ndcg_per_user, paired_difference, paired_difference_two_way, verdict

    if len(tops) < 2:
        return None
    test = split.test.to_csr(binary=True)[users]
    per = {m: ndcg_per_user(t, test, k) for m, t in tops.items()}
    best = max(per, key=lambda m: float(per[m].mean()) if len(per[m]) else 0.0)
    deep = deep or {}
    items = candidate_items(split)
    against = []
    for m, v in per.items():
        if m == best:
            continue
        u = paired_difference(per[best], v)
        row = {"model": m, **u, "test": "users only"}
        if best in deep and m in deep and sample is not None:
            two = paired_difference_two_way(deep[best], deep[m], test[sample], k, items=items, seed=seed)
            row.update(se=two["se"], verdict=verdict(u["diff"], two["se"]), test="users and items",
                       items=two["items"], draws=two["draws"], sampled_users=int(len(sample)),
                       users_only={"se": u["se"], "verdict": u["verdict"]})
        against.append(row)
    return {"k": k, "best": best, "against": against}


def load_recs(path: str | Path, split, *, k: int, pid=None, depth: int | None = None
              ) -> tuple[np.ndarray, np.ndarray, dict[str, int], np.ndarray]:
    """Read another system's recommendations (JSON lines) into (users, top (n, depth or k),
    stats, each list's length (n,)). ``unknown_items`` counts the first ``k`` of each list.

    Accepted rows: ``{"user_id": U, "items": [I, ...]}`` (best first) or one row per
    recommendation ``{"user_id": U, "item_id": I, "rank": r}`` (or ``"score"``; file order
    otherwise). ``user`` may stand for ``user_id``, so ``avrec recommend --all-users`` output
    is read as it is. Unknown users are skipped, unknown items count as misses; both are counted.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"--recs file not found: {path}")
    if path.is_dir():
        raise InputError(f"--recs {path} is a directory; pass a JSON lines file")
    lists: dict[str, list[tuple[float, int, str]]] = {}
    n = 0
    try:
        f = open(path, encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"cannot read --recs {path}: {e.strerror}") from None
    with f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                u = str(rec["user_id"] if "user_id" in rec else rec["user"])
                if "items" in rec:
                    if not isinstance(rec["items"], list):
                        raise TypeError
                    for r, i in enumerate(rec["items"]):
                        lists.setdefault(u, []).append((float(r), n, str(i)))
                        n += 1
                elif "item_id" in rec:
                    key = float(rec["rank"]) if "rank" in rec else -float(rec["score"]) if "score" in rec else float(n)
                    if key != key:
                        raise ValueError
                    lists.setdefault(u, []).append((key, n, str(rec["item_id"])))
                    n += 1
                else:
                    raise InputError(f"{path}: line {line_no} has neither 'items' nor 'item_id'")
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise InputError(f"{path}: line {line_no} is not a JSON object with user_id (or user) and items, or "
                                 "item_id with rank or score") from None
            except UnicodeDecodeError:
                raise InputError(f"{path} is not UTF-8 text") from None
    users_map, items_map = split.train.users, split.train.items
    stats = {"users_in_file": len(lists), "unknown_users": 0, "unknown_items": 0}
    width = max(k, depth or 0)
    rows, tops, lengths = [], [], []
    for u, recs in lists.items():
        row = users_map.get(u)
        if row is None and pid is not None:  # raw ids of another system, when avrec pseudonymises
            row = users_map.get(pid(u))
        if row is None:
            stats["unknown_users"] += 1
            continue
        ids = []
        for r, (_, _, i) in enumerate(sorted(recs)[:width]):
            j = items_map.get(i)
            if j is None:
                stats["unknown_items"] += r < k
                j = -1
            ids.append(j)
        rows.append(row)
        lengths.append(len(ids))
        tops.append(ids + [-1] * (width - len(ids)))
    return np.asarray(rows, np.int64), np.asarray(tops, np.int64).reshape(-1, width), stats, np.asarray(lengths, np.int64)


# ---------------------------------------------------------------------------------------
# the stage


def _load_content(embeddings_dir: Path | None):
    """(item ids, fused vectors (n, D) float32) of an embeddings artifact, or (None, None)."""
    if embeddings_dir is None:
        return None, None
    from .data.embeddings import load_embeddings

    rows, content = load_embeddings(embeddings_dir)
    return [str(r["item_id"]) for r in rows], content


def run_protocol(
    data, protocol: str, model_names: list[str], cfg, *, content=None, blocks=None, ks: list[int], out_dir: Path | None = None,
    recs: str | Path | None = None, progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Split, train each model on the train part, score the test part."""
    from .data.splits import make_split, write_split
    from .train import fit_model

    ev = cfg.evaluate
    split = make_split(data, protocol, ratio=ev.test_ratio, cold_ratio=ev.cold_ratio, seed=cfg.runtime.seed, last_n=ev.last_n)
    if out_dir is not None:
        write_split(split, out_dir / "splits" / protocol)
    users = test_users(split)
    res: dict[str, Any] = {
        "split": {"train": len(split.train), "test": len(split.test), "test_users": int(len(users)), **split.params},
        "notes": [], "models": {},
    }
    if protocol == "cold":
        res["notes"].append("cold: each user's held-out items are ranked among the held-out items only")
    progress(f"{protocol}: {len(split.train)} train, {len(split.test)} test interactions, {len(users)} test users")
    if len(users) == 0:
        res["notes"].append(f"{protocol}: no test user has training interactions; nothing to score")
        progress(res["notes"][-1])
        return res
    train_csr = split.train.to_csr()
    device = _device(cfg)
    tops: dict[str, np.ndarray] = {}  # each model's ranked lists, for the paired comparison
    deep: dict[str, np.ndarray] = {}  # and longer ones of a sample of users, for its item replicates
    sample = paired_sample(users, cfg.runtime.seed)
    depth = max(PAIRED_DEPTH, max(ks))
    for name in model_names:
        if protocol == "cold" and name not in CONTENT_MODELS:
            res["notes"].append(f"{name}: skipped on the cold split (it cannot score items without interactions)")
            continue
        if name in CONTENT_MODELS and content is None:
            raise InputError(f"model {name} needs item content: pass an embeddings artifact")
        t0 = time.perf_counter()
        # as train fits it (the hybrid tunes itself on a validation split of this train part)
        model, _, tuned = fit_model(name, train_csr, content if name in CONTENT_MODELS else None, cfg,
                                    device=device, progress=progress, blocks=blocks)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        if len(sample) == len(users):  # one ranking serves both (the first K of a top-N are the top K)
            _, deep[name] = rank_split(split, model.score, depth, users=users)
            tops[name] = deep[name][:, :max(ks)]
        else:
            _, tops[name] = rank_split(split, model.score, max(ks))
            _, deep[name] = rank_split(split, model.score, depth, users=users[sample])
        r = score_topk(split, tops[name], users, ks, content=content)
        r["fit_seconds"] = round(fit_s, 3)
        r["score_seconds"] = round(time.perf_counter() - t1, 3)
        if model.info:
            r["info"] = model.info
        if tuned:
            r["tuned"] = {k: v for k, v in tuned.items() if k != "tried"}
        res["models"][name] = r
        progress(f"{protocol}/{name}: NDCG@{ks[0]} {r['metrics'][ks[0]]['ndcg']:.4f} (fit {fit_s:.1f}s)")
    if recs is not None:
        from .privacy import identity, pseudonymizer

        pid = pseudonymizer(cfg)
        rows, top, stats, lengths = load_recs(recs, split, k=max(ks), pid=None if pid is identity else pid, depth=depth)
        # every test user counts: one missing from the file has an empty list (all misses)
        full = np.full((len(users), depth), -1, np.int64)
        at = {int(u): i for i, u in enumerate(users)}
        hit = [(at[int(u)], j) for j, u in enumerate(rows) if int(u) in at]
        if hit:
            full[[a for a, _ in hit]] = top[[b for _, b in hit]]
        name = f"recs:{Path(recs).stem}"
        r = score_topk(split, full[:, :max(ks)], users, ks, content=content)
        r["recs"] = {**stats, "scored_users": len(hit), "test_users_missing": int(len(users) - len(hit))}
        res["models"][name] = r
        tops[name] = full[:, :max(ks)]
        # a list of at least ``depth`` items for every test user in the file: the paired comparison
        # resamples items for it too (a user missing from the file is all misses either way)
        if hit and all(lengths[b] >= depth for _, b in hit):
            deep[name] = full[sample]
    cmp = paired(split, tops, users, 10 if 10 in ks else ks[0], deep=deep, sample=sample, seed=cfg.runtime.seed)
    if cmp:
        res["paired"] = cmp
    return res


def _device(cfg) -> str:
    from .config import resolve_device

    return resolve_device(cfg.runtime.device)


def evaluate(
    embeddings_dir: str | Path | None, interactions_path: str | Path, out_dir: str | Path, cfg, *,
    models: list[str] | None = None, protocols: list[str] | None = None, ks: list[int] | None = None,
    recs: str | Path | None = None, strict: bool = False, progress: Callable[[str], None] | None = None,
) -> tuple[Path, list[dict[str, Any]]]:
    """Run every protocol x model; write ``metrics.json``, ``report.txt``, ``plot.png`` and
    the splits into ``out_dir`` (an ``evaluation`` artifact). Returns (out_dir, table rows)."""
    from .artifacts import Manifest, fingerprint, transaction, write_json, write_manifest
    from .data.interactions import load_interactions
    from .data.splits import PROTOCOLS
    from .models.registry import MODEL_NAMES

    progress = progress or (lambda _m: None)
    ev = cfg.evaluate
    models = list(models or ev.models)
    protocols = list(protocols or ev.protocols)
    ks = sorted(set(int(k) for k in (ks or ev.k)))
    for m in models:
        if m not in MODEL_NAMES:
            raise InputError(f"unknown model {m!r}; choose from {', '.join(MODEL_NAMES)}")
    for p in protocols:
        if p not in PROTOCOLS:
            raise InputError(f"unknown protocol {p!r}; choose from {', '.join(PROTOCOLS)}")
    if not ks or ks[0] < 1:
        raise InputError("--k must be positive integers, e.g. --k 10 or --k 5,10,20")
    emb = Path(embeddings_dir) if embeddings_dir is not None else None
    items, content = _load_content(emb)
    blocks = None
    if emb is not None:
        from .data.embeddings import fusion_blocks

        blocks = fusion_blocks(Path(emb))
    out_dir = Path(out_dir)
    results: dict[str, Any] = {}
    inputs = [interactions_path, *([emb] if emb else []), *([recs] if recs else [])]
    with transaction(out_dir, kind="evaluation", inputs=inputs) as txn:
        tmp = txn.path
        data = load_interactions(interactions_path, catalogue=items, min_weight=cfg.train.min_weight, strict=strict,
                                 warn=progress, event_weights=cfg.serve.event_weights)
        for line in data.report.lines(str(interactions_path)):
            progress(line)
        if len(data) == 0:
            from .data.interactions import why_empty

            raise InputError(why_empty(data.report, str(interactions_path), str(emb) if emb else "the catalogue"))
        from .privacy import identity, pseudonymizer
        from .serve.events import is_store

        pid = pseudonymizer(cfg)
        if pid is not identity and not is_store(interactions_path):  # the splits written hold no raw user id
            from .data.interactions import pseudonymize

            data = pseudonymize(data, pid)
        for p in protocols:
            results[p] = run_protocol(data, p, models, cfg, content=content, blocks=blocks, ks=ks, out_dir=tmp, recs=recs, progress=progress)
        if not table_rows(results, ks):  # a CI script must not read an empty table as a pass
            notes = "; ".join(n for r in results.values() for n in r.get("notes", []) if "nothing to score" in n)
            raise InputError(f"{interactions_path}: nothing to score under any protocol ({notes or 'no test users'}); "
                             "a protocol needs users with interactions on both sides of its split (two or more each)")
        payload = {"k": ks, "protocols": results, "interactions": data.report.to_dict()}
        write_json(tmp / "metrics.json", payload)
        rows = table_rows(results, ks)
        (tmp / "report.txt").write_text(report_text(results, ks), encoding="utf-8")
        note = plot(results, ks, tmp / "plot.png")
        if note:
            progress(note)
        write_manifest(tmp, Manifest(
            artifact="evaluation", config=cfg.to_dict(),
            inputs={"embeddings": str(emb.resolve()) if emb else None, "interactions": fingerprint(interactions_path)},
            models={m: asdict(getattr(cfg.train, m)) if hasattr(cfg.train, m) else {} for m in models},
            counts={"users": data.n_users, "items": data.n_items, "interactions": len(data)},
            extra={"protocols": protocols, "k": ks, **({"plot": note} if note else {})},
        ))
    return out_dir, rows


# ---------------------------------------------------------------------------------------
# output


def table_rows(results: dict[str, Any], ks: list[int]) -> list[dict[str, Any]]:
    """One row per protocol x model x K, with every metric."""
    rows = []
    for p, res in results.items():
        for m, r in res["models"].items():
            for k in ks:
                rows.append({
                    "protocol": p, "model": m, "k": k, **{x: r["metrics"][k].get(x) for x in METRICS},
                    "ndcg_se": r["metrics"][k].get("ndcg_se"), "users": r["users"], "fit_seconds": r.get("fit_seconds"),
                })
    return rows


def paired_lines(res: dict[str, Any]) -> list[str]:
    """The protocol's paired comparison (:func:`paired`) in words, for report.txt and the terminal."""
    cmp = res.get("paired")
    if not cmp:
        return []
    out = [f"   paired NDCG@{cmp['k']}, over users and held-out items (+/- one standard error; within 2 of them is a tie):"]
    for a in cmp["against"]:
        say = "a tie: the gap is within the split's noise" if a["verdict"] == "tie" else f"{cmp['best']} ahead"
        over = f"{a['users']} users" + (f" and {a['items']} items" if a.get("test") == "users and items" else
                                        f" (users only: the --recs file lists under {PAIRED_DEPTH} items for some of its users, too few "
                                        "to resample items from)")
        rough = "; with so few candidates the error bar is itself rough" if 0 < a.get("items", 99) < ROUGH_ITEMS else ""
        out.append(f"     {cmp['best']} - {a['model']}: {a['diff']:+.4f} +/- {a['se']:.4f} over {over}, {say}{rough}")
    return out


def report_text(results: dict[str, Any], ks: list[int]) -> str:
    cols = ("ndcg", "recall", "precision", "map", "mrr", "hitrate", "coverage", "novelty", "diversity")
    lines = []
    for p, res in results.items():
        s = res["split"]
        lines.append(f"== {p}: {s['train']} train / {s['test']} test interactions, {s['test_users']} test users")
        lines.extend(f"   note: {n}" for n in res["notes"])
        head = f"{'model':<16}{'K':>4}" + "".join(f"{c:>10}" for c in cols) + f"{'fit s':>9}"
        lines.append(head)
        for m, r in res["models"].items():
            for k in ks:
                mm = r["metrics"][k]
                vals = "".join(f"{mm[c]:>10.4f}" if mm.get(c) is not None else f"{'-':>10}" for c in cols)
                fit = f"{r['fit_seconds']:>9.2f}" if r.get("fit_seconds") is not None else f"{'-':>9}"
                lines.append(f"{m:<16}{k:>4}{vals}{fit}")
            for sl, sr in r["slices"].items():
                k = ks[0]
                lines.append(f"  {m} / {sl} ({sr['users']} users): NDCG@{k} {sr['metrics'][k]['ndcg']:.4f}  Recall@{k} {sr['metrics'][k]['recall']:.4f}")
        lines.extend(paired_lines(res))
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], ks: list[int], path: Path) -> str | None:
    """Recall and NDCG against K, one line per model, one row of panels per protocol; with
    a single K, bars per model (a line through one point shows nothing).
    Returns a note when matplotlib is missing (the plot is then skipped)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ('plot.png skipped: matplotlib is not installed; pip install "avrec[plot]" (or matplotlib) '
                "to get it; metrics.json and report.txt hold every number")
    protos = [p for p in results if results[p]["models"]]
    if not protos:
        return None
    colour = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(m for p in protos for m in results[p]["models"]))}
    fig, axes = plt.subplots(len(protos), 2, figsize=(9, 3.2 * len(protos)), squeeze=False)
    for row, p in enumerate(protos):
        for col, metric in enumerate(("recall", "ndcg")):
            ax = axes[row][col]
            models = results[p]["models"]
            if len(ks) == 1:
                k = ks[0]
                names = list(models)
                vals = [models[m]["metrics"][k][metric] for m in names]
                bars = ax.bar(range(len(names)), vals, color=[colour[m] for m in names])
                ax.bar_label(bars, fmt="%.3f", fontsize=8)
                ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
                ax.set_title(f"{p}: {metric}@{k}")
                ax.grid(alpha=0.3, axis="y")
                continue
            for m, r in models.items():
                ax.plot(ks, [r["metrics"][k][metric] for k in ks], marker="o", label=m, color=colour[m])
            ax.set_title(f"{p}: {metric}@K")
            ax.set_xlabel("K")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
