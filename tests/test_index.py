"""avrec index: build, metric transform, recall report, id maps, --add, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avrec.artifacts import save_npy
from avrec.config import IndexConfig
from avrec.errors import ArtifactError
from avrec.index import (
    IdMap, Index, add_items, build_index, choose_metric, exact_recall_at_10, search, transform_items, transform_query,
)

from avrec_runner import run_avrec
from test_index_fixtures import content, make_embeddings, make_model, projection


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("idx")
    model = make_model(tmp)
    return model, build_index(model, tmp / "index", IndexConfig(n_trees=10), seed=3)


def test_build_writes_every_file_and_reports_recall(built):
    model, idx_dir = built
    man = json.loads((idx_dir / "manifest.json").read_text())
    assert man["artifact"] == "index"
    ex = man["extra"]
    # unnormalised factor vectors: inner products through the extra dimension
    assert ex["transform"] == "extra_dim" and ex["metric"] == "inner_product"
    assert ex["recall_queries"] == 30 and 0.9 <= ex["recall_at_10"] <= 1.0
    assert ex["serving"] == ex["serving_batch"] == "exact"  # 60 items < exact_single_below < exact_below
    assert ex["text_spaces"] == {"text": "text:fake-encoder"}
    assert set(ex["content"]) == {"video", "audio", "text"}
    assert ex["content"]["video"]["items"] == 30  # only even items have video
    for f in ("items.ann", "items.jsonl", "item_ids.npy", "titles_utf8.npy", "seen_indptr.npy", "popularity.npy",
              "content_text.ann", "content_video_mask.npy", "content_fused.npy", "content_projection.npy"):
        assert (idx_dir / f).exists(), f
    # model arrays are carried over unchanged
    np.testing.assert_array_equal(np.load(idx_dir / "item_vectors.npy"), np.load(model / "item_vectors.npy"))
    assert not list(idx_dir.glob("*.tmp")) and not list(idx_dir.parent.glob(".index.tmp-*"))


def test_index_reads_memory_mapped_arrays_and_maps_ids(built):
    _, idx_dir = built
    idx = Index(idx_dir)
    assert isinstance(idx.item_vectors.base, np.memmap) and not idx.item_vectors.flags.writeable  # mapped, read-only
    assert idx.items.row("i17") == 17 and idx.items.id(17) == "i17"
    assert idx.items.row("i999") is None and idx.items.row("") is None
    assert idx.users.row("u4") == 4
    assert idx.titles[5] == "Title 5 é"
    assert idx.seen(0).tolist() == sorted(idx.seen(0).tolist()) and all(r % 3 == 0 for r in idx.seen(0))
    assert np.isnan(idx.durations[6]) and idx.durations[3] == 300
    assert set(np.flatnonzero(idx.tag_rows("MUSIC")) % 3) == {0, 2}
    assert not idx.tag_rows("nosuchtag").any()


def test_id_map_handles_unicode_and_long_ids(tmp_path):
    from avrec.index import save_ids

    ids = ["b", "é-clip", "a", "x" * 40, "日本"]
    save_ids(tmp_path, "ids", ids)
    m = IdMap(tmp_path, "ids")
    assert [m.row(i) for i in ids] == [0, 1, 2, 3, 4]
    assert [m.id(r) for r in range(5)] == ids
    assert m.row("x" * 41) is None and m.row("c") is None
    with pytest.raises(ArtifactError, match="duplicate"):
        save_ids(tmp_path, "dup", ["a", "b", "a"])


def test_extra_dimension_transform_turns_inner_product_into_angular_order():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6)).astype(np.float32) * rng.uniform(0.2, 3.0, (500, 1)).astype(np.float32)
    transform, m = choose_metric(x, "auto")
    assert transform == "extra_dim"
    t = transform_items(x, m)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    for _ in range(5):
        q = rng.standard_normal(6).astype(np.float32)
        cos = t @ transform_query(q, transform)
        assert np.argsort(-cos)[:20].tolist() == np.argsort(-(x @ q))[:20].tolist()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert choose_metric(unit, "auto")[0] == "none"
    assert choose_metric(x, "angular")[0] == "none" and choose_metric(unit, "dot")[0] == "extra_dim"


def test_recall_at_default_settings_on_a_larger_catalogue(tmp_path):
    # 3000 unnormalised vectors: default n_trees/search_k must reach the 0.95 target
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3000, 16)) * rng.uniform(0.5, 2.0, (3000, 1))).astype(np.float32)
    from avrec.index import build_annoy

    transform, m = choose_metric(x, "auto")
    cfg = IndexConfig()
    build_annoy(transform_items(x, m), tmp_path / "x.ann", n_trees=cfg.n_trees, seed=0)
    q = rng.standard_normal((100, 16)).astype(np.float32)
    assert exact_recall_at_10(x, q, tmp_path / "x.ann", transform=transform, search_k=cfg.search_k) >= 0.95
    # a starved search is measurably worse: the check can fail
    assert exact_recall_at_10(x, q, tmp_path / "x.ann", transform=transform, search_k=10) < 0.95


def test_annoy_search_agrees_with_exact_and_honours_exclusions(built):
    _, idx_dir = built
    idx = Index(idx_dir)
    q = np.asarray(idx.user_vectors[2])
    seen = idx.seen(2)
    ex_rows, ex_scores = search(idx.item_vectors, q, 10, exclude=seen)
    an_rows, an_scores = search(idx.item_vectors, q, 10, exclude=seen, ann=idx.annoy(), transform=idx.transform,
                                search_k=idx.search_k)
    assert an_rows.tolist() == ex_rows.tolist()
    np.testing.assert_allclose(an_scores, ex_scores, rtol=1e-5)
    assert not set(an_rows.tolist()) & set(seen.tolist())
    allowed = np.zeros(idx.n_items, bool)
    allowed[::4] = True
    rows, _ = search(idx.item_vectors, q, 5, allowed=allowed, ann=idx.annoy(), transform=idx.transform, search_k=100)
    assert len(rows) == 5 and all(r % 4 == 0 for r in rows)


def test_serving_paths_follow_the_thresholds(tmp_path):
    model = make_model(tmp_path)
    mixed = Index(build_index(model, tmp_path / "a", IndexConfig(n_trees=5, exact_single_below=10)))
    assert (mixed.exact, mixed.exact_batch) == (False, True)
    forced = Index(build_index(model, tmp_path / "b", IndexConfig(n_trees=5, exact_below=0)))
    assert (forced.exact, forced.exact_batch) == (False, False)
    # past exact_below, batches still go exact when annoy must inspect over a twentieth of
    # the items: one blocked product beats that many single annoy queries
    deep = Index(build_index(model, tmp_path / "d", IndexConfig(n_trees=5, exact_below=1, exact_single_below=1,
                                                                 search_k=10**6)))
    assert (deep.exact, deep.exact_batch) == (False, True)
    with pytest.raises(Exception, match="exact_single_below"):
        build_index(model, tmp_path / "c", IndexConfig(exact_single_below=-1))


def test_same_seed_gives_the_same_index(tmp_path):
    model = make_model(tmp_path)
    a = build_index(model, tmp_path / "a", IndexConfig(n_trees=5, recall_sample=5), seed=11)
    b = build_index(model, tmp_path / "b", IndexConfig(n_trees=5, recall_sample=5), seed=11)
    assert (a / "items.ann").read_bytes() == (b / "items.ann").read_bytes()


def test_model_without_embeddings_builds_without_content(tmp_path):
    model = make_model(tmp_path, with_embeddings=False)
    logs: list[str] = []
    idx = Index(build_index(model, tmp_path / "index", IndexConfig(n_trees=5), log=logs.append))
    assert idx.content_modalities == [] and idx.content_fused is None
    assert any("no embeddings artifact" in m for m in logs)


def test_add_new_items_from_content_without_retraining(tmp_path):
    model = make_model(tmp_path)
    idx_dir = build_index(model, tmp_path / "index", IndexConfig(n_trees=5))
    # 6 uploads (ids 60..65) plus 2 already indexed ones that must be skipped
    new_ids = [58, 59, 60, 61, 62, 63, 64, 65]
    emb = make_embeddings(tmp_path / "new-emb", new_ids, seed=5)
    path, n = add_items(idx_dir, emb, IndexConfig(n_trees=5))
    assert (path, n) == (idx_dir, 6)
    idx = Index(idx_dir)
    assert idx.n_items == 66 and idx.items.row("i65") == 65 and idx.items.row("i58") == 58
    fused = np.load(emb / "fused.npy")[2:]
    np.testing.assert_allclose(np.asarray(idx.item_vectors[60:]), fused @ projection(), rtol=1e-5, atol=1e-5)
    assert np.asarray(idx.popularity[60:]).tolist() == [0.0] * 6
    assert idx.titles[61] == "Title 61 é" and np.asarray(idx.content_mask("video")[60:]).tolist() == [True, False] * 3
    man = json.loads((idx_dir / "manifest.json").read_text())
    assert man["extra"]["added"][0]["items"] == 6 and man["counts"]["added_items"] == 6
    assert not list(tmp_path.glob(".index.*"))  # temp dir swapped in, old one removed
    # the new items are served by taste: user 1 likes world 1 (ids = 1 mod 3), which has 20 - 5 seen
    # old items and the new i61, i64: those 17 come first, new ones included
    from avrec.recommend import Options, Recommender

    recs = [int(r["item_id"][1:]) for r in Recommender(idx, Options(k=17)).for_user("u1")]
    assert all(i % 3 == 1 for i in recs) and {61, 64} <= set(recs)
    # adding the same embeddings again adds nothing
    assert add_items(idx_dir, emb, IndexConfig(n_trees=5))[1] == 0


def test_add_with_an_affine_projection_and_a_history_projection(tmp_path):
    model = make_model(tmp_path, with_projection=False)
    d_in = content([0])["fused"].shape[1]
    rng = np.random.default_rng(2)
    affine = rng.standard_normal((d_in + 1, 8)).astype(np.float32)
    hist = rng.standard_normal((d_in, 8)).astype(np.float32)
    save_npy(model / "content_projection.npy", affine)
    save_npy(model / "history_projection.npy", hist)
    idx_dir = build_index(model, tmp_path / "index", IndexConfig(n_trees=5))
    emb = make_embeddings(tmp_path / "new", [70, 71], seed=9)
    add_items(idx_dir, emb, IndexConfig(n_trees=5))
    idx = Index(idx_dir)
    c = np.load(emb / "fused.npy")
    np.testing.assert_allclose(np.asarray(idx.item_vectors[60:]), c @ affine[:-1] + affine[-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(idx.history_vectors[60:]), c @ hist, rtol=1e-5, atol=1e-5)


def test_cli_index_prints_only_the_path_and_reads_a_piped_model(tmp_path):
    model = make_model(tmp_path)
    out = tmp_path / "idx"
    r = run_avrec("index", "-o", str(out), "--n-trees", "5", input=f"{model}\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == [str(out)]
    assert "recall@10" in r.stderr
    assert json.loads((out / "manifest.json").read_text())["extra"]["n_trees"] == 5
    # --add through the CLI, embeddings path on stdin
    emb = make_embeddings(tmp_path / "new", [80, 81])
    r = run_avrec("index", "--add", "-", "-o", str(out), "--n-trees", "5", input=f"{emb}\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out) and Index(out).n_items == 62


@pytest.mark.parametrize("c,n,k", [(5, 20000, 10), (7, 3000, 10), (3, 50, 10), (4, 5000, 3), (3, 4096, 2), (6, 30000, 100), (3, 100000, 50)])
def test_topk_batch_matches_a_full_sort(c, n, k):
    from avrec.index import topk_batch

    rng = np.random.default_rng(n + k)
    s = rng.standard_normal((c, n)).astype(np.float32)
    s[rng.random((c, n)) < 0.3] = -np.inf  # seen / filtered entries
    s[0, : n - 2] = -np.inf  # a row with fewer than k finite scores
    idx, val = topk_batch(s, k)
    assert idx.shape == val.shape == (c, min(k, n))
    for i in range(c):
        ref = np.argsort(-s[i], kind="stable")[:k]
        ref = ref[np.isfinite(s[i][ref])]
        assert idx[i][np.isfinite(val[i])].tolist() == ref.tolist()
        np.testing.assert_array_equal(val[i][: len(ref)], s[i][ref])


def test_search_k_is_raised_until_the_served_recall_reaches_the_target(tmp_path):
    """On the model's own vectors, not on random ones: search_k doubles until annoy's
    recall@10 reaches index.target_recall, and where it cannot, exact search serves (loudly)."""
    model = make_model(tmp_path, n_items=3000, n_users=300)
    logs: list[str] = []
    cfg = IndexConfig(n_trees=2, search_k=20, exact_single_below=0, exact_below=0, recall_sample=100)
    idx = build_index(model, tmp_path / "a", cfg, log=logs.append)
    extra = Index(idx).extra
    assert extra["search_k"] > 20 and extra["search_k_tried"][0][0] == 20
    if extra["serving"] == "annoy":
        assert extra["recall_at_10"] >= 0.95 and extra["served_recall_at_10"] == extra["recall_at_10"]
    else:
        assert any(m.startswith("warning:") for m in logs)

    # an index annoy cannot make good enough (its recall pinned at 0.5): exact search serves
    import avrec.index.build as build

    logs.clear()
    orig = build.exact_recall_at_10
    build.exact_recall_at_10 = lambda *a, **k: 0.5 if k.get("transform") != "none" else orig(*a, **k)
    try:
        extra = Index(build_index(model, tmp_path / "b", cfg, log=logs.append)).extra
    finally:
        build.exact_recall_at_10 = orig
    assert extra["serving"] == extra["serving_batch"] == "exact" and extra["served_recall_at_10"] == 1.0
    assert extra["search_k"] == 1280 and [k for k, _ in extra["search_k_tried"]][:3] == [20, 40, 80]
    assert any(m.startswith("warning:") and "target_recall" in m for m in logs)
