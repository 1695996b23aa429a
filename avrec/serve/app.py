"""The HTTP application: FastAPI routes over :class:`~avrec.serve.state.State`.

Reads answer inline on the event loop (a request is a millisecond of numpy; a thread hop
would cost a good share of that); the event store's fsynced writes, index swaps and the
text encoder run in worker threads so they never stall the reads. Responses are the
``recommend --json`` records grouped per request::

    {"user": "42", "k": 10, "index": "<build id>",
     "items": [{"item_id": "v17", "rank": 1, "score": 0.83, "title": "...", ["explain": {...}]}]}

Errors are one line: ``{"error": "..."}`` with 401 (token), 404 (unknown user or item),
413 (body too large), 422 (a bad parameter or event, named).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..errors import InputError
from ..ids import check_id, id_problem
from ..recommend import Options
from .events import EventStore, parse_event
from .state import Batcher, NotFound, State

ENDPOINTS = ("/recommend", "/similar", "/search", "/profile", "/events", "/users/{id}", "/health", "/metrics", "/docs",
             "/openapi.json")


@dataclass
class Settings:
    """Everything a server process needs; built by ``avrec serve`` (and, for several
    workers, passed to each through the environment as JSON)."""

    index: str
    events: str | None  # the event store path; None: no live events (read-only server)
    token: str | None = None
    auth: str = "writes"  # writes | all
    poll_s: float = 1.0
    max_body_bytes: int = 1 << 20
    body_timeout_s: float = 10.0  # a request body must arrive within this; 0: no deadline
    max_events: int = 1000
    max_k: int = 1000
    max_history: int = 10000
    access_log: bool = True
    event_weights: dict[str, float] | None = None
    pseudonymize_key: str | None = None  # the key file; None: ids as given
    pseudonyms: str = "none"  # the key's fingerprint the store must carry
    recommend: dict[str, Any] | None = None  # the recommend section: defaults for k, fallback, ...
    device: str = "cpu"
    rate_limit: float = 0.0  # requests a second per client; 0: no limit
    rate_burst: int = 0  # the bucket's size; 0: the rate, rounded up
    blas_threads: int = 1  # BLAS threads per worker (runtime.threads; 0 there: 1)
    parent_pid: int = 0  # --workers > 1: the supervisor; a worker whose parent is gone stops (0: not a worker)


def _error(status: int, msg: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": msg}, status_code=status, headers=headers)


def _dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON. orjson writes a 10-item answer in ~1 µs against the json module's
    ~13 µs (a twentieth of a request's server CPU); a value it refuses (an int past 64 bits,
    a key that is not a string) goes through json as before. NaN is null, as JSON has it."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


_FLAG = re.compile(r"--(filter|modality|candidates|diversity|explain|k|history|exclude-seen)\b")


def http_words(msg: str) -> str:
    """A recommender's message (written for the CLI) in the server's terms: parameters, not flags."""
    msg = msg.replace("--fallback popular", "fallback=popular").replace("--history FILE", "POST /recommend with a history")
    return _FLAG.sub(lambda m: m.group(1).replace("-", "_"), msg)


def _json(obj: Any) -> Response:
    return Response(_dumps(obj), media_type="application/json")


class Metrics:
    """Prometheus counters and histograms in a registry of the app's own.

    With several workers (``PROMETHEUS_MULTIPROC_DIR`` set by ``avrec serve --workers``)
    each worker writes its values to files in that folder and a scrape of any worker
    returns the sum over all of them (counters, histograms) or the latest value (gauges)."""

    def __init__(self) -> None:
        import os

        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # the *_created series double the page for nothing a dashboard uses
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        r = self.registry
        g = {"multiprocess_mode": "mostrecent"} if self.multiprocess else {}
        self.requests = Counter("avrec_requests", "HTTP requests", ["endpoint", "status"], registry=r)
        self.latency = Histogram("avrec_request_seconds", "request latency", ["endpoint"], registry=r,
                                 buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 10))
        self.events_accepted = Counter("avrec_events_accepted", "events stored", registry=r)
        self.events_rejected = Counter("avrec_events_rejected", "events refused (invalid)", registry=r)
        self.batches = Counter("avrec_scored_batches", "batches of user requests scored together (exact batches)",
                               registry=r)
        self.batched = Counter("avrec_scored_batch_requests", "user requests scored in those batches", registry=r)
        self.index_items = Gauge("avrec_index_items", "items in the served index", registry=r, **g)
        self.index_swaps = Gauge("avrec_index_swaps", "index versions loaded since start", registry=r, **g)
        self.index_loaded = Gauge("avrec_index_loaded_timestamp_seconds", "when the served index was loaded",
                                  registry=r, **g)
        self.index_info = Gauge("avrec_index_info", "the served index version", ["build_id"], registry=r, **g)
        self._build: str | None = None

    def index(self, state: State) -> None:
        b = str(state.index.build_id)
        if b != self._build:
            if self._build is not None:
                if self.multiprocess:  # a file per process keeps the old series: mark it 0
                    self.index_info.labels(build_id=self._build).set(0)
                else:
                    self.index_info.remove(self._build)
            self.index_info.labels(build_id=b).set(1)
            self._build = b
        self.index_items.set(state.index.n_items)
        self.index_swaps.set(state.swaps)
        self.index_loaded.set(state.loaded_at)

    def page(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        return generate_latest(reg)


def _template(path: str) -> str:
    if path.startswith("/users/"):
        return "/users/{id}"
    return path if path in ENDPOINTS else "other"


class Guard:
    """Outermost ASGI layer: body cap, latency metrics, access log (path template and
    status only: query strings carry user ids and are never logged)."""

    def __init__(self, app: Any, *, settings: Settings, metrics: Metrics,
                 fast: dict[tuple[str, str], Callable] | None = None):
        self.app, self.s, self.m = app, settings, metrics
        self.fast = fast or {}
        self._series: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.limiter = None
        if settings.rate_limit > 0:
            from .limits import RateLimiter, client_key

            self.limiter = RateLimiter(rate=settings.rate_limit, burst=settings.rate_burst)
            self.client_key = client_key

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        endpoint = _template(scope["path"])
        status = {"code": 500}
        if self.limiter is not None and endpoint not in ("/health", "/metrics"):  # probes are never limited
            ok, wait = self.limiter.allow(self.client_key(scope))
            if not ok:
                await _error(429, f"over serve.rate_limit={self.s.rate_limit:g} requests/s for this client; "
                             f"retry after {wait:.2f}s", headers={"Retry-After": str(max(1, math.ceil(wait)))}
                             )(scope, receive, send)
                return self._done(scope, endpoint, 429, t0)
        cap = self.s.max_body_bytes
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > cap):
            resp = _error(413, f"request body over serve.max_body_bytes={cap}")
            status["code"] = 413
            await resp(scope, receive, send)
            return self._done(scope, endpoint, 413, t0)
        seen = {"n": 0}
        if scope["method"] not in ("GET", "HEAD"):
            # the body is read here, before any handler starts a response: a chunked one has no
            # length to check up front, so an oversized one is a 413 (not the framework error
            # layer's 500), and one that trickles in is a 408 at serve.body_timeout_s after the
            # request began. Without that deadline a client that stalls mid-body holds its
            # request open for ever, and SIGTERM's drain waits on it for the full graceful
            # timeout (30 s) and then cancels it with a 500 and a traceback.
            orig, chunks, size = receive, [], 0
            limit = self.s.body_timeout_s
            while True:
                try:
                    msg = await (orig() if limit <= 0 else _within(orig, max(t0 + limit - time.perf_counter(), 1e-3)))
                except (asyncio.TimeoutError, TimeoutError):
                    await _error(408, f"request body not received within serve.body_timeout_s={limit:g}s; send "
                                 "it at once", headers={"Connection": "close"})(scope, orig, send)
                    return self._done(scope, endpoint, 408, t0)
                if msg["type"] != "http.request":
                    return  # the client went away
                size += len(msg.get("body", b""))
                if size > cap:
                    await _error(413, f"request body over serve.max_body_bytes={cap}")(scope, orig, send)
                    return self._done(scope, endpoint, 413, t0)
                chunks.append(msg.get("body", b""))
                if not msg.get("more_body", False):
                    break
            buffered = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

            async def receive():  # the buffered body, then whatever the server sends next (a disconnect)
                return buffered.pop() if buffered else await orig()

        async def capped_receive():
            msg = await receive()
            if msg["type"] == "http.request":
                seen["n"] += len(msg.get("body", b""))
                if seen["n"] > cap:
                    raise _TooLarge()
            return msg

        async def tracking_send(msg):
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        try:
            handler = self.fast.get((scope["method"], scope["path"]))
            if handler is not None:
                try:
                    response = await handler(Request(scope, capped_receive))
                except _TooLarge:
                    raise
                except Exception as e:  # noqa: BLE001 - what the framework's error layer would do: a 500, logged
                    sys.stderr.write(f"serve: {scope['path']} failed: {type(e).__name__}: {e}\n")
                    response = _error(500, "internal error; the server log has the cause")
                await response(scope, capped_receive, tracking_send)
            else:
                await self.app(scope, capped_receive, tracking_send)
        except _TooLarge:
            status["code"] = 413
            await _error(413, f"request body over serve.max_body_bytes={cap}")(scope, receive, send)
        self._done(scope, endpoint, status["code"], t0)

    def _done(self, scope, endpoint: str, code: int, t0: float) -> None:
        dt = time.perf_counter() - t0
        series = self._series.get((endpoint, code))
        if series is None:  # the labelled children, looked up once per (endpoint, status)
            series = self._series[(endpoint, code)] = (self.m.requests.labels(endpoint=endpoint, status=str(code)),
                                                       self.m.latency.labels(endpoint=endpoint))
        series[0].inc()
        series[1].observe(dt)
        if self.s.access_log:
            sys.stderr.write(_dumps({"t": round(time.time(), 3), "method": scope["method"], "path": endpoint,
                                     "status": code, "ms": round(dt * 1e3, 3)}).decode() + "\n")


async def _within(receive, seconds: float):
    """``await receive()``, or TimeoutError after ``seconds`` (asyncio.timeout where there is
    one, 3.11+: no task per call, as wait_for makes)."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await receive()
    return await asyncio.wait_for(receive(), seconds)


