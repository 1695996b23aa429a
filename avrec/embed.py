"""The embed stage: a features artifact -> an embeddings artifact (docs/artifacts.md).

For each modality (video, audio, text) the encoder named in ``cfg.embed`` turns every ok
item into one L2-normalised vector (zero row + mask False where the item lacks it); the
fused item vector is the concatenation of the per-modality vectors, each scaled by
sqrt(weight), L2-normalised again, optionally reduced by a PCA fitted here and stored.

Media is never decoded again: frames and PCM come from the features store. Reading and
preprocessing run in a torch DataLoader (``embed.workers`` processes) while the model runs
in this one; per-frame / per-window vectors are batched across items (``embed.batch_size``)
and pooled per item (``embed.pooling``).

The ``understand`` section (avrec.understand) runs here too: key-frame captions before the
text encoder (they join each item's text after its transcript), then moods and zero-shot
tags from the texts, the builtin features and the vectors just made; each item's record is
stored in items.jsonl under ``"understand"``, and with ``understand.mood_weight > 0`` the
mood is a block of the fused vector.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .artifacts import Manifest, save_npy, write_jsonl, write_manifest
from .config import Config
from .encoders.base import Encoder, Unit
from .encoders.fusion import Recipe, apply_pca, blocks_for, fit_pca
from .encoders.pooling import POOLINGS, pool
from .encoders.registry import REGISTRY, canonical, check_modality, load_encoder, parse_name
from .errors import ConfigError, DeviceError, InputError, ModelError
from .features.store import FeatureStore

MODALITIES = ("video", "audio", "text")
TORCH_BACKENDS = ("text", "clip", "clap", "audio", "asr", "caption", "sentiment")
MAX_ERRORS_KEPT = 100

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------
# plan


KINDS = ("video", "audio", "text", "other")
_KIND_ALIASES = {"visual": "video", "image": "video", "frames": "video", "sound": "audio"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# names that are files or blocks of their own in the artifacts
_RESERVED = {"fused", "mood", "history", "item", "items", "user", "users", "content", "centre", "builtin", "speech"}


def plan_encoders(cfg: Config) -> dict[str, str]:
    """{modality name: canonical encoder name} for the enabled modalities: the shorthand slots
    ``embed.video`` / ``audio`` / ``text`` and any ``embed.modalities`` entries (an entry
    with a slot's name replaces the slot). Resolves every modality's kind into
    ``cfg.embed.kinds`` (see :func:`modality_kinds`), so the Ray actors and the manifest see it."""
    plan: dict[str, str] = {}
    for m in MODALITIES:
        name = (getattr(cfg.embed, m) or "").strip()
        if name:
            plan[m] = name
    for m, name in (cfg.embed.modalities or {}).items():
        if not _NAME.match(str(m)) or m in _RESERVED:
            raise ConfigError(f"embed.modalities.{m}: a modality name is 1-32 lower-case letters, digits or _, "
                              f"starting with a letter, and not one of {', '.join(sorted(_RESERVED))}")
        name = (str(name) if name is not None else "").strip()
        if name:
            plan[m] = name
        else:
            plan.pop(m, None)  # "" switches a slot off, as embed.<slot>: "" does
    plan = {m: canonical(name) for m, name in plan.items()}
    cfg.embed.kinds = modality_kinds(cfg, plan)
    return plan


def modality_kinds(cfg: Config, plan: dict[str, str]) -> dict[str, str]:
    """{name: video | audio | text | other}: what each modality is made from. The slots are
    their own kind; clip: is video, clap: and audio: audio, text: text; builtin needs
    ``embed.kinds.<name>: video`` or ``audio`` (unless named video or audio); npy: vectors
    are ``other`` unless declared (a declared kind lets explanations, moods and tags treat
    them as that medium)."""
    declared = {}
    for m, k in (cfg.embed.kinds or {}).items():
        kind = _KIND_ALIASES.get(str(k).strip().lower(), str(k).strip().lower())
        if kind not in KINDS:
            raise ConfigError(f"embed.kinds.{m}={k}: use visual, audio, text or other")
        declared[m] = kind
    out = {}
    for m, name in plan.items():
        prefix = parse_name(name)[0]
        can = REGISTRY[prefix].modalities
        if m in MODALITIES:  # a slot's name is its kind: embed.video holds video, whatever the encoder
            if m in declared and declared[m] != m:
                raise ConfigError(f"embed.kinds.{m}={declared[m]}: the {m} modality holds {m}; give the vectors "
                                  f"another name in embed.modalities to declare another kind")
            kind = m
        elif prefix == "npy":
            kind = declared.get(m, m if m in MODALITIES else "other")
        elif prefix == "builtin":
            kind = declared.get(m, m if m in ("video", "audio") else "")
            if kind not in ("video", "audio"):
                raise ConfigError(f"embed.modalities.{m}=builtin: declare what it reads, embed.kinds.{m}: visual or audio")
        else:
            media = [k for k in ("video", "audio") if k in can]
            kind = media[0] if media else "text"
            if m in declared and declared[m] != kind:
                raise ConfigError(f"embed.kinds.{m}={declared[m]} but {name} embeds {kind}; drop the kind or "
                                  "choose an encoder for that medium")
        if kind != "other":
            where = f"embed.{m}" if m in MODALITIES and not (cfg.embed.modalities or {}).get(m) else f"embed.modalities.{m}"
            check_modality(name, kind, where)
        out[m] = kind
    for m in declared:
        if m not in plan:
            raise ConfigError(f"embed.kinds.{m}: no modality of that name (have {', '.join(plan) or 'none'})")
    return out


def fusion_weights(cfg: Config, plan: dict[str, str]) -> dict[str, float]:
    weights = dict(cfg.embed.weights or {})
    for k, w in weights.items():
        if k not in plan and k not in MODALITIES:
            raise ConfigError(f"embed.weights.{k}: unknown modality; use one of {', '.join(plan)}")
        if w < 0:
            raise ConfigError(f"embed.weights.{k} must be >= 0; got {w}")
    return {m: float(weights.get(m, 1.0)) for m in plan}


def item_text(item: dict[str, Any], transcript: str = "") -> str:
    """Title, description, tags, subtitle/sidecar text and speech transcript, as one string."""
    tags = item.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    parts = [item.get("title") or "", item.get("description") or "", ", ".join(str(t) for t in tags if t),
             item.get("text") or "", transcript or ""]
    return ". ".join(p.strip() for p in parts if p and str(p).strip())


def item_texts(items: list[dict[str, Any]], transcripts: list[str], captions: list[list[dict[str, Any]]] | None = None
               ) -> list[str]:
    """Each item's text (:func:`item_text`); key-frame captions join it after the transcript."""
    from .understand.captions import caption_text

    out = []
    for i, it in enumerate(items):
        spoken = transcripts[i] if i < len(transcripts) else ""
        seen = caption_text(captions[i]) if captions and i < len(captions) else ""
        out.append(item_text(it, ". ".join(p for p in (spoken, seen) if p)))
    return out


# ---------------------------------------------------------------------------------------
# media through a DataLoader


class _MediaDataset:
    """Item i -> (i, units, error): frames or PCM read from the store and prepared.

    Map-style and picklable: each worker opens the store itself (memory-mapped shards).
    """

    def __init__(self, store_path: Path, items: list[dict[str, Any]], source: str, prepare: Callable):
        self.store_path = Path(store_path)
        self.items = items
        self.source = source  # "frames" | "audio" | "frames+times" (prepare(frames, their times): captions)
        self.prepare = prepare
        self._store: FeatureStore | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        try:
            if self._store is None:
                self._store = FeatureStore.open(self.store_path, verify="none")  # the stage verified it
            item = self.items[i]
            data = self._store.audio(item) if self.source == "audio" else self._store.frames(item)
            if self.source == "frames+times":
                from .understand.captions import frame_times

                units = self.prepare(data, frame_times(self._store, item)) if len(data) else []
            else:
                units = self.prepare(data) if len(data) else []
            return i, (_pack(units) if _in_worker() else units), ""
        except Exception as e:  # noqa: BLE001 - one bad item is a recorded error, not a crash
            return i, [], f"{type(e).__name__}: {e}".splitlines()[0]


def _in_worker() -> bool:
    from torch.utils.data import get_worker_info

    return get_worker_info() is not None


class _Packed:
    """An item's units stacked key by key into torch tensors. A worker's numpy arrays are
    pickled through a pipe; tensors go through shared memory, one segment per key, which is
    what lets several workers keep a GPU fed (16 thumbnails are 2.4 MB per item)."""

    def __init__(self, tensors: dict):
        self.tensors = tensors

    def units(self) -> list[Unit]:
        arrays = {k: t.numpy() for k, t in self.tensors.items()}
        n = len(next(iter(arrays.values())))
        return [{k: a[j] for k, a in arrays.items()} for j in range(n)]


def _pack(units: list[Unit]) -> list[Unit] | _Packed:
    """Units of one shape -> _Packed; ragged units (rare) stay a list."""
    if not units:
        return units
    import torch

    keys = units[0].keys()
    if any(u.keys() != keys for u in units) or any(
            len({np.shape(u[k]) for u in units}) != 1 for k in keys):
        return units
    return _Packed({k: torch.from_numpy(np.ascontiguousarray(np.stack([u[k] for u in units]))) for k in keys})


def _identity(x):
    return x


def _one_thread_each(_worker_id: int) -> None:
    """DataLoader workers run numpy/BLAS preprocessing side by side: one thread each, or N
    workers x all cores' BLAS threads fight over the CPU the model's feeding needs."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # noqa: BLE001 - threadpoolctl is optional; torch already uses 1 thread here
        pass


def _run_units(
    dataset: _MediaDataset, run: Callable[[list], list], *, batch_size: int, workers: int,
    label: str, progress: Progress | None,
) -> tuple[dict[int, list], dict[int, str]]:
    """Feed every item's units through ``run`` in batches of ``batch_size`` units.

    Returns ({item index: outputs in unit order}, {item index: error}). A batch that
    fails is retried unit by unit, so only the items at fault lose this modality.
    """
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=max(0, int(workers)),
                        collate_fn=_identity, persistent_workers=False,
                        worker_init_fn=_one_thread_each if workers > 0 else None)
    outputs: dict[int, list] = {}
    errors: dict[int, str] = {}
    pending: list[tuple[int, int, dict]] = []
    n = len(dataset)
    done = 0
    last = time.monotonic()

    def flush(k: int) -> None:
        batch, pending[:k] = pending[:k], []
        try:
            res = run([u for _, _, u in batch])
        except Exception:  # noqa: BLE001 - isolate the item at fault
            res = []
            for owner, _, u in batch:
                try:
                    res.extend(run([u]))
                except Exception as e:  # noqa: BLE001
                    errors.setdefault(owner, f"{type(e).__name__}: {e}".splitlines()[0])
                    res.append(None)
        for (owner, j, _), r in zip(batch, res):
            outputs[owner][j] = r

    for i, units, err in loader:
        done += 1
        if isinstance(units, _Packed):
            units = units.units()
        if err:
            errors[i] = err
        elif units:
            outputs[i] = [None] * len(units)
            pending.extend((i, j, u) for j, u in enumerate(units))
            while len(pending) >= batch_size:
                flush(batch_size)
        if progress and (time.monotonic() - last > 2.0 or done == n):
            progress(f"embed {label}: {done}/{n} items read")
            last = time.monotonic()
    while pending:
        flush(min(batch_size, len(pending)))
    for i in errors:
        outputs.pop(i, None)
    return outputs, errors


def embed_media(
    store: FeatureStore, items: list[dict[str, Any]], modality: str, enc: Encoder, *,
    batch_size: int, workers: int, pooling: str, progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Video frames / audio windows of each item -> ((n, d) pooled L2 rows, (n,) mask, errors)."""
    if modality == "video":
        ds = _MediaDataset(store.path, items, "frames", enc.frame_preparer())
    else:
        ds = _MediaDataset(store.path, items, "audio", enc.audio_preparer(store.audio_sr))
    outputs, errors = _run_units(
        ds, lambda units: list(enc.embed_units(units, modality)), batch_size=batch_size, workers=workers,
        label=f"{modality} [{enc.name}]", progress=progress,
    )
    x = np.zeros((len(items), enc.dim), dtype=np.float32)
    mask = np.zeros(len(items), dtype=bool)
    for i, vecs in outputs.items():
        x[i] = pool(np.stack(vecs), pooling)
        mask[i] = bool(np.any(x[i]))
    return x, mask, errors


def transcribe(
    store: FeatureStore, items: list[dict[str, Any]], enc: Any, *, batch_size: int, workers: int,
    progress: Progress | None = None,
) -> tuple[list[str], dict[int, str]]:
    """Speech of each item -> (transcripts, errors); items without audio get ""."""
    ds = _MediaDataset(store.path, items, "audio", enc.audio_preparer(store.audio_sr))
    outputs, errors = _run_units(ds, enc.transcribe_units, batch_size=batch_size, workers=workers,
                                 label=f"speech [{enc.name}]", progress=progress)
    texts = [""] * len(items)
    for i, pieces in outputs.items():
        texts[i] = " ".join(p for p in pieces if p).strip()
    return texts, errors


# ---------------------------------------------------------------------------------------
# the other encoders


def embed_builtin(store: FeatureStore, items: list[dict[str, Any]], modality: str,
                  stats: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised builtin features: ((n, d) L2 rows, (n,) mask, (2, d) statistics), with
    the given (catalogue) statistics, or ones fitted on these items."""
    from .encoders.builtin import standardise

    raw, present = store.feature_matrix(items, modality)
    if stats is None and not present.any():
        return np.zeros((len(items), 0), dtype=np.float32), present, np.zeros((2, 0))
    return standardise(raw, present, stats)


def embed_texts(enc: Encoder, texts: list[str], *, batch_size: int, progress: Progress | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(n,) texts -> ((n, d) L2 rows, (n,) mask). Batches hold texts of similar length (longest
    first), so little of each batch is padding; rows come back in the input order."""
    x = np.zeros((len(texts), enc.dim), dtype=np.float32)
    order = np.argsort([-len(t or "") for t in texts], kind="stable")
    last = time.monotonic()
    for s in range(0, len(texts), batch_size):
        idx = order[s : s + batch_size]
        x[idx] = enc.encode_text([texts[i] for i in idx])
        if progress and (time.monotonic() - last > 2.0 or s + batch_size >= len(texts)):
            progress(f"embed text [{enc.name}]: {min(s + batch_size, len(texts))}/{len(texts)} items")
            last = time.monotonic()
    return x, np.linalg.norm(x, axis=1) > 0


# ---------------------------------------------------------------------------------------
# fusion and PCA (numpy, in encoders.fusion: the index applies the same recipe to new items)


def fuse(vectors: dict[str, np.ndarray], masks: dict[str, np.ndarray], weights: dict[str, float]
         ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Concat of sqrt(w_m) * v_m over modalities with w_m > 0 (zero blocks where missing),
    then L2. Returns ((n, D) float32, blocks [{modality, start, end, weight}])."""
    blocks = blocks_for({m: x.shape[1] for m, x in vectors.items()}, weights)
    n = len(next(iter(vectors.values())))
    return Recipe(blocks=blocks).fuse(vectors, masks, n), blocks


# ---------------------------------------------------------------------------------------
# the model-driven part: the same code on the local machine and in each Ray actor


def embed_items(store: FeatureStore, items: list[dict[str, Any]], modelled: dict[str, str], speech: str,
                encoders: dict[str, Encoder], ec: Any, *, progress: Progress | None = None, caption: str = "",
                caption_frames: int = 3) -> dict[str, Any]:
    """Transcripts, key-frame captions (``caption``: a caption: encoder's name) and the
    model-made modality vectors of ``items``.

    Returns {transcripts, captions [[{t, text}]], errors {item_id: one line}, speech_info,
    caption_info, vectors {m: (n, d)}, masks {m: (n,)}, models {m: describe()}, seconds {m: s}}.
    """
    say = progress or (lambda _msg: None)
    n = len(items)
    errors: dict[str, str] = {}
    transcripts = [""] * n
    speech_info: dict[str, Any] = {}
    if speech:
        t0 = time.monotonic()
        asr = encoders[speech]
        transcripts, errs = transcribe(store, items, asr, batch_size=ec.batch_size, workers=ec.workers, progress=say)
        errors.update({items[i]["item_id"]: f"speech: {e}" for i, e in errs.items()})
        speech_info = {"name": speech, "revision": asr.revision, "transcribed": int(sum(bool(t) for t in transcripts)),
                       "seconds": round(time.monotonic() - t0, 3)}
    captions: list[list[dict[str, Any]]] = [[] for _ in items]
    caption_info: dict[str, Any] = {}
    if caption:
        from .understand.captions import caption_items

        t0 = time.monotonic()
        cap = encoders[caption]
        captions, errs = caption_items(store, items, cap, frames=caption_frames, batch_size=ec.batch_size,
                                       workers=ec.workers, progress=say)
        errors.update({items[i]["item_id"]: f"caption: {e}" for i, e in errs.items()})
        caption_info = {"name": caption, "revision": cap.revision, "family": cap.meta.get("family", ""),
                        "frames": int(caption_frames), "items": int(sum(bool(c) for c in captions)),
                        "captions": int(sum(len(c) for c in captions)), "seconds": round(time.monotonic() - t0, 3)}
    out: dict[str, Any] = {"transcripts": transcripts, "captions": captions, "errors": errors,
                           "speech_info": speech_info, "caption_info": caption_info,
                           "vectors": {}, "masks": {}, "models": {}, "seconds": {}}
    kinds = dict(getattr(ec, "kinds", None) or {})
    for m, name in modelled.items():
        t0 = time.monotonic()
        enc = encoders[name]
        kind = kinds.get(m, m)
        if kind == "text":
            x, mask = embed_texts(enc, item_texts(items, transcripts, captions), batch_size=ec.batch_size,
                                  progress=say)
        else:
            x, mask, errs = embed_media(store, items, kind, enc, batch_size=ec.batch_size, workers=ec.workers,
                                        pooling=ec.pooling, progress=say)
            for i, e in errs.items():
                errors.setdefault(items[i]["item_id"], f"{m}: {e}")
        out["vectors"][m], out["masks"][m], out["models"][m] = x, mask, enc.describe()
        out["seconds"][m] = round(time.monotonic() - t0, 3)
    return out


class _EmbedActor:
    """One Ray actor: loads the models once, then embeds the slices of items it is given."""

    def __init__(self, names: list[str], device: str, precision: str, batch_size: int, max_tokens: int):
        self.encoders = {name: load_encoder(name, device=device, precision=precision, batch_size=batch_size,
                                            max_tokens=max_tokens) for name in names}

    def run(self, features_dir: str, items: list[dict[str, Any]], modelled: dict[str, str], speech: str,
            ec: Any, caption: str = "", caption_frames: int = 3) -> dict[str, Any]:
        return embed_items(FeatureStore.open(features_dir), items, modelled, speech, self.encoders, ec,
                           caption=caption, caption_frames=caption_frames)


def _embed_on_ray(features_dir: Path, items: list[dict[str, Any]], modelled: dict[str, str], speech: str,
                  cfg: Config, *, device: str, precision: str, progress: Progress | None = None,
                  caption: str = "") -> dict[str, Any]:
    """``embed_items`` over ``distributed.actors`` Ray actors, each with its own copy of the models
    (one GPU each on CUDA), on contiguous slices of the items; the slices are joined in order.

    The actors read the features artifact by path: on a cluster it must be on a shared filesystem.
    """
    from .engines.ray_engine import connect

    ray = connect(cfg.distributed.address)
    say = progress or (lambda _msg: None)
    k = max(1, min(int(cfg.distributed.actors), len(items)))
    gpu = device.startswith("cuda")
    names = list(dict.fromkeys([*modelled.values(), *([speech] if speech else []), *([caption] if caption else [])]))
    actor_cls = ray.remote(num_gpus=1 if gpu else 0, num_cpus=1)(_EmbedActor)
    # Ray gives each GPU actor its own device, seen inside it as cuda (CUDA_VISIBLE_DEVICES)
    actors = [actor_cls.remote(names, "cuda" if gpu else device, precision, cfg.embed.batch_size,
                               cfg.embed.max_text_tokens) for _ in range(k)]
    bounds = np.linspace(0, len(items), k + 1).astype(int)
    say(f"embed: {len(items)} items over {k} Ray actor(s)")
    t0 = time.monotonic()
    try:
        parts = ray.get([a.run.remote(str(features_dir), items[bounds[j]: bounds[j + 1]], modelled, speech, cfg.embed,
                                      caption, cfg.understand.caption_frames)
                         for j, a in enumerate(actors)])
    except Exception as e:  # noqa: BLE001 - an actor that cannot load its model, or dies
        cause = getattr(e, "cause", None) or e
        first = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        raise ModelError(f"embed on Ray failed: {first}") from None
    finally:
        for a in actors:
            ray.kill(a)
    wall = round(time.monotonic() - t0, 3)
    out: dict[str, Any] = {
        "transcripts": [t for p in parts for t in p["transcripts"]],
        "captions": [c for p in parts for c in p["captions"]],
        "errors": {k_: v for p in parts for k_, v in p["errors"].items()},
        "speech_info": {}, "caption_info": {}, "vectors": {}, "masks": {}, "models": {}, "actors": k,
        "seconds": {m: wall for m in modelled},  # the modalities run inside one distributed phase
    }
    if speech:
        first = parts[0]["speech_info"]
        out["speech_info"] = {"name": speech, "revision": first["revision"], "seconds": wall,
                              "transcribed": int(sum(p["speech_info"]["transcribed"] for p in parts))}
    if caption:
        first = parts[0]["caption_info"]
        out["caption_info"] = {**first, "seconds": wall, **{key: int(sum(p["caption_info"][key] for p in parts))
                                                            for key in ("items", "captions")}}
    for m in modelled:
        out["vectors"][m] = np.concatenate([p["vectors"][m] for p in parts])
        out["masks"][m] = np.concatenate([p["masks"][m] for p in parts])
        out["models"][m] = parts[0]["models"][m]
    return out


# ---------------------------------------------------------------------------------------
# the stage


def _ray_device(cfg: Config) -> str:
    """The device the Ray actors run on. The cluster's GPUs decide, not this process's: a
    CPU-only head node may drive GPU workers. Each GPU actor is given one GPU of its own, so
    ``cuda:N`` means plain ``cuda`` there."""
    spec = cfg.runtime.device
    if spec == "cpu":
        return "cpu"
    if spec == "mps":
        raise DeviceError("runtime.device=mps is not supported with distributed.engine=ray; use cpu, cuda or auto")
    from .engines.ray_engine import connect

    gpus = float(connect(cfg.distributed.address).cluster_resources().get("GPU", 0))
    if spec == "auto":
        return "cuda" if gpus >= 1 else "cpu"
    if spec.startswith("cuda"):
        if gpus < 1:
            raise DeviceError(f"runtime.device is {spec} but the Ray cluster has no GPUs; "
                              "use --device cpu or auto, or add GPU nodes")
        return "cuda"
    return spec


def _device_and_precision(cfg: Config, needs_torch: bool, progress: Progress | None,
                          *, on_ray: bool = False) -> tuple[str, str]:
    precision = cfg.embed.precision
    if not needs_torch:
        return "cpu", "fp32"
    from .config import resolve_device

    device = _ray_device(cfg) if on_ray else resolve_device(cfg.runtime.device)
    if precision != "fp32" and not device.startswith("cuda"):
        if cfg.runtime.device != "auto":
            raise ConfigError(
                f"embed.precision={precision} needs a CUDA GPU but runtime.device is {device}; "
                "use --set embed.precision=fp32"
            )
        if progress:
            progress(f"warning: embed.precision={precision} needs CUDA; using fp32 on {device}")
        precision = "fp32"
    import torch

    if cfg.runtime.threads > 0:
        torch.set_num_threads(int(cfg.runtime.threads))
    torch.manual_seed(cfg.runtime.seed)
    return device, precision


# the embed keys --like takes from the reference artifact: what decides the vectors, not how
# fast they are made (batch_size, workers, precision stay this run's)
LIKE_KEYS = ("video", "audio", "text", "modalities", "kinds", "speech", "weights", "pooling", "max_text_tokens",
             "pca_dim", "centre")
# and the whole understand section: captions change the text, the mood block is in the recipe


def _like_mood_stats(like: str | Path) -> dict[str, Any] | None:
    """The reference catalogue's mood statistics (the z-scores of new items use the catalogue's)."""
    from .artifacts import read_manifest

    ref = read_manifest(Path(like), "embeddings", verify="none")
    return (((ref.get("extra") or {}).get("understand") or {}).get("mood") or {}).get("stats") or None


def _apply_like(cfg: Config, like: Path, say: Progress) -> Recipe:
    """Take ``like``'s encoders and fusion settings into ``cfg.embed``; return its recipe."""
    from .artifacts import read_manifest

    ref = read_manifest(like, "embeddings", verify="full")
    recipe = Recipe.load(like)
    if recipe is None:
        raise InputError(f"{like} was embedded before avrec stored its normalisation statistics; embed the "
                         "catalogue again, then embed the new items with --like")
    ref_embed = (ref.get("config") or {}).get("embed") or {}
    for key in LIKE_KEYS:
        if key in ref_embed:
            setattr(cfg.embed, key, ref_embed[key])
    for key, value in ((ref.get("config") or {}).get("understand") or {}).items():
        if hasattr(cfg.understand, key):
            setattr(cfg.understand, key, value)
    n_ref = (ref.get("counts") or {}).get("items")
    say(f"embed: like {like}: its encoders, weights{', PCA' if recipe.pca is not None else ''} and the builtin "
        f"statistics of its {n_ref} items")
    return recipe


def plan_understand(cfg: Config) -> dict[str, str]:
    """{"caption": canonical name or "", "sentiment": ...} from the understand section, checked."""
    out = {}
    for key, prefix, example in (("caption", "caption", "Salesforce/blip-image-captioning-base"),
                                 ("sentiment", "sentiment", "j-hartmann/emotion-english-distilroberta-base")):
        name = (getattr(cfg.understand, key) or "").strip()
        if name and parse_name(name)[0] != prefix:
            raise ConfigError(f"understand.{key}={name} must be a {prefix}:<id|path> model (e.g. {prefix}:{example})")
        out[key] = canonical(name) if name else ""
    if cfg.understand.mood_weight > 0 and not cfg.understand.mood:
        raise ConfigError(f"understand.mood_weight={cfg.understand.mood_weight} makes the mood a block of the fused "
                          "vector, but understand.mood is off; set understand.mood=true or mood_weight=0")
    from .understand.tags import vocabulary

    vocabulary(cfg.understand.tags)  # a missing or empty tag file fails now, not after the models ran
    return out


def embed(features_dir: str | Path, out_dir: str | Path, cfg: Config, *, like: str | Path | None = None,
          progress: Progress | None = None) -> Path:
    """Embed every ok item of ``features_dir`` into ``out_dir``; returns ``out_dir``.

    like: an embeddings artifact whose encoders, weights, builtin statistics and PCA are
    used as they are (nothing is fitted), so new items land in that catalogue's space; its
    understand section and mood statistics are taken too.
    """
    from .artifacts import transaction

    say = progress or (lambda _msg: None)
    ec = cfg.embed
    recipe = _apply_like(cfg, Path(like), say) if like is not None else None
    if ec.pooling not in POOLINGS:
        raise ConfigError(f"embed.pooling must be one of {', '.join(POOLINGS)}; got {ec.pooling!r}")
    plan = plan_encoders(cfg)
    if not plan:
        raise ConfigError("embed.video, embed.audio, embed.text and embed.modalities are all empty; enable at least "
                          "one encoder")
    weights = fusion_weights(cfg, plan)
    speech = canonical(ec.speech) if (ec.speech or "").strip() else ""
    if speech and parse_name(speech)[0] != "asr":
        raise ConfigError(f"embed.speech={ec.speech} must be an asr:<id|path> model (e.g. asr:openai/whisper-tiny)")
    understanding = plan_understand(cfg)

    with transaction(out_dir, kind="embeddings", inputs=[features_dir, *([like] if like else [])]) as txn:
        store = FeatureStore.open(features_dir, verify="full")
        items = store.ok_items
        if not items:
            raise InputError(f"{features_dir} has no items with status ok; nothing to embed (check extract's errors)")
        return _embed(store, items, txn.path, cfg, plan=plan, weights=weights, speech=speech, recipe=recipe,
                      like=like, say=say, out_dir=Path(out_dir), understanding=understanding)


def _embed(store: FeatureStore, items: list[dict[str, Any]], tmp: Path, cfg: Config, *, plan: dict[str, str],
           weights: dict[str, float], speech: str, recipe: Recipe | None, like: str | Path | None, say: Progress,
           out_dir: Path, understanding: dict[str, str] | None = None) -> Path:
    ec = cfg.embed
    uc = cfg.understand
    n = len(items)
    skipped = len(store.items) - n
    caption, sentiment_name = (understanding or {}).get("caption", ""), (understanding or {}).get("sentiment", "")
    extra_models = [e for e in (caption, sentiment_name) if e]
    say(f"embed: {n} items ({skipped} not ok, skipped); encoders: "
        + ", ".join(f"{m}={e}" for m, e in plan.items()) + (f", speech={speech}" if speech else "")
        + "".join(f", {k}={e}" for k, e in (understanding or {}).items() if e))

    needs_torch = any(parse_name(e)[0] in TORCH_BACKENDS for e in [*plan.values(), speech, *extra_models] if e)
    # modalities whose vectors come from a model, per item (builtin and npy are table lookups)
    modelled = {m: name for m, name in plan.items() if parse_name(name)[0] not in ("builtin", "npy")}
    on_ray = cfg.distributed.engine == "ray" and bool(modelled or speech or caption)
    device, precision = _device_and_precision(cfg, needs_torch, say, on_ray=on_ray)
    load = lambda name: load_encoder(name, device=device, precision=precision,  # noqa: E731
                                     batch_size=ec.batch_size, max_tokens=ec.max_text_tokens)
    # load every model before any work, so a missing one fails in seconds, not after an hour
    # (on Ray the actors load theirs as they start; the sentiment classifier runs here)
    encoders = {name: load(name) for name in dict.fromkeys([*plan.values(), speech, caption])
                if name and parse_name(name)[0] != "builtin" and not (on_ray and parse_name(name)[0] != "npy")}
    local = (lambda name: load_encoder(name, device="cpu", precision="fp32", batch_size=ec.batch_size,  # noqa: E731
                                       max_tokens=ec.max_text_tokens)) if on_ray else load
    sentiment = local(sentiment_name) if sentiment_name and (uc.mood or (recipe and "mood" in recipe.dims)) else None

    if on_ray:
        part = _embed_on_ray(store.path, items, modelled, speech, cfg, device=device, precision=precision,
                             progress=say, caption=caption)
    else:
        part = embed_items(store, items, modelled, speech, encoders, ec, progress=say, caption=caption,
                           caption_frames=uc.caption_frames)
    transcripts, errors = part["transcripts"], part["errors"]
    speech_info = part["speech_info"]
    captions = part.get("captions") or [[] for _ in items]

    vectors: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    models: dict[str, dict[str, Any]] = {}
    stats: dict[str, np.ndarray] = {}
    text_spaces: dict[str, str] = {}
    timings: dict[str, float] = {}
    ids = [str(it["item_id"]) for it in items]
    for m, name in plan.items():
        t0 = time.monotonic()
        prefix, _ = parse_name(name)
        if prefix == "builtin":
            x, mask, st = embed_builtin(store, items, ec.kinds.get(m, m), recipe.stats.get(m) if recipe else None)
            if st.shape[1]:
                stats[m] = st
            info = {"name": name, "dim": int(x.shape[1]), "revision": "builtin"}
        elif prefix == "npy":
            enc = encoders[name]
            x, mask = enc.lookup(ids)
            info = {**enc.describe(), "unused_ids": int(getattr(enc, "unused", 0))}
            if info["unused_ids"]:
                say(f"embed {m}: {info['unused_ids']} id(s) of {name} are not in this catalogue (not used)")
        else:
            x, mask, info = part["vectors"][m], part["masks"][m], part["models"][m]
            if prefix in ("text", "clip", "clap"):
                text_spaces[m] = name
        vectors[m], masks[m] = x, mask
        models[m] = info
        timings[m] = part["seconds"].get(m, round(time.monotonic() - t0, 3))
        say(f"embed {m}: {int(mask.sum())}/{n} items, dim {x.shape[1]}, {timings[m]:.1f}s")

    # understanding: moods and zero-shot tags, from the texts, the builtin features and these vectors
    t0 = time.monotonic()

    def text_encoder(name: str) -> Encoder | None:
        """The loaded encoder that embeds text in ``name``'s space (None for builtin / npy)."""
        if not name or parse_name(name)[0] not in ("text", "clip", "clap"):
            return None
        return encoders.get(name) or local(name)

    from .understand.run import understand

    records, understand_info, mood_x, mood_mask = understand(
        store, items, cfg, texts=item_texts(items, transcripts, captions), plan=plan, vectors=vectors, masks=masks,
        text_encoder=text_encoder, sentiment=sentiment, means=recipe.means if recipe else None,
        stats=_like_mood_stats(like) if like is not None else None,
        need_mood=bool(recipe and "mood" in recipe.dims), progress=say)
    if part.get("caption_info"):
        understand_info["caption"] = part["caption_info"]
    timings["understand"] = round(time.monotonic() - t0, 3)
    mood_block = (recipe is not None and "mood" in recipe.dims) or (recipe is None and uc.mood_weight > 0)
    if mood_block and mood_x is not None:
        vectors["mood"], masks["mood"] = mood_x, mood_mask
        weights = {**weights, "mood": float(uc.mood_weight)}

    if recipe is None:  # fit the recipe on these items: the catalogue
        recipe = Recipe(blocks=blocks_for({m: x.shape[1] for m, x in vectors.items()}, weights), stats=stats,
                        kinds={m: k for m, k in ec.kinds.items() if m in vectors})
        if ec.centre:
            recipe.fit_means(vectors, masks)
        fused = recipe.fuse(vectors, masks, n)
        empty = int((np.linalg.norm(fused, axis=1) == 0).sum())
        if ec.pca_dim > 0:
            # centred data of r rows has rank <= r - 1: more components would be noise
            k = min(ec.pca_dim, fused.shape[1], n - empty - 1)
            if k < ec.pca_dim:
                say(f"warning: embed.pca_dim={ec.pca_dim} reduced to {max(k, 0)} (limited by the fused dimension "
                    f"and the number of items with vectors){'; PCA skipped' if k < 1 else ''}")
            if k >= 1:
                mean, comp, expl = fit_pca(fused, k)
                recipe.pca = {"mean": mean, "components": comp, "explained_variance_ratio": expl}
                fused = apply_pca(fused, mean, comp)
    else:  # the reference's recipe: a modality these items lack is a zero block of its width
        for m, d in recipe.dims.items():
            if m in vectors and vectors[m].shape[1] == 0:
                vectors[m] = np.zeros((n, d), np.float32)
        fused = recipe.fuse(vectors, masks, n)
    empty = int((np.linalg.norm(fused, axis=1) == 0).sum())
    if empty:
        say(f"warning: {empty} item(s) have no vector in any enabled modality (zero rows in fused.npy)")

    rows = []
    for i, it in enumerate(items):
        row = {
            "item_id": it["item_id"], "title": it.get("title") or "", "description": it.get("description") or "",
            "tags": it.get("tags") or [], "modalities": [m for m in plan if m in masks and bool(masks[m][i])],
            "duration": it.get("duration"), "path": it.get("path"),
        }
        if speech:
            row["transcript"] = transcripts[i]
        rec = {k: v for k, v in (("mood", records[i].get("mood")), ("captions", captions[i]),
                                 ("tags", records[i].get("tags"))) if v}
        if rec:
            row["understand"] = rec
        rows.append(row)

    write_jsonl(tmp / "items.jsonl", rows)
    save_npy(tmp / "fused.npy", fused.astype(np.float32))
    for m in vectors:
        save_npy(tmp / f"{m}.npy", vectors[m].astype(np.float32))
        save_npy(tmp / f"{m}_mask.npy", masks[m].astype(bool))
    recipe.save(tmp)
    write_manifest(tmp, Manifest(
        artifact="embeddings",
        config=cfg.to_dict(),
        inputs={"features": str(store.path.resolve()), **({"like": str(Path(like).resolve())} if like else {})},
        models=models,
        counts={"items": n, "skipped": skipped, "empty": empty, "errors": len(errors),
                **{m: int(masks[m].sum()) for m in masks}},
        extra={
            "weights": weights, "text_spaces": text_spaces, "blocks": recipe.blocks, "dim": int(fused.shape[1]),
            "pooling": ec.pooling, "device": device, "precision": precision,
            "engine": "ray" if on_ray else "local", **({"actors": part["actors"]} if on_ray else {}),
            "pca_dim": int(recipe.pca["components"].shape[0]) if recipe.pca is not None else 0,
            "recipe": {"fitted_on": "these items" if like is None else str(Path(like).resolve()),
                       "builtin_stats": sorted(recipe.stats), "centred": sorted(recipe.means)},
            **({"speech": speech_info} if speech else {}),
            **({"understand": understand_info} if understand_info else {}),
            "seconds": timings,
            "errors": dict(list(errors.items())[:MAX_ERRORS_KEPT]),
        },
    ))
    say(f"embed: wrote {out_dir} ({n} items, fused dim {fused.shape[1]})")
    return out_dir
