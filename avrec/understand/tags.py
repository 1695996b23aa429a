"""Zero-shot tags: which words of a vocabulary (``understand.tags``) fit each item.

Each configured joint space scores every (item, tag) pair:

- ``video`` with ``embed.video=clip:...``: the item's pooled frame vector against
  "a photo of {tag}" (CLIP's own prompt, Radford et al. 2021);
- ``audio`` with ``embed.audio=clap:...``: the pooled audio vector against "the sound of {tag}";
- ``text``: the item's text vector against the tag embedded by the same text encoder.

The score is the *centred cosine* (:func:`avrec.understand.mood.centred_cosine`): items are
centred on their space's catalogue mean (the same mean embed centres each modality on before
fusing) and the tag embeddings on the vocabulary's mean. ``understand.tag_threshold`` applies
to that score, in every space. Why not the raw cosine: raw cosines differ by space and by tag
(CLIP's image-text cosines all sit near 0.25, a text encoder's between 0 and 0.8, and a broad
tag such as "music" is close to everything), so one raw threshold would tag everything in one
space and nothing in another. The centred cosine is still a cosine in [-1, 1], but it measures
how much better this item fits this tag than the catalogue's average item fits the
vocabulary's average tag. It is relative to the catalogue and the vocabulary: give at least
a handful of tags (with a single tag there is nothing to centre it on, and its raw cosine is
used). An item keeps each tag's best score over the spaces (``from`` names that space) and
at most ``understand.tag_top`` tags, best first.

Neighbour votes (:func:`neighbour_scores`, ``understand.tag_neighbours``): where some items
were given tags of the vocabulary, they vote them onto the items most like them in each
modality (``from`` = ``neighbours:<modality>``), with ``understand.tag_neighbour_threshold``
on the weighted share of votes; :func:`merge` joins them with the zero-shot tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from .mood import centred_cosine

PROMPTS = {"video": "a photo of {tag}", "audio": "the sound of {tag}", "text": "{tag}"}


def vocabulary(tags: Sequence[str] | str | None) -> list[str]:
    """The tag list: the config's list, or one entry that is a file with one tag per line
    ('#' starts a comment). Duplicates (case-insensitive) and blanks are dropped."""
    if isinstance(tags, str):
        tags = [tags]
    tags = [str(t).strip() for t in (tags or []) if str(t).strip()]
    if len(tags) == 1:
        p = Path(tags[0]).expanduser()
        if p.is_file() or tags[0].endswith((".txt", ".tags", ".list")):
            try:
                lines = p.read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise ConfigError(f"understand.tags={tags[0]}: cannot read the tag file ({e.strerror or e})") from None
            tags = [ln.split("#", 1)[0].strip() for ln in lines]
            tags = [t for t in tags if t]
            if not tags:
                raise ConfigError(f"understand.tags={p}: the file holds no tags (one per line)")
    seen: dict[str, str] = {}
    for t in tags:
        seen.setdefault(t.lower(), t)
    return list(seen.values())


def space_scores(x: np.ndarray, mask: np.ndarray, x_mean: np.ndarray | None, tag_vecs: np.ndarray) -> np.ndarray:
    """(n, k) centred cosines; rows of items without this modality are -inf."""
    s = centred_cosine(x, x_mean, tag_vecs)
    s[~np.asarray(mask, bool)] = -np.inf
    return s


def pick(tags: list[str], scores: dict[str, np.ndarray], *, threshold: float, top: int) -> list[list[dict[str, Any]]]:
    """{space: (n, k) scores} -> per item [{tag, score, from}] (>= threshold, best first, <= top).

    A tag several spaces give keeps its best score (the first space on a tie). Vectorised
    over the entries that clear the threshold: Python touches only the tags it returns."""
    if not scores:
        return []
    names = list(scores)
    n = len(scores[names[0]])
    parts = []
    for p, name in enumerate(names):
        s = scores[name]
        r, c = np.nonzero(s >= threshold)
        parts.append((r, c, np.asarray(s[r, c], np.float64), np.full(len(r), p)))
    r, c, sc, sp = (np.concatenate(x) for x in zip(*parts))
    o = np.lexsort((sp, -sc, c, r))  # each (item, tag): best score first, then the first space
    r, c, sc, sp = r[o], c[o], sc[o], sp[o]
    first = np.ones(len(r), bool)
    first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    r, c, sc, sp = r[first], c[first], sc[first], sp[first]
    o = np.lexsort((c, -sc, r))  # each item: best first, then vocabulary order
    r, c, sc, sp = r[o], c[o], sc[o], sp[o]
    rank = np.arange(len(r)) - np.searchsorted(r, r)
    keep = rank < top
    out: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for i, j, v, q in zip(r[keep].tolist(), c[keep].tolist(), sc[keep].tolist(), sp[keep].tolist()):
        out[i].append({"tag": tags[j], "score": round(v, 4), "from": names[q]})
    return out


def given_labels(items: Sequence[dict[str, Any]], vocab: list[str]) -> np.ndarray:
    """(n, k) bool: which vocabulary tags each item was given (case-insensitive)."""
    col = {t.lower(): j for j, t in enumerate(vocab)}
    y = np.zeros((len(items), len(vocab)), bool)
    for i, it in enumerate(items):
        for t in it.get("tags") or []:
            j = col.get(str(t).strip().lower())
            if j is not None:
                y[i, j] = True
    return y


def neighbour_scores(x: np.ndarray, mask: np.ndarray, x_mean: np.ndarray | None, labels: np.ndarray, *,
                     k: int, max_reference: int = 10000, seed: int = 0, block: int = 2048) -> np.ndarray:
    """(n, V) tags from the most similar items that were given them: for each item, the
    ``k`` nearest labelled items (cosine of catalogue-centred vectors in one modality, the
    item itself excluded) vote for their tags, each vote weighted by its cosine (negative
    ones count 0). A score is the weighted share of the neighbours carrying the tag, in
    [0, 1]; rows of items without this modality are -inf.

    Labelled items above ``max_reference`` are sampled (seeded): the cost is n x reference x d.
    This needs no text-aligned space, so it tags from audio or builtin features too, and it
    learns what the catalogue's own tags mean rather than what a tag word means to an encoder."""
    from ..metrics import _topk_wide

    n, V = labels.shape
    out = np.full((n, V), -np.inf, np.float32)  # float32: at 10^6 items and 100 tags, 400 MB a space
    mask = np.asarray(mask, bool)
    ref = np.flatnonzero(mask & labels.any(axis=1))
    if len(ref) > max_reference:
        ref = np.sort(np.random.default_rng(seed).choice(ref, max_reference, replace=False))
    if len(ref) < 2:
        return out
    centre = np.asarray(x_mean, np.float32) if x_mean is not None else np.float32(0.0)

    def unit(rows: np.ndarray) -> np.ndarray:  # centred and normalised a block at a time: no (n, d) copy
        v = np.asarray(x[rows], np.float32) - centre
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    r, y = unit(ref), labels[ref].astype(np.float32)
    pos = np.full(n, -1)
    pos[ref] = np.arange(len(ref))
    kk = min(k, len(ref) - 1)
    rows = np.flatnonzero(mask)
    for s in range(0, len(rows), block):
        q = rows[s:s + block]
        sim = unit(q) @ r.T
        own = pos[q] >= 0
        sim[np.flatnonzero(own), pos[q][own]] = -np.inf  # an item is not its own neighbour
        if sim.shape[1] >= 8 * kk:  # the block-maxima filter: 5x argpartition's speed at 10k references, k 20
            nb, w = _topk_wide(sim, kk, block=max(8, sim.shape[1] // (4 * kk)))
            w = np.maximum(w, 0.0)
        else:
            nb = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
            w = np.maximum(np.take_along_axis(sim, nb, axis=1), 0.0)
        votes = np.einsum("qk,qkv->qv", w, y[nb])
        out[q] = votes / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return out


def merge(a: list[list[dict[str, Any]]], b: list[list[dict[str, Any]]], *, top: int) -> list[list[dict[str, Any]]]:
    """Per item, the union of two pick() lists: a tag in both keeps its higher score and
    names both sources; best first, at most ``top``."""
    if not a:
        return b
    if not b:
        return a
    out = []
    for x, y in zip(a, b):
        by: dict[str, dict[str, Any]] = {}
        for e in [*x, *y]:
            old = by.get(e["tag"])
            if old is None:
                by[e["tag"]] = dict(e)
            else:
                keep = dict(old if old["score"] >= e["score"] else e)
                keep["from"] = "+".join(dict.fromkeys([*old["from"].split("+"), *e["from"].split("+")]))
                by[e["tag"]] = keep
        out.append(sorted(by.values(), key=lambda e: -e["score"])[:top])
    return out
