"""The ``index`` artifact: annoy over a model's item vectors, plus everything ``avrec recommend`` reads.

Layout of ``index/`` (every matrix memory-mappable ``.npy``; nothing pickled)::

    manifest.json            artifact "index"; inputs {model, embeddings}; extra: metric, transform,
                             max_norm, n_trees, search_k, seed, exact_below, exact_single_below,
                             serving (single requests: exact | annoy), serving_batch, recall_at_10,
                             recall_queries, content {m: {dim, items, recall_at_10}}, text_spaces,
                             embed_models, model_name, added
    items.ann                annoy (angular) over the item vectors. With transform "extra_dim" item
                             row i is [x_i, sqrt(M^2 - |x_i|^2)] / M (M = max norm) and a query q is
                             [q / |q|, 0], so angular order equals inner-product order.
    items.jsonl              row i = annoy item i: {item_id, title, tags, modalities, duration}
    item_ids.npy             (n,) S: utf-8 item id of row i         } id maps: row -> id, and the
    item_ids_sorted.npy      (n,) S: the same ids sorted            } sorted ids with their rows for
    item_ids_order.npy       (n,) int64: row of each sorted id      } a binary-search id -> row lookup
    user_ids.npy, user_ids_sorted.npy, user_ids_order.npy          the same for users
    titles_utf8.npy          (B,) uint8 } titles as one utf-8 blob: title i is
    titles_offsets.npy       (n+1,) int64 } blob[off[i]:off[i+1]]
    durations.npy            (n,) float32 seconds, NaN when unknown
    has_<modality>.npy       (n,) bool: the item has this modality (from items.jsonl)
    tags_vocab_utf8.npy, tags_vocab_offsets.npy    tag strings (same blob layout)
    tags_indptr.npy (n+1,) int64, tags_indices.npy (nnz,) int32   CSR item -> tag ids
    item_vectors.npy, user_vectors.npy, history_vectors.npy, seen_indptr.npy, seen_indices.npy,
    popularity.npy           copied from the model (see docs/artifacts.md)
    content_projection.npy   (D or D+1, d) copied from the model when present: a new item's vector
                             = [fused content, 1] @ projection (used by ``--add``; D+1: last row bias)
    history_projection.npy   the same for its fold-in (history) vector, when the model has one
    content_<m>.npy          (n, d_m) L2-normalised content vectors of modality m (zero rows where missing)
    content_<m>_mask.npy     (n,) bool
    content_<m>.ann          annoy (angular) over the rows that have modality m
    content_fused.npy        (n, D) fused content vectors (MMR diversity, explanations)

Modules: :mod:`.read` (the numpy + annoy read side that recommend and serve share),
:mod:`.build` (from a model artifact) and :mod:`.add` (new items from content). Only the
read side is imported here; the others load on first use.
"""

from __future__ import annotations

from typing import Any

from .read import KIND, IdMap, Index, StringTable, norm_rows, search, topk_batch, topk_rows, transform_query

_LAZY = {"build_index": "build", "choose_metric": "build", "transform_items": "build", "save_ids": "build",
         "save_strings": "build", "build_annoy": "build", "exact_recall_at_10": "build",
         "SERVED_MODELS": "build", "NOT_SERVED": "build", "add_items": "add"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KIND", "Index", "IdMap", "StringTable", "build_index", "add_items", "search", "topk_rows", "topk_batch",
    "choose_metric", "transform_items", "transform_query", "norm_rows",
]
