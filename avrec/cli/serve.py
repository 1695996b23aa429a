"""`avrec serve`: the HTTP server (FastAPI under uvicorn) over an index and the event store."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Common, command

HELP = """Serve recommendations over HTTP from an index, taking live events.

One long-lived process: the index memory-mapped once, the text encoder loaded on the first
/search and kept, events appended to an SQLite event store (fsynced before the 2xx) and
folded into the very next answer for that user. `avrec index --add` swaps the index while
it runs: the new version is loaded within serve.poll_s and no request fails. OpenAPI docs
at /docs.

Endpoints:

  GET  /recommend?user=U&k=10[&filter=..][&diversity=..][&explain=true][&candidates=a,b]
                 [&exclude_seen=false][&fallback=popular]
  POST /recommend {"history": ["v1", {"item_id": "v7", "weight": 2}], "k": 10[, "user": U]}
  GET  /similar?item=I[&modality=audio]      GET /search?q=TEXT[&user=U]
  POST /events {"user_id", "item_id"[, "event"][, "weight"][, "timestamp"]} or a list
  DELETE /users/{id}   (erasure)             GET /health   GET /metrics (Prometheus)

Answers: {"user": "42", "k": 10, "index": BUILD, "items": [{"item_id", "rank", "score",
"title", ...}]}. Errors: {"error": "one line"} with 401, 404 (unknown user or item, unless
fallback=popular), 413 (body over serve.max_body_bytes), 422 (a bad parameter, named) or
429 (over serve.rate_limit, with Retry-After).

Access: binds 127.0.0.1 by default. With --token-file, or on any non-loopback address
(where a token is required), POST /events and DELETE /users need
`Authorization: Bearer <token>`; serve.auth=all extends that to reads.
--tls-cert/--tls-key serve HTTPS directly (or terminate TLS at a reverse proxy).
serve.rate_limit=R limits each client address (X-Forwarded-For from a local proxy) to R
requests a second, with bursts of serve.rate_burst; /health and /metrics are never limited.

Examples:

  avrec serve                                   # the workspace's index/, port 8000

  avrec serve idx/ --port 9000 --events /var/lib/avrec/events.sqlite

  avrec serve idx/ --host 0.0.0.0 --token-file /etc/avrec/token --workers 2

  avrec serve idx/ --tls-cert cert.pem --tls-key key.pem --set serve.rate_limit=50

  curl -s 'localhost:8000/recommend?user=42&k=5'

  curl -s -XPOST localhost:8000/events -d '{"user_id": "42", "item_id": "v17", "event": "like"}'

Config keys (section serve): host, port, events, poll_s, workers, auth, token_file, max_body_bytes,
max_events, max_k, max_history, access_log, event_weights, rate_limit, rate_burst, tls_cert,
tls_key; privacy.pseudonymize, key_file.
Exit codes: 2 for a missing index, a bad address, a non-loopback bind without a token, or a
missing TLS file.
"""

Opt = typer.Option


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str) -> str:
    from ..errors import InputError

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"--token-file {path}: not found; write a token into it, e.g. "
                         "python -c 'import secrets; print(secrets.token_urlsafe(32))' > token")
    tok = p.read_text(encoding="utf-8").strip()
    if len(tok) < 16 or any(c.isspace() for c in tok):
        raise InputError(f"--token-file {path}: the token must be at least 16 characters with no spaces")
    return tok


def tls_files(cert: str | None, key: str | None) -> dict[str, str]:
    """uvicorn's ssl_certfile/ssl_keyfile, both or neither, each an existing file."""
    from ..errors import InputError

    if not cert and not key:
        return {}
    if not (cert and key):
        raise InputError("--tls-cert and --tls-key go together: pass both (a PEM certificate and its private key)")
    for flag, f in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(f).expanduser().is_file():
            raise InputError(f"{flag} {f}: not found; pass a PEM file (openssl req -x509 -newkey rsa:2048 -nodes "
                             "-keyout key.pem -out cert.pem -subj /CN=localhost makes a self-signed pair)")
    return {"ssl_certfile": str(Path(cert).expanduser()), "ssl_keyfile": str(Path(key).expanduser())}


