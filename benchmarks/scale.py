"""avrec at platform sizes against implicit, in the same run (issue 12).

For each size of benchmarks/scale_data.py (S1 5k items / 20k users / 0.5M interactions,
S2 20k/100k/2M, S3 100k/300k/5M, S4 500k/1M/20M) and each stage, the wall time and peak RSS
of one process, measured with /usr/bin/time:

- load: avrec's interactions loader, beside pyarrow.csv.read_csv of the same file;
- train: `avrec train` with the default model and no flags (the hybrid; `auto` picks its
  solver), beside implicit's ALS fit (64 factors, 15 iterations, confidence 1 + 10 w) on
  the same matrix: the fit alone is timed inside that process;
- index: `avrec index` with its recall@10 against exact search on the model's vectors;
- recommend --user: one whole process; --all-users: the whole stream to /dev/null, beside
  implicit's batched recommend (N=10, filtering seen items) for every user;
- quality: `avrec evaluate --models popular,mf,hybrid --protocol random --k 10`: mf is
  implicit's ALS, so the hybrid and implicit are scored on one split by one metric code.

The item content is the generated 384-d vectors, written as an embeddings artifact (the
shortcut is the benchmark's: avrec embed would give the same artifact from `npy:`).

Usage: python benchmarks/scale.py [--sizes S1,S2] [--skip load,train,index,quality,implicit-recommend]
(implicit-recommend: time implicit's fit alone, not its batched recommend for every user,
which takes ~20 minutes at S4)
Writes benchmarks/results/scale.json and scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale_data import SIZES, generate  # noqa: E402

PY = sys.executable
AVREC = [PY, "-m", "avrec"]


def timed(cmd: list[str], *, stdout=subprocess.DEVNULL) -> dict:
    """Wall seconds and peak RSS (MB) of one process, and its stdout when captured."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=stdout, stderr=subprocess.PIPE, text=True,
                       stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed: {r.stderr[-800:]}")
    rss_kb = int(r.stderr.strip().splitlines()[-1])
    out = {"seconds": round(wall, 2), "peak_mb": round(rss_kb / 1024, 1)}
    if stdout is subprocess.PIPE:
        out["stdout"] = r.stdout
    return out


def embeddings(folder: Path) -> Path:
    """The generated content as an embeddings artifact (once)."""
    import numpy as np

    from avrec.artifacts import Manifest, transaction, write_jsonl, write_manifest, save_npy

    out = folder / "embeddings"
    if (out / "manifest.json").exists():
        return out
    content = np.load(folder / "content.npy")
    ids = (folder / "content.npy.ids.txt").read_text().split()
    with transaction(out, kind="embeddings") as txn:
        write_jsonl(txn.path / "items.jsonl", ({"item_id": i, "title": i, "description": "", "tags": [],
                                                 "modalities": ["text"], "duration": None, "path": None} for i in ids))
        save_npy(txn.path / "fused.npy", content)
        save_npy(txn.path / "text.npy", content)
        save_npy(txn.path / "text_mask.npy", np.ones(len(ids), bool))
        write_manifest(txn.path, Manifest(artifact="embeddings", models={"text": {"name": "generated", "dim": 384}},
                                          counts={"items": len(ids)}, extra={"text_spaces": {}}))
    return out


IMPLICIT = r"""
import sys, time, json, numpy as np, scipy.sparse as sp, pyarrow.csv as pc
from threadpoolctl import threadpool_limits
t = pc.read_csv(sys.argv[1], convert_options=pc.ConvertOptions(column_types={"user_id": "string", "item_id": "string"}))
u = np.array([int(x[1:]) for x in t.column("user_id").to_pylist()]); i = np.array([int(x[1:]) for x in t.column("item_id").to_pylist()])
m = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(u.max() + 1, int(sys.argv[2])))
c = m.copy(); c.data = 1 + 10.0 * c.data
from implicit.cpu.als import AlternatingLeastSquares
with threadpool_limits(1, "blas"):
    model = AlternatingLeastSquares(factors=64, regularization=0.01, alpha=1.0, iterations=15, random_state=0)
    t0 = time.perf_counter(); model.fit(c, show_progress=False); fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    users = np.arange(m.shape[0]) if sys.argv[3] == "1" else np.arange(0)
    for s in range(0, len(users), 10000):
        model.recommend(users[s:s + 10000], m[s:s + 10000], N=10, filter_already_liked_items=True)
    rec = time.perf_counter() - t0
print(json.dumps({"fit_seconds": round(fit, 2), "recommend_all_seconds": round(rec, 2) if len(users) else None,
                  "users": int(m.shape[0])}))
"""


