"""User interest profiles from an index: what a user's history is about.

numpy only (the read side of :mod:`avrec.index`): ``avrec profile`` and the
``because_you_like`` of ``recommend --explain`` never import torch, transformers, librosa
or OpenCV. A profile is computed from a history, i.e. item rows with weights (a known
user's seen items from the index, weights uniform unless the index stores
``seen_weights.npy``); every weight below is a share of the history's total weight::

    {"user": "u001", "history": 12,
     "tags": [{"tag": "surf", "weight": 0.42, "predicted": false, "items": ["v1", "v3"]}, ...],
     "moods": [{"label": "calm", "weight": 0.31, "items": ["v1"]}, ...],
     "valence": 0.3, "arousal": -0.4,
     "modalities": [{"modality": "video", "weight": 0.9, "coherence": 0.61}, ...],
     "clusters": [{"cluster": 3, "name": "ocean, surf", "weight": 0.5, "items": ["v1", "v3", "v9"]}, ...]}

- tags: given and predicted tags of the history's items; an item's given tag counts its
  weight, a predicted one its weight times the classifier's score. ``predicted`` is true
  when no history item was given the tag (it comes from predictions only).
- moods: the items' top mood labels, weight times the label's score; ``valence`` and
  ``arousal`` are the weighted means over the items whose value is known (null: none).
- modalities: the share of the history's weight on items that have the modality;
  ``coherence`` (content modalities, two items or more) is the norm of the weighted mean
  of the items' unit content vectors in that modality: 1 when they all point the same
  way, near 0 when they are unrelated.
- clusters: the index's content clusters (k-means at build), named by their top tags.

Each list is sorted by weight (ties by name), holds at most ``top`` entries, and lists up
to ``per_entry`` supporting item ids (heaviest first).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .errors import InputError
from .index.read import Index


def _r(x: float) -> float:
    return round(float(x), 4)


def user_history(index: Index, user_row: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weights) of a known user's history in the index."""
    a, b = int(index.seen_indptr[user_row]), int(index.seen_indptr[user_row + 1])
    rows = np.asarray(index.seen_indices[a:b], dtype=np.int64)
    sw = index.seen_weights
    w = np.asarray(sw[a:b], dtype=np.float64) if sw is not None and len(sw) == len(index.seen_indices) \
        else np.ones(len(rows), dtype=np.float64)
    return rows, w