class _TooLarge(Exception):
    pass


class _Bad(ValueError):
    """A query parameter at fault: the 422's one line names it."""


# the hot GET endpoints parse their query strings here rather than through FastAPI's
# per-request dependency solving (~0.4 ms a request, a third of a 100k-item answer);
# (name, kind, required, description), documented in OpenAPI through openapi_extra
_COMMON = [
    ("k", "int", False, "items to return [recommend.k], 1..serve.max_k"),
    ("filter", "list", False, "field<op>value, repeatable: modality=video, duration<600, tag=music"),
    ("diversity", "unit", False, "MMR diversity lambda in [0, 1] [recommend.diversity]"),
    ("explain", "bool", False, "add an explain object to every item"),
    ("candidates", "str", False, "comma-separated item ids to rank within"),
]
RECOMMEND_PARAMS = [("user", "id", True, "user id"), *_COMMON,
                    ("exclude_seen", "bool", False, "drop items the user has seen [recommend.exclude_seen]"),
                    ("fallback", "fallback", False, "none | popular: what an unknown user gets [recommend.fallback]")]
SEARCH_PARAMS = [("q", "text", True, "the text to search for, 1 to 2000 characters"),
                 ("user", "id", False, "blend with this user's taste (live events included)"),
                 *[c for c in _COMMON if c[0] != "candidates"],
                 ("modality", "str", False, "content space to search (default: the text one)")]
