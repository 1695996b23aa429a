"""Generated interaction logs at platform sizes, for benchmarks/scale.py (cached on disk).

A log has Zipf item popularity, log-normal user activity and taste clusters: each item
belongs to one of ``clusters`` topics and has a 384-d content vector near its topic's
centre; each user favours one to three topics and draws most of their items from them,
by popularity. Sizes (items, users, interactions): S1 5k/20k/0.5M, S2 20k/100k/2M,
S3 100k/300k/5M, S4 500k/1M/20M.

    python benchmarks/scale_data.py S1        # writes $AVREC_SCALE_CACHE (default $TMPDIR/avrec-scale)/S1/
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"S1": (5_000, 20_000, 500_000), "S2": (20_000, 100_000, 2_000_000),
         "S3": (100_000, 300_000, 5_000_000), "S4": (500_000, 1_000_000, 20_000_000)}
DIM = 384


def cache_root() -> Path:
    return Path(os.environ.get("AVREC_SCALE_CACHE") or Path(tempfile.gettempdir()) / "avrec-scale")


def generate(name: str, *, seed: int = 0, clusters: int = 200, in_topic: float = 0.8) -> Path:
    """Write <cache>/<name>/{interactions.csv, content.npy, content.npy.ids.txt, items.txt}; returns the folder."""
    n_items, n_users, nnz = SIZES[name]
    out = cache_root() / name
    if (out / "done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    topic = rng.integers(0, clusters, n_items)
    centres = rng.normal(size=(clusters, DIM)).astype(np.float32)
    content = centres[topic] + 0.8 * rng.normal(size=(n_items, DIM)).astype(np.float32)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9  # Zipf-like popularity over a random order
    pop = pop[rng.permutation(n_items)]
    by_topic = [np.flatnonzero(topic == k) for k in range(clusters)]
    topic_p = [pop[ix] / pop[ix].sum() for ix in by_topic]
    global_p = pop / pop.sum()
    activity = rng.lognormal(mean=0.0, sigma=1.0, size=n_users)
    # heavy users saturate on popular items: ask for a fifth more to land near nnz distinct pairs
    counts = np.maximum(1, np.round(activity / activity.sum() * nnz * 1.2)).astype(np.int64)
    users, items = [], []
    for u in range(n_users):
        c = int(min(counts[u], n_items // 2))
        favs = rng.choice(clusters, size=rng.integers(1, 4), replace=False)
        want = c
        c = 2 * c  # popular items are drawn more than once: draw twice as many, keep `want` distinct
        n_in = rng.binomial(c, in_topic)
        picks = [rng.choice(len(global_p), size=c - n_in, p=global_p)]
        share = rng.multinomial(n_in, np.ones(len(favs)) / len(favs))
        for k, m in zip(favs, share):
            if m:
                picks.append(by_topic[k][rng.choice(len(by_topic[k]), size=m, p=topic_p[k])])
        it = np.unique(np.concatenate(picks))
        if len(it) > want:
            it = np.sort(rng.choice(it, size=want, replace=False))
        users.append(np.full(len(it), u, np.int64))
        items.append(it)
    u = np.concatenate(users)
    i = np.concatenate(items)
    ts = 1_700_000_000 + rng.integers(0, 86400 * 365, len(u))
    with open(out / "interactions.csv", "w") as f:
        f.write("user_id,item_id,timestamp\n")
        for s in range(0, len(u), 1_000_000):
            f.write("".join(f"u{a},i{b},{t}\n" for a, b, t in zip(u[s:s + 1_000_000], i[s:s + 1_000_000],
                                                                   ts[s:s + 1_000_000])))
    np.save(out / "content.npy", content)
    (out / "content.npy.ids.txt").write_text("".join(f"i{k}\n" for k in range(n_items)))
    (out / "done").write_text(f"{len(u)} interactions in {time.time() - t0:.1f} s\n")
    return out


if __name__ == "__main__":
    for n in sys.argv[1:] or ["S1"]:
        print(generate(n))
