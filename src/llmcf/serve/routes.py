"""HTTP routes of the service (see :mod:`llmcf.serve` for the API overview)."""

from __future__ import annotations

import hmac
import logging
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader

from llmcf.serve import schemas as s
from llmcf.serve.engine import RankedItems, ServingModel
from llmcf.serve.state import AppState, load_serving_model
from llmcf.serve.state import recommend as recommend_for
from llmcf.serve.store import Event, EventConflictError

log = logging.getLogger("llmcf.serve")

router = APIRouter()
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="LLMCF_API_KEY")

UserIdPath = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=s.MAX_ID_LENGTH,
        pattern=s.ID_PATTERN,
        description="external user id",
    ),
]
ItemIdPath = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=s.MAX_ID_LENGTH,
        pattern=s.ID_PATTERN,
        description="external item id",
    ),
]
NQuery = Annotated[int, Query(ge=1, le=s.MAX_N, description=f"list length, 1..{s.MAX_N}")]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": s.ErrorOut, "description": "bad request"},
    422: {"model": s.ErrorOut, "description": "validation error"},
    503: {"model": s.ErrorOut, "description": "no model loaded yet"},
}
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": s.ErrorOut, "description": "missing or wrong API key"},
    403: {"model": s.ErrorOut, "description": "no API key configured on the server"},
    413: {"model": s.ErrorOut, "description": "request body too large"},
}


async def get_state(request: Request) -> AppState:
    # async dependencies run on the event loop (a sync one would cost a thread hop)
    state: AppState = request.app.state.llmcf
    return state


State = Annotated[AppState, Depends(get_state)]


async def current_model(state: State) -> ServingModel:
    model = state.model
    if model is None:
        detail = "no model loaded yet"
        if state.load_error:
            detail += f" (last load failed: {state.load_error})"
        raise HTTPException(status_code=503, detail=detail, headers={"Retry-After": "1"})
    return model


Model = Annotated[ServingModel, Depends(current_model)]


