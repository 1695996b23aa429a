"""`avrec demo`: the whole pipeline on the sample catalogue, in one command."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Common, Log, command

DEMO_USERS = ("u001", "u002")  # an ocean fan and a city fan in sample_data/interactions.csv


def find_sample_data(explicit: str | None) -> Path:
    """--data, else ./sample_data, else the sample_data/ beside the installed sources."""
    from ..errors import InputError

    candidates = [Path(explicit)] if explicit else [
        Path("sample_data"), Path(__file__).resolve().parents[2] / "sample_data",
    ]
    for c in candidates:
        if (c / "interactions.csv").exists() and (c / "media").is_dir():
            return c
    raise InputError(
        f"sample data not found in {', '.join(str(c) for c in candidates)}; run from the avrec checkout "
        "or pass --data DIR (regenerate it with python sample_data/make_sample_data.py)"
    )


def _history_titles(index, user: str) -> list[str]:
    row = index.users.row(user)
    return [] if row is None else [index.titles[int(i)] for i in index.seen(row)]


def run_demo(work: Path, data: Path, cfg, log: Log, out=sys.stdout) -> dict:
    """Run extract, embed, train, index, recommend and evaluate on ``data`` into ``work``."""
    from ..artifacts import read_jsonl
    from ..embed import embed
    from ..evaluate import evaluate
    from ..extract import extract
    from ..index import Index, build_index
    from ..recommend import Options, Recommender
    from ..train import train

    t_all = time.perf_counter()
    timings: dict[str, float] = {}

    def step(name: str, fn):
        log(f"demo: {name} ...")
        t = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - t
        log(f"demo: {name} done in {timings[name]:.1f}s")
        return result

    interactions = data / "interactions.csv"
    features = step("extract", lambda: extract(
        [data / "media"], work / "features", cfg, metadata=data / "metadata.csv", log=log))
    del features
    emb = step("embed", lambda: embed(work / "features", work / "embeddings", cfg, progress=log))
    model = step("train", lambda: train(emb, interactions, work / "model", cfg, progress=log))
    idx_dir = step("index", lambda: build_index(model, work / "index", cfg.index, seed=cfg.runtime.seed, log=log))

    index = Index(idx_dir)
    rec = Recommender(index, Options(k=5, exclude_seen=True, explain=True, log=log))
    popularity = index.popularity
    items = {r["item_id"]: r for r in read_jsonl(Path(emb) / "items.jsonl")}
    p = lambda s="": print(s, file=out)  # noqa: E731
    p(f"avrec demo: {len(items)} items ({int((popularity == 0).sum())} never watched), "
      f"{index.n_users} users. Artifacts in {work}/")
    for user in DEMO_USERS:
        p()
        p(f"User {user} watched:")
        for title in _history_titles(index, user):
            p(f"    {title}")
        p("  and is recommended:")
        for r in rec.for_user(user):
            row = index.items.row(r["item_id"])
            new = "  [new upload, no views yet]" if popularity[row] == 0 else ""
            mods = "+".join(items.get(r["item_id"], {}).get("modalities", []))
            why = r.get("explain", {}).get("because_title")
            because = f"  (like '{why}')" if why else ""
            p(f"  {r['rank']}. {r['title']}  <{mods}>  score {r['score']:.3f}{new}{because}")

    # K = 5 and 10 only: 28 items make K = 20 meaningless
    ev_dir, _rows = step("evaluate", lambda: evaluate(
        emb, interactions, work / "evaluation", cfg, ks=[5, 10], progress=log))
    p()
    p("Offline evaluation (held-out interactions; cold = items unseen in training, ranked among themselves):")
    p((Path(ev_dir) / "report.txt").read_text(encoding="utf-8"))
    timings["total"] = time.perf_counter() - t_all
    log(f"demo: finished in {timings['total']:.1f}s; evaluation in {ev_dir}")
    return timings


@command("demo", workdir=False)
def demo_cmd(
    common: Common,
    workdir: Annotated[str, typer.Option("--workdir", "-w", help="Where the demo writes its artifacts.")] = "avrec-demo",
    data: Annotated[Optional[str], typer.Option("--data", help="Sample data folder [./sample_data].")] = None,
) -> None:
    """Run the whole pipeline on the sample catalogue and show what it recommends.

    Extracts features from sample_data/media (H.264/AAC clips, WAV and AAC audio, text-only
    rows of sample_data/metadata.csv), embeds them (builtin signal features + MiniLM text),
    trains the hybrid on sample_data/interactions.csv, builds the index, prints two users'
    histories with their recommendations (brand-new uploads included), and compares models
    offline. Progress goes to stderr; results to stdout.

    Example:

        avrec demo -w /tmp/avrec-demo
    """
    cfg = common.load()
    run_demo(Path(workdir), find_sample_data(data), cfg, common.log)
