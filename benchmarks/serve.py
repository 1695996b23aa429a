"""avrec serve under load, against the per-process CLI in the same run (issue 13).

On a generated 100k-item index (benchmarks/scale_data.py's S3: 100k items, 300k users, 5M
interactions, 384-d content; the model trained with `train.tune=off` for time, 64-d
served vectors), on this machine, loopback only:

1. latency and throughput: C concurrent keep-alive clients (one asyncio process, raw
   HTTP/1.1 so the client costs little of the shared CPU) call GET /recommend?user=U&k=10
   for random known users, for a fixed number of requests; p50/p99 client-side latency and
   requests/s, beside `avrec recommend --user U --json` run as one process per call;
2. event to changed list: POST /events (the user's current top item, a view), then GET
   /recommend until the item is gone; the time from sending the event to the changed list;
3. swap under load: `avrec index --add` of 200 new items while C clients run; the failed
   requests (non-200 or broken connections) and when the new items became servable.

Targets on 2 cores (issue 13): p99 <= 10 ms with 16 clients, >= 1,000 requests/s, an event
reflected within 50 ms, 0 failed requests through a swap. The clients share the machine
with the server, so the figures include their CPU.

Usage: python benchmarks/serve.py [--clients 1,16] [--requests 20000] [--skip swap]
Writes benchmarks/results/serve.json and serve.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale_data import SIZES, cache_root, generate  # noqa: E402

PY = sys.executable
AVREC = [PY, "-m", "avrec"]
N_NEW = 200


def log(msg: str) -> None:
    print(f"[serve-bench] {msg}", file=sys.stderr, flush=True)


def build(size: str, train_sets: list[str] = ()) -> tuple[Path, Path, int]:
    """(index, embeddings with N_NEW more items, number of users): cached beside the logs.

    train_sets: extra `avrec train --set KEY=VALUE`s; each set of them gets its own cache."""
    from scale import embeddings

    folder = generate(size)
    emb = embeddings(folder)
    tag = "".join("-" + kv.replace("=", "_").replace(".", "_") for kv in train_sets)
    work = cache_root() / f"serve-{size}{tag}"
    work.mkdir(parents=True, exist_ok=True)
    model, idx = work / "model", work / "index"
    if not (model / "manifest.json").exists():
        log("training the served model (train.tune=off) ...")
        subprocess.run([*AVREC, "train", str(emb), "-i", str(folder / "interactions.csv"), "-o", str(model),
                        "--set", "train.tune=off", *[x for kv in train_sets for x in ("--set", kv)], "-q"], check=True, stdout=subprocess.DEVNULL)
    if not (idx / "manifest.json").exists():
        log("building the index ...")
        subprocess.run([*AVREC, "index", str(model), "-o", str(idx), "-q"], check=True, stdout=subprocess.DEVNULL)
    new = work / "emb-new"
    if not (new / "manifest.json").exists():
        from avrec.artifacts import Manifest, load_npy, read_jsonl, save_npy, transaction, write_jsonl, write_manifest

        rows = read_jsonl(emb / "items.jsonl")
        c = np.asarray(load_npy(emb / "text.npy"), np.float32)
        rng = np.random.default_rng(1)
        add = c[rng.integers(0, len(c), N_NEW)] + 0.1 * rng.standard_normal((N_NEW, c.shape[1])).astype(np.float32)
        add /= np.linalg.norm(add, axis=1, keepdims=True)
        new_rows = [{**rows[0], "item_id": f"new{j}", "title": f"new{j}"} for j in range(N_NEW)]
        with transaction(new, kind="embeddings") as txn:
            write_jsonl(txn.path / "items.jsonl", rows + new_rows)
            allc = np.concatenate([c, add]).astype(np.float32)
            save_npy(txn.path / "fused.npy", allc)
            save_npy(txn.path / "text.npy", allc)
            save_npy(txn.path / "text_mask.npy", np.ones(len(allc), bool))
            write_manifest(txn.path, Manifest(artifact="embeddings", models={"text": {"name": "generated", "dim": 384}},
                                              counts={"items": len(allc)}, extra={"text_spaces": {}}))
    users = SIZES[size][1]
    return idx, new, users


class Server:
    def __init__(self, idx: Path, events: Path, *extra: str):
        self.log = open(events.with_suffix(".log"), "w")
        self.proc = subprocess.Popen([*AVREC, "serve", str(idx), "--port", "0", "--events", str(events), *extra],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"server did not start: {line}")
        self.url = line
        self.host, self.port = line[len("http://"):].rsplit(":", 1)
        self.port = int(self.port)  # printed once the socket listens (workers too): the warm-up load waits for them

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


async def _request(reader, writer, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    head = f"{method} {target} HTTP/1.1\r\nHost: bench\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.partition(b":")
        if k.lower() == b"content-length":
            length = int(v)
    return status, await reader.readexactly(length)


async def _load(host: str, port: int, clients: int, requests: int, users: int, seed: int,
                until: asyncio.Event | None = None) -> dict:
    """C keep-alive clients, ``requests`` in all (or until ``until`` is set)."""
    rng = random.Random(seed)
    lat: list[float] = []
    failed = {"n": 0, "examples": []}
    left = {"n": requests}

    async def client(j: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (until is None and left["n"] > 0) or (until is not None and not until.is_set()):
                left["n"] -= 1
                target = f"/recommend?user=u{rng.randrange(users)}&k=10"
                t = time.perf_counter()
                try:
                    status, _body = await _request(reader, writer, "GET", target)
                except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
                    failed["n"] += 1
                    failed["examples"].append(repr(e)[:100])
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                lat.append(time.perf_counter() - t)
                if status != 200:
                    failed["n"] += 1
                    if len(failed["examples"]) < 5:
                        failed["examples"].append(f"HTTP {status}")
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(j) for j in range(clients)))
    wall = time.perf_counter() - t0
    a = np.asarray(lat) * 1e3
    return {"clients": clients, "requests": len(lat), "seconds": round(wall, 2), "rps": round(len(lat) / wall, 1),
            "p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3), "failed": failed["n"], "failed_examples": failed["examples"][:5]}


async def _event_lag(host: str, port: int, users: int, trials: int) -> dict:
    reader, writer = await asyncio.open_connection(host, port)
    lags, polls = [], []
    rng = random.Random(7)
    for _ in range(trials):
        u = f"u{rng.randrange(users)}"
        _s, body = await _request(reader, writer, "GET", f"/recommend?user={u}&k=10")
        top = json.loads(body)["items"][0]["item_id"]
        t = time.perf_counter()
        await _request(reader, writer, "POST", "/events", json.dumps({"user_id": u, "item_id": top, "event": "view"}).encode())
        n = 0
        while True:
            n += 1
            _s, body = await _request(reader, writer, "GET", f"/recommend?user={u}&k=10")
            if top not in {it["item_id"] for it in json.loads(body)["items"]}:
                break
        lags.append(time.perf_counter() - t)
        polls.append(n)
    writer.close()
    a = np.asarray(lags) * 1e3
    return {"trials": trials, "p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3), "gets_needed_max": int(max(polls))}


async def _swap(srv: Server, idx: Path, new: Path, users: int, clients: int) -> dict:
    stop = asyncio.Event()
    load = asyncio.create_task(_load(srv.host, srv.port, clients, 0, users, 3, until=stop))
    await asyncio.sleep(2.0)
    t = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*AVREC, "index", "--add", str(new), "-o", str(idx), "-q",
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _out, err = await proc.communicate()
    add_s = time.perf_counter() - t
    if proc.returncode != 0:
        stop.set()
        await load
        raise RuntimeError(f"index --add failed: {err.decode()[-500:]}")
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    t_done = time.perf_counter()
    while True:
        status, _b = await _request(reader, writer, "GET", "/similar?item=new0&k=5")
        if status == 200:
            break
        await asyncio.sleep(0.01)
    servable = time.perf_counter() - t_done
    writer.close()
    await asyncio.sleep(1.0)
    stop.set()
    res = await load
    return {"index_add_seconds": round(add_s, 2), "new_items_servable_after_s": round(servable, 3), **res}


def cli_calls(idx: Path, users: int, n: int) -> dict:
    rng = random.Random(5)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([*AVREC, "recommend", str(idx), "--user", f"u{rng.randrange(users)}", "--json"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    a = np.asarray(times) * 1e3
    return {"calls": n, "p50_ms": round(float(np.median(a)), 1), "rps": round(n / a.sum() * 1e3, 2)}


def report(res: dict) -> str:
    lines = ["# avrec serve under load, against the per-process CLI in the same run", "",
             f"Machine: {res['machine']}.", "",
             f"Reproduce: `python benchmarks/serve.py --clients {','.join(dict.fromkeys(str(r['clients']) for r in res['load']))} "
             f"--requests {res['requests']} --size {res['size']}" + (f" --skip {','.join(res['skip'])}" if res.get("skip") else "")
             + f" --workers {res.get('workers', 1)}"
             + "".join(f" --train-set {kv}" for kv in res.get("train_sets", [])) + "`.", "",
             f"Index: {res['index']['items']} items, {res['index']['users']} users, {res['index']['dim']}-d vectors, "
             f"served by {res['index']['serving']} search (benchmarks/scale_data.py {res['size']}).", "",
             "| server processes | clients | requests | requests/s | p50 ms | p99 ms | max ms | failed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["load"]:
        w = r.get("workers", 1)
        who = f"{w} (the default, serve.workers)" if r.get("default") else f"{w} (--workers {w})"
        lines.append(f"| {who} | {r['clients']} | {r['requests']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['max_ms']} | {r['failed']} |")
    c = res["cli"]
    lines += ["", f"- CLI, one process per call (`avrec recommend --user U --json`): {c['p50_ms']} ms per call, "
              f"{c['rps']} calls/s ({c['calls']} calls)."]
    if res.get("event"):
        e = res["event"]
        lines.append(f"- POST /events to the changed list: p50 {e['p50_ms']} ms, p99 {e['p99_ms']} ms, max {e['max_ms']} ms "
                     f"over {e['trials']} events (the first GET after the 2xx had changed: at most {e['gets_needed_max']} GET).")
    if res.get("swap"):
        s = res["swap"]
        lines.append(f"- `index --add` of {N_NEW} items under {s['clients']} clients: {s['requests']} requests during the "
                     f"run ({s['rps']} /s, p99 {s['p99_ms']} ms), {s['failed']} failed; the add took {s['index_add_seconds']} s "
                     f"and the new items were servable {s['new_items_servable_after_s']} s after it returned.")
    t = res["targets"]
    said = {True: "met", False: "missed", None: "not measured"}
    lines += ["", "Targets (2 cores): " + "; ".join(f"{k}: {said[v]}" for k, v in t.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="S3")
    ap.add_argument("--clients", default="1,16")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--skip", default="")
    ap.add_argument("--name", default="serve")
    ap.add_argument("--workers", default="default,2",
                    help="server processes (avrec serve --workers), comma-separated: the first is the one the event and "
                         "swap runs and the targets use; default: the server's own (serve.workers); 0: one per core")
    ap.add_argument("--set", action="append", default=[], help="avrec serve --set KEY=VALUE (repeatable)")
    ap.add_argument("--train-set", action="append", default=[],
                    help="avrec train --set KEY=VALUE for the served model (repeatable), e.g. train.hybrid.als_factors=128")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    from scale import machine

    idx_src, new, users = build(args.size, args.train_set)
    tmp = Path(tempfile.mkdtemp(prefix="avrec-serve-bench-"))
    idx = tmp / "index"
    shutil.copytree(idx_src, idx)
    man = json.loads((idx / "manifest.json").read_text())
    res = {"machine": machine(), "size": args.size, "requests": args.requests,
           "index": {"items": man["counts"]["items"], "users": man["counts"]["users"], "dim": man["extra"]["dim"],
                     "serving": man["extra"].get("serving", "exact")}}
    sets = [x for kv in args.set for x in ("--set", kv)]
    from avrec.cli.serve import worker_count

    from avrec.config import Config

    counts = [None if x == "default" else int(x) for x in args.workers.split(",")]
    resolved = [worker_count(Config().serve.workers if w is None else w) for w in counts]
    res["workers"], res["server_sets"], res["skip"] = args.workers, args.set, sorted(skip)
    res["train_sets"] = args.train_set
    res["load"] = []
    for n, w in enumerate(counts):
        srv = Server(idx, tmp / f"events-{n}.sqlite", "--set", "serve.access_log=false",
                     *(["--workers", str(w)] if w is not None else []), *sets)
        try:
            for c in [int(x) for x in args.clients.split(",")]:
                asyncio.run(_load(srv.host, srv.port, c, min(2000, args.requests), users, 99))  # warm
                r = asyncio.run(_load(srv.host, srv.port, c, args.requests, users, c))
                r["workers"], r["default"] = resolved[n], w is None
                log(f"{r['workers']} workers, {c} clients: {r['rps']} req/s, p50 {r['p50_ms']} ms, "
                    f"p99 {r['p99_ms']} ms, {r['failed']} failed")
                res["load"].append(r)
            if n == 0 and "event" not in skip:
                res["event"] = asyncio.run(_event_lag(srv.host, srv.port, users, 100))
                log(f"event -> list: {res['event']}")
            if n == 0 and "swap" not in skip:
                res["swap"] = asyncio.run(_swap(srv, idx, new, users, 16))
                log(f"swap: {res['swap']}")
        finally:
            srv.stop()
    res["cli"] = cli_calls(idx_src, users, 10)
    log(f"cli: {res['cli']}")
    at16 = next((r for r in res["load"] if r["clients"] == 16 and r["workers"] == resolved[0]), None)
    # None: not measured in this run (a --skip, or no 16-client load)
    res["targets"] = {
        "p99 <= 10 ms at 16 clients": None if at16 is None else at16["p99_ms"] <= 10,
        ">= 1000 requests/s": None if at16 is None else at16["rps"] >= 1000,
        "event reflected within 50 ms": None if not res.get("event") else res["event"]["p99_ms"] <= 50,
        "0 failed through a swap": None if not res.get("swap") else res["swap"]["failed"] == 0,
    }
    out = ROOT / "benchmarks" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / f"{args.name}.md").write_text(report(res))
    print(report(res))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
