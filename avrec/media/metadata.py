"""Metadata tables (CSV / TSV / JSONL): item_id, title, description, tags, optional path.

Columns are matched by name, case-insensitively, through :data:`COLUMNS` (``name`` is a
title, ``genres`` are tags, ...). A column matching nothing is a warning naming the closest
known column (an error with ``strict``): a misspelt ``titel`` would otherwise leave every
title empty without a word. An empty table, a header without rows and an item_id on two
rows are errors. Relative paths in the ``path`` column are relative to the table's folder.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..data.columns import match_columns
from ..errors import InputError
from ..ids import check_id
from .sidecars import normalise_tags

TEXT_FIELDS = ("title", "description", "tags")
# accepted spellings of each column, case-insensitive (first match wins)
COLUMNS = {
    "item_id": ("item_id", "id", "itemid", "item", "video_id", "track_id", "episode_id", "movieid"),
    "title": ("title", "name", "headline"),
    "description": ("description", "desc", "summary", "synopsis", "overview", "abstract"),
    "tags": ("tags", "tag", "genres", "genre", "keywords", "categories", "labels"),
    "path": ("path", "file", "filename", "filepath", "media", "media_path"),
}


@dataclass
class MetadataTable:
    """Rows keyed by item_id, plus a lookup by the real path of each media file."""

    path: Path
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # item_id -> row
    by_path: dict[str, str] = field(default_factory=dict)  # real path -> item_id
    order: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # field -> column name in the file

    def lookup(self, item_id: str, media_path: str) -> tuple[str, dict[str, Any]] | None:
        """The table row for a media file: by path first (explicit), then by item_id."""
        iid = self.by_path.get(os.path.realpath(media_path))
        if iid is not None:
            return iid, self.rows[iid]
        if item_id in self.rows:
            return item_id, self.rows[item_id]
        return None


def _read_rows(p: Path) -> list[dict[str, Any]]:
    suffix = p.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            text = p.read_text(encoding="utf-8-sig")
            if suffix == ".json" and text.lstrip().startswith("["):
                try:
                    rows = json.loads(text)
                except json.JSONDecodeError as e:
                    raise InputError(f"{p}: not valid JSON (line {e.lineno}: {e.msg})") from None
            else:
                rows = []
                for n, line in enumerate(text.splitlines(), 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise InputError(f"{p}: line {n} is not valid JSON ({e.msg}); one object per line") from None
            if not all(isinstance(r, dict) for r in rows):
                raise InputError(f"{p}: every line must be a JSON object with item_id, title, ...")
            return rows
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long descriptions are data, not errors
        with open(p, newline="", encoding="utf-8-sig") as f:
            sample = f.read(4096)
            # UTF-16 text or binary decodes with a NUL every few characters; a NUL or two in a
            # text table is a bad value, which the row it is on names (an id, a path)
            if sample.count("\x00") * 20 > len(sample):
                raise InputError(f"metadata table {p} is a binary file, not CSV/TSV text; pass a CSV, TSV or JSONL table")
            f.seek(0)
            delim = "\t" if suffix == ".tsv" or (sample.count("\t") > sample.count(",")) else ","
            # strict: a quote opened and never closed is an error, not one field swallowing every later row
            reader = csv.DictReader(f, delimiter=delim, strict=True)
            rows, line = [], 1
            try:
                for r in reader:
                    rows.append(r)
                    line = reader.line_num
            except csv.Error as e:
                hint = " (a quote opened there is never closed)" if "end of data" in str(e) else ""
                raise InputError(f"metadata table {p}: bad CSV in the row starting on line {line + 1}: {e}{hint}") from None
            return rows
    except OSError as e:
        raise InputError(f"cannot read metadata table {p}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"metadata table {p} is not UTF-8 text; save it as UTF-8 CSV or JSONL") from None
    except csv.Error as e:
        raise InputError(f"metadata table {p}: {e}") from None


def load_metadata(path: str | Path, *, strict: bool = False, warn: Callable[[str], None] = lambda _m: None
                  ) -> MetadataTable:
    """Load a table; ``item_id`` (or, failing that, ``path``) must be a column."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"metadata table {p} is a directory; pass a CSV, TSV or JSONL file to --metadata")
    if not p.is_file():
        raise InputError(f"metadata table not found: {p} (pass a CSV, TSV or JSONL file to --metadata)")
    raw = _read_rows(p)
    if not raw:
        raise InputError(f"metadata table {p} has no rows (an empty file or a header alone); add rows or leave "
                         "--metadata out")
    names = list(dict.fromkeys(str(k) for r in raw for k in r.keys() if k is not None))
    lower = {n.strip().lower() for n in names}
    if not lower & set(COLUMNS["item_id"] + COLUMNS["path"]):
        raise InputError(
            f"{p}: missing column 'item_id' (columns found: {', '.join(names) or 'none'}); "
            "a metadata table needs item_id (or path), title, description, tags"
        )
    cols = match_columns(names, COLUMNS, p, strict=strict, warn=warn)
    table = MetadataTable(path=p, columns=cols)
    first_row: dict[str, int] = {}
    get = lambda r, key: r.get(cols[key]) if key in cols else None  # noqa: E731
    for n, r in enumerate(raw, 2 if p.suffix.lower() not in (".jsonl", ".ndjson", ".json") else 1):
        for key in ("item_id", "title", "description", "path"):
            if isinstance(get(r, key), (dict, list)):
                raise InputError(f"{p}: row {n}: {key} is a JSON {type(get(r, key)).__name__}; give it as text")
        media = str(get(r, "path") or "").strip()
        if "\x00" in media:
            raise InputError(f"{p}: row {n}: path {media[:40]!r} contains a NUL byte; a path may not hold one")
        given = real = ""
        if media:
            mp = Path(media).expanduser()
            given = os.path.abspath(mp if mp.is_absolute() else p.parent / mp)
            real = os.path.realpath(given)
        iid = str(get(r, "item_id") or "").strip()
        if not iid:
            if not media:
                raise InputError(f"{p}: row {n} has neither item_id nor path")
            iid = Path(media).with_suffix("").as_posix()
        try:
            iid = check_id(iid, "item_id")
        except ValueError as e:
            raise InputError(f"{p}: row {n}: {e}") from None
        if iid in table.rows:
            raise InputError(f"{p}: item_id {iid!r} is on rows {first_row[iid]} and {n}; give each item one row")
        first_row[iid] = n
        table.order.append(iid)
        table.rows[iid] = {
            "item_id": iid,
            "title": str(get(r, "title") or "").strip(),
            "description": str(get(r, "description") or "").strip(),
            "tags": normalise_tags(get(r, "tags")),
            "path": given or None,  # as written (a dangling link stays a row); looked up by its real path
            "relative": bool(media) and not Path(media).expanduser().is_absolute(),
        }
        if real:
            if real in table.by_path:  # one file is one item (the second row would read as "not found")
                other = table.by_path[real]
                raise InputError(f"{p}: rows {first_row[other]} and {n} both name the file {media} "
                                 f"(item_id {other!r} and {iid!r}); give each file one row")
            table.by_path[real] = iid
    return table
