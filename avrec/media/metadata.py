"""Metadata tables (CSV / TSV / JSONL): item_id, title, description, tags, optional path."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .sidecars import normalise_tags

TEXT_FIELDS = ("title", "description", "tags")


@dataclass
class MetadataTable:
    """Rows keyed by item_id, plus a lookup by absolute media path."""

    path: Path
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # item_id -> row
    by_path: dict[str, str] = field(default_factory=dict)  # abs path -> item_id
    order: list[str] = field(default_factory=list)

    def lookup(self, item_id: str, media_path: str) -> tuple[str, dict[str, Any]] | None:
        """The table row for a media file: by path first (explicit), then by item_id."""
        iid = self.by_path.get(os.path.abspath(media_path))
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
                rows = json.loads(text)
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
        with open(p, newline="", encoding="utf-8-sig") as f:
            sample = f.read(4096)
            f.seek(0)
            delim = "\t" if suffix == ".tsv" or (sample.count("\t") > sample.count(",")) else ","
            return list(csv.DictReader(f, delimiter=delim))
    except OSError as e:
        raise InputError(f"cannot read metadata table {p}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"metadata table {p} is not UTF-8 text; save it as UTF-8 CSV or JSONL") from None


def load_metadata(path: str | Path) -> MetadataTable:
    """Load a table; ``item_id`` (or, failing that, ``path``) must be a column.

    Relative paths in the ``path`` column are taken relative to the table's folder.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"metadata table not found: {p} (pass a CSV or JSONL file to --metadata)")
    raw = _read_rows(p)
    table = MetadataTable(path=p)
    if not raw:
        return table
    cols = {k.strip().lower() for r in raw for k in r.keys() if k}
    if "item_id" not in cols and "path" not in cols:
        raise InputError(
            f"{p}: missing column 'item_id' (columns found: {', '.join(sorted(cols)) or 'none'}); "
            "a metadata table needs item_id (or path), title, description, tags"
        )
    for n, r in enumerate(raw, 2):
        r = {str(k).strip().lower(): v for k, v in r.items() if k is not None}
        media = str(r.get("path") or "").strip()
        abs_media = ""
        if media:
            mp = Path(media).expanduser()
            abs_media = os.path.abspath(mp if mp.is_absolute() else p.parent / mp)
        iid = str(r.get("item_id") or "").strip()
        if not iid:
            if not media:
                raise InputError(f"{p}: row {n} has neither item_id nor path")
            iid = Path(media).with_suffix("").as_posix()
        row = {
            "item_id": iid,
            "title": str(r.get("title") or "").strip(),
            "description": str(r.get("description") or "").strip(),
            "tags": normalise_tags(r.get("tags")),
            "path": abs_media or None,
        }
        if iid not in table.rows:
            table.order.append(iid)
        table.rows[iid] = row  # a later duplicate row wins
        if abs_media:
            table.by_path[abs_media] = iid
    return table
