"""Zero-shot tag selection: the vocabulary (a list or a file), the centred-cosine rule, the
threshold and top-k, and merging over spaces."""

from __future__ import annotations

import numpy as np
import pytest

from avrec.errors import ConfigError
from avrec.understand.mood import centred_cosine
from avrec.understand.tags import pick, space_scores, vocabulary


def test_vocabulary_from_a_list_or_a_file(tmp_path):
    assert vocabulary(["ocean", " City ", "", "city", "piano"]) == ["ocean", "City", "piano"]
    f = tmp_path / "tags.txt"
    f.write_text("# my tags\nsurf\n\ntraffic  # noisy\nsurf\n")
    assert vocabulary([str(f)]) == ["surf", "traffic"]
    assert vocabulary(str(f)) == ["surf", "traffic"]
    assert vocabulary(["one"]) == ["one"]  # a single word that is not a file stays a tag
    with pytest.raises(ConfigError, match="cannot read the tag file"):
        vocabulary([str(tmp_path / "missing.txt")])
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="holds no tags"):
        vocabulary([str(tmp_path / "empty.txt")])


def test_centred_cosine_removes_a_shared_offset():
    rng = np.random.default_rng(0)
    tags = np.eye(4, 32)
    offset = 3.0 * rng.normal(size=32)  # what every item shares (a modality gap)
    x = np.stack([tags[i] + offset + 0.05 * rng.normal(size=32) for i in (0, 1, 2, 3, 0, 1)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    raw = x @ tags.T
    assert np.ptp(raw) < 0.5  # the raw cosines barely tell the tags apart
    s = centred_cosine(x, x.mean(axis=0), tags)
    assert (s.argmax(axis=1) == [0, 1, 2, 3, 0, 1]).all() and s.max(axis=1).min() > 0.5


def test_pick_threshold_top_and_spaces():
    tags = ["ocean", "city", "piano"]
    text = np.array([[0.6, 0.1, 0.35], [0.0, 0.2, 0.1], [0.5, 0.5, 0.5]])
    video = np.array([[0.2, 0.0, 0.5], [-np.inf] * 3, [0.0, 0.9, 0.0]])
    got = pick(tags, {"text": text, "video": video}, threshold=0.3, top=2)
    assert got[0] == [{"tag": "ocean", "score": 0.6, "from": "text"}, {"tag": "piano", "score": 0.5, "from": "video"}]
    assert got[1] == []
    assert got[2][0] == {"tag": "city", "score": 0.9, "from": "video"} and len(got[2]) == 2
    s = space_scores(np.eye(3, 4), np.array([True, False, True]), None, np.eye(3, 4))
    assert np.isneginf(s[1]).all() and np.isfinite(s[0]).all()


def test_embed_checks_the_understand_section_first(tmp_path):
    from avrec.config import load_config
    from avrec.embed import plan_understand

    assert plan_understand(load_config(None, [], env={})) == {"caption": "", "sentiment": ""}
    cfg = load_config(None, ["understand.mood=false", "understand.mood_weight=1"], env={})
    with pytest.raises(ConfigError, match="understand.mood is off"):
        plan_understand(cfg)
    cfg = load_config(None, [f"understand.tags=[{tmp_path / 'none.txt'}]"], env={})
    with pytest.raises(ConfigError, match="cannot read the tag file"):
        plan_understand(cfg)
    cfg = load_config(None, ["understand.caption=caption:Salesforce/blip-image-captioning-base"], env={})
    assert plan_understand(cfg)["caption"] == "caption:Salesforce/blip-image-captioning-base"


def test_neighbours_vote_their_given_tags_onto_untagged_items():
    from avrec.understand.tags import given_labels, merge, neighbour_scores

    rng = np.random.default_rng(1)
    centres = 4.0 * np.eye(3, 16)
    world = np.repeat([0, 1, 2], 20)
    x = centres[world] + rng.normal(size=(60, 16)) + 5.0  # a shared offset the catalogue centring removes
    vocab = ["calm", "busy", "music"]
    items = [{"tags": [vocab[w].upper()] if i % 20 < 5 else []} for i, w in enumerate(world)]  # 5 tagged a world
    given = given_labels(items, vocab)
    assert given.sum() == 15 and given[0, 0] and not given[5].any()
    mask = np.ones(60, bool)
    mask[59] = False
    s = neighbour_scores(x, mask, x[mask].mean(axis=0), given, k=4)
    assert np.isneginf(s[59]).all()  # no vector in this modality: no vote
    untagged = np.flatnonzero(~given.any(axis=1))[:-1]
    assert (s[untagged].argmax(axis=1) == world[untagged]).mean() >= 0.95
    assert ((s >= 0) & (s <= 1) | np.isneginf(s)).all()
    # an item is not its own neighbour: a lone tagged item's tag comes only from others
    solo = given.copy()
    solo[:, 2] = False
    solo[40, 2] = True
    assert neighbour_scores(x, mask, None, solo, k=4)[40, 2] == 0.0
    picked = pick(vocab, {"neighbours:v": s}, threshold=0.5, top=2)
    both = merge(pick(vocab, {"text": np.where(np.arange(3) == 0, 0.9, 0.0)[None].repeat(60, 0)}, threshold=0.3, top=2),
                 picked, top=2)
    assert both[0][0] == {"tag": "calm", "score": 1.0, "from": "text+neighbours:v"}


def _pick_reference(tags, scores, *, threshold, top):
    """The per-item loop pick() replaced: the same answers, one item at a time."""
    n = len(next(iter(scores.values())))
    out = []
    for i in range(n):
        best = {}
        for space, s in scores.items():
            for j in np.flatnonzero(s[i] >= threshold):
                if j not in best or s[i, j] > best[j][0]:
                    best[j] = (float(s[i, j]), space)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top]
        out.append([{"tag": tags[j], "score": round(sc, 4), "from": sp} for j, (sc, sp) in ranked])
    return out


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 30), v=st.integers(1, 8), spaces=st.integers(1, 3), top=st.integers(1, 5),
       seed=st.integers(0, 2**31 - 1))
def test_pick_equals_the_per_item_loop(n, v, spaces, top, seed):
    rng = np.random.default_rng(seed)
    tags = [f"t{j}" for j in range(v)]
    scores = {}
    for p in range(spaces):
        s = np.round(rng.uniform(-0.2, 1.0, (n, v)), 2).astype(np.float32)  # rounded: ties across spaces happen
        s[rng.random(n) < 0.2] = -np.inf  # items without this modality
        scores[f"s{p}"] = s
    assert pick(tags, scores, threshold=0.3, top=top) == _pick_reference(tags, scores, threshold=0.3, top=top)