PROFILE_PARAMS = [("user", "id", True, "user id"), ("top", "int", False, "entries per list, 1..100 [10]")]
SIMILAR_PARAMS = [("item", "id", True, "item id"), *_COMMON,
                  ("modality", "str", False, "compare in one content modality (e.g. audio) instead of the model's vectors")]
_SCHEMA = {"int": {"type": "integer", "minimum": 1}, "list": {"type": "array", "items": {"type": "string"}},
           "unit": {"type": "number", "minimum": 0, "maximum": 1}, "bool": {"type": "boolean"},
           "str": {"type": "string"}, "id": {"type": "string", "minLength": 1, "maxLength": 1024},
           "text": {"type": "string", "minLength": 1, "maxLength": 2000},
           "fallback": {"type": "string", "enum": ["none", "popular"]}}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _doc_params(spec, max_k: int) -> list[dict[str, Any]]:
    out = []
    for name, kind, required, desc in spec:
        schema = dict(_SCHEMA[kind])
        if kind == "int":
            schema["maximum"] = max_k
        out.append({"name": name, "in": "query", "required": required, "description": desc, "schema": schema,
                    **({"style": "form", "explode": True} if kind == "list" else {})})
    return out


def _query(scope) -> dict[str, list[str]]:
    """The query string's values per name, in order: what Starlette's QueryParams holds
    (the same parse_qsl), without building its multi-dict for every request."""
    out: dict[str, list[str]] = {}
    for key, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
        out.setdefault(key, []).append(value)
    return out


