"""The FastAPI application factory.

``create_app(settings)`` opens the event store (running its migrations), installs the
middleware (body-size limit, Prometheus request metrics, CORS only when origins are given)
and the routes of :mod:`llmcf.serve.routes`, and loads the model from ``settings.model_dir``
in the background at start-up: ``/readyz`` answers 503 until it is loaded. A model may also be
passed in directly (tests, embedding in another app).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from llmcf.serve.engine import ServingModel, TextNeighbours
from llmcf.serve.state import AppState, ServeSettings, load_serving_model
from llmcf.serve.store import EventStore

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
        t0 = time.perf_counter()
        status = {"code": 500}
        started = {"yes": False}
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_json(send, 413, {"detail": f"request body over {limit} bytes"})
                    self._observe(scope, 413, t0)
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
                started["yes"] = True
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        finally:
            self._observe(scope, status["code"], t0)

    def _observe(self, scope: Scope, status: int, t0: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        m = self.state.metrics
        m.requests.labels(scope.get("method", ""), template, str(status)).inc()
        m.latency.labels(template).observe(time.perf_counter() - t0)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    import json

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


def create_app(
    settings: ServeSettings | None = None,
    *,
    model: ServingModel | None = None,
    store: EventStore | None = None,
    text_index: TextNeighbours | None = None,
    reranker: Any = None,
) -> Any:
    """Build the service. ``model``/``store`` override ``settings.model_dir``/``events_db``.

    ``reranker`` (optional, from :mod:`llmcf.rerank`): an object with
    ``rerank(user_id, items, explain) -> (items, notes)``; without one, ``rerank=true`` and
    ``explain=true`` are answered with 400 and a note saying so.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from llmcf import __version__
    from llmcf.errors import LlmcfError
    from llmcf.serve.routes import router

    settings = settings or ServeSettings()
    store = store or EventStore.open(settings.events_db)
    state = AppState(settings, store)
    state.text_index = text_index  # type: ignore[attr-defined]
    state.reranker = reranker  # type: ignore[attr-defined]
    if model is not None:
        state.set_model(model)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if state.model is None and settings.model_dir is not None:
            task = asyncio.create_task(_load_initial(state))
        yield
        if task is not None and not task.done():
            task.cancel()
        store.close()

    app = FastAPI(
        title="llmcf",
        version=__version__,
        description="Recommendations from collaborative filtering joined with language models. "
        "Write and admin endpoints need the API key (header X-API-Key).",
        lifespan=lifespan,
    )
    app.state.llmcf = state

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


async def _load_initial(state: AppState) -> None:
    model_dir = state.settings.model_dir
    assert model_dir is not None
    t0 = time.perf_counter()
    try:
        model = await asyncio.to_thread(
            load_serving_model, model_dir, getattr(state, "text_index", None)
        )
    except Exception as exc:  # reported by /readyz; the server keeps answering
        state.load_error = f"{type(exc).__name__}: {exc}"
        state.metrics.reloads.labels("error").inc()
        log.error("model load from %s failed: %s", model_dir, state.load_error)
        return
    state.set_model(model)
    state.metrics.reloads.labels("ok").inc()
    log.info("model %s loaded in %.2f s", model_dir, time.perf_counter() - t0)
