"""The ALS engines `avrec train` can run, on one split of one generated log, in the same run.

- implicit: implicit's conjugate-gradient ALS on the CPU (what `--device cpu` runs), and its
  CUDA build where it is installed (pip's wheels have none);
- torch: avrec/models/torch_als.py, the same steps batched in torch, which `--device cuda`
  runs where implicit has no CUDA build. Timed on torch's CPU device here and on the GPU when
  there is one; on the CPU it is a correctness reference, not a path users take.

Each fit has the same factors, iterations, regularisation and confidence (1 + alpha * weight,
the hybrid's defaults). Quality is NDCG@10 on a random 20% of each user's interactions held
out of the fit, by avrec's evaluation code. Time is the fit alone (the matrix is built once).

Usage: python benchmarks/als_engines.py [--sizes S1,S2] [--factors 64] [--iterations 15]
Writes benchmarks/results/als-engines.json and .md (--name to change).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale_data import generate  # noqa: E402


def engines() -> list[tuple[str, str]]:
    """(engine, device) pairs this machine can run."""
    import implicit.gpu
    import torch

    out = [("implicit", "cpu"), ("torch", "cpu")]
    if torch.cuda.is_available():
        out.append(("torch", "cuda"))
        if implicit.gpu.HAS_CUDA:
            out.append(("implicit", "cuda"))
    return out


def fit(engine: str, device: str, seen, *, factors: int, iterations: int, reg: float, alpha: float, seed: int):
    from avrec.models.mf import fit_als

    return fit_als(seen, factors=factors, iterations=iterations, reg=reg, alpha=alpha, seed=seed, device=device,
                   engine=engine)


def run_size(name: str, args) -> list[dict]:
    import torch

    from avrec.data import random_split
    from avrec.data.interactions import load_interactions
    from avrec.evaluate import evaluate_scorer

    folder = generate(name)
    t0 = time.perf_counter()
    split = random_split(load_interactions(folder / "interactions.csv"), ratio=0.2, seed=0)
    seen = split.train.to_csr()
    print(f"{name}: {seen.shape[0]} users, {seen.shape[1]} items, {seen.nnz} train interactions "
          f"({time.perf_counter() - t0:.1f}s to load and split)", file=sys.stderr, flush=True)
    rows = []
    for engine, device in engines():
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        x, y = fit(engine, device, seen, factors=args.factors, iterations=args.iterations, reg=args.reg,
                   alpha=args.alpha, seed=0)
        if device == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        ndcg = evaluate_scorer(split, lambda u, x=x, y=y: x[u] @ y.T, [10])["metrics"][10]["ndcg"]
        row = {"size": name, "engine": engine, "device": device, "fit_s": round(secs, 2), "ndcg@10": round(ndcg, 4),
               "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
        if device == "cuda":
            row["gpu_peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def machine() -> str:
    import torch

    from movielens import machine as describe

    m = describe()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    libs = ", ".join(f"{k} {v}" for k, v in m["libs"].items())  # torch among them
    return f"{m['cpu']}, {m['cores']} cores, {m['ram']} RAM, {gpu}; python {m['python']}, {libs}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="S1,S2")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--reg", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=10.0)
    ap.add_argument("--name", default="als-engines")
    args = ap.parse_args()
    info = machine()
    rows = [r for s in args.sizes.split(",") for r in run_size(s.strip(), args)]
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps({"machine": info, "args": vars(args), "rows": rows}, indent=1))
    lines = [f"# ALS engines: {args.factors} factors, {args.iterations} iterations, reg {args.reg}, alpha {args.alpha}",
             "", f"Machine: {info}", "", "`python benchmarks/als_engines.py --sizes " + args.sizes + "`", "",
             "| size | engine | device | fit (s) | x implicit cpu | NDCG@10 | peak RSS (GB) | GPU peak (GB) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = next(b for b in rows if b["size"] == r["size"] and b["engine"] == "implicit" and b["device"] == "cpu")
        lines.append(f"| {r['size']} | {r['engine']} | {r['device']} | {r['fit_s']} | {r['fit_s'] / base['fit_s']:.2f} | "
                     f"{r['ndcg@10']} | {r['peak_rss_gb']} | {r.get('gpu_peak_gb', '-')} |")
    lines += ["", "Peak RSS is the process's so far (it only grows), so a row includes the rows above it."]
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print(out / f"{args.name}.md")


if __name__ == "__main__":
    main()