def _parse(request: Request, spec, max_k: int) -> dict[str, Any]:
    qp = _query(request.scope)
    known = {n for n, *_ in spec}
    for key in qp:
        if key not in known:
            raise _Bad(f"{key}: unknown parameter; use {', '.join(sorted(known))}")
    out: dict[str, Any] = {}
    for name, kind, required, _desc in spec:
        if kind == "list":
            out[name] = qp.get(name, [])
            continue
        if len(qp.get(name, ())) > 1:  # behind a proxy, two user= values are an attack, not a choice
            raise _Bad(f"{name}: given {len(qp[name])} times; give it once")
        raw = qp[name][0] if name in qp else None
        if raw is None:
            if required:
                raise _Bad(f"{name}: required")
            out[name] = False if kind == "bool" and name == "explain" else None
            continue
        if kind == "id":
            v = raw.strip()
            if not v or len(v.encode("utf-8", "surrogatepass")) > 1024:
                raise _Bad(f"{name}: must be 1 to 1024 bytes")
            why = id_problem(v)
            if why:
                raise _Bad(f"{name}: {why}; ids may not contain control characters")
            out[name] = v
        elif kind == "int":
            try:
                v = int(raw)
            except ValueError:
                raise _Bad(f"{name}: must be an integer, got {raw[:40]!r}") from None
            if not 1 <= v <= max_k:
                raise _Bad(f"{name}: must be in [1, {max_k}]{' (serve.max_k)' if name == 'k' else ''}, got {v}")
            out[name] = v
        elif kind == "unit":
            try:
                f = float(raw)
            except ValueError:
                raise _Bad(f"{name}: must be a number in [0, 1], got {raw[:40]!r}") from None
            if not 0.0 <= f <= 1.0:
                raise _Bad(f"{name}: must be in [0, 1], got {f:g}")
            out[name] = f
        elif kind == "bool":
            low = raw.strip().lower()
            if low not in _TRUE | _FALSE:
                raise _Bad(f"{name}: must be true or false, got {raw[:40]!r}")
            out[name] = low in _TRUE
        elif kind == "fallback":
            if raw not in ("none", "popular"):
                raise _Bad(f"{name}: must be none or popular, got {raw[:40]!r}")
            out[name] = raw
        elif kind == "text":
            if not raw.strip() or len(raw) > 2000:
                raise _Bad(f"{name}: must be 1 to 2000 characters, got {len(raw)}")
            out[name] = raw
        else:
            if len(raw) > 200000:
                raise _Bad(f"{name}: too long")
            out[name] = raw
    return out


