"""User-level differential privacy (``train.privacy.epsilon``): NDCG@10 against epsilon on
MovieLens latest-small.

The same data, content and random split as benchmarks/movielens.py (ratings >= 4 are the
positives; 20% of each user's positives held out; avrec.evaluate's metric code). Per seed:

- ``hybrid`` and ``popular`` at each epsilon, fitted through ``avrec.train.fit_model`` as
  ``avrec train --set train.privacy.epsilon=E`` fits them (delta 1 / users^1.1, the
  contribution bound chosen from a noisy activity histogram, no search; the noise is fresh
  OS entropy, so a rerun differs within the spread over seeds);
- the non-private references in the same run: ``popular``, the hybrid as train ships it
  (``train.tune: auto``), and the hybrid with the configured values (``train.tune: off``, the
  values the private fits use).

    python benchmarks/privacy.py [--data DIR] [--epsilons 0.5,1,2,4,8] [--seeds 2,3,4]

Writes benchmarks/results/privacy.json and privacy.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from avrec.config import Config  # noqa: E402
from avrec.data import make_split  # noqa: E402
from avrec.evaluate import evaluate_scorer  # noqa: E402
from avrec.train import fit_model  # noqa: E402

KS = [10]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_generated(size: str):
    """A generated log of benchmarks/scale_data.py (Zipf items, taste clusters, 384-d content near each
    item's topic), cached on disk: (Interactions, content (n_items, 384), description)."""
    import pyarrow.csv as pcsv
    import scale_data

    from avrec.data import from_arrays

    folder = scale_data.cache_root() / size
    if not (folder / "done").exists():
        scale_data.generate(size)
    t = pcsv.read_csv(folder / "interactions.csv")
    ids = (folder / "content.npy.ids.txt").read_text().split()
    data = from_arrays(t["user_id"].to_pylist(), t["item_id"].to_pylist(), catalogue=ids)
    vectors = np.load(folder / "content.npy")
    pos = {v: k for k, v in enumerate(ids)}
    content = vectors[[pos[i] for i in data.items.ids]]
    n_items, n_users, nnz = scale_data.SIZES[size]
    return data, content, (f"generated log {size} of benchmarks/scale_data.py ({n_items} items, {n_users} users, "
                           f"{nnz} interactions drawn; Zipf popularity, taste clusters), its 384-d content vectors")


def fit_and_score(name: str, split, content, cfg) -> dict:
    t0 = time.perf_counter()
    model, _, _ = fit_model(name, split.train.to_csr(binary=True), content if name == "hybrid" else None, cfg,
                            device="cpu", progress=lambda m: None)
    fit_s = time.perf_counter() - t0
    m = evaluate_scorer(split, model.score, KS, content=content)["metrics"][10]
    out = {"ndcg10": m["ndcg"], "recall10": m["recall"], "fit_seconds": round(fit_s, 2)}
    priv = model.info.get("privacy")
    if priv:
        out["privacy"] = {"max_items_per_user": priv["max_items_per_user"]["value"], "delta": priv["delta"],
                          "sigma": priv["sigma"], "solver": priv.get("solver"),
                          "selected_items": (priv.get("selected_items") or priv.get("kept_items") or {}).get("count"),
                          "l2_effective": priv.get("l2_effective"), "iterations": priv.get("iterations")}
    return out


def main() -> int:
    import movielens as ml

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "movielens-latest-small"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "avrec-bench" / "movielens-minilm.npz"))
    ap.add_argument("--epsilons", default="0.5,1,2,4,8")
    ap.add_argument("--seeds", default="2,3,4")
    ap.add_argument("--min-rating", type=float, default=4.0)
    ap.add_argument("--solvers", default="closed,als", help="the hybrid's private solvers to compare")
    ap.add_argument("--dataset", default="movielens", help="movielens, or a generated size of benchmarks/scale_data.py (S1, S2)")
    ap.add_argument("--name", default="privacy", help="results file stem")
    args = ap.parse_args()
    root = Path(args.data)
    if args.dataset == "movielens":
        if not (root / "ratings.csv").exists():
            print(f"skipped: MovieLens latest-small not found at {root} (pass --data DIR with ratings.csv, movies.csv, "
                  "tags.csv)", file=sys.stderr)
            return 0
        data, movies, _ = ml.load_movielens(root, min_rating=args.min_rating)
        content, how = ml.embed_texts([ml.movie_text(movies[m]) for m in data.items.ids], Path(args.cache))
        what = (f"{len(data)} positives (rating >= {args.min_rating:g}) from {data.n_users} users over {data.n_items} "
                f"movies of MovieLens latest-small; content: {how}")
    else:
        data, content, what = load_generated(args.dataset)
        how = what
    solvers = [x for x in args.solvers.split(",") if x]
    epsilons = [float(e) for e in args.epsilons.split(",") if e]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    runs: dict = {}
    t_all = time.perf_counter()
    for seed in seeds:
        split = make_split(data, "random", ratio=Config().evaluate.test_ratio, cold_ratio=Config().evaluate.cold_ratio,
                           seed=seed)
        res: dict = {}

        def run(label: str, name: str, *, epsilon: float = 0.0, tune: str = "auto", solver: str = "auto") -> None:
            cfg = Config()
            cfg.runtime.seed = seed
            cfg.train.tune = tune
            cfg.train.privacy.epsilon = epsilon
            cfg.train.hybrid.solver = solver
            r = fit_and_score(name, split, content, cfg)
            res[label] = r
            extra = f" c {r['privacy']['max_items_per_user']} items {r['privacy']['selected_items']}" if "privacy" in r else ""
            log(f"seed {seed} {label:<22} NDCG@10 {r['ndcg10']:.4f} fit {r['fit_seconds']:.1f}s{extra}")

        run("popular", "popular")
        run("hybrid (tuned)", "hybrid")
        run("hybrid (untuned)", "hybrid", tune="off")
        for e in epsilons:
            run(f"popular eps={e:g}", "popular", epsilon=e)
            for solver in solvers:
                run(f"hybrid {solver} eps={e:g}", "hybrid", epsilon=e, solver=solver)
        runs[str(seed)] = res
    summary: dict = {}
    for label in runs[str(seeds[0])]:
        v = np.array([runs[str(s)][label]["ndcg10"] for s in seeds])
        summary[label] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                          "values": v.tolist()}
    results = {"protocol": "random split (20% of each user's positives held out), NDCG@10, avrec.evaluate",
               "epsilons": epsilons, "seeds": seeds, "solvers": solvers, "data": what, "dataset": args.dataset, "runs": runs, "summary": summary, "machine": ml.machine(),
               "embedding": how, "users": data.n_users, "items": data.n_items, "positives": len(data),
               "min_rating": args.min_rating, "total_seconds": round(time.perf_counter() - t_all, 1),
               "command": "python benchmarks/privacy.py " + " ".join(sys.argv[1:])}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / f"{args.name}.md").write_text(markdown(results))
    print(out / f"{args.name}.json")
    return 0