def _norm_weights(rows: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(rows, dtype=np.int64)
    w = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = w > 0
    rows, w = rows[keep], w[keep]
    total = float(w.sum())
    return rows, (w / total if total > 0 else w)


def _csr_entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(entry positions, position in ``rows`` of each entry's item) of a CSR's rows."""
    starts = np.asarray(indptr[rows], dtype=np.int64)
    counts = np.asarray(indptr[rows + 1], dtype=np.int64) - starts
    owner = np.repeat(np.arange(len(rows)), counts)
    pos = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(int(counts.sum()))
    return pos.astype(np.int64), owner


def _ranked(keys: np.ndarray, contrib: np.ndarray, owner: np.ndarray, names: list[str], top: int,
            per_entry: int, item_ids: Any) -> list[tuple[int, float, list[str]]]:
    """Aggregate contributions by key: [(key, weight, supporting ids)] heaviest first."""
    if len(keys) == 0:
        return []
    uniq, inv = np.unique(keys, return_inverse=True)
    tot = np.bincount(inv, weights=contrib, minlength=len(uniq))
    order = sorted(range(len(uniq)), key=lambda j: (-tot[j], names[int(uniq[j])] if names else int(uniq[j])))
    out = []
    for j in order[:top]:
        if tot[j] <= 0:
            continue
        sel = np.flatnonzero(inv == j)
        sel = sel[np.argsort(-contrib[sel], kind="stable")]
        ids: list[str] = []
        for o in owner[sel].tolist():
            i = item_ids(o)
            if i not in ids:
                ids.append(i)
            if len(ids) == per_entry:
                break
        out.append((int(uniq[j]), float(tot[j]), ids))
    return out


def profile(index: Index, rows: np.ndarray, weights: np.ndarray | None = None, *, top: int = 10,
            per_entry: int = 3) -> dict[str, Any]:
    """The interest profile of a history (item rows, weights); see the module docstring."""
    rows, w = _norm_weights(rows, weights)
    ids = lambda o: index.items.id(int(rows[o]))  # noqa: E731 - owner position -> item id
    out: dict[str, Any] = {"history": int(len(rows))}

    # tags, given and predicted
    pos, owner = _csr_entries(index.tags_indptr, rows)
    tags = np.asarray(index.tags_indices[pos], dtype=np.int64)
    pred = np.asarray(index.tags_predicted[pos], dtype=bool)
    score = np.where(pred, np.asarray(index.tags_scores[pos], dtype=np.float64), 1.0)
    vocab = index.tag_vocab
    given = set(tags[~pred].tolist())
    out["tags"] = [{"tag": vocab[t], "weight": _r(wt), "predicted": t not in given, "items": its}
                   for t, wt, its in _ranked(tags, w[owner] * score, owner, vocab, top, per_entry, ids)]

    # moods
    mv = index.mood_vocab
    pos, owner = _csr_entries(index.moods_indptr, rows)
    labs = np.asarray(index.moods_indices[pos], dtype=np.int64)
    msc = np.asarray(index.moods_scores[pos], dtype=np.float64)
    out["moods"] = [{"label": mv[j], "weight": _r(wt), "items": its}
                    for j, wt, its in _ranked(labs, w[owner] * msc, owner, mv, top, per_entry, ids)]
    for name in ("valence", "arousal"):
        col = np.asarray(getattr(index, name)[rows], dtype=np.float64) if len(rows) else np.zeros(0)
        ok = ~np.isnan(col)
        out[name] = _r((w[ok] * col[ok]).sum() / w[ok].sum()) if ok.any() and w[ok].sum() > 0 else None

    # modalities the history's items have, and how coherent it is in each content space
    mods = []
    for m in sorted(set(index.extra.get("item_modalities") or []) | set(index.content_modalities)):
        has = index.has_modality(m)
        in_content = m in index.content_modalities
        mask = np.asarray(has if has is not None else index.content_mask(m), dtype=bool)[rows] if len(rows) else \
            np.zeros(0, bool)
        entry: dict[str, Any] = {"modality": m, "weight": _r(w[mask].sum())}
        if in_content:
            cm = np.asarray(index.content_mask(m), dtype=bool)[rows] if len(rows) else np.zeros(0, bool)
            if cm.sum() >= 2:
                v = np.asarray(index.content(m)[rows[cm]], dtype=np.float64)
                n = np.linalg.norm(v, axis=1, keepdims=True)
                v = v / np.where(n > 0, n, 1.0)
                wc = w[cm] / w[cm].sum()
                entry["coherence"] = _r(np.linalg.norm((wc[:, None] * v).sum(0)))
        if entry["weight"] > 0:
            mods.append(entry)
    mods.sort(key=lambda e: (-e["weight"], -e.get("coherence", -1.0), e["modality"]))
    out["modalities"] = mods[:top]

    # content clusters
    cl = index.clusters
    if cl is not None and len(rows):
        lab = np.asarray(cl[rows], dtype=np.int64)
        ok = lab >= 0
        names = index.cluster_names
        owner = np.flatnonzero(ok)
        out["clusters"] = [{"cluster": c, "name": names[c] if c < len(names) else f"cluster {c}", "weight": _r(wt),
                            "items": its}
                           for c, wt, its in _ranked(lab[ok], w[ok], owner, [], top, per_entry, ids)]
    else:
        out["clusters"] = []
    return out


def user_profile(index: Index, user_id: str, *, top: int = 10, per_entry: int = 3,
                 shown_as: str | None = None) -> dict[str, Any]:
    """The profile of a known user (``user_id`` as the index stores it; ``shown_as``: the
    id to print, e.g. the raw id behind a pseudonym). Unknown user: InputError."""
    row = index.users.row(user_id)
    if row is None:
        raise InputError(f"unknown user {shown_as if shown_as is not None else user_id!r} (the model knows "
                         f"{index.n_users} users); profiles exist for the users the model was trained on")
    rows, w = user_history(index, row)
    return {"user": user_id if shown_as is None else shown_as, **profile(index, rows, w, top=top, per_entry=per_entry)}


def all_profiles(index: Index, *, top: int = 10, per_entry: int = 3) -> Iterator[dict[str, Any]]:
    """Every user's profile, in the index's user order."""
    for u in range(index.n_users):
        rows, w = user_history(index, u)
        yield {"user": index.users.id(u), **profile(index, rows, w, top=top, per_entry=per_entry)}


def interests(index: Index, rows: np.ndarray, weights: np.ndarray | None = None, *, n_tags: int = 5,
              n_moods: int = 3) -> list[tuple[str, str]]:
    """A history's top interests as [("tag", name) ..., ("mood", label) ...], heaviest first:
    what ``because_you_like`` matches a recommended item against."""
    rows, w = _norm_weights(rows, weights)
    if len(rows) == 0:
        return []
    out: list[tuple[str, str]] = []
    for kind, indptr, indices, scores, vocab, n in (
        ("tag", index.tags_indptr, index.tags_indices, None, index.tag_vocab, n_tags),
        ("mood", index.moods_indptr, index.moods_indices, index.moods_scores, index.mood_vocab, n_moods),
    ):
        pos, owner = _csr_entries(indptr, rows)
        if len(pos) == 0:
            continue
        keys = np.asarray(indices[pos], dtype=np.int64)
        if scores is None:
            pred = np.asarray(index.tags_predicted[pos], dtype=bool)
            sc = np.where(pred, np.asarray(index.tags_scores[pos], dtype=np.float64), 1.0)
        else:
            sc = np.asarray(scores[pos], dtype=np.float64)
        tot = np.bincount(keys, weights=w[owner] * sc, minlength=len(vocab))
        order = sorted(np.flatnonzero(tot > 0).tolist(), key=lambda j: (-tot[j], vocab[j]))
        out.extend((kind, vocab[j]) for j in order[:n])
    return out


def because_you_like(index: Index, likes: list[tuple[str, str]], row: int) -> list[str]:
    """The user's interests (from :func:`interests`) that item ``row`` carries, in the
    user's order: its tags (given or predicted) and its top mood labels."""
    if not likes:
        return []
    tags = {t for t, _, _ in index.item_tags(row)}
    moods = {lab for lab, _ in index.item_moods(row)}
    out: list[str] = []
    for kind, name in likes:  # a tag and a mood may share a name ("calm"): said once
        if name in (tags if kind == "tag" else moods) and name not in out:
            out.append(name)
    return out
