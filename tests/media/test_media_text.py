import json

import pytest

from avrec.errors import InputError
from avrec.media.metadata import load_metadata
from avrec.media.sidecars import normalise_tags, read_sidecars
from avrec.media.subtitles import subtitle_text

SRT = """1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> there,

2
00:00:03,000 --> 00:00:04,000
General Kenobi &amp; friends

3
00:00:04,000 --> 00:00:05,000
General Kenobi &amp; friends
"""

VTT = """WEBVTT
Kind: captions

NOTE a comment that is not spoken

STYLE
::cue { color: red }

intro
00:00:00.000 --> 00:00:00.999 line:80%
Hildy!

00:01.000 --> 00:01.499
<v Roger>How are <b>you</b>?
"""


def test_srt_and_vtt_to_plain_text():
    assert subtitle_text(SRT) == "Hello there, General Kenobi & friends"
    assert subtitle_text(VTT) == "Hildy! How are you?"
    assert subtitle_text("") == ""


def test_real_vtt_when_present(shared_media):
    from avrec.media.subtitles import read_subtitles

    text = read_subtitles(shared_media / "video" / "mdn__friday.vtt")
    assert text.startswith("Hildy! How are you?") and "crown jewels" in text and "-->" not in text


def test_sidecars_json_txt_and_subtitles(tmp_path):
    media = tmp_path / "clip.mp4"
    media.write_bytes(b"")
    (tmp_path / "clip.json").write_text(json.dumps({"title": "A title", "tags": "x|y", "other": 1}))
    (tmp_path / "clip.txt").write_text("free text")
    (tmp_path / "clip.en.srt").write_text(SRT)
    fields, problems = read_sidecars(media)
    assert problems == []
    assert fields["title"] == "A title" and fields["tags"] == ["x", "y"]
    assert fields["text"].splitlines() == ["free text", "Hello there, General Kenobi & friends"]


def test_a_bad_sidecar_is_a_warning_not_an_error(tmp_path):
    media = tmp_path / "clip.mp4"
    (tmp_path / "clip.json").write_text("{not json")
    fields, problems = read_sidecars(media)
    assert fields == {} and len(problems) == 1 and "clip.json" in problems[0]


def test_tags():
    assert normalise_tags("a, b ,c") == ["a", "b", "c"]
    assert normalise_tags(["a", " ", "b"]) == ["a", "b"]
    assert normalise_tags(None) == [] and normalise_tags("nan") == []


def test_metadata_csv_jsonl_and_paths(tmp_path):
    csv = tmp_path / "cat.csv"
    csv.write_text("item_id,title,description,tags,path\nv1,One,first,a|b,media/one.mp4\nt1,Text,only,,\n")
    table = load_metadata(csv)
    assert table.order == ["v1", "t1"]
    assert table.rows["v1"]["tags"] == ["a", "b"]
    assert table.rows["v1"]["path"] == str(tmp_path / "media" / "one.mp4")  # relative to the table
    assert table.lookup("other-id", str(tmp_path / "media" / "one.mp4"))[0] == "v1"
    assert table.lookup("t1", "/elsewhere.mp4")[0] == "t1"
    jl = tmp_path / "cat.jsonl"
    jl.write_text(json.dumps({"item_id": "j", "title": "J", "tags": ["p", "q"]}) + "\n")
    assert load_metadata(jl).rows["j"]["tags"] == ["p", "q"]


def test_metadata_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,title\nx,y\n")
    with pytest.raises(InputError, match="missing column 'item_id'"):
        load_metadata(bad)
    with pytest.raises(InputError, match="not found"):
        load_metadata(tmp_path / "nope.csv")
    jl = tmp_path / "bad.jsonl"
    jl.write_text('{"item_id": "a"}\n{oops\n')
    with pytest.raises(InputError, match="line 2"):
        load_metadata(jl)
