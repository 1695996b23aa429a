"""What avrec understands, measured against known labels and baselines (issue 14).

1. Zero-shot tags: MovieLens latest-small's genres predicted from each movie's title and user
   tags (never its genres) through the packaged all-MiniLM-L6-v2, with avrec's tag scorer
   (:mod:`avrec.understand.tags`, centred cosines) against the raw cosine and against the
   genre prior (the most frequent genres, the same for every movie). precision@1 and @3 of
   the ranked vocabulary, and precision / recall of the tags avrec emits at its default
   threshold and cap.
2. Text sentiment: the offline labelled set within reach is MovieLens's user tags labelled
   with the tagger's own rating of the movie (>= 4 positive, <= 2 negative). avrec's lexicon
   valence (VADER) predicts the sign (0: the majority class) against the majority baseline;
   accuracy and balanced accuracy, on all tags and on those the lexicon scores.
3. Moods and predicted tags as content: cold-item NDCG@10 of the hybrid (train.tune: auto)
   with the text vectors alone, against the text vectors plus the mood block
   (`understand.mood_weight`: valence, arousal, label closeness from the lexicon), and plus
   both the mood block and a predicted-tag block (the genre vocabulary's centred cosines),
   the search free to weigh the blocks; seeds 2-4 of avrec's cold split, as movielens.py.
4. Throughput of the understand paths on CPU (texts per second for the lexicon, items per
   second for the zero-shot tag scoring).

5. Speech digits (../shared/data/media/audio/speech-digits: 200 clips, 10 digits x 2
   speakers x 10 takes): whether the builtin audio encoder separates speakers and digits.
   Zero-shot labels would need an audio-text model (clap:) or a speech recogniser (asr:), and
   none is available offline here, so this measures the separation the issue names instead:
   `avrec extract` + `avrec embed` (builtin audio only, the CLI as a user runs it), then
   leave-one-out accuracy of the nearest neighbour and of the nearest class prototype (the
   mean of the other clips of each label: how an example-defined tag would be assigned),
   against chance; and digits across speakers (one voice's digits from the other voice's
   clips alone).

6. Tags at catalogue scale (``--tag-scale 100000,1000000``): a generated catalogue (384-d
   vectors around 200 topics, 50 tags tied to the topics, 30% of the items given 1-3 of
   their topic's tags), the defaults' 20 neighbour votes and pick(), seconds and peak
   memory, beside two baselines in the same run: the plain blocked product of every item
   with the labelled reference (the floor the votes cannot go below) and the per-item pick
   loop pick() replaced (on the first 100k items).

Usage: python benchmarks/understand.py [--seeds 2,3,4] [--skip cold] [--tag-scale 100000]
Writes benchmarks/results/understand.json and understand.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from movielens import embed_texts, load_movielens, log, machine, movie_text  # noqa: E402

ML = ROOT.parent / "shared" / "data" / "movielens-latest-small"
SPEECH = ROOT.parent / "shared" / "data" / "media" / "audio" / "speech-digits"
CACHE = Path.home() / ".cache" / "avrec-bench"


def _precision(order: np.ndarray, truth: list[set[int]], k: int) -> float:
    return float(np.mean([len(set(order[i, :k].tolist()) & t) / k for i, t in enumerate(truth)]))


def tags_movielens() -> dict:
    from avrec.understand.tags import pick, space_scores

    movies: dict[str, dict] = {}
    with open(ML / "movies.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            g = [x for x in r["genres"].split("|") if x != "(no genres listed)"]
            if g:
                movies[r["movieId"]] = {"title": r["title"], "genres": g, "tags": []}
    with open(ML / "tags.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            t = r["tag"].strip().lower()
            if r["movieId"] in movies and t and t not in movies[r["movieId"]]["tags"]:
                movies[r["movieId"]]["tags"].append(t)
    ids = list(movies)
    vocab = sorted({g for m in movies.values() for g in m["genres"]})
    words = [g.replace("-", " ").lower() for g in vocab]  # "Sci-Fi" -> "sci fi": the label as a word, no prompt tuning
    texts = [". ".join([movies[i]["title"], *([", ".join(movies[i]["tags"][:30])] if movies[i]["tags"] else [])])
             for i in ids]
    x, how = embed_texts(texts, CACHE / "understand-titles-tags.npz")
    t, _ = embed_texts(words, CACHE / "understand-genres.npz")
    truth = [{vocab.index(g) for g in movies[i]["genres"]} for i in ids]
    has_tags = np.array([bool(movies[i]["tags"]) for i in ids])
    t0 = time.perf_counter()
    centred = space_scores(x, np.ones(len(x), bool), x.mean(axis=0), t)
    score_s = time.perf_counter() - t0
    raw = x @ t.T
    prior = np.argsort(-np.bincount([j for s in truth for j in s], minlength=len(vocab)), kind="stable")
    out = {"movies": len(ids), "n_with_user_tags": int(has_tags.sum()), "vocabulary": vocab, "embedding": how,
           "items_per_second_scoring": round(len(x) / max(score_s, 1e-9))}
    for name, sel in (("all", np.ones(len(ids), bool)), ("with_user_tags", has_tags)):
        tr = [truth[i] for i in np.flatnonzero(sel)]
        row = {}
        for method, s in (("avrec centred cosine", centred[sel]), ("raw cosine", raw[sel])):
            order = np.argsort(-s, axis=1, kind="stable")
            row[method] = {"p@1": round(_precision(order, tr, 1), 4), "p@3": round(_precision(order, tr, 3), 4)}
        po = np.tile(prior, (int(sel.sum()), 1))
        row["genre prior"] = {"p@1": round(_precision(po, tr, 1), 4), "p@3": round(_precision(po, tr, 3), 4)}
        from avrec.config import Config

        uc = Config().understand
        emitted = pick(words, {"text": centred[sel]}, threshold=uc.tag_threshold, top=uc.tag_top)
        hit = n_emit = 0
        for picks, tset in zip(emitted, tr):
            got = {words.index(p["tag"]) for p in picks}
            hit += len(got & tset)
            n_emit += len(got)
        n_true = sum(len(s) for s in tr)
        row["emitted at defaults"] = {"threshold": uc.tag_threshold, "top": uc.tag_top,
                                      "tags per movie": round(n_emit / len(tr), 2),
                                      "precision": round(hit / max(n_emit, 1), 4), "recall": round(hit / n_true, 4)}
        out[name] = row
    # a partly tagged catalogue: half the movies keep their genres as given tags, the other half
    # get theirs from the 20 most similar given-tag movies (avrec's neighbour votes, the defaults;
    # uc is the default understand section, read above)
    from avrec.understand.tags import neighbour_scores

    known = np.random.default_rng(0).random(len(ids)) < 0.5
    labels = np.zeros((len(ids), len(vocab)), bool)
    for i in np.flatnonzero(known):
        labels[i, list(truth[i])] = True
    t0 = time.perf_counter()
    near = neighbour_scores(x, np.ones(len(ids), bool), x.mean(axis=0), labels, k=uc.tag_neighbours)
    near_s = time.perf_counter() - t0
    held = np.flatnonzero(~known)
    tr = [truth[i] for i in held]
    hprior = np.argsort(-labels[known].sum(axis=0), kind="stable")  # from the given half: what a user has
    row = {}
    for method, s_ in (("avrec neighbour votes", near[held]), ("avrec centred cosine", centred[held])):
        order = np.argsort(-s_, axis=1, kind="stable")
        row[method] = {"p@1": round(_precision(order, tr, 1), 4), "p@3": round(_precision(order, tr, 3), 4)}
    po = np.tile(hprior, (len(held), 1))
    row["genre prior"] = {"p@1": round(_precision(po, tr, 1), 4), "p@3": round(_precision(po, tr, 3), 4)}
    emitted = [[j for j in np.flatnonzero(near[i] >= uc.tag_neighbour_threshold)][:uc.tag_top] for i in held]
    hit = sum(len(set(e) & t) for e, t in zip(emitted, tr))
    n_emit = sum(len(e) for e in emitted)
    row["emitted at defaults"] = {"threshold": uc.tag_neighbour_threshold, "top": uc.tag_top,
                                  "tags per movie": round(n_emit / len(tr), 2),
                                  "precision": round(hit / max(n_emit, 1), 4),
                                  "recall": round(hit / sum(len(t) for t in tr), 4)}
    out["half_given"] = {"given": int(known.sum()), "scored": len(held), "k": uc.tag_neighbours,
                         "seconds": round(near_s, 2), **row}
    return out


def sentiment_movielens() -> dict:
    from avrec.understand.mood import lexicon_valence

    ratings = {}
    with open(ML / "ratings.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            ratings[(r["userId"], r["movieId"])] = float(r["rating"])
    texts, labels = [], []
    with open(ML / "tags.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            y = ratings.get((r["userId"], r["movieId"]))
            if y is None or 2.0 < y < 4.0:
                continue
            texts.append(r["tag"])
            labels.append(1 if y >= 4.0 else 0)
    y = np.asarray(labels)
    t0 = time.perf_counter()
    v = np.asarray([lexicon_valence(s) for s in texts])
    secs = time.perf_counter() - t0
    majority = int(np.bincount(y).argmax())
    pred = np.where(v > 0, 1, np.where(v < 0, 0, majority))

    def scores(p: np.ndarray, yy: np.ndarray) -> dict:
        rec = [float(np.mean(p[yy == c] == c)) for c in (0, 1) if np.any(yy == c)]
        return {"n": int(len(yy)), "accuracy": round(float(np.mean(p == yy)), 4),
                "balanced_accuracy": round(float(np.mean(rec)), 4)}

    fired = v != 0
    return {"labelled_tags": len(y), "positive": int(y.sum()), "negative": int((1 - y).sum()),
            "texts_per_second": round(len(texts) / max(secs, 1e-9)),
            "lexicon": scores(pred, y), "majority": scores(np.full_like(y, majority), y),
            "lexicon_where_it_scores": scores(pred[fired], y[fired]),
            "majority_where_it_scores": scores(np.full(int(fired.sum()), majority), y[fired])}


def cold_with_mood(seeds: list[int]) -> dict:
    from avrec.config import Config
    from avrec.data import make_split
    from avrec.evaluate import evaluate_scorer
    from avrec.train import fit_model
    from avrec.understand import mood as M

    data, movies, _n = load_movielens(ML, min_rating=4.0)
    items = data.items.ids
    texts = [movie_text(movies[m]) for m in items]
    text, _how = embed_texts(texts, CACHE / "movielens-minilm.npz")
    t0 = time.perf_counter()
    recs = M.fuse({"text": M.text_mood(texts)}, len(texts))
    mood, mask = M.mood_vectors(recs)
    mood_s = time.perf_counter() - t0
    # the mood block as embed fuses it: centred on the catalogue, unit rows, weight 1 (then searched)
    mb = mood - mood[mask].mean(axis=0)
    mb[~mask] = 0
    mb /= np.maximum(np.linalg.norm(mb, axis=1, keepdims=True), 1e-12)
    tx = text - text.mean(axis=0)
    tx /= np.maximum(np.linalg.norm(tx, axis=1, keepdims=True), 1e-12)
    # predicted tags as a block: the centred cosines of a tag vocabulary (MovieLens's genre
    # names) against the text vectors, as avrec's tag scorer computes them, kept where >= 0
    from avrec.understand.tags import space_scores

    genres = sorted({g for m in movies.values() for g in m["genres"]})
    gv, _ = embed_texts([g.replace("-", " ").lower() for g in genres], CACHE / "understand-genres.npz")
    tb = np.maximum(space_scores(text, np.ones(len(text), bool), text.mean(axis=0), gv), 0.0)
    tb = tb - tb.mean(axis=0)
    tb /= np.maximum(np.linalg.norm(tb, axis=1, keepdims=True), 1e-12)
    d = tx.shape[1]
    variants = {
        "text": (tx.astype(np.float32), [{"modality": "text", "start": 0, "end": tx.shape[1], "weight": 1.0}]),
        "text + mood + predicted tags": (
            np.hstack([tx, mb, tb]).astype(np.float32),
            [{"modality": "text", "start": 0, "end": d, "weight": 1.0},
             {"modality": "mood", "start": d, "end": d + mb.shape[1], "weight": 1.0},
             {"modality": "tags", "start": d + mb.shape[1], "end": d + mb.shape[1] + tb.shape[1], "weight": 1.0}]),
        "text + mood": (np.hstack([tx, mb]).astype(np.float32),
                        [{"modality": "text", "start": 0, "end": tx.shape[1], "weight": 1.0},
                         {"modality": "mood", "start": tx.shape[1], "end": tx.shape[1] + mb.shape[1], "weight": 1.0}]),
    }
    out: dict = {"items_with_mood": int(mask.sum()), "items": len(items), "mood_seconds": round(mood_s, 2), "runs": {}}
    for seed in seeds:
        cfg = Config()
        cfg.runtime.seed = seed
        split = make_split(data, "cold", ratio=cfg.evaluate.test_ratio, cold_ratio=cfg.evaluate.cold_ratio, seed=seed)
        for name, (content, blocks) in variants.items():
            model, chosen, report = fit_model("hybrid", split.train.to_csr(binary=True), content, cfg, device="cpu",
                                              progress=lambda m: None, blocks=blocks)
            r = evaluate_scorer(split, model.score, [10], content=content)
            nd = r["metrics"][10]["ndcg"]
            out["runs"].setdefault(name, []).append(round(nd, 4))
            log(f"cold seed {seed} {name}: NDCG@10 {nd:.4f} chosen {chosen}")
            out.setdefault("chosen", {}).setdefault(name, []).append(
                {k: v for k, v in chosen.items() if k in ("modality_weights", "ridge", "solver")})
    for name, v in out["runs"].items():
        out[f"{name} mean"] = round(float(np.mean(v)), 4)
    return out


def speech_digits() -> dict:
    """Leave-one-out speaker and digit accuracy in the builtin audio space (see the docstring)."""
    import subprocess
    import tempfile

    from avrec.artifacts import load_npy, read_jsonl

    clips = sorted(SPEECH.glob("*.wav"))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = lambda *a: subprocess.run([sys.executable, "-m", "avrec", *a, "-q"], check=True,  # noqa: E731
                                        stdout=subprocess.DEVNULL)
        run("extract", str(SPEECH), "-o", f"{tmp}/features")
        t_extract = time.perf_counter() - t0
        run("embed", f"{tmp}/features", "-o", f"{tmp}/emb", "--set", "embed.video=", "--set", "embed.text=")
        seconds = time.perf_counter() - t0
        rows = list(read_jsonl(Path(tmp) / "emb" / "items.jsonl"))
        x = np.asarray(load_npy(Path(tmp) / "emb" / "audio.npy"), np.float64)
    names = [Path(r.get("path") or r["item_id"]).stem for r in rows]
    ok = np.array([n.count("_") == 2 for n in names])
    x, names = x[ok], [n for n, k in zip(names, ok) if k]
    x = x - x.mean(axis=0)  # as embed.centre does for the fused vector
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    out: dict = {"clips": len(clips), "embedded": int(ok.sum()), "dim": int(x.shape[1]),
                 "extract_embed_seconds": round(seconds, 2), "extract_seconds": round(t_extract, 2)}
    for task, part in (("digit", 0), ("speaker", 1)):
        y = np.array([n.split("_")[part] for n in names])
        labels = sorted(set(y))
        nn = float(np.mean(y[np.argmax(sim, axis=1)] == y))
        hits = 0
        for i in range(len(y)):
            others = np.arange(len(y)) != i
            protos = np.stack([x[others & (y == c)].mean(axis=0) for c in labels])
            hits += labels[int(np.argmax(protos @ x[i]))] == y[i]
        majority = max(np.mean(y == c) for c in labels)
        out[task] = {"labels": len(labels), "nearest neighbour": round(nn, 4),
                     "nearest prototype": round(hits / len(y), 4), "chance (majority)": round(float(majority), 4)}
    # harder: digits of one speaker from the other speaker's clips alone (nothing of the same voice)
    digit, speaker = (np.array([n.split("_")[k] for n in names]) for k in (0, 1))
    labels = sorted(set(digit))
    hits = nn_hits = 0
    for i in range(len(digit)):
        other = speaker != speaker[i]
        protos = np.stack([x[other & (digit == c)].mean(axis=0) for c in labels])
        hits += labels[int(np.argmax(protos @ x[i]))] == digit[i]
        cand = np.flatnonzero(other)
        nn_hits += digit[cand[int(np.argmax(sim[i, cand]))]] == digit[i]
    out["digit across speakers"] = {"labels": len(labels), "nearest neighbour": round(nn_hits / len(digit), 4),
                                    "nearest prototype": round(hits / len(digit), 4),
                                    "chance (majority)": out["digit"]["chance (majority)"]}
    return out


def tag_scale(sizes: list[int], *, d: int = 384, topics: int = 200, vocab: int = 50, seed: int = 0) -> dict:
    import resource

    from avrec.understand.tags import neighbour_scores, pick

    def rss_gb() -> float:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)

    def old_pick(tags, scores, *, threshold, top):  # the per-item loop of avrec 0.x before the vectorised pick
        n = len(next(iter(scores.values())))
        out = []
        for i in range(n):
            best = {}
            for space, s in scores.items():
                for j in np.flatnonzero(s[i] >= threshold):
                    if j not in best or s[i, j] > best[j][0]:
                        best[j] = (float(s[i, j]), space)
            out.append(sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top])
        return out

    rows = []
    for n in sizes:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((topics, d)).astype(np.float32)
        topic = rng.integers(0, topics, n)
        x = centres[topic]
        for a in range(0, n, 65536):  # float32 noise in slices: no (n, d) float64 temporary
            x[a:a + 65536] += 1.5 * rng.standard_normal((min(65536, n - a), d), dtype=np.float32)
        tag_of_topic = rng.integers(0, vocab, (topics, 3))
        labels = np.zeros((n, vocab), bool)
        lab = rng.random(n) < 0.3
        for j in range(3):
            on = lab & (rng.random(n) < (1.0 if j == 0 else 0.5))
            labels[np.flatnonzero(on), tag_of_topic[topic[on], j]] = True
        mask = np.ones(n, bool)
        tags = [f"tag{j}" for j in range(vocab)]
        import tracemalloc

        t = time.perf_counter()
        sc = neighbour_scores(x, mask, x.mean(axis=0), labels, k=20)
        t_votes = time.perf_counter() - t
        t = time.perf_counter()
        picked = pick(tags, {"neighbours:text": sc}, threshold=0.5, top=5)
        t_pick = time.perf_counter() - t
        # memory in a second pass: tracemalloc (which numpy reports its buffers to) slows
        # Python's own allocations, so it stays off while timing
        del sc, picked
        tracemalloc.start()
        sc = neighbour_scores(x, mask, x.mean(axis=0), labels, k=20)
        picked = pick(tags, {"neighbours:text": sc}, threshold=0.5, top=5)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        ref = np.flatnonzero(labels.any(axis=1))[:10000]
        r = x[ref] / np.linalg.norm(x[ref], axis=1, keepdims=True)
        t = time.perf_counter()
        for a in range(0, n, 2048):
            _ = x[a:a + 2048] @ r.T
        t_floor = time.perf_counter() - t
        m = min(n, 100000)
        t = time.perf_counter()
        old_pick(tags, {"neighbours:text": sc[:m]}, threshold=0.5, top=5)
        t_old = time.perf_counter() - t
        unl = ~labels.any(axis=1)
        hit = [bool(set(e["tag"] for e in picked[i]) & {tags[j] for j in tag_of_topic[topic[i]]})
               for i in np.flatnonzero(unl)[:20000] if picked[i]]
        row = {"items": n, "labelled": int(labels.any(axis=1).sum()), "reference": len(ref), "votes_s": round(t_votes, 2),
               "pick_s": round(t_pick, 2), "floor_product_s": round(t_floor, 2),
               "old_pick_s_per_100k": round(t_old * 100000 / m, 2), "peak_rss_gb": rss_gb(),
               "input_gb": round((x.nbytes + labels.nbytes) / 2**30, 2), "votes_and_pick_peak_gb": round(peak / 2**30, 2),
               "tags_per_item": round(sum(len(p) for p in picked) / n, 2),
               "unlabelled_tagged_with_a_topic_tag": round(float(np.mean(hit)), 3) if hit else None}
        log(f"tag scale: {row}")
        rows.append(row)
        del x, sc, picked, labels
    return {"dim": d, "topics": topics, "vocabulary": vocab, "k": 20, "rows": rows}


def report(res: dict) -> str:
    L = ["# What avrec understands, against known labels", "", f"Machine: {res['machine']}.", "",
         f"Reproduce: `{res.get('reproduce', 'python benchmarks/understand.py')}`.", ""]
    t = res.get("tags")
    if t:
        L += ["## Zero-shot tags: MovieLens genres from titles and user tags", "",
              f"{t['movies']} movies with a genre ({t['n_with_user_tags']} with user tags), {len(t['vocabulary'])} genres as "
              f"the vocabulary, texts embedded with {t['embedding']}; the genres themselves are never in the text.", "",
              "| movies | method | precision@1 | precision@3 |", "|---|---|---:|---:|"]
        for sub in ("all", "with_user_tags"):
            for m in ("avrec centred cosine", "raw cosine", "genre prior"):
                L.append(f"| {sub} | {m} | {t[sub][m]['p@1']} | {t[sub][m]['p@3']} |")
        for sub in ("all", "with_user_tags"):
            e = t[sub]["emitted at defaults"]
            L.append(f"\n- Emitted at the defaults (threshold {e['threshold']}, at most {e['top']}), {sub}: "
                     f"{e['tags per movie']} tags per movie, precision {e['precision']}, recall {e['recall']}.")
        L.append(f"- Scoring speed: {t['items_per_second_scoring']} items/s for {len(t['vocabulary'])} tags (vectors given).")
        h = t.get("half_given")
        if h:
            L += ["", "### A partly tagged catalogue: neighbour votes", "",
                  f"{h['given']} movies (a random half) keep their genres as given tags; the other {h['scored']} are "
                  f"scored. Neighbour votes: the {h['k']} most similar given-tag movies in the same text space "
                  f"(`understand.tag_neighbours`), weighted by cosine; the prior is the given half's genre counts "
                  f"({h['seconds']} s for all {h['scored']}).", "",
                  "| method | precision@1 | precision@3 |", "|---|---:|---:|"]
            for m in ("avrec neighbour votes", "avrec centred cosine", "genre prior"):
                L.append(f"| {m} | {h[m]['p@1']} | {h[m]['p@3']} |")
            e = h["emitted at defaults"]
            L.append(f"\n- Emitted at the defaults (share >= {e['threshold']}, at most {e['top']}): "
                     f"{e['tags per movie']} tags per movie, precision {e['precision']}, recall {e['recall']}.")
    s = res.get("sentiment")
    if s:
        L += ["", "## Text sentiment: MovieLens user tags labelled by the tagger's rating", "",
              f"{s['labelled_tags']} tags ({s['positive']} by users who rated the movie >= 4, {s['negative']} <= 2).", "",
              "| set | method | n | accuracy | balanced accuracy |", "|---|---|---:|---:|---:|",
              f"| all | avrec lexicon (VADER) | {s['lexicon']['n']} | {s['lexicon']['accuracy']} | {s['lexicon']['balanced_accuracy']} |",
              f"| all | majority | {s['majority']['n']} | {s['majority']['accuracy']} | {s['majority']['balanced_accuracy']} |",
              f"| where the lexicon scores | avrec lexicon | {s['lexicon_where_it_scores']['n']} | {s['lexicon_where_it_scores']['accuracy']} | {s['lexicon_where_it_scores']['balanced_accuracy']} |",
              f"| where the lexicon scores | majority | {s['majority_where_it_scores']['n']} | {s['majority_where_it_scores']['accuracy']} | {s['majority_where_it_scores']['balanced_accuracy']} |",
              "", f"- Lexicon speed: {s['texts_per_second']} texts/s on one core."]
    c = res.get("cold")
    if c:
        L += ["", "## Moods and predicted tags as hybrid content: cold-item NDCG@10 on MovieLens", "",
              f"Lexicon moods for {c['items_with_mood']} of {c['items']} movies ({c['mood_seconds']} s).", "",
              "| content | NDCG@10 per seed | mean |", "|---|---|---:|"]
        for name, v in c["runs"].items():
            L.append(f"| {name} | {', '.join(map(str, v))} | {c[name + ' mean']} |")
        L.append(f"\n- Weights the search chose: {json.dumps(c.get('chosen', {}))}")
    sp = res.get("speech")
    if isinstance(sp, dict):
        L += ["", "## Speech digits: does the builtin audio encoder separate speakers and digits?", "",
              f"{sp['embedded']} of {sp['clips']} clips embedded ({sp['dim']}-d builtin audio vectors, centred; "
              f"`avrec extract` + `avrec embed` took {sp['extract_embed_seconds']} s). Leave-one-out accuracy; "
              "no zero-shot model (clap:, asr:) is available offline here.", "",
              "| labels | nearest neighbour | nearest prototype | chance (majority) |", "|---|---:|---:|---:|"]
        for task in ("digit", "speaker", "digit across speakers"):
            t = sp[task]
            L.append(f"| {task} ({t['labels']}) | {t['nearest neighbour']} | {t['nearest prototype']} | "
                     f"{t['chance (majority)']} |")
    elif sp:
        L += ["", "## Speech digits", "", sp]
    ts = res.get("tag_scale")
    if ts:
        L += ["", "## Tags at catalogue scale: neighbour votes on a generated catalogue", "",
              f"{ts['dim']}-d vectors around {ts['topics']} topics, {ts['vocabulary']} tags tied to the topics, 30% of "
              f"the items given 1-3 of their topic's tags; {ts['k']} neighbour votes (the default), the labelled "
              "reference capped at 10,000 items. The floor is the plain blocked product of every item with that "
              "reference, in the same run; the old pick is the per-item loop the vectorised pick() replaced.", "",
              "| items | labelled | votes s | floor product s | pick s | old pick s per 100k | input GB | votes + pick peak GB | "
              "process peak RSS GB | tags per item | unlabelled items given a tag of their topic |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in ts["rows"]:
            L.append(f"| {r['items']} | {r['labelled']} | {r['votes_s']} | {r['floor_product_s']} | {r['pick_s']} | "
                     f"{r['old_pick_s_per_100k']} | {r['input_gb']} | {r['votes_and_pick_peak_gb']} | {r['peak_rss_gb']} | "
                     f"{r['tags_per_item']} | "
                     f"{r['unlabelled_tagged_with_a_topic_tag']} |")
    return "\n".join(L) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="2,3,4")
    ap.add_argument("--skip", default="")
    ap.add_argument("--name", default="understand")
    ap.add_argument("--tag-scale", default="", help="catalogue sizes for the tag scale part, e.g. 100000,1000000")
    args = ap.parse_args()
    if not (ML / "ratings.csv").exists():
        print(f"MovieLens latest-small not found at {ML}; nothing to measure", file=sys.stderr)
        return 0
    skip = set(filter(None, args.skip.split(",")))
    m = machine()
    reproduce = " ".join(["python benchmarks/understand.py", *sys.argv[1:]])
    res: dict = {"machine": f"{m['cpu']}, {m['cores']} cores, {m['ram']} RAM, python {m['python']}, "
                            + ", ".join(f"{k} {v}" for k, v in m["libs"].items()), "reproduce": reproduce}
    if "tags" not in skip:
        res["tags"] = tags_movielens()
        log(f"tags: {json.dumps({k: res['tags'][k] for k in ('all', 'with_user_tags')})}")
    if "sentiment" not in skip:
        res["sentiment"] = sentiment_movielens()
        log(f"sentiment: {res['sentiment']}")
    if "cold" not in skip:
        res["cold"] = cold_with_mood([int(s) for s in args.seeds.split(",")])
    if "speech" not in skip:
        res["speech"] = speech_digits() if SPEECH.exists() else f"Not run: no clips at {SPEECH}."
        log(f"speech: {res['speech']}")
    if args.tag_scale:
        res["tag_scale"] = tag_scale([int(x) for x in args.tag_scale.split(",")])
    out = ROOT / "benchmarks" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / f"{args.name}.md").write_text(report(res))
    print(report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
