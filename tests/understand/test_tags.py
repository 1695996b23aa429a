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
