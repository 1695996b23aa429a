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
                          "sigma": priv["sigma"], "selected_items": (priv.get("selected_items") or {}).get("count"),
                          "l2_effective": priv.get("l2_effective")}
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
    args = ap.parse_args()
    root = Path(args.data)
    if not (root / "ratings.csv").exists():
        print(f"skipped: MovieLens latest-small not found at {root} (pass --data DIR with ratings.csv, movies.csv, "
              "tags.csv)", file=sys.stderr)
        return 0
    data, movies, _ = ml.load_movielens(root, min_rating=args.min_rating)
    content, how = ml.embed_texts([ml.movie_text(movies[m]) for m in data.items.ids], Path(args.cache))
    epsilons = [float(e) for e in args.epsilons.split(",") if e]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    runs: dict = {}
    t_all = time.perf_counter()
    for seed in seeds:
        split = make_split(data, "random", ratio=Config().evaluate.test_ratio, cold_ratio=Config().evaluate.cold_ratio,
                           seed=seed)
        res: dict = {}

        def run(label: str, name: str, *, epsilon: float = 0.0, tune: str = "auto") -> None:
            cfg = Config()
            cfg.runtime.seed = seed
            cfg.train.tune = tune
            cfg.train.privacy.epsilon = epsilon
            r = fit_and_score(name, split, content, cfg)
            res[label] = r
            extra = f" c {r['privacy']['max_items_per_user']} items {r['privacy']['selected_items']}" if "privacy" in r else ""
            log(f"seed {seed} {label:<22} NDCG@10 {r['ndcg10']:.4f} fit {r['fit_seconds']:.1f}s{extra}")

        run("popular", "popular")
        run("hybrid (tuned)", "hybrid")
        run("hybrid (untuned)", "hybrid", tune="off")
        for e in epsilons:
            run(f"popular eps={e:g}", "popular", epsilon=e)
            run(f"hybrid eps={e:g}", "hybrid", epsilon=e)
        runs[str(seed)] = res
    summary: dict = {}
    for label in runs[str(seeds[0])]:
        v = np.array([runs[str(s)][label]["ndcg10"] for s in seeds])
        summary[label] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                          "values": v.tolist()}
    results = {"protocol": "random split (20% of each user's positives held out), NDCG@10, avrec.evaluate",
               "epsilons": epsilons, "seeds": seeds, "runs": runs, "summary": summary, "machine": ml.machine(),
               "embedding": how, "users": data.n_users, "items": data.n_items, "positives": len(data),
               "min_rating": args.min_rating, "total_seconds": round(time.perf_counter() - t_all, 1),
               "command": "python benchmarks/privacy.py " + " ".join(sys.argv[1:])}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "privacy.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "privacy.md").write_text(markdown(results))
    print(out / "privacy.json")
    return 0


def markdown(res: dict) -> str:
    mc, s, seeds = res["machine"], res["summary"], res["seeds"]
    first = res["runs"][str(seeds[0])]
    ms = lambda k: f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}"  # noqa: E731
    lines = [
        "# User-level differential privacy on MovieLens latest-small",
        "",
        f"- Data: {res['positives']} positives (rating >= {res['min_rating']:g}) from {res['users']} users over "
        f"{res['items']} movies; content: {res['embedding']}. Random split: 20% of each user's positives held out, "
        "every item ranked (seen ones excluded), NDCG@10 from avrec.evaluate, as benchmarks/movielens.py.",
        "- Private fits: `avrec.train.fit_model` with `train.privacy.epsilon` = epsilon, delta = 1 / users^1.1 "
        f"({first['hybrid eps=' + format(res['epsilons'][0], 'g')]['privacy']['delta']:.2e}), "
        "`max_items_per_user` 0 (chosen from a noisy activity histogram), no search (the configured hybrid values). "
        "Neighbours: one user added or removed with all their interactions. The noise is fresh OS entropy.",
        f"- Seeds {', '.join(map(str, seeds))} (split seeds); mean ± std over them. Machine: {mc['cpu']}, "
        f"{mc['cores']} cores, {mc['ram']} RAM, Python {mc['python']}; "
        + ", ".join(f"{k} {v}" for k, v in mc["libs"].items()) + f". Total run {res['total_seconds']:.0f} s.",
        f"- Command: `{res['command'].strip()}`",
        "",
        "| epsilon | hybrid NDCG@10 | popular NDCG@10 | c (items per user) | items in the Gram | sigma Gram | sigma counts |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in res["epsilons"]:
        h = f"hybrid eps={e:g}"
        ps = [res["runs"][str(x)][h]["privacy"] for x in seeds]
        cs = "/".join(str(p["max_items_per_user"]) for p in ps)
        sel = "/".join(str(p["selected_items"]) for p in ps)
        lines.append(f"| {e:g} | {ms(h)} | {ms(f'popular eps={e:g}')} | {cs} | {sel} | "
                     f"{np.mean([p['sigma']['gram'] for p in ps]):.3g} | {np.mean([p['sigma']['counts'] for p in ps]):.3g} |")
    lines += [
        f"| inf (off), tuned | {ms('hybrid (tuned)')} | {ms('popular')} | - | - | - | - |",
        f"| inf (off), untuned | {ms('hybrid (untuned)')} | | | | | |",
        "",
        "Per seed, c and the number of items given a private Gram row; sigma is the mean over seeds. `popular` at "
        "epsilon E releases the item counts alone with the whole budget; the hybrid spends 5% of mu^2 on the "
        "activity histogram, 15% on the counts (its popularity and item selection) and the rest on the Gram matrix.",
        "",
    ]
    wins = [e for e in res["epsilons"] if s[f"hybrid eps={e:g}"]["mean"] > s[f"popular eps={e:g}"]["mean"]]
    lines += [
        "Finding: the private hybrid beats the private popularity baseline at epsilon "
        + (", ".join(f"{e:g}" for e in wins) if wins else "none of these")
        + "; below that, with 609 users, the Gram matrix noise leaves so few items clear of it that the private "
        "popular model (counts alone, the whole budget) ranks better. User-level DP on a data set this small is "
        "expensive; the non-private hybrid stays far ahead.",
        "",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
