"""Typed, layered, strict configuration.

Precedence (low to high): dataclass defaults (mirrored, with comments, in
``configs/default.yaml``) < ``--config FILE`` (or ``$AVREC_CONFIG``, or ``./avrec.yaml``)
< ``$AVREC_DEVICE`` < ``--set key=value`` < command-line flags.

An unknown key is a :class:`~avrec.errors.ConfigError` naming the closest valid key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import difflib
import math
import os
import signal
import sys
import threading
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, DeviceError


@dataclass
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    workdir: str = "avrec-work"
    seed: int = 0
    threads: int = 0  # 0: let numpy/torch decide


@dataclass
class ExtractConfig:
    fps: float = 1.0  # frames sampled per second of video
    max_frames: int = 32  # cap per item, spread evenly over the whole video
    keyframes: bool = False  # decode key frames only (fast, coarser)
    thumb_size: int = 224  # stored thumbnails are thumb_size x thumb_size RGB
    audio_sr: int = 16000  # mono PCM sample rate kept for embed
    audio_max_seconds: float = 30.0  # PCM kept for embed, from the start of the item
    feature_audio_seconds: float = 120.0  # audio analysed for builtin features
    n_mels: int = 64
    workers: int = 1
    item_timeout: float = 300.0  # seconds per item before it is recorded as failed; 0: no limit
    max_failed: int = -1  # -1: failures are reported, never fatal; N: exit 3 when more fail
    shard_size: int = 64  # items per shard
    hash: bool = False  # fingerprint by content hash as well as path, size, mtime
    scene_threshold: float = 0.4  # histogram distance that counts as a shot cut
    metadata: str | None = None  # CSV/JSONL table: item_id, title, description, tags[, path]
    recursive: bool = True
    decoder: str = "pyav"  # pyav | opencv: video frame decoder (added by extract)
    seek_min_seconds: float = 300.0  # videos this long or longer are sampled by seeking to max_frames points instead of decoding every frame; 0: never (added by extract)


@dataclass
class EmbedConfig:
    # encoder per modality, by registry name ("builtin", "text:<id|path>", "clip:<id|path>",
    # "clap:<id|path>", "audio:<id|path>", "asr:<id|path>", "npy:<file>"); "" disables it
    video: str = "builtin"
    audio: str = "builtin"
    text: str = "text:sentence-transformers/all-MiniLM-L6-v2"
    speech: str = ""  # asr:<id|path> transcribes speech into the text modality
    modalities: dict[str, str] = field(default_factory=dict)  # more named modalities: {name: encoder}, e.g. {vggish: "npy:vggish.npy"}
    kinds: dict[str, str] = field(default_factory=dict)  # {name: video|audio|text|other}: what a modality holds (npy: and builtin need it; others are known)
    weights: dict[str, float] = field(default_factory=lambda: {"video": 1.0, "audio": 1.0, "text": 1.0})
    pooling: str = "mean"  # mean | max | attention (over frames / audio windows)
    batch_size: int = 32
    precision: str = "fp32"  # fp32 | fp16 | bf16 (fp16/bf16 on GPU only)
    max_text_tokens: int = 256
    pca_dim: int = 0  # 0: no PCA on the fused vector
    centre: bool = True  # centre each modality on its catalogue mean (stored, applied to new items and queries)
    workers: int = 0  # DataLoader workers decoding stored frames/audio


@dataclass
class HybridConfig:
    solver: str = "auto"  # auto: closed when its dense solve is small (closed_max), else als; closed | als | sgd
    dim: int = 384  # rank of the served vectors
    l2: float = 200.0  # closed: L2 penalty of the item-item solve
    content_prior: float = 30.0  # closed: weight of item content similarity added to the item Gram matrix
    ridge: float = 1.0  # closed: ridge penalty of the content -> factors map used for items without interactions
    cold_scale: float = 0.5  # scale of the content-only vectors of items without interactions (1: as predicted)
    epochs: int = 300  # sgd: upper bound; early stopping on the validation split picks the number
    lr: float = 0.01  # sgd
    weight_decay: float = 0.0  # sgd
    batch_size: int = 512  # sgd: users per step
    negatives: int = 0  # 0: full softmax over items; N: sampled softmax with N shared negatives
    content_weight: float = 1.0  # scale of the content tower relative to the id embedding
    dropout: float = 0.3  # probability of dropping an item's id embedding per step (content carries it)
    patience: int = 20  # epochs without validation gain before stopping
    mask_ratio: float = 0.25  # share of each user's history held out as targets per step
    content_hidden: int = 0  # 0: linear content projections; N: MLP with N hidden units
    content_dim: int = 128  # content vectors reduced to this many principal directions (0: as they are)
    eval_k: int = 20  # validation NDCG@eval_k drives early stopping
    eval_every: int = 5  # epochs between validation checks
    refit: bool = True  # after early stopping, retrain on all training data for the best epoch count
    closed_max: int = 12000  # auto: the closed form's dense solve side (min(items, users + content dims)) up to which it is used
    als_factors: int = 64  # als: factors
    als_iterations: int = 15  # als: ALS iterations
    als_warm_iterations: int = 5  # als: iterations when the fit starts from the validation search's item factors
    als_reg: float = 0.01  # als: L2 regularisation
    als_alpha: float = 10.0  # als: confidence 1 + alpha * weight


@dataclass
class MFConfig:
    factors: int = 64
    epochs: int = 15  # ALS iterations
    reg: float = 0.01
    alpha: float = 10.0  # ALS confidence: 1 + alpha * weight


@dataclass
class EASEConfig:
    l2: float = 500.0


@dataclass
class ItemKNNConfig:
    neighbours: int = 100
    shrink: float = 10.0


@dataclass
class TrainPrivacyConfig:
    epsilon: float = 0.0  # > 0: user-level (epsilon, delta)-differential privacy for the statistics the solver fits on; 0: off
    delta: float = 0.0  # 0: 1 / (users ^ 1.1), recorded in the manifest
    max_items_per_user: int = 0  # contribution bound: a user's interactions kept (a random subset); 0: chosen from the data
    iterations: int = 0  # als solver: private item steps (each a share of the budget); 0: 1 when content starts them, else 3
    factors: int = 0  # als solver: factors; 0: the prepared content's dims (train.hybrid.content_dim), else train.hybrid.als_factors


@dataclass
class TrainConfig:
    model: str = "hybrid"  # popular | itemknn | ease | mf | content | hybrid
    validation: float = 0.1  # fraction of each user's interactions for early stopping; 0: none
    min_weight: float = 0.0  # interactions with weight below this are ignored
    tune: str = "auto"  # auto: choose the hybrid's solver, hyperparameters and modality weights on a validation split | off
    tune_budget_s: float = 60.0  # seconds the auto search may spend at most (a fit that would overrun it is not started)
    tune_budget_fits: float = 1.5  # and at most this many times its first validation fit, but 20 s at least; 0: no such limit
    tune_max_interactions: int = 1000000  # above this, the search runs on a random subset of users holding about this many
    recency: str = "off"  # off | on: user vectors weigh a user's n-th newest interaction 0.5 ** (n / recency_half_life) | auto: choose the half-life (or none) on each user's newest interactions (needs timestamps; avrec/recency.py)
    recency_half_life: float = 10.0  # recency=on: in interactions
    weighting: str = "auto"  # linear | log (log1p: heavy-tailed counts) | binary | auto: the hybrid's search chooses when weights are heavy-tailed (avrec/weighting.py)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    mf: MFConfig = field(default_factory=MFConfig)
    ease: EASEConfig = field(default_factory=EASEConfig)
    itemknn: ItemKNNConfig = field(default_factory=ItemKNNConfig)
    privacy: TrainPrivacyConfig = field(default_factory=TrainPrivacyConfig)


@dataclass
class IndexConfig:
    n_trees: int = 50
    search_k: int = 5000  # -1: annoy's default (n_trees * k)
    metric: str = "auto"  # auto | angular | dot
    exact_below: int = 200000  # exact matrix product is as fast as annoy below this many items
    exact_single_below: int = 50000  # one request at a time (--user/--item): exact scan below this many items, annoy above
    recall_sample: int = 200  # queries used to report recall@10 against exact search
    target_recall: float = 0.95  # search_k is raised until annoy's recall@10 on the model's vectors reaches this; below it, exact search serves


@dataclass
class RecommendConfig:
    k: int = 10
    exclude_seen: bool = True
    fallback: str = "none"  # none | popular (for unknown users)
    diversity: float = 0.0  # MMR lambda; 0: off
    mmr_pool: int = 100  # candidates re-ranked by MMR when diversity > 0
    query_weight: float = 0.5  # --query with --user: weight of the query against the user's taste


@dataclass
class EvaluateConfig:
    models: list[str] = field(default_factory=lambda: ["popular", "content", "hybrid"])
    protocols: list[str] = field(default_factory=lambda: ["random", "cold"])
    k: list[int] = field(default_factory=lambda: [5, 10, 20])
    test_ratio: float = 0.2  # random split: fraction of each user's interactions held out
    cold_ratio: float = 0.2  # cold split: fraction of items held out entirely
    last_n: int = 1  # leave-last-n split: interactions held out per user


@dataclass
class UnderstandConfig:
    mood: bool = True  # per-item valence, arousal and mood labels from text (lexicon), sound and pictures
    sentiment: str = ""  # sentiment:<hf id|path>: a sequence classifier for text emotions (else the lexicon alone)
    caption: str = ""  # caption:<hf id|path>: an image-to-text model describing sampled key frames
    caption_frames: int = 3  # key frames captioned per video item
    tags: list[str] = field(default_factory=list)  # zero-shot tag vocabulary (or one entry: a file with a tag per line)
    tag_threshold: float = 0.3  # centred cosine (item minus catalogue mean, tag minus vocabulary mean) a predicted tag must reach
    tag_top: int = 5  # predicted tags kept per item (at most)
    tag_neighbours: int = 20  # items given vocabulary tags vote them onto their k most similar items, in each modality; 0: off
    tag_neighbour_threshold: float = 0.5  # weighted share of those neighbours that must carry a tag for it to be predicted
    mood_weight: float = 0.0  # weight of the mood block in the fused content vector; 0: not a feature


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # a non-loopback address requires a token for every write
    port: int = 8000
    events: str = ""  # SQLite event store; "": <runtime.workdir>/events.sqlite
    poll_s: float = 1.0  # seconds between checks for a swapped index (avrec index --add)
    workers: int = 1  # server processes sharing the port and the event store; 0: one per usable core, at most 8
    auth: str = "writes"  # writes | all: which endpoints need the bearer token when one is set
    token_file: str | None = None  # a file holding the bearer token
    max_body_bytes: int = 1048576  # request bodies above this are refused (413)
    body_timeout_s: float = 10.0  # a request body not received this long after the request began: 408; 0: no deadline
    max_events: int = 1000  # events per POST /events
    max_k: int = 1000  # largest k a request may ask for
    max_history: int = 10000  # items in a POST /recommend history
    access_log: bool = True  # one JSON line per request on stderr
    rate_limit: float = 0.0  # requests a second per client address; over it: 429 with Retry-After; 0: no limit
    rate_burst: int = 0  # requests a client may make at once before the rate applies; 0: the rate, rounded up
    tls_cert: str | None = None  # PEM certificate: serve HTTPS (with tls_key); None: plain HTTP (or TLS at a proxy)
    tls_key: str | None = None  # PEM private key of tls_cert
    event_weights: dict[str, float] = field(default_factory=lambda: {
        "view": 1.0, "play": 1.0, "click": 1.0, "listen": 1.0, "watch": 1.0, "open": 1.0,
        "complete": 2.0, "finish": 2.0, "like": 2.0, "save": 2.0, "add": 2.0,
        "share": 3.0, "purchase": 3.0, "buy": 3.0,
        "skip": 0.0, "dislike": 0.0})  # an event's weight when it gives none (as in interaction files); 0: seen, no taste


@dataclass
class PrivacyConfig:
    pseudonymize: bool = False  # user ids become HMAC-SHA256(key, id) wherever they are read
    key_file: str | None = None  # the secret key (16 bytes at least; KEYGEN writes 32); required with pseudonymize


@dataclass
class DistributedConfig:
    engine: str = "local"  # local | ray
    address: str | None = None  # ray cluster address; None: start a local one
    actors: int = 2  # embed on Ray: actors, each with its own copy of the models (one GPU each on CUDA)


@dataclass
class Config:
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    understand: UnderstandConfig = field(default_factory=UnderstandConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------
# merging


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _closest(key: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.0)
    return match[0] if match else ""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value  # exact: through float, 10**30 + 1 would land as 1000000000000000019884624838656
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past float
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        if isinstance(value, bool):  # YAML 1.1 reads a bare off / on as a boolean
            return "on" if value else "off"
        return str(value)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    return value


def _merge(obj: Any, data: dict[str, Any], prefix: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    hints = _hints(type(obj))
    valid = [f.name for f in dataclasses.fields(obj)]
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in valid:
            hint = _closest(str(key), valid)
            raise ConfigError(f"unknown config key '{where}'; did you mean '{prefix}{hint}'?")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value or {}, f"{where}.")
        elif isinstance(current, dict) and isinstance(value, dict):
            # mappings (e.g. embed.weights) merge key by key, so one weight can be overridden
            setattr(obj, key, {**current, **_coerce(value, hints[key], where)})
        else:
            setattr(obj, key, _coerce(value, hints[key], where))


def _all_keys(obj: Any, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            out.extend(_all_keys(v, f"{prefix}{f.name}."))
        else:
            out.append(f"{prefix}{f.name}")
    return out


def apply_set(cfg: Config, assignment: str) -> None:
    """Apply one ``--set section.key=value``; the value is parsed as YAML, except that a text
    key takes a number, boolean or date as it was typed."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r} (e.g. --set train.model=ease)")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    import yaml  # lazily: commands without a config file or --set never need it

    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, *_YAML_BUGS):
        value = raw
    parts = key.split(".")
    if _is_str(_target_type(cfg, parts)) and isinstance(value, (bool, int, float, _dt.date)):
        # a text key takes the text as typed: workdir=017 is "017", not 15; speech=no is "no"
        node = yaml.compose(raw)
        if isinstance(node, yaml.ScalarNode):
            value = node.value
    nested: Any = value
    for p in reversed(parts):
        nested = {p: nested}
    try:
        _merge(cfg, nested, "")
    except ConfigError as e:
        if "unknown config key" in str(e):
            hint = _closest(key, _all_keys(cfg))
            raise ConfigError(f"unknown config key '{key}'; did you mean '{hint}'?") from None
        raise


