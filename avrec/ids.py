"""Ids are data, never paths or lines.

A user or item id is any text of at most :data:`MAX_ID_BYTES` UTF-8 bytes without control
characters. ``/`` and ``..`` are ordinary characters here (ids made from paths below a media
folder hold ``/``): avrec never builds a file name from an id, and every file it writes ids
into escapes them (JSON) or stores them length-delimited (``.npy``). Control characters
(newline, carriage return, tab, NUL, ...) are refused at ingestion, the same way in every
table, on stdin and on the command line, because they break line-based tools downstream.
"""

from __future__ import annotations

import re
import unicodedata

MAX_ID_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NAMES = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte"}


def id_problem(value: str) -> str | None:
    """Why ``value`` (already stripped) cannot be an id, or None when it can."""
    if not value:
        return "is empty"
    bad = _CONTROL.search(value)
    if bad:
        ch = bad.group(0)
        name = _NAMES.get(ch) or f"the control character U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')})"
        return f"contains {name}"
    bad = _SURROGATE.search(value)
    if bad:  # from a JSON escape such as "\\ud800": not text, no file can hold it as UTF-8
        return f"contains the unpaired surrogate U+{ord(bad.group(0)):04X}, which is not text"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        return f"is longer than {MAX_ID_BYTES} bytes"
    return None


def check_id(value: object, what: str = "id") -> str:
    """``value`` as an id (surrounding spaces removed); ValueError saying what is wrong."""
    s = str(value).strip()
    why = id_problem(s)
    if why:
        shown = s if len(s) <= 40 else s[:37] + "..."
        raise ValueError(f"{what} {shown!r} {why}; ids may not contain control characters")
    return s
