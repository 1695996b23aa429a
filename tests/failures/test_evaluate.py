"""evaluate's failures and composition: it reads avrec's own recommendations, its numbers do
not depend on which cut-offs were asked for, and it never writes over another artifact."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avrec_runner import run_avrec  # noqa: E402
from workspace_kit import SAMPLE, fast_config, snapshot, workspace  # noqa: E402


def test_popular_ndcg_at_10_does_not_depend_on_the_k_list(tmp_path):
    from avrec.evaluate import evaluate

    cfg = fast_config()
    metrics = {}
    for ks in ([10], [5, 10, 20], [10, 50]):
        _, rows = evaluate(None, SAMPLE / "interactions.csv", tmp_path / f"ev{len(ks)}{ks[-1]}", cfg,
                           models=["popular"], protocols=["random"], ks=ks)
        metrics[tuple(ks)] = {m: r[m] for r in rows if r["k"] == 10 for m in ("ndcg", "recall", "map", "mrr")}
    first = next(iter(metrics.values()))
    assert all(m == first for m in metrics.values()), metrics


def test_topk_is_the_prefix_of_a_longer_topk_even_with_ties():
    from avrec.metrics import topk

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 3, size=(50, 200)).astype(np.float32)  # heavy ties, as popularity has
    long_ids, _ = topk(scores, 40)
    for k in (1, 5, 10, 39):
        ids, _ = topk(scores, k)
        assert (ids == long_ids[:, :k]).all()
        ref = np.array([np.lexsort((np.arange(200), -row))[:k] for row in scores])
        assert (ids == ref).all()  # by score, then by the lower column


def test_evaluate_reads_recommend_all_users_output(tmp_path):
    work = workspace(tmp_path / "work")
    recs = tmp_path / "recs.jsonl"
    proc = run_avrec("recommend", "--all-users", "--k", "10", "-w", str(work))
    assert proc.returncode == 0, proc.stderr
    recs.write_text(proc.stdout)
    assert '"user": ' in proc.stdout.splitlines()[0]
    ev = run_avrec("evaluate", "-w", str(work), "--interactions", str(SAMPLE / "interactions.csv"),
                   "--models", "popular", "--protocol", "random", "--k", "10", "--recs", str(recs),
                   "-o", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())["protocols"]["random"]["models"]
    scored = metrics["recs:recs"]
    assert scored["recs"]["unknown_users"] == 0 and scored["recs"]["scored_users"] > 0
    assert scored["recs"]["test_users_missing"] == 0


def test_evaluate_refuses_to_overwrite_another_artifact(tmp_path):
    work = workspace(tmp_path / "work")
    before = snapshot(work / "embeddings")
    proc = run_avrec("evaluate", "-w", str(work), "--interactions", str(SAMPLE / "interactions.csv"),
                     "--models", "popular", "-o", str(work / "embeddings"))
    assert proc.returncode == 2 and "another -o" in proc.stderr
    assert snapshot(work / "embeddings") == before


@pytest.mark.parametrize("m,ties", [(20000, False), (40000, True), (16384 + 77, True)])
def test_topk_of_wide_rows_keeps_the_total_order(m, ties):
    """Rows past metrics.WIDE columns are filtered by block maxima first: the same lists as
    a full sort by score then column, ties and -inf (seen items) included."""
    from avrec.metrics import topk

    rng = np.random.default_rng(m)
    scores = (rng.integers(0, 4, size=(7, m)) if ties else rng.normal(size=(7, m))).astype(np.float32)
    scores[0, : m - 3] = -np.inf  # a user who has seen all but 3 items
    scores[1] = 1.0  # one big tie
    for k in (1, 10, 50):
        ids, vals = topk(scores, k)
        ref = np.array([np.lexsort((np.arange(m), -row))[:k] for row in scores])
        assert (ids == ref).all() and (vals == np.take_along_axis(scores, ref, axis=1)).all()
