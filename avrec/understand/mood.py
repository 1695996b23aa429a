"""Mood on Russell's valence/arousal plane, per modality, and the fused per-item mood (numpy only).

Every modality gives an *estimate* per item: a valence and/or an arousal in [-1, 1], each
with a confidence in [0, 1] (how much that cue is worth against the others), plus optional
direct label scores (from a classifier or zero-shot prompts). The fused mood is the
confidence-weighted mean of the available estimates, dimension by dimension::

    valence = sum_m c_m * v_m / sum_m c_m      (m over modalities with a valence, c_m > 0)

and the labels are the nearest :data:`~avrec.understand.MOOD_LABELS` to the fused point
(score ``exp(-d^2 / (2 * 0.35^2))``, 1 at the label's own position), merged with the direct
label scores (a label keeps its best score and where it came from); at most 3, best first.

The cues and their confidences
------------------------------

Text, lexicon (``from: "text"``)
    Valence: VADER's compound score (Hutto & Gilbert 2014, the maintained ``vaderSentiment``
    package), confidence ``0.6 * |compound|`` (a neutral text says nothing, and does not pull
    the other modalities' valence to 0). Arousal: a small heuristic, documented here because
    VADER has none: :data:`AROUSAL_WORDS`, words at either end of the arousal scale of
    affective word norms (ANEW, Bradley & Lang 1999; Warriner, Kuperman & Brysbaert 2013,
    hand-picked, each +1 or -1, not the norms' values) plus VADER's own intensity cues
    (exclamation marks, words in capitals: +0.5 each); arousal = ``sum / (hits + 1)``,
    confidence ``0.6 * min(1, hits / 3)``; no hit, no text arousal.
Text, classifier (``understand.sentiment``, ``from: "text:sentiment"``)
    The class probabilities through :data:`EMOTION_MAP` (joy -> happy, sadness -> sad,
    anger -> angry, fear -> tense, surprise -> excited, disgust -> angry, neutral -> neutral,
    ...): valence and arousal are the probability-weighted positions of the mapped labels,
    confidence ``0.9 * p(mapped labels)``. It replaces the lexicon. Labels it does not know
    are kept as labels with their probability and move neither dimension.
Audio, signal features (``from: "audio"``)
    Extract's loudness (RMS dBFS mean), tempo, onset strength and spectral centroid, and the
    mode (major/minor) estimated from the mean chroma with the Krumhansl-Kessler key profiles
    (Krumhansl & Kessler 1982; the Krumhansl-Schmuckler key finding: correlate the chroma
    with the 24 rotated profiles; mode = best major r - best minor r, clarity = best r). Each
    is z-scored over the catalogue (so the values say "more energetic than this catalogue's
    average", the same convention as the builtin encoder), combined as in :data:`AUDIO_AROUSAL`
    / :data:`AUDIO_VALENCE` and squashed with tanh. Sources: loudness, tempo, articulation /
    onset rate and bright timbre raise arousal (Juslin & Laukka 2003, Table 7; Gabrielsson &
    Lindström 2010; Eerola & Vuoskoski 2011/2013: arousal is predicted from these far better
    than valence); major mode, faster tempo and higher / brighter sound raise valence
    (Gabrielsson & Lindström 2010; Hevner 1935). Confidence: arousal 0.8, valence
    ``0.2 + 0.3 * clarity`` (mode means little in a sound with no key, e.g. traffic).
Audio, CLAP (``embed.audio=clap:...``, ``from: "audio:clap"``; preferred over the signal)
    Zero-shot prompts per mood label (:data:`AUDIO_PROMPTS`, e.g. "calm music", "a calm
    sound"; prompt ensembling as in Radford et al. 2021), see :func:`zero_shot_mood`.
    Confidence 1.
Video, colour statistics (``from: "video"``)
    Valdez & Mehrabian (1994): pleasure = 0.69 brightness + 0.22 saturation, arousal =
    -0.31 brightness + 0.60 saturation (their regressions on standardised scales, applied to
    the catalogue z-scores of extract's mean HSV value and saturation); arousal also rises
    with motion and the shot-cut rate (Hanjalic & Xu 2005). Confidence 0.4 (colour is a weak
    cue to a clip's affect).
Video, CLIP (``embed.video=clip:...``, ``from: "video:clip"``; preferred)
    Zero-shot prompts per label (:data:`VIDEO_PROMPTS`). Confidence 1.

The confidences are avrec's choices (stronger, model-made or better-documented cues count
more), not values from the literature.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np

from . import MOOD_LABELS

LABELS = [m[0] for m in MOOD_LABELS]
POSITIONS = np.array([[m[1], m[2]] for m in MOOD_LABELS], dtype=np.float64)  # (L, 2) valence, arousal
LABEL_SIGMA = 0.35
MAX_LABELS = 3

# ---------------------------------------------------------------------------------------
# estimates


class Estimate(dict):
    """One modality's view of one item: {valence: (v, c) | None, arousal: (a, c) | None,
    source: "audio:clap", labels: {label: score}} (a dict, so it pickles and prints)."""

    @classmethod
    def make(cls, source: str, valence: tuple[float, float] | None = None,
             arousal: tuple[float, float] | None = None, labels: dict[str, float] | None = None) -> "Estimate":
        return cls(source=source, valence=_dim(valence), arousal=_dim(arousal), labels=dict(labels or {}))


def _dim(x: tuple[float, float] | None) -> tuple[float, float] | None:
    if x is None:
        return None
    v, c = float(x[0]), float(x[1])
    if not (math.isfinite(v) and math.isfinite(c)) or c <= 0:
        return None
    return float(np.clip(v, -1.0, 1.0)), float(min(c, 1.0))


# ---------------------------------------------------------------------------------------
# text: VADER valence, a small arousal heuristic

# +1: high arousal, -1: low arousal. Words from the extremes of the ANEW / Warriner et al.
# arousal norms and of everyday media descriptions ("busy", "lively", "for sleep").
AROUSAL_WORDS: dict[str, int] = {
    **{w: 1 for w in (
        "fast", "busy", "rush", "hurry", "loud", "noisy", "noise", "storm", "stormy", "crash", "crashes", "crashing",
        "roar", "roars", "roaring", "explosion", "explosive", "energetic", "energy", "lively", "excited", "exciting",
        "excitement", "intense", "frantic", "thrilling", "thriller", "wild", "party", "dance", "dancing", "race",
        "racing", "chase", "fight", "fighting", "scream", "screaming", "shout", "shouting", "horn", "horns",
        "siren", "sirens", "alarm", "heavy", "thunder", "attack", "panic", "furious", "angry", "rage", "bang",
        "chaos", "chaotic", "frenzy", "adrenaline", "action", "aggressive", "violent", "war", "battle", "riot",
        "powerful", "pounding", "urgent", "hectic", "rapid", "speed", "traffic", "engines", "engine", "terror",
        "scary", "fear", "shock", "energizing", "upbeat", "vibrant", "stampede", "explode", "blast", "rock")},
    **{w: -1 for w in (
        "calm", "calming", "quiet", "quietly", "gentle", "gently", "slow", "slowly", "soft", "softly", "peaceful",
        "peace", "relax", "relaxing", "relaxed", "relaxation", "sleep", "sleeping", "sleepy", "serene", "tranquil",
        "still", "stillness", "soothing", "soothe", "lullaby", "meditation", "meditative", "breeze", "drift",
        "drifting", "rest", "resting", "restful", "hush", "mellow", "lazy", "ambient", "study", "studying", "focus",
        "dreamy", "idle", "silent", "silence", "tired", "bored", "boring", "sad", "lonely", "lapping", "cozy",
        "cosy", "comfort", "unwind", "leisurely", "stroll", "whisper", "whispering")},
}
_WORD = re.compile(r"[A-Za-z']+")
_ANALYSER = None


def _vader():
    global _ANALYSER
    if _ANALYSER is None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # lazy: ~30 ms

        _ANALYSER = SentimentIntensityAnalyzer()
    return _ANALYSER


def lexicon_valence(text: str) -> float:
    """VADER's compound score of ``text`` in [-1, 1] (0 for an empty text)."""
    return float(_vader().polarity_scores(text)["compound"]) if text and text.strip() else 0.0


