"""Generated interactions with planted content taste: items in content clusters, users who
like one cluster. Used by the train / evaluate / model tests (no files, no network)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Taste:
    item_ids: list[str]
    item_cluster: np.ndarray  # (n_items,) int
    content: np.ndarray  # (n_items, dim) float32, L2-normalised
    user_ids: list[str]
    user_cluster: np.ndarray  # (n_users,) int
    rows: list[tuple[str, str, float, int]]  # (user_id, item_id, weight, timestamp)


def make_taste(*, n_clusters: int = 4, items_per_cluster: int = 30, n_users: int = 80, per_user: int = 12,  # average liked items per user (varies from half to 1.5x)
               noise_items: int = 1, dim: int = 16, seed: int = 0) -> Taste:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    n_items = n_clusters * items_per_cluster
    item_cluster = np.repeat(np.arange(n_clusters), items_per_cluster)
    content = centres[item_cluster] + 0.35 * rng.normal(size=(n_items, dim))
    content = (content / np.linalg.norm(content, axis=1, keepdims=True)).astype(np.float32)
    item_ids = [f"item-{i:03d}" for i in range(n_items)]
    # within a cluster, popularity falls off so that order matters
    pop = 1.0 / (1.0 + np.arange(items_per_cluster)) ** 0.7
    user_cluster = np.arange(n_users) % n_clusters
    user_ids = [f"u{u}" for u in range(n_users)]
    rows = []
    t = 1_600_000_000
    for u in range(n_users):
        c = user_cluster[u]
        n_liked = int(rng.integers(max(2, per_user // 2), min(items_per_cluster, per_user + per_user // 2) + 1))
        liked = rng.choice(items_per_cluster, size=n_liked, replace=False, p=pop / pop.sum()) + c * items_per_cluster
        other = rng.choice(n_items, size=noise_items, replace=False)
        for i in np.concatenate([liked, other]):
            t += int(rng.integers(1, 100))
            rows.append((user_ids[u], item_ids[int(i)], 1.0, t))
    return Taste(item_ids, item_cluster, content, user_ids, user_cluster, rows)


def as_data(taste: Taste):
    """The log as avrec's Interactions, timestamps kept, over the whole catalogue."""
    from avrec.data import from_arrays

    rows = taste.rows
    return from_arrays([r[0] for r in rows], [r[1] for r in rows], timestamps=[r[3] for r in rows],
                       catalogue=taste.item_ids)


def write_csv(taste: Taste, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("user_id,item_id,weight,timestamp\n")
        for u, i, w, t in taste.rows:
            f.write(f"{u},{i},{w:g},{t}\n")


def write_embeddings(taste: Taste, directory, *, items: list[int] | None = None) -> None:
    """A minimal embeddings artifact (docs/artifacts.md) holding ``items`` (all by default)."""
    from pathlib import Path

    from avrec.artifacts import Manifest, save_npy, write_jsonl, write_manifest

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rows = range(len(taste.item_ids)) if items is None else items
    write_jsonl(d / "items.jsonl", (
        {"item_id": taste.item_ids[i], "title": f"title {i}", "description": "", "tags": [f"c{taste.item_cluster[i]}"],
         "modalities": ["text"], "duration": None, "path": None} for i in rows
    ))
    save_npy(d / "fused.npy", taste.content[list(rows)])
    save_npy(d / "text.npy", taste.content[list(rows)])
    write_manifest(d, Manifest(artifact="embeddings", models={"text": {"name": "synthetic", "dim": taste.content.shape[1]}},
                               counts={"items": len(rows)}))