@command("serve", help=HELP, no_args_is_help=False)
def serve_cmd(
    common: Common,
    index: Annotated[Optional[str], typer.Argument(help="Index directory ('-': read the path from stdin).",
                                                   show_default=False)] = None,
    host: Annotated[Optional[str], Opt("--host", help="Address to bind [serve.host].", show_default=False)] = None,
    port: Annotated[Optional[int], Opt("--port", "-p", help="Port [serve.port]; 0 picks a free one.",
                                       show_default=False)] = None,
    events: Annotated[Optional[str], Opt("--events", help="Event store (SQLite) [serve.events, else "
                                         "<workdir>/events.sqlite].", show_default=False)] = None,
    no_events: Annotated[bool, Opt("--no-events", help="Serve read-only, without an event store.")] = False,
    token_file: Annotated[Optional[str], Opt("--token-file", help="File holding the bearer token [serve.token_file].",
                                             show_default=False)] = None,
    workers: Annotated[Optional[int], Opt("--workers", min=0, max=64, help="Server processes sharing the port and the "
                                          "event store [serve.workers: 1]; 0: one per usable core, at most 8.",
                                          show_default=False)] = None,
    tls_cert: Annotated[Optional[str], Opt("--tls-cert", help="PEM certificate: serve HTTPS [serve.tls_cert].",
                                           show_default=False)] = None,
    tls_key: Annotated[Optional[str], Opt("--tls-key", help="PEM private key of --tls-cert [serve.tls_key].",
                                          show_default=False)] = None,
) -> None:
    from ..artifacts import resolve_input
    from ..errors import InputError
    from ..serve.app import settings_from_config
    from ..serve.events import default_store_path

    cfg = common.load()
    host = host if host is not None else cfg.serve.host
    port = port if port is not None else cfg.serve.port
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}: must be in 0..65535 (0 picks a free one)")
    token_file = token_file or cfg.serve.token_file
    token = read_token(token_file) if token_file else None
    if not _loopback(host) and token is None:
        raise InputError(f"--host {host} is not a loopback address: pass --token-file so that writes need a bearer "
                         "token (or bind 127.0.0.1 behind a reverse proxy)")
    tls = tls_files(tls_cert or cfg.serve.tls_cert, tls_key or cfg.serve.tls_key)
    path = resolve_input(index, stage="serve", work=common.work(cfg))
    if not (path / "manifest.json").exists():
        raise InputError(f"{path} is not an index (no manifest.json); build one with avrec index")
    store = None
    if not no_events:
        store = Path(events) if events else default_store_path(cfg)
        if not store.parent.exists():
            store.parent.mkdir(parents=True, exist_ok=True)
    s = settings_from_config(cfg, path.resolve(), token=token, events=str(store.resolve()) if store else None)
    import uvicorn

    from ..serve.app import create_app

    log = common.log
    kw = dict(host=host, port=port, access_log=False, log_level="warning" if common.quiet else "info",
              timeout_graceful_shutdown=30, server_header=False, **tls)
    scheme = "https" if tls else "http"
    workers = worker_count(workers if workers is not None else cfg.serve.workers)
    if workers > 1:
        import atexit
        import shutil
        import tempfile

        # the workers' metrics meet in files here, so /metrics on any worker counts all of them
        mdir = tempfile.mkdtemp(prefix="avrec-serve-metrics-")
        atexit.register(shutil.rmtree, mdir, True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = mdir
        # the supervisor's own pid, not each worker's getppid() at its start: a worker spawned
        # just as the supervisor died would read init's pid there and never notice
        os.environ["AVREC_SERVE"] = json.dumps({**s.__dict__, "parent_pid": os.getpid()})
        create_app(s, log=log)  # fail here, once, with a clear line if anything is wrong
        from uvicorn.supervisors import Multiprocess

        # what uvicorn.run(workers=N) does, with the URL printed once the shared socket is
        # bound and listening: a request sent from then on waits in its backlog for a worker,
        # and port 0 is the kernel's choice, not a probe's that another process could take
        config = uvicorn.Config("avrec.serve.app:app_from_env", factory=True, workers=workers, **kw)
        sock = bind(host, port)
        sock.listen(config.backlog)  # the workers listen on it too; from here connections queue
        h, p = sock.getsockname()[:2]
        print(f"{scheme}://{h if ':' not in h else '[' + h + ']'}:{p}", flush=True)
        log(f"serve: {workers} worker processes on {scheme}://{h}:{p} (serve.workers)")
        try:
            Multiprocess(config, sockets=[sock]).run()
        finally:
            sock.close()
        return
    sock = bind(host, port)  # before the index loads: a taken port is one line, exit 2
    app = create_app(s, log=log)
    config = uvicorn.Config(app, **kw)
    server = uvicorn.Server(config)
    _announce(server, host, log, scheme=scheme)
    import signal

    # uvicorn drains the requests in flight on SIGTERM, then raises the signal again: with
    # this handler in place that ends the process with 0 (a clean stop), not "killed by 15"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def bind(host: str, port: int):
    """A bound TCP socket for ``host:port`` (what uvicorn would bind), or InputError naming the
    fix: uvicorn itself logs a taken port over several lines and exits 3 (its startup failure),
    and takes port 70000 as 70000 mod 65536."""
    import socket

    from ..errors import InputError

    try:
        family, kind, proto, _name, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise InputError(f"--host {host}: cannot resolve it ({e}); pass an address such as 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart needs no TIME_WAIT wait
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        why = "is in use" if e.errno == 98 else f"cannot be bound ({e.strerror or e})"
        raise InputError(f"{host}:{port} {why}; pass another --port (0 picks a free one) or stop what holds it"
                         ) from None
    sock.set_inheritable(True)
    return sock


def worker_count(n: int) -> int:
    """Server processes for ``serve.workers`` / ``--workers`` ``n``; 0: one per usable core, at
    most 8. The default is one: on 2 cores with 16 loopback clients two workers were no
    faster, and their tail was longer (benchmarks/results/serve-workers.md); the Python
    around each answer runs on one core per process, so more cores want more workers."""
    from ..engines.local import cpu_count

    return n if n > 0 else max(1, min(8, cpu_count()))


def _announce(server, host: str, log, *, scheme: str = "http") -> None:
    """Print the bound URL on stdout once listening (port 0 picks one), so scripts can read it."""
    import sys

    orig = server.startup

    async def startup(sockets=None):
        await orig(sockets=sockets)
        for s in server.servers:
            for sock in s.sockets:
                h, p = sock.getsockname()[:2]
                print(f"{scheme}://{h if ':' not in h else '[' + h + ']'}:{p}", flush=True)
                return
        sys.stdout.flush()

    server.startup = startup
