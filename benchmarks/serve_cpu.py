"""Server CPU per GET /recommend, in process and without sockets, against its scoring alone.

The ASGI app of `avrec serve` (the same create_app, the same fast path) answers batches of
16 concurrent requests for random known users of the S3 index (benchmarks/serve.py builds
and caches it); the baseline, in the same run, is the exact norm-ordered scan of the same
batches of user vectors with their seen items excluded (what a batch must cost at least).
The difference is what the server's Python adds: query parsing, the event-store read, the
fold-in plan, records and JSON. No client shares the CPU, so pairs of runs differ far less
than benchmarks/serve.py's loopback figures do.

Usage: python benchmarks/serve_cpu.py [--requests 8000] [--rounds 3] [--name serve-cpu]
Writes benchmarks/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CONCURRENCY = 16


async def _app_run(app, users: list[int], conc: int) -> float:
    async def one(user: int) -> None:
        scope = {"type": "http", "method": "GET", "path": "/recommend", "raw_path": b"/recommend",
                 "query_string": f"user=u{user}&k=10".encode(), "headers": [(b"host", b"bench")], "scheme": "http",
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": "", "http_version": "1.1"}
        status = {}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m):
            if m["type"] == "http.response.start":
                status["code"] = m["status"]

        await app(scope, receive, send)
        if status.get("code") != 200:
            raise RuntimeError(f"GET /recommend answered {status}")

    t = time.perf_counter()
    for a in range(0, len(users), conc):
        await asyncio.gather(*(one(u) for u in users[a:a + conc]))
    return time.perf_counter() - t


async def _serve(app, users: list[int], warm: list[int]) -> float:
    q: asyncio.Queue = asyncio.Queue()
    await q.put({"type": "lifespan.startup"})
    sent: list[dict] = []

    async def lrecv():
        return await q.get()

    async def lsend(m):
        sent.append(m)

    life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, lrecv, lsend))
    while not sent:
        await asyncio.sleep(0.01)
    await _app_run(app, warm, CONCURRENCY)
    out = await _app_run(app, users, CONCURRENCY)
    await q.put({"type": "lifespan.shutdown"})
    await life
    return out


def _scan_run(idx, users: list[int], conc: int) -> float:
    scan = idx.scan
    t = time.perf_counter()
    for a in range(0, len(users), conc):
        rows = [idx.users.row(f"u{u}") for u in users[a:a + conc]]
        q = np.stack([np.asarray(idx.user_vectors[r], np.float32) for r in rows])
        scan.topk(q, 10, exclude=[idx.seen(r) for r in rows])
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="S3")
    ap.add_argument("--requests", type=int, default=8000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="serve-cpu")
    args = ap.parse_args()
    from scale import machine
    from serve import build

    from avrec.config import Config
    from avrec.serve.app import create_app, settings_from_config

    idx_path, _new, n_users = build(args.size)
    tmp = Path(tempfile.mkdtemp(prefix="avrec-serve-cpu-"))
    s = settings_from_config(Config(), idx_path, token=None, events=str(tmp / "events.sqlite"))
    s.access_log = False
    app = create_app(s, log=lambda m: None)
    rng = random.Random(0)
    rounds = [[rng.randrange(n_users) for _ in range(args.requests)] for _ in range(args.rounds)]
    warm = [rng.randrange(n_users) for _ in range(1600)]
    idx = app.state.index
    scan_s, app_s = [], []
    for users in rounds:  # alternate, so that the machine's drift falls on both
        _scan_run(idx, warm[:160], CONCURRENCY)
        scan_s.append(_scan_run(idx, users, CONCURRENCY))
        app_s.append(asyncio.run(_serve(app, users, warm)))
    per = lambda xs: [round(x / args.requests * 1e6, 1) for x in xs]  # noqa: E731
    res = {"machine": machine(), "size": args.size, "requests": args.requests, "concurrency": CONCURRENCY,
           "items": idx.n_items, "users": idx.n_users, "dim": int(idx.item_vectors.shape[1]),
           "app_us": per(app_s), "scan_us": per(scan_s)}
    med = lambda xs: float(np.median(xs))  # noqa: E731
    res["app_us_median"], res["scan_us_median"] = med(res["app_us"]), med(res["scan_us"])
    lines = ["# avrec serve: CPU per request in process, against its scoring alone", "",
             f"Machine: {res['machine']}.", "",
             f"Reproduce: `python benchmarks/serve_cpu.py --size {args.size} --requests {args.requests} "
             f"--rounds {args.rounds}`.", "",
             f"Index: {res['items']} items, {res['users']} users, {res['dim']}-d vectors (benchmarks/scale_data.py "
             f"{args.size}); GET /recommend?user=U&k=10 for random known users, {CONCURRENCY} at a time.", "",
             "| what | µs per request, each round | median |", "|---|---|---:|",
             f"| the app (ASGI, no sockets) | {', '.join(map(str, res['app_us']))} | {res['app_us_median']:.1f} |",
             f"| its scoring alone (NormScan.topk of the same batches) | {', '.join(map(str, res['scan_us']))} | "
             f"{res['scan_us_median']:.1f} |", "",
             f"- What the server adds over its scoring: {res['app_us_median'] - res['scan_us_median']:.1f} µs a request "
             f"({res['app_us_median'] / res['scan_us_median']:.2f}x the scan). uvicorn's HTTP parsing and the "
             "sockets come on top (benchmarks/serve.py)."]
    out = ROOT / "benchmarks" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
