"""`avrec train`: fit a recommender on interactions and item embeddings."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import Common, command, emit_path

HELP = """Train a recommender from interactions and item embeddings.

Reads EMBEDDINGS (a path, '-' for a path on stdin, a piped path, or the workspace's
embeddings/) and an interactions file (CSV, TSV, JSONL or Parquet with user_id, item_id,
optional timestamp and weight / event / watch_seconds). Malformed rows, duplicates and
items missing from the embeddings are counted and reported with line numbers on stderr.
Writes model/ (user, item and fold-in history vectors, seen items, popularity, weights)
and prints its path.

Models: hybrid (default: interactions + item content; new items served from content,
fresh histories folded in without retraining), popular, itemknn, ease, mf (ALS), content
(cosine of an item's content with the user's history: the content-only reference).

By default (train.tune: auto) the hybrid first chooses its solver, hyperparameters and
modality weights on a validation split of these interactions, within train.tune_budget_s
seconds (cut after the first validation fit to train.tune_budget_fits times it, 20 s at
least), logs each fit and records the search in the model manifest (extra.tuned). With the
ALS solver the final fit starts from the search's item factors (train.hybrid.als_warm_iterations
iterations). --tune runs the search to its end without the budget; --set train.tune=off fits
the configured values.

--set train.privacy.epsilon=E (> 0) trains with user-level (E, delta)-differential privacy:
each user keeps at most train.privacy.max_items_per_user interactions (a random subset; 0:
chosen from a noisy activity histogram), and the hybrid's closed form fits on a noisy item
Gram matrix and the popularity on noisy counts (analytic Gaussian mechanism; delta 0 means
1 / users^1.1). The search is skipped; the closed solver is used (als / sgd, --tune and models
other than hybrid / popular are refused). What is private is the item side (item and history
vectors, popularity), not a user's own list; the manifest records it (extra.privacy).

Examples:

  avrec embed | avrec train --interactions events.csv | avrec index

  avrec train avrec-work/embeddings --interactions events.jsonl --model ease -o model-ease/

  avrec train --interactions events.csv --tune

  avrec train --interactions events.csv --set train.tune=off --set train.hybrid.l2=400

Config keys (section train): model, validation, min_weight, tune, tune_budget_s,
tune_budget_fits, tune_max_interactions, recency, recency_half_life, hybrid.{solver, dim, l2, content_prior, ridge,
cold_scale, epochs, lr, weight_decay, batch_size, negatives, content_weight, dropout, patience,
mask_ratio, content_hidden, eval_k, refit, closed_max, als_factors, als_iterations,
als_warm_iterations, als_reg, als_alpha}, mf.{factors, epochs, reg, alpha}, ease.l2,
itemknn.{neighbours, shrink}, privacy.{epsilon, delta, max_items_per_user}.
"""


@command("train", help=HELP, output=True, strict=True, no_args_is_help=False)
def train_cmd(
    common: Common,
    embeddings: Annotated[Optional[str], typer.Argument(help="Embeddings artifact directory ('-': read the path from stdin).",
                                                        show_default=False)] = None,
    interactions: Annotated[Optional[list[str]], typer.Option("--interactions", "-i", help="Interactions file (CSV, TSV, JSONL, "
                                                              "Parquet) or avrec's event store (SQLite); repeatable.",
                                                              show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="popular | itemknn | ease | mf | hybrid [train.model].",
                                                 show_default=False)] = None,
    tune: Annotated[bool, typer.Option("--tune", help="Run the hybrid's validation search to its end, whatever train.tune_budget_s says.")] = False,
) -> None:
    from ..artifacts import resolve_input
    from ..config import validate
    from ..errors import InputError
    from ..train import train

    cfg = common.load()
    if model is not None:
        cfg.train.model = model
    validate(cfg)
    if not interactions:
        raise InputError("train needs --interactions FILE (CSV, TSV, JSONL or Parquet with user_id, item_id)")
    src = resolve_input(embeddings, stage="train", work=common.work(cfg))
    path = train(src, interactions, common.out(cfg, "model"), cfg, tune=tune, strict=common.strict, progress=common.log)
    emit_path(path)