def run_size(name: str, skip: set[str], log) -> dict:
    folder = generate(name)
    n_items, n_users, nnz = SIZES[name]
    emb = embeddings(folder)
    csv = folder / "interactions.csv"
    res: dict = {"size": name, "items": n_items, "users": n_users,
                 "interactions": sum(1 for _ in open(csv)) - 1}
    work = folder / "run"
    if "load" not in skip:
        res["load_avrec"] = timed([PY, "-c", "import sys; from avrec.data.interactions import load_interactions; "
                                   "ids = open(sys.argv[2]).read().split(); load_interactions(sys.argv[1], catalogue=ids)",
                                   str(csv), str(folder / "content.npy.ids.txt")])
        res["load_pyarrow"] = timed([PY, "-c", "import sys, pyarrow.csv as pc; pc.read_csv(sys.argv[1])", str(csv)])
        log(f"{name} load: avrec {res['load_avrec']}, pyarrow {res['load_pyarrow']}")
    if "train" not in skip:
        res["train_avrec"] = timed([*AVREC, "train", str(emb), "--interactions", str(csv), "-o", str(work / "model"), "-q"])
        man = json.loads((work / "model" / "manifest.json").read_text())
        res["train_avrec"]["solver"] = (man["extra"].get("info") or {}).get("solver")
        res["train_avrec"]["fit_seconds"] = man["extra"].get("fit_seconds")  # tuning included
        tuned = man["extra"].get("tuned") or {}
        res["train_avrec"]["tune"] = {k: tuned.get(k) for k in ("seconds", "fits", "chosen", "stopped", "users_share",
                                                               "warm_ndcg", "cold_ndcg", "skipped")}
        imp = timed([PY, "-c", IMPLICIT, str(csv), str(n_items), "0" if "implicit-recommend" in skip else "1"],
                    stdout=subprocess.PIPE)
        res["implicit"] = {**json.loads(imp.pop("stdout")), **imp}
        log(f"{name} train: avrec {res['train_avrec']}, implicit {res['implicit']}")
    if "index" not in skip and (work / "model" / "manifest.json").exists():
        res["index"] = timed([*AVREC, "index", str(work / "model"), "-o", str(work / "index"), "-q"])
        extra = json.loads((work / "index" / "manifest.json").read_text())["extra"]
        res["index"].update(recall_at_10=extra["recall_at_10"], serving=extra["serving"],
                            serving_batch=extra["serving_batch"], search_k=extra.get("search_k"),
                            served_recall_at_10=extra.get("served_recall_at_10"))
        res["recommend_user"] = timed([*AVREC, "recommend", str(work / "index"), "--user", "u1", "--json"])
        res["recommend_all"] = timed([*AVREC, "recommend", str(work / "index"), "--all-users", "--k", "10"])
        res["recommend_all"]["ms_per_user"] = round(1000 * res["recommend_all"]["seconds"] / n_users, 3)
        log(f"{name} index {res['index']}; recommend --user {res['recommend_user']}; --all-users {res['recommend_all']}")
    if "quality" not in skip:
        ev = timed([*AVREC, "evaluate", str(emb), "--interactions", str(csv), "--models", "popular,mf,hybrid",
                    "--protocol", "random", "--k", "10", "-o", str(work / "evaluation"), "-q"])
        rows = json.loads((work / "evaluation" / "metrics.json").read_text())["protocols"]["random"]["models"]
        res["quality"] = {m: round(r["metrics"]["10"]["ndcg"], 4) for m, r in rows.items()}
        res["quality"]["seconds"] = ev["seconds"]
        log(f"{name} quality (NDCG@10, random split): {res['quality']}")
    return res


def machine() -> str:
    """The machine as movielens.py describes it (one description for every benchmark report)."""
    from movielens import machine as describe

    m = describe()
    libs = ", ".join(f"{k} {v}" for k, v in m["libs"].items())
    return (f"{m['cpu']}, {m['cores']} cores, {m['ram']} RAM; python {m['python']}, {libs}; load average at start "
            f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def report(results: list[dict], info: str) -> str:
    lines = ["# avrec at scale, against implicit in the same run", "", f"Machine: {info}.", "",
             "Reproduce: `python " + " ".join(["benchmarks/scale.py", *sys.argv[1:]]) + "`.", "",
             "| size | items | users | interactions | load avrec s (MB) | load pyarrow s | train avrec s (MB), solver | "
             "implicit ALS fit s | index s, annoy recall@10 (search_k), served by, served recall | recommend --user s | --all-users ms/user | implicit batch ms/user |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        g = lambda k, f: f(r[k]) if k in r else "–"  # noqa: E731
        solver = (r.get("train_avrec", {}).get("solver") or {}).get("chosen", "")
        tune = (r.get("train_avrec", {}).get("tune") or {})
        if tune.get("seconds") is not None:
            solver += f", tune {tune['seconds']} s / {tune['fits']} fits"
        imp = r.get("implicit", {})
        lines.append(" | ".join([
            f"| {r['size']}", str(r["items"]), str(r["users"]), str(r["interactions"]),
            g("load_avrec", lambda x: f"{x['seconds']} ({x['peak_mb']:.0f})"), g("load_pyarrow", lambda x: str(x["seconds"])),
            g("train_avrec", lambda x: f"{x['seconds']} ({x['peak_mb']:.0f}), {solver}"),
            str(imp.get("fit_seconds", "–")),
            g("index", lambda x: f"{x['seconds']}, {x['recall_at_10']} ({x.get('search_k')}), {x['serving']}, "
                                 f"{x.get('served_recall_at_10', '–')}"),
            g("recommend_user", lambda x: str(x["seconds"])),
            g("recommend_all", lambda x: str(x["ms_per_user"])),
            f"{1000 * imp['recommend_all_seconds'] / imp['users']:.3f}" if imp.get("recommend_all_seconds") else "–",
        ]) + " |")
    lines += ["", "Quality: NDCG@10 on avrec evaluate's random split (20% of each user's interactions held out; "
              "mf is implicit's ALS with 64 factors):", ""]
    for r in results:
        if "quality" in r:
            q = r["quality"]
            lines.append(f"- {r['size']}: hybrid {q.get('hybrid')}, implicit ALS {q.get('mf')}, popular {q.get('popular')}")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="S1,S2")
    ap.add_argument("--skip", default="")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--name", default="scale", help="results file stem (NAME.json, NAME.md)")
    args = ap.parse_args()
    info = machine()
    skip = {s for s in args.skip.split(",") if s}
    results = [run_size(n, skip, lambda m: print(m, file=sys.stderr, flush=True)) for n in args.sizes.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps({"machine": info, "results": results}, indent=2))
    (out / f"{args.name}.md").write_text(report(results, info))
    print(out / f"{args.name}.md")


if __name__ == "__main__":
    main()
