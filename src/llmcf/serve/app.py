"""The FastAPI application factory.

``create_app(settings)`` opens the event store (running its migrations), installs the
middleware (body-size limit, Prometheus request metrics, CORS only when origins are given)
and the routes of :mod:`llmcf.serve.routes`, and loads the model from ``settings.model_dir``
in the background at start-up: ``/readyz`` answers 503 until it is loaded. A model may also be
passed in directly (tests, embedding in another app).

The hot read, a plain ``GET /v1/users/{user_id}/recommendations[?n=N]``, is answered in
front of FastAPI (:class:`LlmcfAPI`) when its parameters are plainly valid (``fast_path``
setting, on by default): the same computation (:func:`llmcf.serve.state.recommend`), the same
JSON and the same metrics as the FastAPI route, without its routing, dependency injection and
pydantic passes, which cost about 250 us per request, ten times a cached answer. Anything else
(a re-rank, an odd or invalid parameter, a body, no model yet, CORS) goes through the FastAPI
route, which stays the reference, the documented schema and the only source of errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from llmcf.serve.engine import RankedItems, ServingModel
from llmcf.serve.schemas import ID_PATTERN, MAX_ID_LENGTH, MAX_N
from llmcf.serve.state import AppState, ServeSettings, load_serving_model, recommend
from llmcf.serve.store import EventStore

try:  # the serve extra ships orjson; the standard library is the fallback
    import orjson

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON (NaN and infinities as null, as pydantic writes them)."""
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - depends on the installed extras

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON (raises ValueError on NaN or infinities)."""
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8"
        )


log = logging.getLogger("llmcf.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _body_too_large(limit: int) -> Exception:
    # an HTTPException, so FastAPI's body parsing passes it on (other errors become a 400)
    from fastapi import HTTPException

    return HTTPException(status_code=413, detail=f"request body over {limit} bytes")


RECOMMENDATIONS_ROUTE = "/v1/users/{user_id}/recommendations"
_RECS_PREFIX, _RECS_SUFFIX = "/v1/users/", "/recommendations"
_ID_RE = re.compile(ID_PATTERN)
_FALSE = (b"false", b"0")
_JSON_HEADERS = (b"content-type", b"application/json")


def fast_recommendations_args(scope: Scope) -> tuple[str, int] | None:
    """``(user_id, n)`` of a request the fast path may answer, else ``None`` (FastAPI answers).

    Accepted: ``GET /v1/users/{user_id}/recommendations`` with a valid id (1-256 characters,
    no control characters, no ``/``) and a query of at most one each of ``n`` (plain decimal
    1..MAX_N), ``rerank`` and ``explain`` (``false`` or ``0``). Everything else, valid or
    not, is left to the route, so errors keep one source. (Headers are checked by
    :meth:`LlmcfAPI.__call__`.)
    """
    if scope.get("type") != "http" or scope.get("method") != "GET" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not (path.startswith(_RECS_PREFIX) and path.endswith(_RECS_SUFFIX)):
        return None
    user_id = path[len(_RECS_PREFIX) : len(path) - len(_RECS_SUFFIX)]
    if (
        not user_id
        or len(user_id) > MAX_ID_LENGTH
        or "/" in user_id
        or _ID_RE.fullmatch(user_id) is None
    ):
        return None
    n = 10
    query: bytes = scope.get("query_string", b"")
    if query:
        keys: set[bytes] = set()
        for part in query.split(b"&"):
            key, sep, value = part.partition(b"=")
            if not sep or key in keys:
                return None
            keys.add(key)
            if key == b"n":
                if not (value.isdigit() and len(value) <= 3 and value[:1] != b"0"):
                    return None
                n = int(value)
                if n > MAX_N:
                    return None
            elif key not in (b"rerank", b"explain") or value not in _FALSE:
                return None
    return user_id, n


def recommendations_body(user_id: str, ranked: RankedItems) -> dict[str, Any]:
    """The JSON of :class:`~llmcf.serve.schemas.RecommendationsOut` for a ranked list."""
    return {
        "user_id": user_id,
        "items": [
            {"item_id": i, "score": sc, "source": src}
            for i, sc, src in zip(ranked.item_ids, ranked.scores, ranked.sources, strict=True)
        ],
        "was_fallback": ranked.was_fallback,
        "reason": ranked.reason,
        "notes": list(ranked.notes),
    }


class ServiceMiddleware:
    """Pure ASGI middleware: rejects bodies over ``max_body_bytes`` with 413 (by the
    Content-Length header, or while streaming) and records request count and latency per
    route template."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.state.settings.max_body_bytes
        observe = self.state.metrics.observe_request
        t0 = time.perf_counter()
        status = {"code": 500}
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_json(send, 413, {"detail": f"request body over {limit} bytes"})
                    observe(scope.get("method", ""), _template(scope), 413, t0)
                    return

        received = {"bytes": 0}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received["bytes"] += len(message.get("body", b""))
                if received["bytes"] > limit:
                    raise _body_too_large(limit)
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        finally:
            observe(scope.get("method", ""), _template(scope), status["code"], t0)