# what PyYAML's constructors raise besides YAMLError on a bad scalar: "2001-13-45" (a date
# past December), "!!int abc", "!!bool maybe", "!!timestamp x", "!!int ''", 5000 digits, deep [[[
_YAML_BUGS = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError)


def _target_type(cfg: Config, parts: list[str]) -> Any:
    """The declared type of the dotted key ``parts`` (None when it names no field)."""
    obj: Any = cfg
    for p in parts[:-1]:
        obj = getattr(obj, p, None) if dataclasses.is_dataclass(obj) and p in _hints(type(obj)) else None
    if not dataclasses.is_dataclass(obj):
        return None
    return _hints(type(obj)).get(parts[-1])


def _is_str(tp: Any) -> bool:
    return tp is str or typing.get_args(tp) == (str, type(None))


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p} (pass an existing YAML file to --config)")
    if p.is_dir():
        raise ConfigError(f"config file {p} is a directory; pass a YAML file to --config")
    import yaml

    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text; save it as UTF-8 YAML") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"invalid YAML in {p}{where}: {getattr(e, 'problem', e)}") from None
    except _YAML_BUGS as e:
        raise ConfigError(f"invalid YAML in {p}: {type(e).__name__}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of sections (runtime, extract, ...)")
    return data


def find_preset(name: str) -> Path | None:
    """A bare name like ``cuda`` resolves to ``configs/cuda.yaml`` of the source tree."""
    here = Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml"
    return here if here.exists() else None


