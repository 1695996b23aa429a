"""`avrec events add` and `avrec forget`: the event store from scripts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Common, command

EVENTS_HELP = """Append events to the event store (the one avrec serve uses), durably.

SOURCE is a file of JSON lines ({"user_id", "item_id"[, "event"][, "weight"][, "timestamp"]})
or a CSV with a header naming those columns; '-' reads stdin. Every line is checked first:
one bad line stores nothing and exits 2 naming it. A running server folds the events into
its next answers; `avrec train --interactions events.sqlite` learns from them.

Prints the number of events stored and the store's path.

Examples:

  avrec events add new-events.jsonl

  echo '{"user_id": "42", "item_id": "v17", "event": "like"}' | avrec events add -

  avrec events add log.csv --events /var/lib/avrec/events.sqlite
"""

FORGET_HELP = """Erase a user: delete their events from the event store and record the erasure.

A running server stops serving the user's trained vector at once; `avrec train` drops the
user from every interactions source it reads, so they leave the model at the next train.

Examples:

  avrec forget --user 42

  avrec forget --user 42 --events /var/lib/avrec/events.sqlite
"""


def _store(common: Common, cfg, events: Optional[str], *, create: bool):
    from ..privacy import pseudonymizer
    from ..serve.events import EventStore, default_store_path, key_fingerprint

    pid = pseudonymizer(cfg)
    path = Path(events) if events else default_store_path(cfg)
    if create and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    return EventStore(path, pseudonyms=key_fingerprint(pid), create=create), pid


@command("events", help=EVENTS_HELP, no_args_is_help=True)
def events_cmd(
    common: Common,
    action: Annotated[str, typer.Argument(help="add", show_default=False)],
    source: Annotated[str, typer.Argument(help="JSON lines or CSV file of events; '-': stdin.")] = "-",
    events: Annotated[Optional[str], typer.Option("--events", help="Event store [serve.events, else "
                                                  "<workdir>/events.sqlite].", show_default=False)] = None,
) -> None:
    from ..errors import InputError
    from ..serve.events import Event, read_event_lines

    if action != "add":
        raise InputError(f"unknown events action {action!r}; use: avrec events add FILE|-")
    cfg = common.load()
    if source == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("events add -: stdin is a terminal; pipe events in or pass a file")
        lines, name = sys.stdin.read().splitlines(), "stdin"
    else:
        p = Path(source)
        if not p.is_file():
            raise InputError(f"events file not found: {source}")
        lines, name = p.read_text(encoding="utf-8-sig").splitlines(), source
    parsed, problems = read_event_lines(lines, weights=dict(cfg.serve.event_weights), source=name)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{problems[0]}{more}; nothing was stored")
    if not parsed:
        raise InputError(f"{name}: no events (one JSON object per line, or a CSV with user_id,item_id)")
    store, pid = _store(common, cfg, events, create=True)
    store.add([Event(pid(e.user_id), e.item_id, e.weight, e.event, e.timestamp) for e in parsed])
    common.log(f"events: {len(parsed)} stored in {store.path} (last seq {store.last_seq()})")
    print(store.path, flush=True)


@command("forget", help=FORGET_HELP, no_args_is_help=True)
def forget_cmd(
    common: Common,
    user: Annotated[str, typer.Option("--user", "-u", help="The user id to erase.", show_default=False)],
    events: Annotated[Optional[str], typer.Option("--events", help="Event store [serve.events, else "
                                                  "<workdir>/events.sqlite].", show_default=False)] = None,
) -> None:
    from ..ids import check_id

    cfg = common.load()
    try:
        uid = check_id(user, "--user")
    except ValueError as e:
        from ..errors import InputError

        raise InputError(str(e)) from None
    store, pid = _store(common, cfg, events, create=True)
    n = store.forget(pid(uid))
    common.log(f"forget: {n} event(s) of the user deleted from {store.path}; the erasure is recorded, so the next "
               "avrec train drops the user from every source and a running server stops serving them now")
    print(store.path, flush=True)
