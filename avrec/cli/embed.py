"""`avrec embed`: per-modality and fused item vectors from a features artifact."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import Common, command, emit_path

HELP = """Embed every item of a features artifact with pretrained encoders.

Reads FEATURES (a path, '-' for a path on stdin, a piped path, or the workspace's
features/) and writes embeddings/: one L2-normalised matrix per modality (video, audio,
text) with its mask, and fused.npy, the weighted concatenation used by train. Encoders
are chosen by name per modality: builtin (extract's signal features), text:<id|path>,
clip:<id|path>, clap:<id|path>, audio:<id|path>, npy:<file> (your own vectors, ids in
<file>.ids.txt); embed.speech=asr:<id|path> transcribes speech into the text.
Models resolve offline from a local path, an installed package, or the Hugging Face
cache (see `avrec models`). Prints the embeddings path.

Examples:

\b
  avrec extract media/ | avrec embed
  avrec embed avrec-work/features --video clip:openai/clip-vit-base-patch32 \\
      --audio clap:laion/clap-htsat-unfused --device cuda --set embed.precision=fp16
  avrec embed features/ -o emb/ --speech asr:openai/whisper-tiny --set embed.weights.text=2
  avrec embed features/ --video npy:my_vectors.npy   # ids in my_vectors.npy.ids.txt
  avrec embed features/ --set understand.caption=caption:Salesforce/blip-image-captioning-base \\
      --set 'understand.tags=[surf, traffic, piano, birds]'
  avrec embed /shared/features --engine ray --actors 8 --device cuda   # 8 GPUs, one model copy each

Beside the vectors, each item's "understand" record in items.jsonl holds its mood
(valence, arousal and mood labels from the text's words, the sound and the picture;
CLAP/CLIP prompts when those encoders are configured), captions of its key frames
(understand.caption=caption:<id|path>, BLIP or GIT; they join the text like speech) and
zero-shot tags from understand.tags (a list, or a file with a tag per line); items given
tags of that vocabulary also vote them onto their nearest items in each modality.

Config keys (section embed): video, audio, text, speech, weights.<modality>, pooling
(mean|max), batch_size, precision (fp32|fp16|bf16, GPU only), max_text_tokens, pca_dim,
workers (DataLoader processes reading stored frames/audio). Section understand: mood,
sentiment (sentiment:<id|path>, a text emotion classifier), caption, caption_frames, tags,
tag_threshold (on the centred cosine), tag_top, tag_neighbours (0: no votes),
tag_neighbour_threshold (the share of votes), mood_weight (> 0: a "mood" block in the
fused vector). Section distributed: engine, address, actors.
"""


@command("embed", help=HELP, output=True, engine=True, no_args_is_help=False)
def embed_cmd(
    common: Common,
    features: Annotated[Optional[str], typer.Argument(help="Features artifact directory ('-': read the path from stdin).",
                                                      show_default=False)] = None,
    video: Annotated[Optional[str], typer.Option("--video", help="Video encoder [embed.video], '' disables.",
                                                 show_default=False)] = None,
    audio: Annotated[Optional[str], typer.Option("--audio", help="Audio encoder [embed.audio], '' disables.",
                                                 show_default=False)] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="Text encoder [embed.text], '' disables.",
                                                show_default=False)] = None,
    speech: Annotated[Optional[str], typer.Option("--speech", help="asr:<id|path> transcribing speech into the "
                                                  "text [embed.speech].", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Frames / windows / texts per model call "
                                                      "[embed.batch_size].", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="DataLoader worker processes [embed.workers].",
                                                   show_default=False)] = None,
    actors: Annotated[Optional[int], typer.Option("--actors", help="Ray actors, each loading the models once, one "
                                                  "GPU each on CUDA [distributed.actors].", show_default=False,
                                                  min=1)] = None,
    like: Annotated[Optional[str], typer.Option("--like", help="Embed exactly as this embeddings artifact was made "
                                                "(its encoders, weights, PCA and normalisation statistics), so new "
                                                "items' vectors match the catalogue's.", show_default=False)] = None,
) -> None:
    from ..artifacts import resolve_input
    from ..config import validate
    from ..embed import embed

    cfg = common.load()
    if actors is not None:
        cfg.distributed.actors = actors
    for key, value in (("video", video), ("audio", audio), ("text", text), ("speech", speech),
                       ("batch_size", batch_size), ("workers", workers)):
        if value is not None:
            setattr(cfg.embed, key, value)
    validate(cfg)
    src = resolve_input(features, stage="embed", work=common.work(cfg))
    path = embed(src, common.out(cfg, "embeddings"), cfg, like=like, progress=common.log)
    emit_path(path)