def lexicon_arousal(text: str) -> tuple[float, int]:
    """(arousal in (-1, 1), number of cues) from :data:`AROUSAL_WORDS`, '!' and capitals."""
    total, hits = 0.0, 0
    for w in _WORD.findall(text or ""):
        s = AROUSAL_WORDS.get(w.lower())
        if s is None and len(w) > 3 and w.lower().endswith("s"):
            s = AROUSAL_WORDS.get(w.lower()[:-1])
        if s is not None:
            total, hits = total + s, hits + 1
        if len(w) > 2 and w.isupper():  # VADER's ALL-CAPS emphasis
            total, hits = total + 0.5, hits + 1
    bangs = min((text or "").count("!"), 3)
    total, hits = total + 0.5 * bangs, hits + bangs
    return (total / (hits + 1.0) if hits else 0.0), hits


def text_mood(texts: Sequence[str]) -> list[Estimate | None]:
    """Lexicon estimates of ``texts`` (None for an empty text)."""
    out: list[Estimate | None] = []
    for t in texts:
        if not t or not t.strip():
            out.append(None)
            continue
        v = lexicon_valence(t)
        a, hits = lexicon_arousal(t)
        out.append(Estimate.make("text", valence=(v, 0.6 * abs(v)),
                                 arousal=(a, 0.6 * min(1.0, hits / 3.0)) if hits else None))
    return out


