"""Artifact directories: manifest, transactions, files, input resolution.

Every stage writes one directory holding ``manifest.json``::

    {artifact, schema_version, avrec_version, build_id, created, config, inputs, models,
     counts, libs, extra, files}

plus its data (``.npy`` float32 matrices, ``items.jsonl``; never pickle). Kinds:
``features`` (extract), ``embeddings`` (embed), ``model`` (train), ``index`` (index),
``evaluation`` (evaluate). Modules: :mod:`.manifest` (what an artifact is and holds,
verified on read), :mod:`.transaction` (temp sibling, lock, atomic swap), :mod:`.files`
(atomic files, JSON lines, npy), :mod:`.inputs` (argument, ``-``, pipe or workspace).
Only the standard library is imported here: the recommend path reads manifests too.
"""

from __future__ import annotations

from .files import (
    atomic_file, fingerprint, load_npy, make_public, read_jsonl, rebuild_hint, save_npy, sha256_file, write_json,
    write_jsonl,
)
from .inputs import UPSTREAM, default_output, read_stdin_path, resolve_input, stdin_kind, workdir
from .manifest import (
    CHECKSUM_MAX_BYTES, DEFAULT_DIRS, MADE_BY, MANIFEST, SCHEMA_VERSION, Manifest, lib_versions, list_files,
    read_manifest, verify_files, write_manifest,
)
from .transaction import (
    LockedError, Transaction, atomic_dir, check_output, clean_stale, hold_lock, staging_path, swap_into_place,
    transaction,
)

__all__ = [
    "atomic_file", "fingerprint", "load_npy", "make_public", "read_jsonl", "rebuild_hint", "save_npy", "sha256_file",
    "write_json", "write_jsonl", "UPSTREAM", "default_output", "read_stdin_path", "resolve_input", "stdin_kind",
    "workdir", "CHECKSUM_MAX_BYTES", "DEFAULT_DIRS", "MADE_BY", "MANIFEST", "SCHEMA_VERSION", "Manifest",
    "lib_versions", "list_files", "read_manifest", "verify_files", "write_manifest", "LockedError", "Transaction",
    "atomic_dir", "check_output", "clean_stale", "hold_lock", "staging_path", "swap_into_place", "transaction",
]
