"""Properties of SRT/VTT parsing: generated subtitles give back exactly their cue texts, in
order, without timings, cue numbers, headers, comments or markup; any input gives a string."""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from avrec.media.subtitles import read_subtitles, subtitle_text

SETTINGS = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}

# spoken text: anything printable; no line breaks or controls (a cue line is one line), no
# "{" (SSA override tags like {\an8} are markup); SRT has no escapes, so no & < > there either
_TEXT = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="{")
VTT_LINE = st.text(_TEXT, min_size=1, max_size=20).map(str.strip).filter(bool)
SRT_LINE = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="{<>&"),
                   min_size=1, max_size=20).map(str.strip).filter(bool)
WORDY = st.sampled_from(["Hello there", "General Kenobi", "¿Qué?", "日本語の字幕", "♪ la la ♪", "- Who? - Me.", "42",
                         "1", "WEBVTT", "NOTE this", "STYLE", "[music]", "(sighs)", "&", "3 < 4"])


def _stamp(ms: int, sep: str, hours: bool) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}" if hours or h else f"{m:02d}:{s:02d}{sep}{ms:03d}"


def _styled(text: str, style: int, vtt: bool) -> str:
    body = html.escape(text, quote=False) if vtt else text
    tags = [("", ""), ("<i>", "</i>"), ("<b>", "</b>"), ("<u>", "</u>"), ('<font color="#ff0000">', "</font>"),
            ("{\\an8}", ""), ("<c.yellow.bg_blue>", "</c>"), ("<v Roger Bingham>", "</v>"), ("<00:00:01.500>", ""),
            ("<lang en-GB>", "</lang>"), ("<i><b>", "</b></i>"), ("{\\i1}", "{\\i0}"), ("<I>", "</I>")]
    open_, close = tags[style % len(tags)]
    return f"{open_}{body}{close}"


@st.composite
def subtitles(draw):
    """(document text, the cue text lines in order as plain text)."""
    vtt = draw(st.booleans())
    line = st.one_of(VTT_LINE if vtt else SRT_LINE, WORDY if vtt else WORDY.filter(lambda w: not set(w) & set("&<>")))
    nl = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    blank = st.sampled_from([nl, nl + nl, nl + "  " + nl, nl + "\t" + nl]) if not vtt else st.sampled_from([nl, nl + nl])
    parts, spoken, t = [], [], draw(st.integers(0, 10_000_000))
    if vtt:
        header = draw(st.sampled_from(["WEBVTT", "WEBVTT - Some title", "WEBVTT\tKind",
                                       "WEBVTT" + nl + "Kind: captions" + nl + "Language: en",
                                       "WEBVTT" + nl + "X-TIMESTAMP-MAP=LOCAL:00:00:00.000,MPEGTS:900000"]))
        parts.append(header + nl)
    for k in range(draw(st.integers(0, 12))):
        if vtt and draw(st.integers(0, 4)) == 0:  # a comment, style or region block between cues
            block = draw(st.sampled_from([
                "NOTE a comment that is not spoken", "NOTE" + nl + "two lines" + nl + "of comment",
                "STYLE" + nl + "::cue { color: red }", "REGION" + nl + "id:fred width:40% lines:3",
            ]))
            parts.append(nl + block + nl)
        start = t + draw(st.integers(0, 5000))
        t = start + draw(st.integers(1, 8000))
        sep = "." if vtt else draw(st.sampled_from([",", ",", "."]))
        hours = draw(st.booleans()) or not vtt
        timing = f"{_stamp(start, sep, hours)} --> {_stamp(t, sep, hours)}"
        if draw(st.booleans()):  # cue settings; old SRT files carry box coordinates there
            timing += " " + draw(st.sampled_from(["align:start", "position:10% line:0", "size:50% align:end",
                                                  "region:fred", "vertical:rl"] if vtt else
                                                 ["X1:100 X2:600 Y1:20 Y2:80", "  "]))
        head = []
        if not vtt:
            head.append(str(draw(st.integers(0, 100_000))))  # cue number, not always in sequence
        elif draw(st.booleans()):
            head.append(draw(st.sampled_from([str(k + 1), "intro", "cue-7", "chapter 2 - part 1"])))
        texts = draw(st.lists(line, min_size=0 if draw(st.integers(0, 9)) == 0 else 1, max_size=3))
        styled = [_styled(x, draw(st.integers(0, 20)), vtt) for x in texts]
        pad = draw(st.sampled_from(["", " ", "  "]))  # stray spaces around a line
        parts.append(draw(blank) + nl.join(head + [timing] + [pad + s + pad for s in styled]) + nl)
        spoken.extend(texts)
    doc = "".join(parts)
    if draw(st.booleans()):
        doc = "\ufeff" + doc
    # consecutive identical lines are said once (rolling captions repeat the previous line)
    want = [x for i, x in enumerate(spoken) if i == 0 or spoken[i - 1] != x]
    return doc, want