def load_config(
    config_file: str | Path | None = None,
    sets: list[str] | tuple[str, ...] = (),
    device: str | None = None,
    env: dict[str, str] | None = None,
) -> Config:
    """Build the resolved config with the documented precedence."""
    env = os.environ if env is None else env
    cfg = Config()
    path: str | Path | None = config_file or env.get("AVREC_CONFIG") or None
    if path is None and Path("avrec.yaml").exists():
        path = "avrec.yaml"
    if path is not None:
        p = Path(path)
        if not p.exists() and not p.suffix and find_preset(str(path)):
            p = find_preset(str(path))  # type: ignore[assignment]
        _merge(cfg, load_yaml(p), "")
    if env.get("AVREC_DEVICE"):
        cfg.runtime.device = env["AVREC_DEVICE"]
    if env.get("AVREC_WORKDIR"):
        cfg.runtime.workdir = env["AVREC_WORKDIR"]
    for s in sets:
        apply_set(cfg, s)
    if device:
        cfg.runtime.device = device
    validate(cfg)
    return cfg


_CHOICES = {
    "runtime.device": None,  # checked in validate (auto | cpu | cuda | cuda:N | mps)
    "extract.decoder": ("pyav", "opencv"),
    "embed.pooling": ("mean", "max", "attention"),
    "embed.precision": ("fp32", "fp16", "bf16"),
    "train.model": ("popular", "itemknn", "ease", "mf", "content", "hybrid"),
    "train.hybrid.solver": ("auto", "closed", "als", "sgd"),
    "train.tune": ("auto", "off"),
    "train.recency": ("off", "on", "auto"),
    "train.weighting": ("auto", "linear", "log", "binary"),
    "index.metric": ("auto", "angular", "dot"),
    "recommend.fallback": ("none", "popular"),
    "distributed.engine": ("local", "ray"),
    "serve.auth": ("writes", "all"),
}

