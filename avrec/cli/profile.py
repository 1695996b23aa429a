"""`avrec profile`: a user's interests (tags, moods, modalities, content clusters) from an index.

Kept light like recommend: numpy only inside the command, rich only to draw a table on a
terminal; never torch, transformers, librosa or OpenCV.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from .common import Common, command

HELP = """Show what a user's history is about, from an index (a path, a piped path, or the
workspace's index/).

One request: --user ID (one profile), or --all-users (every user the model knows, as JSON
lines, streamed). The history is the user's training interactions as the index stores them
(weights uniform unless the index stores interaction weights).

Output: a table on a terminal; JSON with --json or when stdout is not a terminal (always
JSON lines for --all-users), one object per user:

  {"user": "u001", "history": 12,
   "tags": [{"tag": "surf", "weight": 0.42, "predicted": false, "items": ["v1", "v3"]}],
   "moods": [{"label": "calm", "weight": 0.31, "items": ["v1"]}],
   "valence": 0.3, "arousal": -0.4,
   "modalities": [{"modality": "video", "weight": 0.9, "coherence": 0.61}],
   "clusters": [{"cluster": 3, "name": "ocean, surf", "weight": 0.5, "items": ["v1", "v3", "v9"]}]}

Weights are shares of the history's weight: a given tag counts an item's weight, a
predicted tag (from avrec embed's understand step) the weight times its score; "predicted"
is true when no history item was given the tag. Moods are the items' top mood labels
(weight times label score); valence and arousal in [-1, 1] are weighted means over the
items whose value is known (null: none known). "coherence" (content modalities): the norm
of the mean unit content vector of the history in that modality (1: all alike). Clusters
are the index's content clusters (k-means at avrec index), named by their top tags. Each
list is heaviest first, at most --top entries, with up to 3 supporting item ids.

Examples:

  avrec profile --user u001

  avrec profile idx/ --user u001 --json

  avrec profile idx/ --all-users > profiles.jsonl

  printf 'v1\nv7,2\n' | avrec profile idx/ --history -

With privacy.pseudonymize, --user is mapped through the key like recommend does and printed
as given; --all-users prints the stored pseudonyms.
Exit codes: 2 for an unknown user or a bad option.
"""

Opt = typer.Option


@command("profile", help=HELP, no_args_is_help=False)
def profile_cmd(
    common: Common,
    index: Annotated[Optional[str], typer.Argument(help="Index directory ('-': read the path from stdin).",
                                                   show_default=False)] = None,
    user: Annotated[Optional[str], Opt("--user", "-u", help="User id.", show_default=False)] = None,
    all_users: Annotated[bool, Opt("--all-users", help="Every user of the model, as JSON lines.")] = False,
    history: Annotated[Optional[str], Opt("--history", help="A history the model never saw: item ids, one per "
                                          "line, optionally 'id,weight'; '-': stdin.", show_default=False)] = None,
    top: Annotated[int, Opt("--top", "-n", help="Entries per list (tags, moods, modalities, clusters).")] = 10,
    as_json: Annotated[bool, Opt("--json", help="JSON even on a terminal.")] = False,
) -> None:
    from ..errors import InputError

    cfg = common.load()
    modes = [m for m, on in (("--user", user is not None), ("--all-users", all_users), ("--history", history is not None))
             if on]
    if len(modes) != 1:
        raise InputError("give exactly one of --user, --all-users, --history" + (f"; got {' '.join(modes)}" if modes else ""))
    if top < 1:
        raise InputError(f"--top must be at least 1; got {top}")

    import json

    from ..artifacts import resolve_input
    from ..index import Index
    from ..privacy import pseudonymizer
    from ..profile import all_profiles, user_profile

    path = resolve_input(index, stage="profile", work=common.work(cfg), use_stdin=history != "-")
    idx = Index(path)
    if history is not None:
        import numpy as np

        from ..profile import profile
        from ..recommend import read_id_lines

        if history == "-":
            if sys.stdin is None or sys.stdin.isatty():
                raise InputError("--history -: stdin is a terminal; pipe item ids in (one per line)")
            pairs = read_id_lines(sys.stdin)
        else:
            try:
                with open(history, encoding="utf-8") as f:
                    pairs = read_id_lines(f)
            except FileNotFoundError:
                raise InputError(f"--history file not found: {history}") from None
        known = [(idx.items.row(i), w) for i, w in pairs]
        known = [(r, w) for r, w in known if r is not None and w > 0]
        if not known:
            raise InputError("none of the --history items is in the index; pass item ids from the catalogue")
        p = {"history_file": history, **profile(idx, np.asarray([r for r, _ in known], np.int64),
                                                 np.asarray([w for _, w in known], np.float64), top=top)}
        if sys.stdout.isatty() and not as_json:
            _table({"user": history, **p})
        else:
            print(json.dumps(p, ensure_ascii=False), flush=True)
        return
    if all_users:
        write = sys.stdout.write
        for p in all_profiles(idx, top=top):
            write(json.dumps(p, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    pid = pseudonymizer(cfg)  # the model knows users by HMAC with privacy.pseudonymize
    from .recommend import erased_users

    uid = pid(user.strip())  # type: ignore[union-attr]
    if erased_users(cfg, idx, uid) is not None:
        raise InputError(f"user {user!r} was erased (avrec forget) after this model was trained; their history is not "
                         "shown, and they leave the model at the next train")
    p = user_profile(idx, uid, top=top, shown_as=user)
    if sys.stdout.isatty() and not as_json:
        _table(p)
    else:
        print(json.dumps(p, ensure_ascii=False), flush=True)


def _table(p: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    mood = ", ".join(f"{k} {p[k]:+.2f}" for k in ("valence", "arousal") if p.get(k) is not None)
    con.print(f"user {p['user']}: {p['history']} items in the history" + (f"; {mood}" if mood else ""))
    sections = (
        ("tags", "tag", lambda e: e["tag"] + (" (predicted)" if e.get("predicted") else "")),
        ("moods", "mood", lambda e: e["label"]),
        ("modalities", "modality", lambda e: e["modality"] + (f" (coherence {e['coherence']:.2f})"
                                                              if e.get("coherence") is not None else "")),
        ("clusters", "cluster", lambda e: f"{e['cluster']}: {e['name']}"),
    )
    for key, title, label in sections:
        entries = p.get(key) or []
        if not entries:
            continue
        t = Table(title=key, title_justify="left")
        t.add_column(title)
        t.add_column("weight", justify="right")
        t.add_column("items")
        for e in entries:
            t.add_row(label(e), f"{e['weight']:.2f}", ", ".join(e.get("items") or []))
        con.print(t)