# ---------------------------------------------------------------------------------------
# text: a sequence classifier's emotions

# label (lower case) -> mood label on the plane; "positive"/"negative" move valence only
EMOTION_MAP: dict[str, str] = {
    "joy": "happy", "happiness": "happy", "happy": "happy", "love": "happy", "amusement": "happy",
    "sadness": "sad", "sad": "sad", "grief": "sad", "disappointment": "sad",
    "anger": "angry", "angry": "angry", "annoyance": "angry", "disgust": "angry",
    "fear": "tense", "nervousness": "tense", "anxiety": "tense",
    "surprise": "excited", "excitement": "excited",
    "neutral": "neutral", "calm": "calm", "relief": "relaxed", "boredom": "gloomy",
}
VALENCE_ONLY: dict[str, float] = {"positive": 0.8, "negative": -0.8}


def classifier_mood(probs: np.ndarray, labels: Sequence[str], present: np.ndarray) -> list[Estimate | None]:
    """(n, L) class probabilities of a text classifier -> estimates (``from: text:sentiment``)."""
    pos = {name: POSITIONS[i] for i, name in enumerate(LABELS)}
    names = [str(lb).strip().lower() for lb in labels]
    out: list[Estimate | None] = []
    for i in range(len(probs)):
        if not present[i]:
            out.append(None)
            continue
        p = np.asarray(probs[i], dtype=np.float64)
        direct: dict[str, float] = {}
        va = np.zeros(2)
        pv = pa = 0.0
        for j, name in enumerate(names):
            mood = EMOTION_MAP.get(name)
            if mood is not None:
                va += p[j] * pos[mood]
                pv += p[j]
                pa += p[j]
                direct[mood] = max(direct.get(mood, 0.0), float(p[j]))
            elif name in VALENCE_ONLY:
                va[0] += p[j] * VALENCE_ONLY[name]
                pv += p[j]
                direct[name] = float(p[j])
            else:  # unknown: kept as a label, moves nothing
                direct[name] = float(p[j])
        out.append(Estimate.make(
            "text:sentiment",
            valence=(va[0] / pv, 0.9 * min(pv, 1.0)) if pv > 1e-6 else None,
            arousal=(va[1] / pa, 0.9 * min(pa, 1.0)) if pa > 1e-6 else None,
            labels=direct))
    return out


# ---------------------------------------------------------------------------------------
# audio: builtin signal features

# Krumhansl & Kessler (1982) probe-tone profiles, C first
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

# feature -> weight in the z-score mean (mode's weight is scaled by the item's tonal clarity)
AUDIO_AROUSAL = {"loudness": 0.35, "tempo": 0.2, "onset": 0.25, "brightness": 0.2}
AUDIO_VALENCE = {"mode": 0.5, "tempo": 0.3, "brightness": 0.2}
AUDIO_FEATURES = {"loudness": "rms_db_mean", "tempo": "tempo_bpm", "onset": "onset_mean",
                  "brightness": "centroid_mean"}