# the valid range of every number in the config: (low, high, low open, high open); None is
# unbounded. tests/failures/test_config.py checks that no int or float key is missing here.
_INF = None
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "runtime.seed": (0, 2**32 - 1, False, False),
    "runtime.threads": (0, 4096, False, False),
    "extract.fps": (0, 1000, True, False),
    "extract.max_frames": (1, 100000, False, False),
    "extract.thumb_size": (16, 4096, False, False),
    "extract.audio_sr": (8000, 192000, False, False),
    "extract.audio_max_seconds": (0, 86400, False, False),
    "extract.feature_audio_seconds": (0, 86400, True, False),
    "extract.n_mels": (8, 512, False, False),
    "extract.workers": (1, 4096, False, False),
    "extract.item_timeout": (0, _INF, False, False),
    "extract.max_failed": (-1, _INF, False, False),
    "extract.shard_size": (1, 1000000, False, False),
    "extract.scene_threshold": (0, 1, False, False),
    "extract.seek_min_seconds": (0, _INF, False, False),
    "embed.weights": (0, _INF, False, False),
    "embed.batch_size": (1, 1 << 20, False, False),
    "embed.max_text_tokens": (8, 1 << 16, False, False),
    "embed.pca_dim": (0, 1 << 16, False, False),
    "embed.workers": (0, 1024, False, False),
    "train.validation": (0, 1, False, True),
    "train.min_weight": (0, _INF, False, False),
    "train.tune_budget_s": (0, _INF, True, False),
    "train.tune_budget_fits": (0, _INF, False, False),
    "train.tune_max_interactions": (1000, _INF, False, False),
    "train.recency_half_life": (0, _INF, True, False),
    "train.hybrid.dim": (1, 1 << 16, False, False),
    "train.hybrid.l2": (0, _INF, True, False),
    "train.hybrid.content_prior": (0, _INF, False, False),
    "train.hybrid.ridge": (0, _INF, True, False),
    "train.hybrid.cold_scale": (0, _INF, False, False),
    "train.hybrid.epochs": (1, 1 << 20, False, False),
    "train.hybrid.lr": (0, _INF, True, False),
    "train.hybrid.weight_decay": (0, _INF, False, False),
    "train.hybrid.batch_size": (1, 1 << 24, False, False),
    "train.hybrid.negatives": (0, 1 << 24, False, False),
    "train.hybrid.content_weight": (0, _INF, False, False),
    "train.hybrid.dropout": (0, 1, False, True),
    "train.hybrid.patience": (0, 1 << 20, False, False),
    "train.hybrid.mask_ratio": (0, 1, True, True),
    "train.hybrid.content_hidden": (0, 1 << 16, False, False),
    "train.hybrid.content_dim": (0, 1 << 16, False, False),
    "train.hybrid.eval_k": (1, 100000, False, False),
    "train.hybrid.eval_every": (1, 1 << 20, False, False),
    "train.hybrid.closed_max": (0, 1 << 20, False, False),
    "train.hybrid.als_factors": (1, 1 << 12, False, False),
    "train.hybrid.als_iterations": (1, 10000, False, False),
    "train.hybrid.als_warm_iterations": (1, 10000, False, False),
    "train.hybrid.als_reg": (0, _INF, False, False),
    "train.hybrid.als_alpha": (0, _INF, False, False),
    "train.mf.factors": (1, 1 << 16, False, False),
    "train.mf.epochs": (1, 100000, False, False),
    "train.mf.reg": (0, _INF, False, False),
    "train.mf.alpha": (0, _INF, False, False),
    "train.ease.l2": (0, _INF, True, False),
    "train.itemknn.neighbours": (1, 1 << 24, False, False),
    "train.itemknn.shrink": (0, _INF, False, False),
    "index.n_trees": (1, 10000, False, False),
    "index.search_k": (-1, _INF, False, False),  # -1 or >= 1: checked in validate
    "index.exact_below": (0, _INF, False, False),
    "index.exact_single_below": (0, _INF, False, False),
    "index.recall_sample": (0, 1000000, False, False),
    "index.target_recall": (0, 1, False, False),
    "recommend.k": (1, 100000, False, False),
    "recommend.diversity": (0, 1, False, False),
    "recommend.mmr_pool": (1, 100000, False, False),
    "recommend.query_weight": (0, 1, False, False),
    "evaluate.k": (1, 100000, False, False),
    "evaluate.test_ratio": (0, 1, True, True),
    "evaluate.cold_ratio": (0, 1, True, True),
    "evaluate.last_n": (1, 100000, False, False),
    "distributed.actors": (1, 100000, False, False),
    "train.privacy.epsilon": (0, _INF, False, False),
    "train.privacy.delta": (0, 1, False, True),
    "train.privacy.max_items_per_user": (0, _INF, False, False),
    "train.privacy.iterations": (0, 1000, False, False),
    "train.privacy.factors": (0, 100000, False, False),
    "understand.caption_frames": (1, 1000, False, False),
    "understand.tag_threshold": (-1, 1, False, False),
    "understand.tag_top": (1, 1000, False, False),
    "understand.tag_neighbours": (0, 10000, False, False),
    "understand.tag_neighbour_threshold": (0, 1, False, False),
    "understand.mood_weight": (0, _INF, False, False),
    "serve.port": (0, 65535, False, False),
    "serve.rate_limit": (0, _INF, False, False),
    "serve.rate_burst": (0, _INF, False, False),
    "serve.poll_s": (0, 3600, True, False),
    "serve.workers": (0, 64, False, False),
    "serve.max_body_bytes": (1024, _INF, False, False),
    "serve.body_timeout_s": (0, _INF, False, False),
    "serve.max_events": (1, 1000000, False, False),
    "serve.max_k": (1, 100000, False, False),
    "serve.max_history": (1, 10000000, False, False),
    "serve.event_weights": (0, _INF, False, False),
}