def markdown(res: dict) -> str:
    mc, s, seeds, solvers = res["machine"], res["summary"], res["seeds"], res["solvers"]
    first = res["runs"][str(seeds[0])]
    ms = lambda k: f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}"  # noqa: E731
    delta = first[f"hybrid {solvers[0]} eps={res['epsilons'][0]:g}"]["privacy"]["delta"]
    title = "MovieLens latest-small" if res["dataset"] == "movielens" else f"a generated log ({res['dataset']})"
    lines = [
        f"# User-level differential privacy on {title}",
        "",
        f"- Data: {res['data']}. Random split: 20% of each user's interactions held out, every item ranked (seen "
        "ones excluded), NDCG@10 from avrec.evaluate, as benchmarks/movielens.py.",
        f"- Private fits: `avrec.train.fit_model` with `train.privacy.epsilon` = epsilon, delta = 1 / users^1.1 "
        f"({delta:.2e}), `max_items_per_user` 0 (chosen from a noisy activity histogram), no search (the configured "
        "hybrid values), `train.hybrid.solver` closed (the noisy item Gram matrix, avrec.models.dp) or als (private "
        "ALS, avrec.models.dp_als). Neighbours: one user added or removed with all their interactions. The noise is "
        "fresh OS entropy.",
        f"- Seeds {', '.join(map(str, seeds))} (split seeds); mean ± std over them. Machine: {mc['cpu']}, "
        f"{mc['cores']} cores, {mc['ram']} RAM, Python {mc['python']}; "
        + ", ".join(f"{k} {v}" for k, v in mc["libs"].items()) + f". Total run {res['total_seconds']:.0f} s.",
        f"- Command: `{res['command'].strip()}`",
        "",
        "| epsilon | " + " | ".join(f"hybrid {x} NDCG@10" for x in solvers) + " | popular NDCG@10 | c (items per user) | "
        + " | ".join(f"{x}: items {'in the Gram' if x == 'closed' else 'kept'}" for x in solvers) + " |",
        "|---|" + "---|" * (2 * len(solvers) + 2),
    ]
    for e in res["epsilons"]:
        cells, items = [], []
        for x in solvers:
            h = f"hybrid {x} eps={e:g}"
            ps = [res["runs"][str(z)][h]["privacy"] for z in seeds]
            cells.append(ms(h))
            items.append("/".join(str(p["selected_items"]) for p in ps))
        cs = " ; ".join(f"{x} " + "/".join(str(res["runs"][str(z)][f"hybrid {x} eps={e:g}"]["privacy"]["max_items_per_user"])
                                         for z in seeds) for x in solvers)
        lines.append(f"| {e:g} | " + " | ".join(cells) + f" | {ms(f'popular eps={e:g}')} | {cs} | " + " | ".join(items) + " |")
    lines += [
        f"| inf (off), tuned (first column: the hybrid without privacy) | {ms('hybrid (tuned)')}" + " | " * len(solvers) + f"{ms('popular')} | - |" + " - |" * len(solvers),
        f"| inf (off), untuned | {ms('hybrid (untuned)')}" + " |" * (len(solvers) + 2 + len(solvers)),
        "",
        "Per seed, c and the items each solver fits on (closed: those given a private Gram row; als: those whose noisy "
        "count clears 3 sigma). `popular` at epsilon E releases the item counts alone with the whole budget; the "
        "hybrid spends 5% of mu^2 on the activity histogram, 15% on the counts (its popularity and the items it fits "
        "on) and the rest on the Gram matrix (closed) or the item steps (als).",
        "",
    ]
    for x in solvers:
        wins = [e for e in res["epsilons"] if s[f"hybrid {x} eps={e:g}"]["mean"] > s[f"popular eps={e:g}"]["mean"]]
        lines.append(f"- hybrid {x} beats the private popular model at epsilon "
                     + (", ".join(f"{e:g}" for e in wins) if wins else "none of these") + ".")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
