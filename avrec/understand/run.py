"""What ``avrec embed`` runs for the ``understand`` section once the modality vectors exist:
moods (:mod:`.mood`) and zero-shot tags (:mod:`.tags`); captions run earlier, with the
models (:mod:`.captions`), because they join the text the text encoder reads.

Without an extra model this is numpy over the builtin features plus VADER over the texts
(milliseconds per item); the zero-shot paths reuse the vectors embed already computed and
embed only the prompts.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from . import mood as M
from .tags import PROMPTS, given_labels, merge, neighbour_scores, pick, space_scores, vocabulary

Progress = Callable[[str], None]


def _centre(x: np.ndarray, mask: np.ndarray, means: dict[str, np.ndarray] | None, m: str) -> np.ndarray | None:
    """The catalogue mean of modality ``m``: the recipe's (embed --like) or these items'."""
    if means and m in means and means[m].shape[0] == x.shape[1]:
        return np.asarray(means[m], np.float64)
    return x[mask].mean(axis=0) if mask.any() else None


def understand(
    store: Any, items: list[dict[str, Any]], cfg: Any, *, texts: list[str], plan: dict[str, str],
    vectors: dict[str, np.ndarray], masks: dict[str, np.ndarray], text_encoder: Callable[[str], Any],
    sentiment: Any = None, means: dict[str, np.ndarray] | None = None, stats: dict[str, Any] | None = None,
    need_mood: bool = False, progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """-> (per-item ``understand`` records (mood, tags; {} when nothing), manifest info,
    mood block (n, MOOD_DIM) or None, its mask).

    plan: {modality: canonical encoder name}; text_encoder(name) gives the loaded encoder
    that can embed text in that name's space (or None); sentiment: a loaded classifier;
    means: the catalogue means per modality; stats: the catalogue's mood statistics
    (``embed --like``); need_mood: compute moods even if ``understand.mood`` is off (the
    reference catalogue's fusion recipe has a mood block).
    """
    from ..encoders.registry import parse_name

    say = progress or (lambda _msg: None)
    uc = cfg.understand
    kinds = dict(getattr(cfg.embed, "kinds", None) or {})  # named modalities: what each one is made from
    n = len(items)
    records: list[dict[str, Any]] = [{} for _ in range(n)]
    info: dict[str, Any] = {}
    mood_x = mood_mask = None

    if uc.mood or need_mood:
        t0 = time.monotonic()
        stats = dict(stats or {})
        est: dict[str, list] = {}
        # text: the classifier when configured, else the lexicon
        if sentiment is not None:
            ts = time.monotonic()
            probs, present = sentiment.classify(texts)
            est["text"] = M.classifier_mood(probs, sentiment.labels, present)
            info["sentiment"] = {"name": sentiment.name, "revision": sentiment.revision, "labels": sentiment.labels,
                                 "items": int(present.sum()), "seconds": round(time.monotonic() - ts, 3)}
        else:
            est["text"] = M.text_mood(texts)
        # audio and video: the joint space's prompts when CLAP / CLIP embedded them, else signals
        for m, signal, prompts, kind in (("audio", M.audio_mood, M.AUDIO_PROMPTS, "clap"),
                                         ("video", M.video_mood, M.VIDEO_PROMPTS, "clip")):
            raw, present = store.feature_matrix(items, m)
            names = (store.manifest.get("extra") or {}).get(f"{m}_feature_names") or []
            sig, st = signal(raw, present, names, (stats.get(m) or None))
            if st:
                stats[m] = st
            # the first modality of this medium embedded by the joint model (named modalities too)
            mod = next((k for k, e in plan.items() if kinds.get(k, k) == m and parse_name(e)[0] == kind), "")
            name = plan.get(mod, "")
            enc = text_encoder(name) if name else None
            if enc is not None and mod in vectors and masks[mod].any():
                x, mask = vectors[mod], masks[mod]
                zs = M.zero_shot_mood(x, mask, _centre(x, mask, means, mod), M.prompt_matrix(enc.encode_text, prompts),
                                      f"{m}:{kind}" if mod == m else f"{mod}:{kind}")
                sig = [z if z is not None else s for z, s in zip(zs, sig)]
            est[m] = sig
        moods = M.fuse(est, n)
        for r, md in zip(records, moods):
            if md:
                r["mood"] = md
        mood_x, mood_mask = M.mood_vectors(moods)
        sources: dict[str, int] = {}
        for md in moods:
            for d, f in (md or {}).get("from", {}).items():
                for s in f.split("+"):
                    sources[f"{d}:{s}"] = sources.get(f"{d}:{s}", 0) + 1
        info["mood"] = {"items": int(mood_mask.sum()), "sources": dict(sorted(sources.items())), "stats": stats,
                        "weight": float(uc.mood_weight), "seconds": round(time.monotonic() - t0, 3)}
        say(f"embed understand: moods of {int(mood_mask.sum())}/{n} items ({info['mood']['seconds']:.2f}s)")

    vocab = vocabulary(uc.tags)
    if vocab:
        t0 = time.monotonic()
        scores: dict[str, np.ndarray] = {}
        spaces: dict[str, str] = {}
        for m, name in plan.items():
            prefix = parse_name(name)[0]
            kind = kinds.get(m, m)
            if (kind == "video" and prefix != "clip") or (kind == "audio" and prefix != "clap") or kind not in PROMPTS \
                    or m not in vectors:
                continue
            enc = text_encoder(name)
            if enc is None or not masks[m].any():
                continue
            tag_vecs = enc.encode_text([PROMPTS[kind].format(tag=t) for t in vocab])
            x, mask = vectors[m], masks[m]
            scores[m] = space_scores(x, mask, _centre(x, mask, means, m), tag_vecs)
            spaces[m] = name
        given = given_labels(items, vocab)
        picked = pick(vocab, scores, threshold=float(uc.tag_threshold), top=int(uc.tag_top)) if scores else []
        near: dict[str, np.ndarray] = {}
        if uc.tag_neighbours > 0 and given.any():
            for m in vectors:
                if m in masks and masks[m].any() and vectors[m].shape[1] > 0:
                    x, mask = vectors[m], masks[m]
                    sc = neighbour_scores(x, mask, _centre(x, mask, means, m), given, k=int(uc.tag_neighbours),
                                          seed=int(cfg.runtime.seed))
                    near[f"neighbours:{m}"] = sc
            picked = merge(picked, pick(vocab, near, threshold=float(uc.tag_neighbour_threshold),
                                        top=int(uc.tag_top)), top=int(uc.tag_top))
        for r, tags in zip(records, picked):
            if tags:
                r["tags"] = tags
        info["tags"] = {"vocabulary": len(vocab), "threshold": float(uc.tag_threshold), "top": int(uc.tag_top),
                        "rule": "centred cosine (items on the catalogue mean, tags on the vocabulary mean)",
                        "spaces": spaces, "items": int(sum(bool(t) for t in picked)),
                        "neighbours": {"k": int(uc.tag_neighbours), "threshold": float(uc.tag_neighbour_threshold),
                                       "labelled_items": int(given.any(axis=1).sum()), "spaces": sorted(near),
                                       "rule": "weighted share of the k most similar items given the tag"},
                        "assigned": int(sum(len(t) for t in picked)), "seconds": round(time.monotonic() - t0, 3)}
        if not spaces and not near:
            say("warning: understand.tags is set but no configured encoder embeds text in a space with the items "
                "(text:, clip: for video or clap: for audio) and no item was given a tag of the vocabulary to "
                "learn from; no tags predicted")
        else:
            say(f"embed understand: {info['tags']['assigned']} tags on {info['tags']['items']}/{n} items "
                f"in {', '.join([*spaces, *near])} ({info['tags']['seconds']:.2f}s)")
    return records, info, mood_x, mood_mask
