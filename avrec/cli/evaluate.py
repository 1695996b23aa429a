"""`avrec evaluate`: split, train each model on the train part, score the test part."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from .common import Common, command

HELP = """Offline evaluation: standard splits, standard metrics, models side by side.

Reads EMBEDDINGS (item content; a path, '-', a piped path or the workspace's embeddings/)
and --interactions. For each protocol (random: per-user holdout; temporal: global time
cut; last: leave-last-n; cold: items held out entirely and ranked among the held-out
items only) the split is written to OUT/splits/<protocol>/{train,test}.csv, every model
is trained on the train part only and scored on the test part: NDCG, Recall, Precision,
MAP, MRR, HitRate at each K, coverage, novelty, intra-list diversity, per slice (light /
heavy users, warm / cold items). Writes metrics.json, report.txt and plot.png (needs
matplotlib) into OUT (default: the workspace's evaluation/).

On a terminal a table is printed; when stdout is piped, one JSON line per protocol x
model x K row (and the table on stderr unless --quiet). --recs FILE.jsonl scores another
system's recommendations ({"user_id": U, "items": [...]} per line) on the same split.

Examples:

  avrec evaluate --interactions events.csv

  avrec evaluate emb/ --interactions events.csv --models popular,ease,hybrid --protocol random,cold --k 5,10,20

  avrec evaluate emb/ -i events.csv --protocol random --recs other_system.jsonl | jq .ndcg

Models: popular, itemknn, ease, mf, content, hybrid (default: popular,content,hybrid;
content, the content-only cosine, is the baseline on the cold protocol, where popular has
nothing to rank).

Config keys (section evaluate): models, protocols, k, test_ratio, cold_ratio, last_n;
the models use the train section.
"""


def _csv(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@command("evaluate", help=HELP, output=True, strict=True, no_args_is_help=False)
def evaluate_cmd(
    common: Common,
    embeddings: Annotated[Optional[str], typer.Argument(help="Embeddings artifact directory ('-': read the path from stdin).",
                                                        show_default=False)] = None,
    interactions: Annotated[Optional[str], typer.Option("--interactions", "-i", help="Interactions file (CSV, TSV, JSONL, Parquet).",
                                                        show_default=False)] = None,
    models: Annotated[Optional[str], typer.Option("--models", help="Comma-separated models [evaluate.models].",
                                                  show_default=False)] = None,
    protocol: Annotated[Optional[str], typer.Option("--protocol", "-p", help="random,temporal,last,cold [evaluate.protocols].",
                                                    show_default=False)] = None,
    k: Annotated[Optional[str], typer.Option("--k", help="Cut-offs, e.g. 10 or 5,10,20 [evaluate.k].", show_default=False)] = None,
    recs: Annotated[Optional[str], typer.Option("--recs", help="JSON lines of another system's recommendations to score too.",
                                                show_default=False)] = None,
) -> None:
    from ..artifacts import resolve_input
    from ..errors import InputError
    from ..evaluate import CONTENT_MODELS, evaluate

    cfg = common.load()
    log = common.log
    if not interactions:
        raise InputError("evaluate needs --interactions FILE (CSV, TSV, JSONL or Parquet with user_id, item_id)")
    ks = None
    if k:
        try:
            ks = [int(x) for x in _csv(k) or []]
        except ValueError:
            raise InputError(f"--k expects integers such as 10 or 5,10,20, got {k!r}") from None
    try:
        src = resolve_input(embeddings, stage="evaluate", work=common.work(cfg))
    except InputError as e:
        # models that need no item content can be evaluated from interactions alone, but
        # never after an upstream failure (an empty pipe)
        if embeddings or "stdin" in str(e) or any(m in CONTENT_MODELS for m in (_csv(models) or cfg.evaluate.models)):
            raise
        src = None
    path, rows = evaluate(src, interactions, common.out(cfg, "evaluation"), cfg, models=_csv(models),
                          protocols=_csv(protocol), ks=ks, recs=recs, strict=common.strict, progress=log)
    if sys.stdout.isatty():
        _print_table(rows, sys.stdout, path)
    else:
        for row in rows:
            print(json.dumps(row), flush=True)
        if not common.quiet:
            _print_table(rows, sys.stderr, path)
    log(f"wrote {path}")


def _print_table(rows: list[dict], stream, path=None) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..evaluate import paired_lines

    table = Table(title="avrec evaluate")
    cols = ("ndcg", "recall", "precision", "map", "mrr", "hitrate", "coverage", "novelty", "diversity")
    for c in ("protocol", "model", "K", *cols, "fit s"):
        table.add_column(c, justify="left" if c in ("protocol", "model") else "right")
    for r in rows:
        vals = [f"{r[c]:.4f}" if r.get(c) is not None else "-" for c in cols]
        fit = f"{r['fit_seconds']:.2f}" if r.get("fit_seconds") is not None else "-"
        table.add_row(r["protocol"], r["model"], str(r["k"]), *vals, fit)
    Console(file=stream, width=160).print(table)
    if path is not None:  # which gaps are larger than the split's noise (metrics.json: protocols.P.paired)
        try:
            protocols = json.loads((path / "metrics.json").read_text(encoding="utf-8"))["protocols"]
        except (OSError, ValueError, KeyError):
            return
        for p, res in protocols.items():
            lines = paired_lines(res)
            if lines:
                print(f"{p}:", *lines, sep="\n", file=stream)