def range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    """'> 0', '>= 1', 'in [0, 1)' (always finite)."""
    f = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    if hi is None:
        return f"a finite number {'>' if lo_open else '>='} {f(lo)}"
    return f"in {'(' if lo_open else '['}{f(lo)}, {f(hi)}{')' if hi_open else ']'}"


def _in_range(v: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    if v != v or v in (float("inf"), float("-inf")):  # a limit of "no limit" is spelt 0 or -1 where it exists
        return False
    if lo is not None and (v <= lo if lo_open else v < lo):
        return False
    if hi is not None and (v >= hi if hi_open else v > hi):
        return False
    return True


def _get(cfg: Config, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def validate(cfg: Config) -> None:
    """Every choice among its values and every number in its range, or a ConfigError
    naming the key, the valid values and what was given."""
    # YAML 1.1 reads a bare ``tune: off`` as false
    cfg.train.tune = {"false": "off", "no": "off", "true": "auto", "yes": "auto"}.get(str(cfg.train.tune).lower(),
                                                                                    cfg.train.tune)
    for key, choices in _CHOICES.items():
        if choices is None:
            continue
        value = _get(cfg, key)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    dev = cfg.runtime.device
    n = dev[5:] if dev.startswith("cuda:") else ""
    if not (dev in ("auto", "cpu", "cuda", "mps") or (n.isascii() and n.isdigit())):  # not "cuda:²": int() refuses it
        raise ConfigError(f"runtime.device must be auto, cpu, cuda, cuda:N or mps; got {dev!r}")
    for key, bounds in RANGES.items():
        value = _get(cfg, key)
        values = value.items() if isinstance(value, dict) else \
            ((str(i), v) for i, v in enumerate(value)) if isinstance(value, list) else [(None, value)]
        for sub, v in values:
            where = key if sub is None else (f"{key}.{sub}" if isinstance(value, dict) else f"{key}[{sub}]")
            if not _in_range(v, *bounds):  # not float(v): an int may be past float
                raise ConfigError(f"{where} must be {range_text(*bounds)}; got {v!r}")
    if cfg.index.search_k == 0:
        raise ConfigError("index.search_k must be >= 1, or -1 for annoy's default; got 0")
    for key in ("evaluate.models", "evaluate.protocols", "evaluate.k"):
        if not _get(cfg, key):
            raise ConfigError(f"{key} is empty; list at least one")


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C back until the block is done (then it arrives): for imports of native
    libraries that crash, rather than raise, when interrupted half-way."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _gpu_nodes() -> bool:
    """Whether this machine has an NVIDIA or AMD (ROCm) GPU device node: torch sees no CUDA without one."""
    import glob

    return bool(glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd"))


def resolve_device(spec: str) -> str:
    """Resolve ``auto | cpu | cuda | cuda:N | mps`` to a concrete torch device string.

    Imports torch, so call it only on stages that use torch; except that ``cpu``, and ``auto``
    on a Linux machine with no GPU device node, are answered without it (importing torch costs
    ~2 s, and the ALS solver does not use it).
    """
    if spec == "cpu" and "torch" not in sys.modules:
        return "cpu"
    if spec == "auto" and "torch" not in sys.modules and sys.platform.startswith("linux") and not _gpu_nodes():
        return "cpu"
    with sigint_deferred():  # a Ctrl-C inside torch's C++ start-up aborts the process (SIGABRT)
        import torch

    if spec == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"runtime.device is {spec} but CUDA is not available here; use --device cpu or auto"
            )
        if ":" in spec and int(spec.split(":")[1]) >= torch.cuda.device_count():
            raise DeviceError(
                f"{spec} asked for but only {torch.cuda.device_count()} CUDA device(s) exist; "
                "use cuda:0 or auto"
            )
        return spec
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError("runtime.device is mps but MPS is not available here; use --device cpu")
    return spec


def dump_default_yaml() -> str:
    """The defaults as YAML (without comments); configs/default.yaml must agree with this."""
    import yaml

    return yaml.safe_dump(Config().to_dict(), sort_keys=False)
