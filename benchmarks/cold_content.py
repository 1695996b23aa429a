"""Cold items: the default hybrid against the content-only cosine reference, on generated logs
whose content carries the taste to different degrees.

Issue 12's sanity reference says the default must at least match content-only cosine on items
nobody has seen. Where content alone decides the taste, cosine to the history is close to the
best possible ranker, so that is the hard case for a model that maps content into factors.

Worlds (each generated from its seed; nothing here is tuned to them):

- ``clusters``: items in content clusters, each user likes one cluster (popularity falls off
  within it) plus a few random items; the content is the cluster centre plus noise.
- ``latent:<noise>``: taste is a 16-factor model with Zipf popularity; an item's content is a
  linear view of its factors (48 dims) plus Gaussian noise of that scale, and 16 dims of pure
  noise. ``latent:0.5`` is content that predicts well, ``latent:4`` content that mostly does not.

Each run: avrec's cold-item split (20% of the items held out with all their interactions; each
user's held-out items ranked among the held-out items only), the hybrid as ``avrec train``
fits it with no flags (its search runs on a split of the training part) and ``avrec train
--model content``, both scored with avrec.evaluate's NDCG@10.

Usage: python benchmarks/cold_content.py [--worlds clusters,latent:0.5,latent:4] [--seeds 0,1,2]
Writes benchmarks/results/cold-content.json and .md (--name to change).
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


def clusters(seed: int, *, n_clusters: int = 20, per_cluster: int = 60, n_users: int = 3000, per_user: int = 20,
             noise_items: int = 3, dim: int = 64):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    n_items = n_clusters * per_cluster
    cluster = np.repeat(np.arange(n_clusters), per_cluster)
    content = centres[cluster] + 0.35 * rng.normal(size=(n_items, dim))
    pop = 1.0 / (1.0 + np.arange(per_cluster)) ** 0.7
    users, items = [], []
    for u in range(n_users):
        c = u % n_clusters
        n = int(rng.integers(per_user // 2, per_user + per_user // 2 + 1))
        liked = rng.choice(per_cluster, size=n, replace=False, p=pop / pop.sum()) + c * per_cluster
        for i in np.concatenate([liked, rng.choice(n_items, size=noise_items, replace=False)]):
            users.append(f"u{u}")
            items.append(f"i{int(i)}")
    return users, items, n_items, content


def latent(seed: int, noise: float, *, n_items: int = 2000, n_users: int = 4000, k: int = 16):
    rng = np.random.default_rng(seed)
    q, p = rng.normal(size=(n_items, k)), rng.normal(size=(n_users, k))
    pop = rng.zipf(1.6, n_items).clip(max=200).astype(float)
    logits = p @ q.T / 2 + np.log(pop)[None]
    users, items = [], []
    for u in range(n_users):
        n = min(int(rng.lognormal(2.5, 0.6)) + 3, 200)
        w = np.exp(logits[u] - logits[u].max())
        for i in rng.choice(n_items, size=n, replace=False, p=w / w.sum()):
            users.append(f"u{u}")
            items.append(f"i{int(i)}")
    content = np.hstack([q @ rng.normal(size=(k, 48)) + noise * rng.normal(size=(n_items, 48)),
                         rng.normal(size=(n_items, 16))])
    return users, items, n_items, content


def world(name: str, seed: int):
    from avrec.data import from_arrays

    if name == "clusters":
        users, items, n, content = clusters(seed)
    elif name.startswith("latent:"):
        users, items, n, content = latent(seed, float(name.split(":", 1)[1]))
    else:
        raise SystemExit(f"unknown world {name!r}: clusters or latent:<noise>")
    content = content / np.linalg.norm(content, axis=1, keepdims=True)  # unit rows, as embed writes them
    return from_arrays(users, items, catalogue=[f"i{i}" for i in range(n)]), content.astype(np.float32)


def run(name: str, seed: int) -> dict:
    from avrec.config import Config
    from avrec.data import make_split
    from avrec.evaluate import evaluate_scorer
    from avrec.train import fit_model

    data, content = world(name, seed)
    cfg = Config()
    cfg.runtime.seed = seed
    ev = cfg.evaluate
    split = make_split(data, "cold", ratio=ev.test_ratio, cold_ratio=ev.cold_ratio, seed=seed)
    train = split.train.to_csr()
    out = {"world": name, "seed": seed, "items": data.n_items, "users": data.n_users, "interactions": len(data),
           "cold_items": int(len(split.cold_items))}
    for model in ("content", "hybrid"):
        t0 = time.perf_counter()
        m, chosen, _ = fit_model(model, train, content, cfg, device="cpu", progress=lambda s: None)
        out[model] = {"ndcg10": round(evaluate_scorer(split, m.score, [10])["metrics"][10]["ndcg"], 4),
                      "seconds": round(time.perf_counter() - t0, 1)}
        if model == "hybrid":
            out[model]["chosen"] = {k: v for k, v in chosen.items() if k not in ("modality_weights",)}
    out["ratio"] = round(out["hybrid"]["ndcg10"] / max(out["content"]["ndcg10"], 1e-12), 3)
    print(f"{name} seed {seed}: content {out['content']['ndcg10']:.4f} hybrid {out['hybrid']['ndcg10']:.4f} "
          f"({out['ratio']:.3f}x)", file=sys.stderr, flush=True)
    return out


def markdown(res: dict) -> str:
    lines = ["# Cold items: the default hybrid against content-only cosine", "",
             f"Machine: {res['machine']}.", "", f"Reproduce: `{res['command']}`.", "",
             "Worlds and protocol: see the docstring of benchmarks/cold_content.py. NDCG@10 on avrec's cold-item "
             "split; the hybrid with no flags (its own search on a split of the training part), the content model "
             "has no parameters.", "",
             "| world | seed | items | users | interactions | content | hybrid | hybrid / content | hybrid chose |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["runs"]:
        ch = ", ".join(f"{k} {v}" for k, v in r["hybrid"]["chosen"].items())
        lines.append(f"| {r['world']} | {r['seed']} | {r['items']} | {r['users']} | {r['interactions']} | "
                     f"{r['content']['ndcg10']:.4f} | {r['hybrid']['ndcg10']:.4f} | {r['ratio']:.3f} | {ch} |")
    lines += ["", "Mean per world (hybrid / content of the means; the runs at or above 1):", ""]
    for w in dict.fromkeys(r["world"] for r in res["runs"]):
        rs = [r for r in res["runs"] if r["world"] == w]
        c, h = np.mean([r["content"]["ndcg10"] for r in rs]), np.mean([r["hybrid"]["ndcg10"] for r in rs])
        lines.append(f"- {w}: content {c:.4f}, hybrid {h:.4f} = {h / c:.3f}x; "
                     f"{sum(r['ratio'] >= 1 for r in rs)} of {len(rs)} seeds at or above")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worlds", default="clusters,latent:0.5,latent:4")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--name", default="cold-content")
    args = ap.parse_args()
    from scale import machine

    info = machine()
    runs = [run(w, int(s)) for w in args.worlds.split(",") if w for s in args.seeds.split(",") if s]
    res = {"machine": info, "command": "python " + " ".join(["benchmarks/cold_content.py", *sys.argv[1:]]),
           "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(res, indent=1))
    (out / f"{args.name}.md").write_text(markdown(res))
    print(out / f"{args.name}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