@settings(max_examples=200, **SETTINGS)
@given(sub=subtitles())
@example(sub=(("1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello</i> there,\r\n\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\n"
               "General Kenobi\r\n"), ["Hello there,", "General Kenobi"]))
@example(sub=("WEBVTT\n\nNOTE not spoken\n\n00:01.000 --> 00:02.000 align:start\n<v Roger>Fish &amp; chips &lt;3</v>\n",
              ["Fish & chips <3"]))
def test_generated_cues_give_back_their_text_in_order(sub):
    doc, want = sub
    got = subtitle_text(doc)
    assert got == " ".join(want)
    if not any("-->" in w for w in want):
        assert "-->" not in got  # no timings
    for w in want:
        assert w in got


@settings(max_examples=60, **SETTINGS)
@given(sub=subtitles(), encoding=st.sampled_from(["utf-8", "utf-8-sig"]))
def test_a_subtitle_file_reads_like_its_text(sub, encoding):
    doc, want = sub
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "clip.vtt"
        p.write_bytes(doc.encode(encoding))
        assert read_subtitles(p) == " ".join(want)


# the letters that make cp1252 bytes invalid as UTF-8 (lead bytes with no continuation byte after them)
_LATIN = st.text(st.sampled_from("abc XYZ.,!?'-0123456789éèàüößñçÉÀÜ"), min_size=1, max_size=20).map(str.strip).filter(
    lambda s: s and any(ord(c) > 127 for c in s))


@settings(max_examples=40, **SETTINGS)
@given(lines=st.lists(_LATIN, min_size=1, max_size=4))
def test_a_cp1252_file_reads_like_its_text(lines):
    doc = "".join(f"{k + 1}\r\n00:00:0{k},000 --> 00:00:0{k},900\r\n{x}\r\n\r\n" for k, x in enumerate(lines))
    want = [x for i, x in enumerate(lines) if i == 0 or lines[i - 1] != x]
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "clip.srt"
        p.write_bytes(doc.encode("cp1252"))
        assert read_subtitles(p) == " ".join(want)


_NOISE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\n", "\r\n", "\r", "\n\n", " --> ", "00:00:01,000", "00:01.000 --> 00:02.000", "WEBVTT", "NOTE",
                     "<", ">", "<i>", "</i>", "{\\an8}", "{", "}", "&", "&amp;", "&#", "&#x", "&#" + "9" * 5000 + ";",
                     "&#" + "0" * 5000 + "65;", "&#x" + "f" * 5000 + ";", "&#1114112;", "&#0;", "&#xd800;", "&nbsp;",
                     "\ufeff", "\x00", "\x85", "\u2028", "\x0c", "1", "99:99:99,999 --> 00:00:00,000", " " * 50]),
)


@settings(max_examples=200, **SETTINGS)
@given(parts=st.lists(_NOISE, max_size=25))
@example(parts=["1\n00:00:01,000 --> 00:00:02,000\n", "&#" + "1" * 5000 + ";"])
@example(parts=["1\n00:00:01,000 --> 00:00:02,000\n", "&#" + "0" * 5000 + "65;"])
def test_any_text_gives_one_line_of_text(parts):
    got = subtitle_text("".join(parts))
    assert isinstance(got, str)
    assert "\n" not in got and "\r" not in got  # cues are joined by spaces
    assert got == got.strip()


@settings(max_examples=100, **SETTINGS)
@given(raw=st.one_of(st.binary(max_size=300), st.lists(_NOISE, max_size=15).map(
    lambda p: "".join(p).encode("utf-8", "surrogatepass"))))
def test_any_bytes_give_a_string(raw):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "x.srt"
        p.write_bytes(raw)
        got = read_subtitles(p)
        assert isinstance(got, str) and "\n" not in got