VIDEO_AROUSAL = {"brightness": -0.31, "saturation": 0.60, "motion": 0.45, "cuts": 0.30}
VIDEO_VALENCE = {"brightness": 0.69, "saturation": 0.22}
VIDEO_FEATURES = {"brightness": "brightness_mean", "saturation": "saturation_mean", "motion": "motion_mean",
                  "cuts": "cuts_per_minute"}


def key_mode(chroma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 12) mean chroma (C first) -> (mode (n,) = best major r - best minor r in [-2, 2],
    clarity (n,) = best r over the 24 keys, clipped to [0, 1]). Rows without energy: 0, 0."""
    x = np.asarray(chroma, dtype=np.float64)
    xc = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(xc, axis=1)

    def best(profile: np.ndarray) -> np.ndarray:
        rot = np.stack([np.roll(profile, k) for k in range(12)])  # (12 keys, 12 pitch classes)
        rot = rot - rot.mean(axis=1, keepdims=True)
        rot /= np.linalg.norm(rot, axis=1, keepdims=True)
        r = xc @ rot.T / np.maximum(norm, 1e-12)[:, None]
        return r.max(axis=1)

    ok = np.isfinite(norm) & (norm > 1e-9)
    major, minor = best(KK_MAJOR), best(KK_MINOR)
    mode = np.where(ok, major - minor, 0.0)
    clarity = np.where(ok, np.clip(np.maximum(major, minor), 0.0, 1.0), 0.0)
    return np.nan_to_num(mode), np.nan_to_num(clarity)


def _columns(raw: np.ndarray, names: Sequence[str], wanted: dict[str, str]) -> dict[str, np.ndarray]:
    idx = {n: i for i, n in enumerate(names)}
    return {k: raw[:, idx[col]].astype(np.float64) for k, col in wanted.items() if col in idx}


def fit_stats(cols: dict[str, np.ndarray], present: np.ndarray) -> dict[str, list[float]]:
    """{cue: [mean, std]} over the present, finite values (the catalogue's)."""
    out = {}
    for k, x in cols.items():
        v = x[present & np.isfinite(x)]
        out[k] = [float(v.mean()), float(v.std())] if len(v) else [0.0, 0.0]
    return out


def _z(x: np.ndarray, st: Sequence[float]) -> np.ndarray:
    mean, std = float(st[0]), float(st[1])
    z = (x - mean) / std if std > 1e-12 else np.zeros_like(x)
    return np.where(np.isfinite(z), np.clip(z, -4.0, 4.0), 0.0)


def _zscores(cols: dict[str, np.ndarray], present: np.ndarray, stats: dict[str, list[float]] | None
             ) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
    """Each feature column z-scored with the given (catalogue) statistics, fitting any that
    are missing on ``present`` items; returns (z-scores, the statistics used)."""
    stats = dict(stats) if stats else fit_stats(cols, present)
    for k in cols:
        stats.setdefault(k, fit_stats({k: cols[k]}, present)[k])
    return {k: _z(x, stats[k]) for k, x in cols.items()}, stats


def _combine(zs: dict[str, np.ndarray], weights: dict[str, float | np.ndarray]) -> np.ndarray:
    num = sum(np.asarray(w) * zs[k] for k, w in weights.items() if k in zs)
    den = sum(np.abs(np.asarray(w)) for k, w in weights.items() if k in zs)
    if isinstance(den, (int, float)) and den == 0:
        return np.zeros(len(next(iter(zs.values())))) if zs else np.zeros(0)
    return np.tanh(np.asarray(num) / np.maximum(np.asarray(den), 1e-12))


def audio_mood(raw: np.ndarray, present: np.ndarray, names: Sequence[str],
               stats: dict[str, list[float]] | None = None) -> tuple[list[Estimate | None], dict[str, list[float]]]:
    """Builtin audio features (n, d) of the items -> (estimates, the z statistics used)."""
    present = np.asarray(present, bool)
    cols = _columns(raw, names, AUDIO_FEATURES)
    idx = {n: i for i, n in enumerate(names)}
    chroma_cols = [idx.get(f"chroma_mean_{k}") for k in range(12)]
    clarity = np.zeros(len(raw))
    if all(c is not None for c in chroma_cols):
        mode, clarity = key_mode(np.nan_to_num(raw[:, chroma_cols]))
        cols["mode"] = mode
    if not cols:
        return [None] * len(raw), {}
    zs, stats = _zscores(cols, present, stats)
    arousal = _combine(zs, AUDIO_AROUSAL)
    vw = {k: (w * clarity if k == "mode" else w) for k, w in AUDIO_VALENCE.items()}
    valence = _combine(zs, vw)
    out: list[Estimate | None] = []
    for i in range(len(raw)):
        out.append(Estimate.make("audio", valence=(valence[i], 0.2 + 0.3 * clarity[i]), arousal=(arousal[i], 0.8))
                   if present[i] else None)
    return out, stats


def video_mood(raw: np.ndarray, present: np.ndarray, names: Sequence[str],
               stats: dict[str, list[float]] | None = None) -> tuple[list[Estimate | None], dict[str, list[float]]]:
    """Builtin video features (n, d) -> (estimates, the z statistics used): Valdez & Mehrabian."""
    present = np.asarray(present, bool)
    cols = _columns(raw, names, VIDEO_FEATURES)
    if not cols:
        return [None] * len(raw), {}
    zs, stats = _zscores(cols, present, stats)
    arousal, valence = _combine(zs, VIDEO_AROUSAL), _combine(zs, VIDEO_VALENCE)
    return [Estimate.make("video", valence=(valence[i], 0.4), arousal=(arousal[i], 0.4)) if present[i] else None
            for i in range(len(raw))], stats


# ---------------------------------------------------------------------------------------
# zero-shot: CLAP / CLIP prompts per mood label

AUDIO_PROMPTS = {
    "happy": ["happy music", "a cheerful sound"], "excited": ["energetic music", "an exciting, energetic sound"],
    "tense": ["tense music", "a tense, suspenseful sound"], "angry": ["angry music", "an aggressive sound"],
    "sad": ["sad music", "a sad sound"], "gloomy": ["gloomy music", "a dark, gloomy sound"],
    "calm": ["calm music", "a calm sound"], "relaxed": ["relaxing music", "a relaxing, peaceful sound"],
    "neutral": ["music", "a sound"],
}
VIDEO_PROMPTS = {
    "happy": ["a happy scene", "a cheerful photo"], "excited": ["an exciting scene", "an energetic, lively photo"],
    "tense": ["a tense scene", "a suspenseful photo"], "angry": ["an angry scene", "an aggressive photo"],
    "sad": ["a sad scene", "a sad photo"], "gloomy": ["a gloomy scene", "a dark, gloomy photo"],
    "calm": ["a calm scene", "a calm photo"], "relaxed": ["a relaxing scene", "a peaceful photo"],
    "neutral": ["a scene", "a photo"],
}
ZERO_SHOT_TEMPERATURE = 0.1


def prompt_matrix(encode_text, prompts: dict[str, list[str]]) -> np.ndarray:
    """(L, d) L2 rows: each label's prompts embedded and averaged (prompt ensembling)."""
    flat = [p for lb in LABELS for p in prompts[lb]]
    e = np.asarray(encode_text(flat), dtype=np.float64)
    out, k = [], 0
    for lb in LABELS:
        n = len(prompts[lb])
        v = e[k:k + n].mean(axis=0)
        out.append(v / max(np.linalg.norm(v), 1e-12))
        k += n
    return np.asarray(out)


def centred_cosine(x: np.ndarray, x_mean: np.ndarray | None, t: np.ndarray) -> np.ndarray:
    """cos(x_i - x_mean, t_j - mean_j t_j): (n, d), (d,), (k, d) -> (n, k).

    Items are centred on the catalogue mean of their space, the texts on their own mean (when
    there are 2+). This removes what every item shares (the modality gap between image/audio
    and text embeddings is such a constant offset, Liang et al. 2022, "Mind the gap") and what
    every text shares (the prompt template, a generic word's pull), so a score says how much
    more this item matches this text than the others do; the spread becomes comparable across
    spaces (raw CLIP image-text cosines sit in 0.2-0.35, MiniLM text-text in 0-0.8).
    """
    x = np.asarray(x, dtype=np.float64)
    xc = x - (np.asarray(x_mean, dtype=np.float64) if x_mean is not None else 0.0)
    tc = np.asarray(t, dtype=np.float64)
    if len(tc) >= 2:
        tc = tc - tc.mean(axis=0)
    xc /= np.maximum(np.linalg.norm(xc, axis=1, keepdims=True), 1e-12)
    tc /= np.maximum(np.linalg.norm(tc, axis=1, keepdims=True), 1e-12)
    return xc @ tc.T


def zero_shot_mood(x: np.ndarray, mask: np.ndarray, x_mean: np.ndarray | None, prompts: np.ndarray,
                   source: str) -> list[Estimate | None]:
    """Items' vectors (n, d) against the labels' prompt vectors (L, d): p = softmax(centred
    cosine / 0.1) over the labels; valence, arousal = the p-weighted label positions."""
    s = centred_cosine(x, x_mean, prompts) / ZERO_SHOT_TEMPERATURE
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    va = p @ POSITIONS
    return [Estimate.make(source, valence=(va[i, 0], 1.0), arousal=(va[i, 1], 1.0),
                          labels={lb: float(p[i, j]) for j, lb in enumerate(LABELS)}) if mask[i] else None
            for i in range(len(x))]


# ---------------------------------------------------------------------------------------
# fusion


def label_scores(valence: float, arousal: float) -> np.ndarray:
    """(L,) closeness of the point to each mood label: exp(-d^2 / (2 sigma^2))."""
    d2 = ((POSITIONS - np.array([valence, arousal])) ** 2).sum(axis=1)
    return np.exp(-d2 / (2 * LABEL_SIGMA ** 2))


def _r(x: float) -> float:
    return round(float(x), 4)


def fuse(estimates: dict[str, list[Estimate | None]], n: int) -> list[dict[str, Any] | None]:
    """{modality: per-item estimates} -> per-item mood records (the contract's ``mood``)."""
    out: list[dict[str, Any] | None] = []
    for i in range(n):
        got = {m: e[i] for m, e in estimates.items() if e[i] is not None}
        rec: dict[str, Any] = {}
        srcs: dict[str, list[str]] = {}
        for dim in ("valence", "arousal"):
            num = den = 0.0
            for m, e in got.items():
                if e[dim] is not None:
                    v, c = e[dim]
                    num, den = num + c * v, den + c
                    srcs.setdefault(dim, []).append(e["source"])
            if den > 0:
                rec[dim] = num / den
        direct = {lb: (s, e["source"]) for e in got.values() for lb, s in e["labels"].items()}
        for e in got.values():  # best score per label over the modalities
            for lb, s in e["labels"].items():
                if s > direct[lb][0]:
                    direct[lb] = (s, e["source"])
        if not rec and not direct:
            out.append(None)
            continue
        cands = dict(direct)
        if rec:
            point_from = "+".join(dict.fromkeys(s for d in ("valence", "arousal") for s in srcs.get(d, [])))
            for lb, s in zip(LABELS, label_scores(rec.get("valence", 0.0), rec.get("arousal", 0.0))):
                if lb not in cands or s > cands[lb][0]:
                    cands[lb] = (float(s), point_from)
        best = sorted(cands.items(), key=lambda kv: -kv[1][0])[:MAX_LABELS]
        record: dict[str, Any] = {k: _r(v) for k, v in rec.items()}
        record["labels"] = [{"label": lb, "score": _r(s), "from": f} for lb, (s, f) in best]
        record["from"] = {d: "+".join(dict.fromkeys(srcs[d])) for d in ("valence", "arousal") if d in srcs}
        record["modalities"] = {
            m: {d: _r(e[d][0]) for d in ("valence", "arousal") if e[d] is not None}
            for m, e in got.items() if e["valence"] is not None or e["arousal"] is not None}
        out.append(record)
    return out


MOOD_DIM = 2 + len(LABELS)


def mood_vectors(records: Sequence[dict[str, Any] | None]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2 + L) [valence, arousal, closeness to each label] and (n,) mask: the fused
    content vector's ``mood`` block (understand.mood_weight)."""
    x = np.zeros((len(records), MOOD_DIM), np.float32)
    mask = np.zeros(len(records), bool)
    for i, r in enumerate(records):
        if not r or ("valence" not in r and "arousal" not in r):
            continue
        v, a = float(r.get("valence", 0.0)), float(r.get("arousal", 0.0))
        x[i, 0], x[i, 1] = v, a
        x[i, 2:] = label_scores(v, a)
        mask[i] = True
    return x, mask
