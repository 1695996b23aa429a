"""What ``avrec models`` lists: the registry's backends and the models available locally.

No torch or transformers import: availability comes from the filesystem (installed
packages, the Hugging Face cache, local paths) and model types from config.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .registry import REGISTRY, parse_name
from .resolve import availability, cached_path, packaged_path

# config.json model_type -> the registry prefix that can load it
MODEL_TYPES = {
    "clip": "clip", "siglip": "clip", "chinese_clip": "clip", "altclip": "clip",
    "clap": "clap",
    "whisper": "asr",
    "audio-spectrogram-transformer": "audio", "wav2vec2": "audio", "hubert": "audio", "wavlm": "audio",
    "data2vec-audio": "audio", "beats": "audio",
    "bert": "text", "mpnet": "text", "roberta": "text", "xlm-roberta": "text", "distilbert": "text",
    "deberta-v2": "text", "electra": "text", "modernbert": "text", "nomic_bert": "text", "e5": "text",
}


def _pattern(prefix: str, needs_ref: bool) -> str:
    if not needs_ref:
        return prefix
    return "npy:<file>" if prefix == "npy" else f"{prefix}:<id|path>"


def backends() -> list[dict[str, Any]]:
    return [
        {"kind": "backend", "encoder": _pattern(p, b.needs_ref),
         "modalities": list(b.modalities), "summary": b.summary, "examples": list(b.examples)}
        for p, b in REGISTRY.items()
    ]


def _model_type(path: Path) -> str:
    try:
        return str(json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type", ""))
    except (OSError, ValueError):
        return ""


def _row(name: str, configured: list[str]) -> dict[str, Any]:
    prefix, ref = parse_name(name)
    row: dict[str, Any] = {"kind": "model", "encoder": name, "modalities": list(REGISTRY[prefix].modalities),
                           "configured": configured}
    if prefix == "builtin":
        row.update(available="builtin", path="", revision="builtin")
    elif prefix == "npy":
        p = Path(ref).expanduser()
        row.update(available="local" if p.is_file() else "missing", path=str(p), revision="")
    else:
        where = availability(ref)
        row["available"] = where
        path, rev = "", ""
        if where == "local":
            path = str(Path(ref).expanduser().resolve())
        elif where == "package":
            got = packaged_path(ref)
            path, rev = (str(got[0]), got[1]) if got else ("", "")
        elif where == "cache":
            got = cached_path(ref)
            path, rev = (str(got[0]), got[1]) if got else ("", "")
        row.update(path=path, revision=rev)
    return row


def cached_models() -> list[str]:
    """Encoder names for the loadable models found in the Hugging Face cache."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:  # noqa: BLE001 - no cache directory yet, or unreadable
        return []
    names = []
    for repo in info.repos:
        if repo.repo_type != "model" or not repo.revisions:
            continue
        snap = max(repo.revisions, key=lambda r: r.last_modified).snapshot_path
        prefix = MODEL_TYPES.get(_model_type(Path(snap)))
        if prefix:
            names.append(f"{prefix}:{repo.repo_id}")
    return sorted(names)


def models(configured: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per model worth knowing about: configured ones, the registry's examples
    and whatever loadable model sits in the HF cache; ``available`` says where it would
    load from (local | package | cache | builtin) or that it needs the hub / is missing."""
    configured = {k: v for k, v in (configured or {}).items() if v}
    order: list[str] = []
    for name in [*configured.values(), *(e for b in REGISTRY.values() for e in b.examples if b.prefix != "npy"),
                 *cached_models()]:
        if name not in order:
            order.append(name)
    rows = []
    for name in order:
        try:
            rows.append(_row(name, [k for k, v in configured.items() if v == name]))
        except Exception as e:  # noqa: BLE001 - a bad configured name is shown, not fatal
            rows.append({"kind": "model", "encoder": name, "modalities": [], "configured":
                         [k for k, v in configured.items() if v == name], "available": "invalid",
                         "path": "", "revision": "", "error": str(e)})
    return rows
