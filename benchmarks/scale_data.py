"""Generated interaction logs at platform sizes, for benchmarks/scale.py (cached on disk).

A log has Zipf item popularity, log-normal user activity and taste clusters: each item
belongs to one of ``clusters`` topics and has a 384-d content vector near its topic's
centre; each user favours one to three topics and draws most of their items from them,
by popularity (topics may repeat among a user's three). Sizes (items, users, interactions): S1 5k/20k/0.5M, S2 20k/100k/2M,
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
    """Write <cache>/<name>/{interactions.csv, content.npy, content.npy.ids.txt}; returns the folder.

    Vectorised over users (one draw of every interaction at once, by inverse CDF): S4's
    1M users take about a minute, where a loop over users would take hours.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

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
    # inverse CDFs: of all items, and of each topic's items laid end to end (topic k on [k, k+1])
    global_cdf = np.cumsum(pop) / pop.sum()
    by_topic = np.argsort(topic, kind="stable")
    t_sorted = topic[by_topic]
    p_sorted = pop[by_topic]
    topic_sum = np.bincount(t_sorted, weights=p_sorted, minlength=clusters)
    within = np.cumsum(p_sorted) - np.repeat(np.cumsum(topic_sum) - topic_sum, np.bincount(t_sorted, minlength=clusters))
    topic_cdf = t_sorted + within / np.maximum(topic_sum[t_sorted], 1e-300)
    # users: log-normal activity (a fifth more asked for: heavy users saturate on popular items)
    activity = rng.lognormal(mean=0.0, sigma=1.0, size=n_users)
    want = np.minimum(np.maximum(1, np.round(activity / activity.sum() * nnz * 1.2)), n_items // 2).astype(np.int64)
    draws = 2 * want  # popular items come up more than once: draw twice as many, keep `want` distinct
    n_in = rng.binomial(draws, in_topic)
    n_fav = rng.integers(1, 4, n_users)
    favs = rng.integers(0, clusters, (n_users, 3))  # up to three favourite topics (the first n_fav of these)
    u_in = np.repeat(np.arange(n_users), n_in)
    slot = (rng.random(len(u_in)) * n_fav[u_in]).astype(np.int64)
    k = favs[u_in, slot]
    item_in = by_topic[np.minimum(np.searchsorted(topic_cdf, k + rng.random(len(u_in))), n_items - 1)]
    u_out = np.repeat(np.arange(n_users), draws - n_in)
    item_out = np.minimum(np.searchsorted(global_cdf, rng.random(len(u_out))), n_items - 1)
    u = np.concatenate([u_in, u_out])
    i = np.concatenate([item_in, item_out])
    key = np.unique(u * n_items + i)  # distinct (user, item), sorted by user
    u, i = key // n_items, key % n_items
    # keep `want` of each user's distinct items, chosen at random
    order = np.lexsort((rng.random(len(u)), u))
    u, i = u[order], i[order]
    rank = np.arange(len(u)) - np.searchsorted(u, u)
    keep = rank < want[u]
    u, i = u[keep], i[keep]
    ts = 1_700_000_000 + rng.integers(0, 86400 * 365, len(u))
    col = lambda prefix, x: pc.binary_join_element_wise(prefix, pc.cast(pa.array(x), pa.string()), "")  # noqa: E731
    table = pa.table({"user_id": col("u", u), "item_id": col("i", i), "timestamp": pa.array(ts)})
    pcsv.write_csv(table, out / "interactions.csv", pcsv.WriteOptions(quoting_style="none"))
    np.save(out / "content.npy", content)
    (out / "content.npy.ids.txt").write_text("".join(f"i{k}\n" for k in range(n_items)))
    (out / "done").write_text(f"{len(u)} interactions in {time.time() - t0:.1f} s\n")
    return out


if __name__ == "__main__":
    for n in sys.argv[1:] or ["S1"]:
        print(generate(n))