async def fast_recommendations(state: AppState, send: Send, user_id: str, n: int) -> bool:
    """Answer a plain recommendations read; ``False`` (nothing sent) leaves it to the route:
    no model yet, or any error, which the route then reports as it always does."""
    model = state.model_for(user_id)[1]
    if model is None:
        return False
    try:
        ranked = await recommend(state, model, user_id, n)
        payload = dumps(recommendations_body(user_id, ranked))
    except Exception:  # the route answers (and reports) it
        log.debug("fast path declined user %r", user_id, exc_info=True)
        return False
    if ranked.was_fallback:
        state.metrics.fallbacks.labels("recommendations").inc()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [_JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})
    return True


def _utf8_path(scope: Scope) -> bool:
    """Whether the request path percent-decodes to valid UTF-8 (Starlette would otherwise
    replace bad bytes with U+FFFD, so different raw ids could name one user or item)."""
    from urllib.parse import unquote_to_bytes

    raw = scope.get("raw_path")
    if raw is None:
        return True
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


SESSION_ROUTE = "/v1/recommendations"


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, list[Message]]:
    """The request body (``None`` when over ``limit`` bytes or the client left) and the
    messages read, to replay to the full stack when the fast path declines."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            return None, messages
        if not message.get("more_body", False):
            return b"".join(chunks), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def fast_session_payload(state: AppState, body: bytes) -> bytes | None:
    """The answer of ``POST /v1/recommendations`` for a plainly valid body whose history
    needs no store read, else ``None`` (the route answers, and reports any error): the same
    validation (:class:`~llmcf.serve.schemas.SessionRecommendationsIn`), computation
    (:mod:`llmcf.serve.session`) and JSON as the route."""
    from pydantic import ValidationError

    from llmcf.serve.schemas import SessionRecommendationsIn
    from llmcf.serve.session import check_history, inline_history, session_ranking

    try:
        req = SessionRecommendationsIn.model_validate_json(body)
    except ValidationError:
        return None
    arm, model = state.model_for(req.user_id)
    if model is None:
        return None
    if check_history(model, req.history):
        return None
    history = inline_history(model, req.history)
    if model.needs_store(history):
        return None
    try:
        ranked = session_ranking(model, req.user_id, req.n, history)
        payload = dumps(recommendations_body(req.user_id or "", ranked))
    except Exception:  # the route answers (and reports) it
        log.debug("session fast path declined", exc_info=True)
        return None
    if ranked.was_fallback:
        state.metrics.fallbacks.labels("session").inc()
    state.log_list(req.user_id or "", arm, model, "session", ranked)
    return payload


def _fast_session_request(scope: Scope, settings: ServeSettings) -> bool:
    """A plain ``POST /v1/recommendations`` with a JSON body and no query (nor, with CORS
    on, an Origin header): the fast path may try it."""
    if (
        scope.get("method") != "POST"
        or scope["path"] != SESSION_ROUTE
        or scope.get("root_path")
        or scope.get("query_string")
    ):
        return False
    json_body = False
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            json_body = value.split(b";")[0].strip().lower() == b"application/json"
        elif name == b"origin" and settings.cors_origins:
            return False
    return json_body


class LlmcfAPI(FastAPI):
    """The FastAPI application, with the fast path for plain recommendation reads in front of
    FastAPI's own request handling (module docstring)."""

    llmcf_state: AppState

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _utf8_path(scope):
            # ids are text: two different byte strings must never decode to one id
            await _send_json(
                send, 400, {"error": "the URL path is not valid UTF-8 after percent-decoding"}
            )
            return
        if scope["type"] == "http":
            state = self.llmcf_state
            settings = state.settings
            if settings.fast_path:
                args = fast_recommendations_args(scope)
                # a body (size limit) or a cross-origin request (CORS headers): the full stack
                if args is not None and not any(
                    name in (b"content-length", b"transfer-encoding")
                    or (name == b"origin" and settings.cors_origins)
                    for name, _ in scope.get("headers", ())
                ):
                    t0 = time.perf_counter()
                    if await fast_recommendations(state, send, *args):
                        state.metrics.observe_request("GET", RECOMMENDATIONS_ROUTE, 200, t0)
                        return
                elif _fast_session_request(scope, settings):
                    t0 = time.perf_counter()
                    body, messages = await _read_body(receive, settings.max_body_bytes)
                    payload = None if body is None else fast_session_payload(state, body)
                    if payload is None:  # the full stack answers, from the same body
                        await super().__call__(scope, _replay(messages, receive), send)
                        return
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                _JSON_HEADERS,
                                (b"content-length", str(len(payload)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": payload})
                    state.metrics.observe_request("POST", SESSION_ROUTE, 200, t0)
                    return
        await super().__call__(scope, receive, send)


def create_app(
    settings: ServeSettings | None = None,
    *,
    model: ServingModel | None = None,
    store: EventStore | None = None,
    reranker: Any = None,
) -> Any:
    """Build the service. ``model``/``store`` override ``settings.model_dir``/``events_db``.

    ``reranker`` (optional, from :mod:`llmcf.rerank`): an object with
    ``rerank(user_id, items, explain) -> (items, notes)``; without one, ``rerank=true`` and
    ``explain=true`` are answered with 400 and a note saying so.
    """
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from llmcf import __version__
    from llmcf.errors import LlmcfError
    from llmcf.serve.routes import router
    from llmcf.serve.web import router as web_router

    settings = settings or ServeSettings()
    store = store or EventStore.open(settings.events_db)
    state = AppState(settings, store)
    state.reranker = reranker  # type: ignore[attr-defined]
    if model is not None:
        state.set_model(model)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _freeze_gc(state)
        tasks = [
            asyncio.create_task(_scan_event_users(state)),
            asyncio.create_task(_follow_store(state)),
        ]
        if state.model is None and settings.model_dir is not None:
            tasks.append(asyncio.create_task(_load_initial(state)))
        elif state.model_b is None and settings.model_dir_b is not None:
            tasks.append(asyncio.create_task(_load_arm_b(state, settings.model_dir_b)))
        yield
        for task in tasks:
            if not task.done():
                task.cancel()
        state.close()
        store.close()

    app = LlmcfAPI(
        title="llmcf",
        version=__version__,
        description="Recommendations from collaborative filtering joined with language models. "
        "Write and admin endpoints need the API key (header X-API-Key).",
        lifespan=lifespan,
    )
    app.state.llmcf = state
    app.llmcf_state = state

    @app.exception_handler(LlmcfError)
    async def _llmcf_error(_request: Request, exc: LlmcfError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"])
        return JSONResponse(
            {"detail": f"{where}: {first['msg']}" if where else first["msg"], "errors": errors},
            status_code=422,
        )

    app.include_router(router)
    app.include_router(web_router)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type", "Authorization"],
        )
    app.add_middleware(ServiceMiddleware, state=state)
    return app


#: environment variable through which ``llmcf serve --workers N`` hands its settings to the
#: worker processes (JSON; keys come from the workers' own environment)
SETTINGS_ENV = "LLMCF_SERVE_SETTINGS"
_SECRET_FIELDS = ("api_key", "ingest_key", "admin_key")


def settings_to_json(settings: ServeSettings) -> dict[str, Any]:
    """``settings`` as JSON values, without the keys (each worker reads them from its
    environment, as the parent did)."""
    from dataclasses import asdict

    out = asdict(settings)
    for name in _SECRET_FIELDS:
        out.pop(name, None)
    out["model_dir"] = None if settings.model_dir is None else str(settings.model_dir)
    out["model_dir_b"] = None if settings.model_dir_b is None else str(settings.model_dir_b)
    out["cors_origins"] = list(settings.cors_origins)
    return out


def app_from_env() -> Any:
    """The app of one ``llmcf serve --workers N`` worker (a uvicorn factory)."""
    raw = json.loads(os.environ[SETTINGS_ENV])
    raw["model_dir"] = None if raw.get("model_dir") is None else Path(raw["model_dir"])
    raw["model_dir_b"] = None if raw.get("model_dir_b") is None else Path(raw["model_dir_b"])
    raw["cors_origins"] = tuple(raw.get("cors_origins", ()))
    return create_app(ServeSettings(**raw))


#: seqs below the newest read that the follower re-reads (commits out of seq order)
FOLLOW_LOOKBACK = 1000


async def _follow_store(state: AppState) -> None:
    """Learn of events that other server processes stored: every ``follow_interval`` seconds,
    one indexed query for the events after the newest seen; their users' cached histories and
    rankings are dropped, so every process reflects an acknowledged event within about one
    interval (plus the request)."""
    interval = state.settings.follow_interval
    if interval <= 0:
        return
    try:
        last = await asyncio.to_thread(state.store.max_seq)
    except Exception as exc:
        log.warning("cannot follow the event store (%s): other processes' events are not seen", exc)
        return
    seen: set[int] = set()  # the seqs of the lookback window already handled
    while True:
        await asyncio.sleep(interval)
        try:
            last, users = await asyncio.to_thread(
                state.store.users_since, last, lookback=FOLLOW_LOOKBACK, seen=seen
            )
        except Exception as exc:  # a passing store error: try again next time
            log.debug("following the event store failed: %s", exc)
            continue
        if users:
            state.event_users.add(users)
            state.history.invalidate(users)


async def _scan_event_users(state: AppState) -> None:
    t0 = time.perf_counter()
    try:
        await asyncio.to_thread(
            state.event_users.scan, state.store, state.settings.event_users_limit
        )
    except Exception as exc:  # every user keeps being looked up in the store
        log.warning("could not list the users of the event store: %s", exc)
        return
    log.info(
        "event users %s in %.2f s",
        "listed" if state.event_users.ready else "not kept (over the limit)",
        time.perf_counter() - t0,
    )


async def _load_initial(state: AppState) -> None:
    model_dir = state.settings.model_dir
    assert model_dir is not None
    t0 = time.perf_counter()
    try:
        model = await asyncio.to_thread(load_serving_model, model_dir)
    except Exception as exc:  # reported by /readyz; the server keeps answering
        state.load_error = f"{type(exc).__name__}: {exc}"
        state.metrics.reloads.labels("error").inc()
        log.error("model load from %s failed: %s", model_dir, state.load_error)
        return
    state.set_model(model)
    state.metrics.reloads.labels("ok").inc()
    log.info("model %s loaded in %.2f s", model_dir, time.perf_counter() - t0)
    if state.settings.model_dir_b is not None:
        await _load_arm_b(state, state.settings.model_dir_b)
    _freeze_gc(state)


async def _load_arm_b(state: AppState, model_dir: Path) -> None:
    """Load the A/B test's arm B (a failure leaves arm A serving everyone, reported)."""
    try:
        state.model_b = await asyncio.to_thread(load_serving_model, model_dir)
    except Exception as exc:
        state.load_error = f"arm B: {type(exc).__name__}: {exc}"
        log.error("arm B model load from %s failed: %s", model_dir, state.load_error)
        return
    log.info("A/B test: arm B %s for %.0f%% of users", model_dir, 100 * state.settings.ab_split)


def _freeze_gc(state: AppState) -> None:
    """``gc.freeze()`` when ``settings.freeze_gc`` (see :class:`ServeSettings`)."""
    if state.settings.freeze_gc:
        import gc

        gc.collect()
        gc.freeze()
