"""`avrec recommend`: recommendations from an index, as a table on a terminal or JSON lines.

Kept light on purpose: numpy and annoy are imported only inside the command, rich only to
draw a table on a terminal, and the text encoder (torch) only for --query.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Optional

import typer

from .common import Common, command

HELP = """Recommend items from an index (a path, a piped path, or the workspace's index/).

Exactly one request: --user ID, --item ID (more like this), --history FILE (a user the
model never saw: item ids, one per line, optionally 'id,weight', CSV-quoted where an id
holds a comma; '-' reads them from stdin), --query TEXT (text search in a content space; with --user, blended with the
user's taste), or --all-users (every user, streamed). --history and --query may be
combined with --user.

Output: a table on a terminal; JSON lines with --json or when stdout is not a terminal
(always for --all-users), one line per recommended item:

  {"user": "42", "rank": 1, "item_id": "v17", "score": 0.8312, "title": "..."}

The first key names the request: "user", "item", "query" (with "user" too when blended) or
"history" (the number of known history items). With --explain each line has "explain":
{"because": history item id, "because_title", "contribution": its share of the score,
"modality": the content modality in which the two items are most alike, "modalities":
{modality: cosine}, "because_you_like": the user's top interest tags and moods (see
avrec profile) that this item carries, e.g. ["surf", "calm"]} (for --item: the modalities
shared with the query item; for --query: the modality searched and the query similarity).
Every explained item whose mood is known also gets "mood": {"valence", "arousal" (in
[-1, 1], null when unknown), "labels": its top mood labels}. Popular fallback lines carry
"source": "popular". Scores are inner products (user/history), cosines (item/query) or
blended z-scores (query with user).

Filters (repeatable, all must hold; = and != take comma-separated alternatives):
modality=video, duration<600, popularity>=10, tag=music (given or predicted tags),
tag!=kids, gtag=music (given tags only), ptag=surf (predicted tags only: a tag that is
also given counts as given), mood=calm,relaxed (one of the item's top mood labels; mood!=
keeps items of unknown mood), valence>0.3, arousal<0 (numbers in [-1, 1]; an unknown
duration, valence or arousal never passes a numeric filter). Mood labels: happy,
excited, tense, angry, sad, gloomy, calm, relaxed, neutral, plus any label the index's
items carry; another name is an error listing them.

Examples:

  avrec recommend --user 42

  avrec recommend idx/ --user 42 --k 20 --filter modality=video --filter "duration<600" --json

  avrec recommend --user 42 --filter mood=calm --filter "valence>0.3" --explain

  printf 'v1\\nv7\\n' | avrec recommend idx/ --history - --explain

  avrec recommend --item v17 --diversity 0.3

  avrec recommend --query "calm piano" --user 42

  avrec recommend idx/ --all-users --k 10 > recs.jsonl

Config keys (section recommend): k, exclude_seen, fallback, diversity, mmr_pool, query_weight.
Exit codes: 2 for an unknown user (unless --fallback popular) or item, or a bad filter
(an unknown field, mood label or modality).
"""

Opt = typer.Option


@command("recommend", help=HELP, no_args_is_help=False)
def recommend_cmd(
    common: Common,
    index: Annotated[Optional[str], typer.Argument(help="Index directory ('-': read the path from stdin).",
                                                   show_default=False)] = None,
    user: Annotated[Optional[str], Opt("--user", "-u", help="User id.", show_default=False)] = None,
    item: Annotated[Optional[str], Opt("--item", "-i", help="Item id: more like this.", show_default=False)] = None,
    history: Annotated[Optional[str], Opt("--history", help="File of item ids (id or id,weight per line); "
                                          "'-': stdin.", show_default=False)] = None,
    query: Annotated[Optional[str], Opt("--query", "-Q", help="Free-text query.", show_default=False)] = None,
    all_users: Annotated[bool, Opt("--all-users", help="Every user of the model, as JSON lines.")] = False,
    k: Annotated[Optional[int], Opt("--k", "-k", help="Items per request [recommend.k].", show_default=False)] = None,
    exclude_seen: Annotated[Optional[bool], Opt("--exclude-seen/--include-seen",
                                                help="Drop items the user has seen [recommend.exclude_seen].",
                                                show_default=False)] = None,
    fallback: Annotated[Optional[str], Opt("--fallback", help="none | popular: what an unknown user gets "
                                           "[recommend.fallback].", show_default=False)] = None,
    candidates: Annotated[Optional[str], Opt("--candidates", help="File of item ids to rank within (one per line).",
                                             show_default=False)] = None,
    filters: Annotated[Optional[list[str]], Opt("--filter", "-f", help="Keep items matching field<op>value "
                                                "(repeatable).", show_default=False)] = None,
    diversity: Annotated[Optional[float], Opt("--diversity", help="MMR lambda in [0, 1] on content vectors; 0: off "
                                              "[recommend.diversity].", show_default=False)] = None,
    explain: Annotated[bool, Opt("--explain", help="Say which history item, modality and interests (tags, moods) "
                                 "make each item relevant, and each item's mood.")] = False,
    modality: Annotated[Optional[str], Opt("--modality", "-m", help="Content space for --item / --query "
                                           "(video, audio, text).", show_default=False)] = None,
    as_json: Annotated[bool, Opt("--json", help="JSON lines even on a terminal.")] = False,
) -> None:
    log = common.log
    from ..errors import AvrecError, InputError

    cfg = common.load()
    modes = [name for name, on in (("--user", user is not None and history is None and query is None),
                                   ("--item", item is not None), ("--history", history is not None),
                                   ("--query", query is not None), ("--all-users", all_users)) if on]
    if len(modes) != 1:
        raise InputError("give exactly one of --user, --item, --history, --query, --all-users "
                         "(--history and --query may add --user)" + (f"; got {' '.join(modes)}" if modes else ""))
    if history == "-" and candidates == "-":
        raise InputError("only one of --history and --candidates can read stdin")
    _limit_threads(cfg.runtime.threads, batch=all_users)

    from ..artifacts import resolve_input
    from ..recommend import Options, Recommender, read_id_lines
    from ..index import Index

    work = common.work(cfg)
    path = resolve_input(index, stage="recommend", work=work, use_stdin=history != "-" and candidates != "-")
    opts = Options(
        k=cfg.recommend.k if k is None else k,
        exclude_seen=cfg.recommend.exclude_seen if exclude_seen is None else exclude_seen,
        fallback=cfg.recommend.fallback if fallback is None else fallback,
        filters=list(filters or []),
        candidates=[i for i, _ in _read_ids(candidates, read_id_lines)] if candidates else None,
        diversity=cfg.recommend.diversity if diversity is None else diversity,
        mmr_pool=cfg.recommend.mmr_pool,
        explain=explain,
        modality=modality,
        query_weight=cfg.recommend.query_weight,
        device=cfg.runtime.device,
        log=log,
    )
    table = sys.stdout.isatty() and not as_json and not all_users
    hist = None
    if history is not None:
        hist = _read_ids(history, read_id_lines)
        if not hist:
            raise InputError(f"--history {history}: no item ids found (one id per line)")

    from ..privacy import pseudonymizer

    pid = pseudonymizer(cfg)  # the model knows users by HMAC with privacy.pseudonymize
    uid = pid(user.strip()) if user is not None else None  # ids are read stripped, everywhere

    def answer(rec: Recommender) -> list[dict[str, Any]]:
        if item is not None:
            return rec.for_item(item)
        try:
            if hist is not None:
                out = rec.for_history(hist, user_id=uid)
            elif query is not None:
                out = rec.for_query(query, user_id=uid)
            else:
                out = rec.for_user(uid)  # type: ignore[arg-type]
        except InputError as e:  # name the user as given, not by the pseudonym
            if uid is not None and uid != user and uid in str(e):
                raise InputError(str(e).replace(uid, str(user))) from None
            raise
        for r in out:  # lines name the user as given, never by the stored pseudonym
            if "user" in r and uid is not None:
                r["user"] = user
        return out

    # `index --add` may swap the index in while this runs: answer again from the new one
    for attempt in range(3):
        idx = Index(path)
        opts.erased = erased_users(cfg, idx, None if all_users else uid)
        rec = Recommender(idx, opts)
        last = attempt == 2
        try:
            if all_users:
                rec.pin()  # everything a batch reads, opened before the first line is written
                if not rec.index.current() and not last:
                    continue
                write = sys.stdout.write
                for text in rec.all_users_jsonl():
                    write(text)
                sys.stdout.flush()
                return
            rows = answer(rec)
        except (AvrecError, OSError, ValueError, IndexError):
            if last or rec.index.current():
                raise
            continue
        if rec.index.current() or last:
            break
    if not rows:
        log("recommend: nothing to recommend (every item was filtered out or seen)")
    if table:
        _table(rows)
    else:
        _stream([rows])


def erased_users(cfg, idx, uid: str | None):
    """(n_users,) bool of the index's users erased (avrec forget, DELETE /users) after its
    model was trained, read from the configured event store (serve.events, else the
    workspace's events.sqlite); None when there is none or nobody was. With ``uid`` only that
    user is looked up (one query; a digest per user would cost ~1 s per million users)."""
    import numpy as np

    from ..serve.events import EventStore, default_store_path, is_store

    store = default_store_path(cfg)
    if not (store.is_file() and is_store(store)):
        return None
    trained_at = float((idx.extra.get("events") or {}).get("trained_at") or 0.0)
    st = EventStore(store, pseudonyms="any", create=False)
    try:
        if uid is not None:
            at, row = st.erased_at(uid), idx.users.row(uid)
            if at is None or at < trained_at or row is None:
                return None
            mask = np.zeros(idx.n_users, bool)
            mask[row] = True
            return mask
        digests = st.erased_digests(since=trained_at)
    finally:
        st.close()
    if not digests:
        return None
    from ..privacy import erasure_digest

    mask = np.fromiter((erasure_digest(u.decode("utf-8")) in digests for u in idx.users.ids.tolist()), bool,
                       count=idx.n_users)
    return mask if mask.any() else None


def _limit_threads(threads: int, *, batch: bool) -> None:
    """One BLAS thread for single requests: a matrix-vector product gains nothing from more,
    and on a busy machine thread hand-offs cost milliseconds. Only effective before numpy loads."""
    n = str(threads) if threads > 0 else (None if batch else "1")
    if n is None or "numpy" in sys.modules:
        return
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, n)


def _read_ids(arg: str, parse: Any) -> list[tuple[str, float]]:
    from ..errors import InputError

    if arg == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("'-' given but stdin is a terminal; pipe item ids in (one per line)")
        return parse(sys.stdin)
    try:
        with open(arg, encoding="utf-8") as f:
            return parse(f)
    except FileNotFoundError:
        raise InputError(f"file not found: {arg}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {arg}: {e}") from None


def _stream(batches: Any) -> None:
    import json

    write = sys.stdout.write
    for rows in batches:
        if rows:
            write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    sys.stdout.flush()


def _table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    key = next(iter(rows[0]))
    t = Table(title=f"{key} {rows[0][key]}", title_justify="left")
    for col, just in (("#", "right"), ("item", "left"), ("title", "left"), ("score", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    has_ex = "explain" in rows[0]
    if has_ex:
        t.add_column("why")
    for r in rows:
        cells = [str(r["rank"]), str(r["item_id"]), r.get("title") or "", f"{r['score']:.4f}"]
        if has_ex:
            cells.append(_why(r["explain"]))
        t.add_row(*cells)
    Console().print(t)


def _why(ex: dict[str, Any]) -> str:
    if ex.get("reason") == "popular":
        return f"popular ({ex.get('popularity', 0):g} interactions)"
    parts = []
    if ex.get("because") is not None:
        parts.append(f"like {ex['because']}" + (f" ({ex['because_title']})" if ex.get("because_title") else ""))
    if ex.get("modality"):
        sims = ex.get("modalities") or {}
        sim = sims.get(ex["modality"], ex.get("query_similarity"))
        parts.append(f"{ex['modality']}" + (f" {sim:.2f}" if isinstance(sim, (int, float)) else ""))
    if ex.get("because_you_like"):
        parts.append("because you like: " + ", ".join(ex["because_you_like"]))
    mood = ex.get("mood") or {}
    if mood.get("labels"):
        parts.append("mood " + "/".join(mood["labels"]))
    return ", ".join(parts) or "-"
