"""Exact batched top-k: the norm-ordered scan (avrec.index.normscan) against the full
product with avrec's top-k (what the server did before), in the same run (issue 13).

On the served vectors of a real index (default: benchmarks/serve.py's S3 model, 100k
items, 64 factors + bias, trained by `avrec train` on benchmarks/scale_data.py's log), for
random known users with their seen items excluded, batch sizes 1-32 and k 10 and 100:
milliseconds per batch (mean, p99), the share of (user, item) scores the scan computed,
whether the answers agree, and what the server chooses after probing the model's users
(NormScan.calibrate). The same on unit-normalised copies of the vectors, where the bound
can prune nothing (the scan's worst case, where the server takes the full product).

Usage: python benchmarks/normscan.py [--index PATH] [--batches 200]
Writes benchmarks/results/normscan.json and normscan.md.
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

from avrec.index.normscan import NormScan  # noqa: E402
from avrec.index.read import Index, topk_batch  # noqa: E402


def full(vt: np.ndarray, q: np.ndarray, k: int, exclude: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    s = q @ vt
    for j, e in enumerate(exclude):
        s[j, e] = -np.inf
    return topk_batch(s, k)


def run(v: np.ndarray, users: np.ndarray, seen: list[np.ndarray], *, b: int, k: int, batches: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    vt = np.ascontiguousarray(v.T)
    scan = NormScan(v)
    served = NormScan(v)
    served.calibrate(users[:256])  # what avrec serve does at start (it probes 256 of the model's users)
    t_full, t_scan, t_served, read, agree = [], [], [], 0, 0
    for _ in range(batches):
        pick = rng.integers(256, len(users), b)
        q, ex = users[pick], [seen[i] for i in pick]
        t = time.perf_counter()
        _r1, v1 = full(vt, q, k, ex)
        t_full.append(time.perf_counter() - t)
        t = time.perf_counter()
        _r2, v2 = scan.topk(q, k, exclude=ex)
        t_scan.append(time.perf_counter() - t)
        read += scan.last_read
        t = time.perf_counter()
        _r3, v3 = served.topk(q, k, exclude=ex)
        t_served.append(time.perf_counter() - t)
        agree += bool(np.allclose(v1, v2, rtol=1e-5, atol=1e-7) and np.allclose(v1, v3, rtol=1e-5, atol=1e-7))
    f, s, c = (np.asarray(x) * 1e3 for x in (t_full, t_scan, t_served))

    def ms(a):
        return f"{a.mean():.3f} ({np.percentile(a, 99):.3f})"

    return {"batch": b, "k": k, "full_ms": ms(f), "scan_ms": ms(s), "served_ms": ms(c),
            "served_by": "full product" if served.full else "norm scan",
            "speedup": round(float(f.mean() / c.mean()), 2), "read": round(read / (batches * b * len(v)), 4),
            "agree": f"{agree}/{batches}"}


def main() -> None:
    from scale import machine

    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default=None, help="an avrec index (default: benchmarks/serve.py's S3 index)")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--users", type=int, default=5000, help="users sampled for the queries")
    args = ap.parse_args()
    if args.index is None:
        from serve import build

        path = build("S3")[0]
    else:
        path = Path(args.index)
    idx = Index(path)
    v = np.asarray(idx.item_vectors, np.float32)
    rng = np.random.default_rng(0)
    rows = rng.choice(idx.n_users, min(args.users, idx.n_users), replace=False)
    users = np.asarray(idx.user_vectors, np.float32)[rows]
    seen = [np.asarray(idx.seen(int(u)), np.int64) for u in rows]
    unit = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    res = {"machine": machine(), "index": str(path), "items": len(v), "dim": v.shape[1], "cases": []}
    for name, vec in (("served vectors", v), ("unit-normalised copy", unit)):
        for b in (1, 4, 16, 32):
            for k in (10, 100):
                r = {"vectors": name, **run(vec, users, seen, b=b, k=k, batches=args.batches, seed=b * 1000 + k)}
                print(json.dumps(r), file=sys.stderr, flush=True)
                res["cases"].append(r)
    out = ROOT / "benchmarks" / "results"
    (out / "normscan.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = ["# Exact batched top-k: norm-ordered scan against the full product", "",
             f"Machine: {res['machine']}.", "",
             f"Reproduce: `python benchmarks/normscan.py --batches {args.batches}`.", "",
             f"Vectors: {res['items']} items x {res['dim']} from {path} (random known users, their seen items "
             f"excluded; {args.batches} batches per row).", "",
             "`served` is what avrec serve does: it probes 256 of the users at start and keeps the scan only "
             "where that reads at most half of the scores. Times are ms per batch, mean (p99).", "",
             "| vectors | batch | k | full product | norm scan | served (chosen) | served vs full | share scanned | same answers |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["cases"]:
        lines.append(f"| {r['vectors']} | {r['batch']} | {r['k']} | {r['full_ms']} | {r['scan_ms']} | "
                     f"{r['served_ms']} ({r['served_by']}) | {r['speedup']}x | {r['read']} | {r['agree']} |")
    (out / "normscan.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
