"""`avrec extract`: media folders and/or a metadata table -> a features artifact."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any, Optional

import typer

from .common import Common, Log, command, emit_path

HELP = """Extract features, thumbnails and audio from media files and metadata.

INPUTS are media folders (searched recursively), media files, or '-' to read
newline-separated paths from stdin. A metadata table (CSV, TSV or JSONL: item_id, title,
description, tags[, path]) joins by item_id or path; rows without media become text-only
items. Re-running on the same folder only processes new or changed files. Bad files
become rows with status "failed"; exit 3 when no item succeeds, or when more than
--max-failed fail. The artifact is built beside the output and swapped in when complete:
an interrupted run leaves the previous artifact as it was, and the next run goes on
from the shards already done. Prints the features directory on stdout.

Examples:

  avrec extract ./videos --metadata catalogue.csv --workers 2

  find . -name '*.mp4' | avrec extract - -o features/

  avrec extract --metadata catalogue.csv     (text-only catalogue)

  avrec extract /shared/videos --engine ray --address ray://head:10001 --workers 64
"""


class _PlainProgress:
    """One line per item on stderr (when stderr is not a terminal)."""

    def __init__(self, log: Log):
        self.log = log
        self.total = self.done = self.failed = 0

    def start(self, total: int, reused: int) -> None:
        self.total = total

    def update(self, row: dict[str, Any]) -> None:
        self.done += 1
        if row["status"] == "ok":
            what = f"ok {'+'.join(row['modalities'])} {row.get('duration') or 0:.1f}s"
        else:
            self.failed += 1
            what = f"FAILED: {row['error']}"
        self.log(f"[{self.done}/{self.total}] {row['item_id']}: {what}")

    def close(self) -> None:
        pass


class _RichProgress:
    """A rich bar on stderr: items, media seconds per second, ETA, failures."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("extract"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"), TimeRemainingColumn(), TextColumn("{task.fields[failed]}"),
            console=Console(stderr=True), transient=False,
        )
        self.task = None
        self.media = 0.0
        self.failed = 0
        self.t0 = time.monotonic()

    def start(self, total: int, reused: int) -> None:
        self.t0 = time.monotonic()
        self.bar.start()
        self.task = self.bar.add_task("extract", total=total, speed="", failed="")

    def update(self, row: dict[str, Any]) -> None:
        self.media += float(row.get("duration") or 0.0)
        self.failed += row["status"] == "failed"
        rate = self.media / max(time.monotonic() - self.t0, 1e-6)
        self.bar.update(self.task, advance=1, speed=f"{rate:.1f} media s/s",
                        failed=f"[red]{self.failed} failed[/red]" if self.failed else "")

    def close(self) -> None:
        self.bar.stop()


def _summary(log: Log, out, manifest) -> None:
    from ..artifacts import read_jsonl

    c = manifest.counts
    run = manifest.extra.get("run", {})
    speed = f" ({run['realtime_factor']}x real time)" if run.get("realtime_factor") else ""
    skipped = f", {c['skipped']} skipped (no media and no text: no features, so no recommendations)" \
        if c.get("skipped") else ""
    log(f"extract: {c['items']} items: {c['ok']} ok, {c['failed']} failed{skipped}, {c['text_only']} text-only; "
        f"processed {c['processed']}, reused {c['reused']}; {run.get('media_seconds', 0):.1f} s of media "
        f"in {run.get('wall_seconds', 0):.1f} s{speed}")
    if c["failed"]:
        failed = [r for r in read_jsonl(out / "items.jsonl") if r["status"] == "failed"]
        for r in failed[:10]:
            log(f"  failed {r['item_id']}: {r['error']}")
        if len(failed) > 10:
            log(f"  ... and {len(failed) - 10} more (status \"failed\" in {out / 'items.jsonl'})")


@command("extract", help=HELP, output=True, engine=True, strict=True)
def extract_cmd(
    common: Common,
    inputs: Annotated[Optional[list[str]], typer.Argument(help="Media folders or files; '-' reads paths from stdin.", show_default=False)] = None,
    metadata: Annotated[Optional[str], typer.Option("--metadata", "-m", help="CSV/JSONL table: item_id, title, description, tags[, path].", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", help="Worker processes [extract.workers].", show_default=False, min=1)] = None,
    keyframes: Annotated[Optional[bool], typer.Option("--keyframes/--all-frames", help="Decode key frames only (fast, coarser) [extract.keyframes].", show_default=False)] = None,
    max_failed: Annotated[Optional[int], typer.Option("--max-failed", help="Exit 3 when more items fail; -1: never [extract.max_failed].", show_default=False)] = None,
    content_hash: Annotated[Optional[bool], typer.Option("--hash/--no-hash", help="Fingerprint files by sha256 too, not only path, size, mtime [extract.hash].", show_default=False)] = None,
    follow_outside: Annotated[bool, typer.Option("--follow-outside", help="Read files whose real path lies outside the folder (or the table's folder) that names them, e.g. through a symlink.")] = False,
) -> None:
    from ..errors import InputError
    from ..extract import check_failures, extract

    cfg = common.load()
    e = cfg.extract
    if workers is not None:
        e.workers = workers
    if keyframes is not None:
        e.keyframes = keyframes
    if max_failed is not None:
        e.max_failed = max_failed
    if content_hash is not None:
        e.hash = content_hash
    from ..config import validate

    validate(cfg)
    if metadata is not None and not metadata.strip():
        raise InputError("--metadata is an empty string; pass a CSV, TSV or JSONL file")
    if not inputs and not (metadata or e.metadata):
        raise InputError("no input: pass media folders or files, '-' to read paths from stdin, or --metadata FILE")
    log = common.log
    out = common.out(cfg, "features")
    progress = None if common.quiet else (_RichProgress() if sys.stderr.isatty() else _PlainProgress(log))
    manifest = extract(inputs or [], out, cfg, metadata=metadata, progress=progress, log=log, strict=common.strict,
                       follow_outside=follow_outside)
    if not common.quiet:
        _summary(log, out, manifest)
    emit_path(out)
    check_failures(manifest, e.max_failed)