def create_app(s: Settings, *, log: Callable[[str], None] | None = None) -> Any:
    """The ASGI application for ``s`` (FastAPI inside the :class:`Guard` layer)."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    from threadpoolctl import threadpool_limits

    from ..privacy import identity, read_key

    # a request's products are small (a batch against one block of items): one BLAS thread
    # per worker leaves the other cores to the HTTP work and to other workers, where 2
    # threads spinning between products took them (16 clients, 2 cores: p99 7.4 against
    # 7.9-8.4 ms). numpy is loaded by now, so the environment variables would be too late.
    threadpool_limits(s.blas_threads, "blas")

    if s.pseudonymize_key:
        import hashlib

        key = read_key(s.pseudonymize_key)

        def pid(u: str) -> str:
            return hmac.new(key, str(u).encode("utf-8"), hashlib.sha256).hexdigest()
    else:
        pid = identity
    store = EventStore(s.events, pseudonyms=s.pseudonyms) if s.events else None
    state = State(s.index, store=store, pid=pid, log=log)
    metrics = Metrics()
    batcher = Batcher(on_batch=lambda n: (metrics.batches.inc(), metrics.batched.inc(n)))
    metrics.index(state)
    weights = dict(s.event_weights or {})
    rdef = dict(s.recommend or {})
    token = s.token.encode() if s.token else None

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        async def poll():
            while True:
                await asyncio.sleep(s.poll_s)
                if s.parent_pid and os.getppid() != s.parent_pid:
                    # the supervisor died without stopping us (kill -9, OOM): an orphan would
                    # keep the port answering from a server nobody runs any more
                    log("serve: the supervisor process is gone; this worker stops")
                    signal.raise_signal(signal.SIGTERM)
                    return
                try:
                    if await run_in_threadpool(state.refresh):
                        metrics.index(state)
                except Exception as e:  # noqa: BLE001 - the poller must outlive a bad version
                    log(f"serve: index check failed: {e}")

        task = asyncio.create_task(poll())
        # what start-up allocated lives as long as the process: out of the collector's sight,
        # a full collection no longer walks it in the middle of a request (a latency tail)
        gc.collect()
        gc.freeze()
        sc = state.index.scan
        if sc is None:
            how = "exact" if state.index.exact else "annoy"
        else:
            how = (f"exact, {'one product per batch' if sc.full else 'scanned by norm'} (a sample of users read "
                   f"{sc.probe_share:.0%} of the items)")
        log(f"serve: {state.index.n_items} items, {state.index.n_users} users from {s.index} "
            f"(build {state.index.build_id}), served by {how}; events: {s.events or 'off'}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if store is not None:
                log(f"serve: stopped; the event store holds {store.last_seq()} events (each committed before its 2xx)")
                store.close()

    import inspect

    extra: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:  # FastAPI >= 0.160 checks OTel per request
        extra["telemetry"] = {"tracing": False, "metrics": False, "logs": False}
    api = FastAPI(title="avrec", version=_version(), lifespan=lifespan, **extra,
                  description="Recommendations, similar items, text search and live events from an avrec index.")

    def authorised(request: Request, write: bool) -> bool:
        if token is None or (not write and s.auth != "all"):
            return True
        got = request.headers.get("authorization", "")
        scheme, _, value = got.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token)

    def unauthorised() -> JSONResponse:
        return _error(401, "unauthorized", {"WWW-Authenticate": "Bearer"})

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @api.exception_handler(StarletteHTTPException)
    async def _http(request, exc):  # the framework's own 404 / 405: one line, in the shape of every error
        if exc.status_code == 404:
            msg = f"{request.method} {request.url.path}: no such endpoint (see /docs)"
        elif exc.status_code == 405:
            msg = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        else:
            msg = str(exc.detail)
        return _error(exc.status_code, msg, headers=getattr(exc, "headers", None))

    @api.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        errs = exc.errors()
        e = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in e.get("loc", ())[1:] if p != "body") or "request"
        return _error(422, f"{where}: {e.get('msg', 'invalid')}")

    def options(k: Optional[int], filters: list[str], diversity: Optional[float], explain: bool,
                candidates: Optional[str], exclude_seen: Optional[bool], fallback: Optional[str],
                modality: Optional[str] = None) -> Options:
        cand = [c.strip() for c in candidates.split(",") if c.strip()] if candidates else None
        return Options(
            k=k if k is not None else int(rdef.get("k", 10)),
            exclude_seen=rdef.get("exclude_seen", True) if exclude_seen is None else exclude_seen,
            fallback=fallback or rdef.get("fallback", "none"),
            filters=tuple(filters), candidates=cand,
            diversity=float(rdef.get("diversity", 0.0)) if diversity is None else diversity,
            mmr_pool=int(rdef.get("mmr_pool", 100)), explain=explain, modality=modality,
            query_weight=float(rdef.get("query_weight", 0.5)), device=s.device, log=lambda _m: None)

    def answer(key: str, value: Any, idx, records: list[dict[str, Any]], k: int, **also: Any) -> Response:
        for r in records:  # each answer's own records: the request's key is said once, above them
            for f in ("user", "item", "query", "history"):
                r.pop(f, None)
        return _json({key: value, **also, "k": k, "index": idx.build_id, "items": records})

    async def guarded(fn: Callable[[], Response]) -> Response:
        try:
            return fn()
        except NotFound as e:
            return _error(404, str(e))
        except InputError as e:
            return _error(422, http_words(str(e)))

    def read_args(request: Request, spec) -> dict[str, Any] | Response:
        """The parsed query of a hot GET endpoint, or the 401 / 422 to answer instead."""
        if not authorised(request, False):
            return unauthorised()
        try:
            return _parse(request, spec, s.max_k)
        except _Bad as e:
            return _error(422, str(e))

    @api.get("/recommend", summary="Recommendations for a user (live events included)",
             openapi_extra={"parameters": _doc_params(RECOMMEND_PARAMS, s.max_k)})
    async def recommend(request: Request):
        a = read_args(request, RECOMMEND_PARAMS)
        if isinstance(a, Response):
            return a
        idx = state.index
        user = a["user"]
        try:
            opts = options(a["k"], a["filter"], a["diversity"], a["explain"], a["candidates"], a["exclude_seen"],
                           a["fallback"])
            plan = state.plan_user(idx, state.recommender(idx, opts), user)
            if plan.done is not None:
                return answer("user", user, idx, plan.done, opts.k)
            rows, scores = await batcher.rank(idx, plan)  # scored with the requests that came with it
            return answer("user", user, idx, plan.finish(rows, scores), opts.k)
        except NotFound as e:
            return _error(404, str(e))
        except InputError as e:
            return _error(422, http_words(str(e)))

    @api.post("/recommend", summary="Recommendations from a history (a user the model never saw)")
    async def recommend_history(request: Request):
        if not authorised(request, False):
            return unauthorised()
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return _error(422, "body: not JSON; send {\"history\": [\"item id\", ...], \"k\": 10}")
        if not isinstance(body, dict):
            return _error(422, "body: must be a JSON object with a history list")
        allowed = {"history", "k", "user", "filter", "diversity", "explain", "candidates", "exclude_seen", "fallback"}
        bad = sorted(set(body) - allowed)
        if bad:
            return _error(422, f"{bad[0]}: unknown field; use {', '.join(sorted(allowed))}")
        hist = body.get("history")
        if not isinstance(hist, list) or not hist:
            return _error(422, "history: must be a non-empty list of item ids or {\"item_id\", \"weight\"} objects")
        if len(hist) > s.max_history:
            return _error(422, f"history: {len(hist)} items, over serve.max_history={s.max_history}")
        history: list[tuple[str, float]] = []
        for n, h in enumerate(hist):
            if isinstance(h, str) and h.strip():
                history.append((h.strip(), 1.0))
            elif isinstance(h, dict) and isinstance(h.get("item_id"), str):
                w = h.get("weight", 1.0)
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                    return _error(422, f"history.{n}.weight: must be a finite number >= 0")
                history.append((h["item_id"], float(w)))
            else:
                return _error(422, f"history.{n}: must be an item id string or {{\"item_id\": ..., \"weight\": ...}}")
        k = body.get("k")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= s.max_k):
            return _error(422, f"k: must be an integer in [1, {s.max_k}]")
        div = body.get("diversity")
        if div is not None and (isinstance(div, bool) or not isinstance(div, (int, float)) or not 0 <= div <= 1):
            return _error(422, "diversity: must be a number in [0, 1]")
        filters = body.get("filter") or []
        filters = [filters] if isinstance(filters, str) else filters
        if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
            return _error(422, "filter: must be a string or a list of strings such as 'duration<600'")
        cand = body.get("candidates")
        if isinstance(cand, list):
            cand = ",".join(map(str, cand))
        user = body.get("user")
        if user is not None and (not isinstance(user, str) or not user.strip()):
            return _error(422, "user: must be a non-empty string")
        fb = body.get("fallback")
        if fb not in (None, "none", "popular"):
            return _error(422, "fallback: must be none or popular")
        idx = state.index
        opts = options(k, filters, div, bool(body.get("explain", False)), cand, body.get("exclude_seen"), fb)

        def run() -> Response:
            recs = state.for_history(idx, state.recommender(idx, opts), history, user)
            # "history": the items the index knows, as the CLI's --history counts them
            key, value = ("user", user) if user is not None else \
                ("history", sum(idx.items.row(h) is not None for h, _w in history))
            return answer(key, value, idx, recs, opts.k)
        return await guarded(run)

    @api.get("/similar", summary="Items like an item (model vectors, or one content modality)",
             openapi_extra={"parameters": _doc_params(SIMILAR_PARAMS, s.max_k)})
    async def similar(request: Request):
        a = read_args(request, SIMILAR_PARAMS)
        if isinstance(a, Response):
            return a
        idx = state.index
        opts = options(a["k"], a["filter"], a["diversity"], a["explain"], a["candidates"], None, None, a["modality"])

        def run() -> Response:
            return answer("item", a["item"], idx, state.for_item(idx, state.recommender(idx, opts), a["item"]), opts.k)
        return await guarded(run)

    @api.get("/search", summary="Text search in a content space, optionally blended with a user's taste",
             openapi_extra={"parameters": _doc_params(SEARCH_PARAMS, s.max_k)})
    async def search(request: Request):
        a = read_args(request, SEARCH_PARAMS)
        if isinstance(a, Response):
            return a
        q, user = a["q"], a["user"]
        idx = state.index
        opts = options(a["k"], a["filter"], a["diversity"], a["explain"], None, None, None, a["modality"])

        def run() -> Response:
            # a blended answer names its user too, as recommend --query --user does
            return answer("query", q, idx, state.for_query(idx, state.recommender(idx, opts), q, user), opts.k,
                          **({"user": user} if user is not None else {}))
        try:  # the text encoder (torch) runs off the event loop
            return await run_in_threadpool(run)
        except NotFound as e:
            return _error(404, str(e))
        except InputError as e:
            return _error(422, http_words(str(e)))

    @api.get("/profile", summary="A user's interests: tags, moods, modalities, content clusters (live events included)",
             openapi_extra={"parameters": _doc_params(PROFILE_PARAMS, 100)})
    async def profile(request: Request):
        if not authorised(request, False):
            return unauthorised()
        try:
            a = _parse(request, PROFILE_PARAMS, 100)
        except _Bad as e:
            return _error(422, str(e))
        idx = state.index
        try:
            return _json(state.profile(idx, a["user"], top=a["top"] or 10))
        except NotFound as e:
            return _error(404, str(e))

    @api.post("/events", summary="Append events (durably) and fold them into the next answers")
    async def events(request: Request):
        if not authorised(request, True):
            return unauthorised()
        if store is None:
            return _error(409, "this server runs without an event store (serve.events)")
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            metrics.events_rejected.inc()
            return _error(422, "body: not JSON; send one event {\"user_id\", \"item_id\", ...} or a list of them")
        recs = body if isinstance(body, list) else [body]
        if not recs:
            return _error(422, "body: an empty list; send at least one event")
        if len(recs) > s.max_events:
            metrics.events_rejected.inc(len(recs))
            return _error(422, f"body: {len(recs)} events, over serve.max_events={s.max_events}")
        parsed = []
        for n, r in enumerate(recs):
            try:
                parsed.append(parse_event(r, weights=weights, where=f"event {n}" if isinstance(body, list) else "event"))
            except ValueError as e:
                metrics.events_rejected.inc(len(recs))
                return _error(422, f"{e} (no event of this request was stored)")
        stored = [type(e)(pid(e.user_id), e.item_id, e.weight, e.event, e.timestamp) for e in parsed]
        first, last = await run_in_threadpool(store.add, stored)  # fsynced before the 2xx
        metrics.events_accepted.inc(len(stored))
        idx = state.index
        unknown = sorted({e.item_id for e in parsed if idx.items.row(e.item_id) is None})
        out: dict[str, Any] = {"accepted": len(stored), "first_seq": first, "last_seq": last}
        if unknown:
            out["unknown_items"] = unknown[:20]
            out["note"] = "stored; items the index lacks count once index --add or a retrain brings them"
        return _json(out)

    # {user_id:path}: an id may hold "/" (ids are data), encoded (%2F) or not
    @api.delete("/users/{user_id:path}", summary="Erase a user's events and served state (right to erasure)")
    async def forget(request: Request, user_id: str):
        if not authorised(request, True):
            return unauthorised()
        if request.query_params:
            return _error(422, f"{next(iter(request.query_params))}: unknown parameter; DELETE /users/{{id}} takes none")
        try:
            user_id = check_id(user_id, "user")
        except ValueError as e:
            return _error(422, str(e))
        if store is None:
            return _error(409, "this server runs without an event store (serve.events)")
        n = await run_in_threadpool(store.forget, pid(user_id))
        return _json({"user": user_id, "events_deleted": n, "erased": True,
                      "model": "the trained vector is no longer served; the user leaves the model at the next train"})

    @api.get("/health", summary="Liveness and the served version")
    async def health():
        idx = state.index
        return _json({"status": "ok", "index": idx.build_id, "items": idx.n_items, "users": idx.n_users,
                      "swaps": state.swaps, "events": store.last_seq() if store is not None else None})

    @api.get("/metrics", summary="Prometheus metrics")
    async def prom():
        from prometheus_client import CONTENT_TYPE_LATEST

        metrics.index(state)
        return Response(metrics.page(), media_type=CONTENT_TYPE_LATEST)

    # the hot GET routes are answered by the outer layer itself: the same handlers, without
    # the framework's per-request routing and wrappers (~0.2 ms of a 0.5 ms answer under load);
    # their FastAPI routes stay for /docs and the schema
    app = Guard(api, settings=s, metrics=metrics, fast={("GET", "/recommend"): recommend, ("GET", "/similar"): similar})
    app.state = state  # for tests and the benchmark
    app.api = api
    return app


def _version() -> str:
    from .. import __version__

    return __version__


def app_from_env() -> Any:
    """uvicorn factory for ``--workers N``: each worker builds the app from AVREC_SERVE."""
    raw = os.environ.get("AVREC_SERVE")
    if not raw:
        raise RuntimeError("AVREC_SERVE is not set; start the server with avrec serve")
    return create_app(Settings(**json.loads(raw)))


def settings_from_config(cfg, index: str | Path, *, token: str | None, events: str | None) -> Settings:
    from dataclasses import asdict

    from ..privacy import pseudonymizer
    from .events import key_fingerprint

    pc = cfg.privacy
    return Settings(
        index=str(index), events=events, token=token, auth=cfg.serve.auth, poll_s=cfg.serve.poll_s,
        max_body_bytes=cfg.serve.max_body_bytes, body_timeout_s=cfg.serve.body_timeout_s, max_events=cfg.serve.max_events, max_k=cfg.serve.max_k,
        max_history=cfg.serve.max_history, access_log=cfg.serve.access_log,
        event_weights=dict(cfg.serve.event_weights),
        pseudonymize_key=str(Path(pc.key_file).expanduser().resolve()) if pc.pseudonymize and pc.key_file else None,
        pseudonyms=key_fingerprint(pseudonymizer(cfg)), recommend=asdict(cfg.recommend),
        device=cfg.runtime.device if cfg.runtime.device != "auto" else "cpu",
        rate_limit=cfg.serve.rate_limit, rate_burst=cfg.serve.rate_burst,
        blas_threads=cfg.runtime.threads or 1)
