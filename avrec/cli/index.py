"""`avrec index`: build the annoy index (and content indexes) from a model, or add new items."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import Common, command, emit_path

HELP = """Build the serving index from a model artifact.

Reads MODEL (a path, '-' for a path on stdin, a piped path, or the workspace's model/) and
writes index/: an annoy index over the item vectors (inner products through the
extra-dimension transform, or angular for unit vectors), one content index per modality,
id maps, titles, seen items and popularity as memory-mapped .npy. Prints recall@10
against exact search on stderr and records it in the manifest. Prints the index path.

--add EMBEDDINGS adds the items of an embeddings artifact that are not yet indexed, with
vectors derived from their content through the model's content projection (no retraining);
the index (-o, or the workspace's index/) is rebuilt in a temporary directory and swapped in.

Examples:

  avrec train --interactions ev.csv | avrec index

  avrec index avrec-work/model -o idx/ --n-trees 100 --search-k 10000

  avrec embed uploads/ -o new-emb/ && avrec index --add new-emb/ -o idx/

Config keys (section index): n_trees, search_k, metric (auto|angular|dot), exact_below
(batches scan exactly below it), exact_single_below (single requests scan exactly below
it), recall_sample. The model's content_projection.npy (and history_projection.npy) are kept
for --add: [fused content, 1] @ projection (a last row is a bias). Models served: hybrid, mf, popular (ease and itemknn are scored by
avrec evaluate only).
"""


@command("index", help=HELP, output=True, no_args_is_help=False)
def index_cmd(
    common: Common,
    model: Annotated[Optional[str], typer.Argument(help="Model artifact directory ('-': read the path from stdin).",
                                                   show_default=False)] = None,
    add: Annotated[Optional[str], typer.Option("--add", help="Embeddings artifact whose new items are added to the index "
                                               "('-': path on stdin).", show_default=False)] = None,
    n_trees: Annotated[Optional[int], typer.Option("--n-trees", help="Annoy trees [index.n_trees].", show_default=False)] = None,
    search_k: Annotated[Optional[int], typer.Option("--search-k", help="Annoy search_k, -1: annoy's default "
                                                    "[index.search_k].", show_default=False)] = None,
    metric: Annotated[Optional[str], typer.Option("--metric", help="auto | angular | dot [index.metric].",
                                                  show_default=False)] = None,
) -> None:
    from ..artifacts import resolve_input
    from ..config import validate
    from ..errors import InputError
    from ..index import add_items, build_index

    cfg = common.load()
    if n_trees is not None:
        cfg.index.n_trees = n_trees
    if search_k is not None:
        cfg.index.search_k = search_k
    if metric is not None:
        cfg.index.metric = metric
    validate(cfg)
    work = common.work(cfg)
    out = common.out(cfg, "index")
    if add is not None:
        if model is not None:
            raise InputError("with --add, name the index to update with -o (the positional MODEL is for a build)")
        emb = resolve_input(add, stage="index --add", work=work, use_stdin=False)
        path, _ = add_items(out, emb, cfg.index, log=common.log)
    else:
        src = resolve_input(model, stage="index", work=work)
        path = build_index(src, out, cfg.index, seed=cfg.runtime.seed, log=common.log)
    emit_path(path)
