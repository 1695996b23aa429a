"""Seeded train/test splits, written to disk so other tools can use the very same split.

- ``random``: each user's interactions are shuffled and ``ratio`` of them held out.
- ``temporal``: a global time cut at the ``1 - ratio`` quantile of timestamps.
- ``last``: leave the last ``n`` interactions of each user out (by timestamp).
- ``cold``: a fraction of *items* is held out entirely; their interactions form the test.

Each returns a :class:`Split` of two :class:`Interactions` over the same index spaces.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .interactions import Interactions

PROTOCOLS = ("random", "temporal", "last", "cold")


@dataclass
class Split:
    name: str
    train: Interactions
    test: Interactions
    cold_items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # held-out item rows
    params: dict[str, Any] = field(default_factory=dict)


def random_split(data: Interactions, *, ratio: float, seed: int = 0, min_train: int = 1) -> Split:
    """Hold out ``ratio`` of each user's interactions (users keep at least ``min_train``)."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(data)), data.user))  # shuffled within each user
    users = data.user[order]
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    n_test = np.floor(counts * ratio + rng.random(len(counts))).astype(np.int64)  # unbiased rounding
    n_test = np.minimum(n_test, np.maximum(counts - min_train, 0))
    pos = np.arange(len(users)) - np.repeat(starts, counts)
    is_test = np.zeros(len(data), bool)
    is_test[order] = pos < np.repeat(n_test, counts)
    return Split("random", data.subset(~is_test), data.subset(is_test), params={"ratio": ratio, "seed": seed})


def temporal_split(data: Interactions, *, ratio: float) -> Split:
    """Global cut: the latest ``ratio`` of interactions (by timestamp) form the test."""
    if not data.has_time:
        raise InputError(f"temporal split needs a timestamp on every interaction: {data.untimed()}")
    cut = float(np.quantile(data.timestamp, 1.0 - ratio))
    is_test = data.timestamp > cut
    return Split("temporal", data.subset(~is_test), data.subset(is_test), params={"ratio": ratio, "cut": cut})


def leave_last_split(data: Interactions, *, n: int = 1, ratio: float | None = None, seed: int = 0) -> Split:
    """Each user's last ``n`` interactions by time form the test, or with ``ratio`` their
    newest ``ratio`` share (rounded without bias); users keep at least one."""
    if not data.has_time:
        raise InputError(f"leave-last-n split needs a timestamp on every interaction: {data.untimed()}")
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(data)), -data.timestamp, data.user))  # newest first per user
    users = data.user[order]
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1] if len(users) else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, len(users)])
    want = n if ratio is None else np.floor(counts * ratio + rng.random(len(counts))).astype(np.int64)
    n_test = np.minimum(want, counts - 1)
    pos = np.arange(len(users)) - np.repeat(starts, counts)
    is_test = np.zeros(len(data), bool)
    is_test[order] = pos < np.repeat(n_test, counts)
    params = {"n": n, "seed": seed} if ratio is None else {"ratio": ratio, "seed": seed}
    return Split("last", data.subset(~is_test), data.subset(is_test), params=params)


def cold_item_split(data: Interactions, *, ratio: float, seed: int = 0) -> Split:
    """Hold out ``ratio`` of the items that have interactions, with all their interactions."""
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(data.item_counts() > 0)
    n_cold = max(1, int(round(len(active) * ratio)))
    cold = np.sort(rng.choice(active, size=n_cold, replace=False)).astype(np.int32)
    is_test = np.isin(data.item, cold)
    return Split(
        "cold", data.subset(~is_test), data.subset(is_test), cold_items=cold,
        params={"ratio": ratio, "seed": seed, "n_cold_items": int(n_cold)},
    )


def make_split(data: Interactions, protocol: str, *, ratio: float, cold_ratio: float, seed: int, last_n: int = 1) -> Split:
    if protocol == "random":
        return random_split(data, ratio=ratio, seed=seed)
    if protocol == "temporal":
        return temporal_split(data, ratio=ratio)
    if protocol == "last":
        return leave_last_split(data, n=last_n, seed=seed)
    if protocol == "cold":
        return cold_item_split(data, ratio=cold_ratio, seed=seed)
    raise InputError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def write_csv(data: Interactions, path: str | Path) -> None:
    """user_id,item_id,weight,timestamp (timestamp empty when unknown), sorted by user then item."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.lexsort((data.item, data.user))
    users, items = data.users.ids, data.items.ids
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "weight", "timestamp"])
        for k in order:
            t = data.timestamp[k]
            w.writerow([users[data.user[k]], items[data.item[k]], f"{data.weight[k]:g}", "" if not np.isfinite(t) else f"{t:.0f}" if t == int(t) else f"{t}"])


def write_split(split: Split, directory: str | Path) -> Path:
    """Write ``train.csv`` and ``test.csv`` (and ``cold_items.txt`` for the cold split)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    write_csv(split.train, d / "train.csv")
    write_csv(split.test, d / "test.csv")
    if split.name == "cold":
        ids = split.train.items.ids
        (d / "cold_items.txt").write_text("".join(f"{ids[i]}\n" for i in split.cold_items), encoding="utf-8")
    return d