def _store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is the store failing (not a bug of ours): a database operational
    error (disk full, locked, connection lost) or an OS error."""
    try:
        from sqlalchemy.exc import DBAPIError, OperationalError
    except ImportError:  # pragma: no cover - the serve extra brings SQLAlchemy
        return isinstance(exc, OSError)
    return isinstance(exc, (OperationalError, DBAPIError, OSError))


def _short(exc: BaseException) -> str:
    text = (
        str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
    )
    return text[:200]


def _check_key(state: AppState, key: str | None, role: str) -> None:
    """The X-API-Key header must equal the role's key (constant time); see ServeSettings."""
    expected = state.settings.key_for(role)
    env = "LLMCF_INGEST_KEY" if role == "ingest" else "LLMCF_ADMIN_KEY"
    if not expected:
        raise HTTPException(
            status_code=403,
            detail=f"{role} endpoints are disabled: set {env} (or LLMCF_API_KEY) on the server",
        )
    if key is None:
        raise HTTPException(
            status_code=401,
            detail="missing X-API-Key header",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    if not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
        raise HTTPException(
            status_code=401, detail="wrong API key", headers={"WWW-Authenticate": "ApiKey"}
        )


async def require_api_key(
    state: State, key: Annotated[str | None, Depends(_api_key_header)] = None
) -> None:
    """Ingestion guard: ``$LLMCF_INGEST_KEY`` (else ``$LLMCF_API_KEY``)."""
    _check_key(state, key, "ingest")


async def require_admin_key(
    state: State, key: Annotated[str | None, Depends(_api_key_header)] = None
) -> None:
    """Admin guard: ``$LLMCF_ADMIN_KEY`` (else ``$LLMCF_API_KEY``)."""
    _check_key(state, key, "admin")


Authorized = Depends(require_api_key)
AdminAuthorized = Depends(require_admin_key)


def _items(ranked: RankedItems) -> list[s.ScoredItem]:
    return [
        s.ScoredItem(item_id=i, score=sc, source=src)  # type: ignore[arg-type]
        for i, sc, src in zip(ranked.item_ids, ranked.scores, ranked.sources, strict=True)
    ]


# ---------------------------------------------------------------------- health
@router.get("/healthz", response_model=s.Health, tags=["health"])
async def healthz() -> s.Health:
    """Liveness: the process answers."""
    return s.Health(status="ok")


@router.get(
    "/readyz",
    response_model=s.Readiness,
    tags=["health"],
    responses={503: {"model": s.Readiness, "description": "no model loaded yet"}},
)
async def readyz(state: State, response: Response) -> s.Readiness:
    """Readiness: 200 once a model is loaded, 503 before (with the load error, if any)."""
    model = state.model
    if model is None:
        response.status_code = 503
        return s.Readiness(status="loading", error=state.load_error)
    return s.Readiness(status="ready", model=model.info())


@router.get("/metrics", tags=["health"], response_class=Response)
async def metrics(
    state: State, key: Annotated[str | None, Depends(_api_key_header)] = None
) -> Response:
    """Prometheus metrics (text exposition format); needs the admin key unless the server
    runs with ``--public-metrics``."""
    if not state.settings.public_metrics:
        _check_key(state, key, "admin")
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------------- reads
_RERANK_MODES = {
    **dict.fromkeys(("false", "0", "no", "off", "none"), "none"),
    **dict.fromkeys(("true", "1", "yes", "on", "llm"), "llm"),
    "learned": "learned",
}


def _rerank_mode(value: str) -> str:
    """``none``, ``llm`` or ``learned`` from the ``rerank`` query value (422 otherwise)."""
    mode = _RERANK_MODES.get(value.strip().lower())
    if mode is None:
        raise HTTPException(
            status_code=422,
            detail=f"rerank must be false, true or learned, got {value[:40]!r}",
        )
    return mode


def is_learned(model: Any) -> bool:
    """Whether a serving model is the learned second stage."""
    return type(getattr(model, "model", None)).__name__ == "LearnedRanker"


@router.get(
    "/v1/users/{user_id}/recommendations",
    response_model=s.RecommendationsOut,
    tags=["recommendations"],
    responses=ERRORS,
)
async def recommendations(
    user_id: UserIdPath,
    state: State,
    model: Model,
    n: NQuery = 10,
    rerank: Annotated[
        str,
        Query(
            description="false (default): the model's own list; true: re-rank the CF "
            "candidates with the LLM re-ranker configured on this server; learned: the learned "
            "second stage (the served model must be one, `llmcf fit --model learned`; it is "
            "its default list)"
        ),
    ] = "false",
    explain: Annotated[bool, Query(description="ask the re-ranker for explanations")] = False,
) -> s.RecommendationsOut:
    """Top-``n`` items for a user, with the user's stored events folded in (no refit).

    Unknown users get the most popular items, labelled as a fallback.
    """
    mode = _rerank_mode(rerank)
    served = state.model_for(user_id)[1] or model  # the user's arm of an A/B test
    if mode == "learned" and not is_learned(served):
        raise HTTPException(
            status_code=400,
            detail=f"rerank=learned: the served model is a {type(served.model).__name__}, not "
            "a learned second stage; fit one (llmcf fit --model learned "
            "--learned-option retriever=<model>) and serve its folder",
        )
    by_llm = mode == "llm"
    reranker = getattr(state, "reranker", None)
    if (by_llm or explain) and reranker is None:
        asked = " and ".join(x for x, on in (("rerank", by_llm), ("explain", explain)) if on)
        raise HTTPException(
            status_code=400,
            detail=f"{asked} not available: no re-ranker is configured on this server",
        )
    model = served
    ranked = await recommend_for(state, model, user_id, n)
    if ranked.was_fallback:
        state.metrics.fallbacks.labels("recommendations").inc()
    items = _items(ranked)
    notes = list(ranked.notes)
    if by_llm and reranker is not None:  # a language model: off the event loop, one at a time
        items, more = await state.in_rerank_thread(reranker.rerank, user_id, items, explain)
        notes.extend(more)
    body = s.RecommendationsOut(
        user_id=user_id,
        items=items,
        was_fallback=ranked.was_fallback,
        reason=ranked.reason,
        notes=notes,
    )
    # already validated: serialise once instead of FastAPI's second validation pass
    return Response(body.model_dump_json(), media_type="application/json")  # type: ignore[return-value]


@router.post(
    "/v1/recommendations",
    response_model=s.RecommendationsOut,
    tags=["recommendations"],
    responses={**ERRORS, 413: AUTH_ERRORS[413]},
)
async def session_recommendations(
    body: s.SessionRecommendationsIn, state: State, model: Model
) -> s.RecommendationsOut:
    """Top-``n`` for a visitor whose history comes with the request (no key; nothing is
    stored). The history is folded in by the rules of stored events and its items are never
    listed; a ``user_id`` the model knows adds its training row (its stored events are not
    read: the inline history stands in for them). An empty id in the answer: a new visitor."""
    from llmcf.serve.session import check_history, inline_history, session_ranking

    arm, chosen = state.model_for(body.user_id)
    model = chosen or model  # the user's arm of an A/B test
    problem = check_history(model, body.history)
    if problem:
        raise HTTPException(status_code=422, detail=problem)
    history = inline_history(model, body.history)
    if model.needs_store(history):  # texts of items new to the model: a store read
        ranked = await state.in_thread(
            session_ranking, model, body.user_id, body.n, history, state.store.item_texts
        )
    else:
        ranked = session_ranking(model, body.user_id, body.n, history)
    if ranked.was_fallback:
        state.metrics.fallbacks.labels("session").inc()
    state.log_list(body.user_id or "", arm, model, "session", ranked)
    out = s.RecommendationsOut(
        user_id=body.user_id or "",
        items=_items(ranked),
        was_fallback=ranked.was_fallback,
        reason=ranked.reason,
        notes=list(ranked.notes),
    )
    return Response(out.model_dump_json(), media_type="application/json")  # type: ignore[return-value]


@router.get(
    "/v1/items/{item_id}/similar",
    response_model=s.SimilarOut,
    tags=["recommendations"],
    responses=ERRORS,
)
def similar(item_id: ItemIdPath, state: State, model: Model, n: NQuery = 10) -> s.SimilarOut:
    """The ``n`` items most similar to an item (text neighbours or popularity for an item
    unknown to the model, labelled)."""
    ranked = model.similar(item_id, n, state.store.item_text)
    if ranked.was_fallback:
        state.metrics.fallbacks.labels("similar").inc()
    return s.SimilarOut(
        item_id=item_id,
        items=_items(ranked),
        was_fallback=ranked.was_fallback,
        reason=ranked.reason,
    )


@router.post(
    "/v1/predictions",
    response_model=s.PredictionsOut,
    tags=["recommendations"],
    responses={**ERRORS, 413: AUTH_ERRORS[413]},
)
def predictions(body: s.PredictionBatch, model: Model) -> s.PredictionsOut:
    """Predicted rating (or implicit score) of each (user, item) pair, from the training data;
    pairs with an unknown user or item get the model's fallback, flagged."""
    users = [p.user_id for p in body.pairs]
    items = [p.item_id for p in body.pairs]
    out = model.predict(users, items)
    return s.PredictionsOut(
        predictions=[
            s.PredictionOut(user_id=u, item_id=i, prediction=e, was_fallback=fb, reason=r)
            for u, i, (e, fb, r) in zip(users, items, out, strict=True)
        ]
    )


# ---------------------------------------------------------------------- writes
@router.post(
    "/v1/events",
    response_model=s.EventsAccepted,
    status_code=201,
    tags=["events"],
    dependencies=[Authorized],
    responses={
        **AUTH_ERRORS,
        409: {"model": s.ErrorOut, "description": "an event_id reused with another payload"},
        422: ERRORS[422],
    },
)
def events(body: s.EventBatch, state: State) -> s.EventsAccepted:
    """Store a batch of events durably (committed before this answers) and make them count in
    each user's next recommendations. A repeated ``event_id`` is stored once."""
    model = state.model
    if model is not None:  # values the loaded model cannot take are refused, none stored
        for k, e in enumerate(body.events):
            problem = model.check_event(e.type, e.value)
            if problem:
                raise HTTPException(status_code=422, detail=f"events[{k}]: {problem}")
    batch = [
        Event(e.user_id, e.item_id, e.type, e.value, e.timestamp, e.event_id, e.item_text)
        for e in body.events
    ]
    try:
        result = state.store.add_events(batch)
    except EventConflictError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except Exception as exc:  # the store could not commit (disk full, database down, ...)
        if not _store_unavailable(exc):
            raise
        log.error("event store write failed: %s", exc)
        raise HTTPException(
            status_code=503,
            detail=f"the event store cannot take writes right now ({_short(exc)}); nothing of "
            "this batch was stored: retry later",
            headers={"Retry-After": "5"},
        ) from None
    users = {e.user_id for e in batch}
    if any(e.item_text for e in batch):
        state.texts_version += 1
    state.event_users.add(users)  # before the answer: the next read sees the events
    state.history.invalidate(users)
    state.metrics.events.inc(result.accepted)
    state.metrics.duplicates.inc(result.duplicates)
    return s.EventsAccepted(accepted=result.accepted, duplicates=result.duplicates)


@router.put(
    "/v1/items/{item_id}",
    response_model=s.ItemTextOut,
    tags=["events"],
    dependencies=[Authorized],
    responses={**AUTH_ERRORS, 422: ERRORS[422]},
)
def put_item(item_id: ItemIdPath, body: s.ItemTextIn, state: State, model: Model) -> s.ItemTextOut:
    """Store an item's text. An item new to a text model is then recommended through its
    text neighbours to users who interact with it, and ``/v1/items/{id}/similar`` lists its
    text neighbours."""
    state.store.put_item_text(item_id, body.text)
    state.texts_version += 1
    state.history.clear()  # rankings that folded in the item's previous text
    known = bool(model.item_index([item_id])[0] >= 0)
    return s.ItemTextOut(item_id=item_id, known_to_model=known, text_neighbours=model.text)


@router.post(
    "/v1/admin/reload",
    response_model=s.ReloadOut,
    tags=["admin"],
    dependencies=[AdminAuthorized],
    responses={
        **AUTH_ERRORS,
        400: ERRORS[400],
        409: {"model": s.ErrorOut, "description": "a reload is running"},
    },
)
def reload(state: State, body: s.ReloadIn | None = None) -> s.ReloadOut:
    """Load a model folder (npz + manifest only) and swap it in; requests in flight finish on
    the previous model. On failure the previous model stays."""
    from llmcf.errors import LlmcfError

    target = (body.model_dir if body else None) or state.settings.model_dir
    if target is None:
        raise HTTPException(status_code=400, detail="no model_dir given and none configured")
    if not state.reload_lock.acquire(blocking=False):
        raise HTTPException(status_code=409, detail="a reload is already running")
    try:
        t0 = time.perf_counter()
        try:
            model = load_serving_model(Path(target))
        except (
            LlmcfError,
            OSError,
            ValueError,
            KeyError,
            RecursionError,
            NotImplementedError,
        ) as exc:
            state.metrics.reloads.labels("error").inc()
            raise HTTPException(
                status_code=400, detail=f"cannot load model from {target}: {exc}"
            ) from None
        previous = state.set_model(model)
        state.settings.model_dir = Path(target)
        state.history.clear()
        if state.settings.freeze_gc:  # the new model's objects: out of the collector's reach
            import gc

            gc.freeze()
        state.metrics.reloads.labels("ok").inc()
        return s.ReloadOut(
            model=model.info(),
            previous=previous.info() if previous else None,
            seconds=time.perf_counter() - t0,
        )
    finally:
        state.reload_lock.release()
