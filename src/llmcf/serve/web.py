"""The storefront (``GET /``), the operator dashboard (``GET /admin``) and the JSON they read.

Both pages are static files shipped in ``llmcf/serve/static`` (plain HTML, CSS and a little
JavaScript; no CDN, no build step) that call the REST API:

* the storefront lists the catalog (``GET /v1/items``), an item's similar items
  (``GET /v1/items/{id}/similar``), and "Recommended for you" through
  ``POST /v1/recommendations`` with the visitor's history, which lives in the browser's
  ``localStorage``. With a key entered (kept in ``sessionStorage``, sent as ``X-API-Key``)
  the visitor's actions are also stored as events (``POST /v1/events``) and an admin can add
  a product (``PUT /v1/items/{id}``).
* the dashboard reads ``GET /v1/admin/status`` (admin key): the loaded model, request and
  event counters, latency percentiles from the Prometheus histograms, the event store's size;
  its reload button calls ``POST /v1/admin/reload``.

``GET /admin`` itself answers 401 (403 when no admin key is configured) unless the request
carries the admin key; the page it sends either way is the dashboard, which asks for the key
and keeps it in ``sessionStorage`` for the tab's lifetime (it is never put in a URL or a
cookie).

The catalog of the storefront is the model's items joined with the stored item texts
(``PUT /v1/items/{id}``), plus the stored texts of items new to the model. A text's first line
is its title; a line ``Genres: a, b`` (or ``Categories:``) gives its genres.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from llmcf.serve import schemas as s
from llmcf.serve.engine import ServingModel
from llmcf.serve.routes import (
    AdminAuthorized,
    ItemIdPath,
    Model,
    State,
    _api_key_header,
    _check_key,
)
from llmcf.serve.state import AppState

router = APIRouter()

STATIC = Path(str(resources.files("llmcf.serve") / "static"))
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml", ".png": "image/png"}  # fmt: skip
#: seconds a built catalog is reused (texts other server processes stored show up after it)
CATALOG_TTL = 5.0
MAX_CATALOG_PAGE = 200


def _static(name: str) -> bytes:
    return (STATIC / name).read_bytes()


# ---------------------------------------------------------------------- pages
@router.get("/", include_in_schema=False)
async def storefront() -> Response:
    """The storefront page (text/html)."""
    return Response(_static("index.html"), media_type=_TYPES[".html"])


@router.get("/admin", include_in_schema=False)
async def dashboard(
    state: State, key: Annotated[str | None, Depends(_api_key_header)] = None
) -> Response:
    """The dashboard page: 200 with the admin key, else 401 (403: no admin key configured)
    with the same page, which asks for the key."""
    status = 200
    try:
        _check_key(state, key, "admin")
    except HTTPException as exc:
        status = exc.status_code
    return Response(
        _static("admin.html"),
        status_code=status,
        media_type=_TYPES[".html"],
        headers={"WWW-Authenticate": "ApiKey"} if status == 401 else None,
    )


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    """A file of the pages (only the shipped ones; no sub-folders)."""
    path = STATIC / name
    suffix = path.suffix
    if "/" in name or name.startswith(".") or suffix not in _TYPES or not path.is_file():
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    return Response(
        path.read_bytes(), media_type=_TYPES[suffix], headers={"Cache-Control": "no-cache"}
    )


# ---------------------------------------------------------------------- catalog
@dataclass(frozen=True)
class CatalogEntry:
    item_id: str
    title: str
    text: str | None
    genres: tuple[str, ...]
    popularity: float
    known: bool
    haystack: str  # lower-case text searched by ``q``


def parse_text(item_id: str, text: str | None) -> tuple[str, tuple[str, ...]]:
    """``(title, genres)`` of an item text (module docstring); the id when there is none."""
    if not text:
        return item_id, ()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    title = (lines[0] if lines else item_id)[:200]
    genres: tuple[str, ...] = ()
    for line in lines[1:]:
        head, sep, rest = line.partition(":")
        if sep and head.strip().lower() in ("genres", "genre", "categories", "category"):
            genres = tuple(g.strip() for g in rest.replace("|", ",").split(",") if g.strip())
            break
    return title, genres


def catalog_texts(dataset: Any) -> dict[str, str]:
    """Storefront texts of a dataset's items, by item id: the title (and year), a
    ``Genres:`` line from its genres or categories, and the item text the models embed
    (:func:`llmcf.text.render.render_item_texts`). Load them into a store with
    ``EventStore.put_item_texts`` (docs/storefront.md)."""
    from llmcf.text.render import clean_text, render_item_texts

    fields = dataset.item_catalog.fields
    rendered = render_item_texts(dataset)
    out: dict[str, str] = {}
    for idx, item_id in enumerate(dataset.items.ids.tolist()):

        def value(name: str, idx: int = idx) -> Any:
            col = fields.get(name)
            return col[idx] if col is not None and idx < len(col) else None

        title = str(value("title") or item_id)
        year = value("year")
        if year and str(year) not in title:
            title = f"{title} ({year})"
        genres: list[str] = []
        for name in ("genres", "category", "main_cat"):
            v = value(name)
            items = v if isinstance(v, list) else [v] if v else []
            for g in items:
                for x in g if isinstance(g, list) else [g]:
                    if x and str(x) not in genres:
                        genres.append(str(x))
            if genres:
                break
        lines = [title]
        if genres:
            lines.append("Genres: " + ", ".join(genres[:6]))
        desc = value("description")
        desc = " ".join(str(x) for x in desc if x) if isinstance(desc, list) else desc
        if desc:
            lines.append(clean_text(str(desc)))
        elif rendered[idx] and not rendered[idx].startswith(title):
            lines.append(rendered[idx])  # the models' text says more than the title
        out[str(item_id)] = "\n".join(lines)
    return out


class Catalog:
    """The storefront's catalog, ordered by popularity (descending, then id)."""

    def __init__(self, model: ServingModel, texts: dict[str, str]) -> None:
        pop = model.model.popularity()
        ids = [str(x) for x in model.item_ids_str]
        entries: list[CatalogEntry] = []
        known = set(ids)
        for idx, item_id in enumerate(ids):
            entries.append(self._entry(item_id, texts.get(item_id), float(pop[idx]), True))
        for item_id in sorted(set(texts) - known):  # new to the model, text only
            entries.append(self._entry(item_id, texts[item_id], 0.0, False))
        order = sorted(range(len(entries)), key=lambda k: (-entries[k].popularity, k))
        self.entries = [entries[k] for k in order]
        self.by_id = {e.item_id: e for e in self.entries}

    @staticmethod
    def _entry(item_id: str, text: str | None, popularity: float, known: bool) -> CatalogEntry:
        title, genres = parse_text(item_id, text)
        hay = " ".join([item_id, text or "", " ".join(genres)]).lower()
        return CatalogEntry(item_id, title, text, genres, popularity, known, hay)

    def search(self, q: str, genre: str | None) -> list[CatalogEntry]:
        words = q.lower().split()
        g = genre.lower() if genre else None
        return [
            e
            for e in self.entries
            if all(w in e.haystack for w in words)
            and (g is None or any(x.lower() == g for x in e.genres))
        ]

    def genres(self) -> list[str]:
        counts: dict[str, int] = {}
        for e in self.entries:
            for g in e.genres:
                counts[g] = counts.get(g, 0) + 1
        return sorted(counts, key=lambda g: (-counts[g], g))


class CatalogCache:
    """One :class:`Catalog` per (model, texts version), rebuilt at most every CATALOG_TTL s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._at = 0.0
        self._catalog: Catalog | None = None

    def get(self, state: AppState, model: ServingModel) -> Catalog:
        key = (model.token, state.texts_version)
        with self._lock:
            fresh = time.monotonic() - self._at < CATALOG_TTL
            if self._catalog is not None and self._key == key and fresh:
                return self._catalog
        catalog = Catalog(model, state.store.all_item_texts())
        with self._lock:
            self._catalog, self._key, self._at = catalog, key, time.monotonic()
        return catalog


def _catalog_cache(state: AppState) -> CatalogCache:
    cache = getattr(state, "catalog_cache", None)
    if cache is None:
        cache = CatalogCache()
        state.catalog_cache = cache  # type: ignore[attr-defined]
    return cache


def _item_out(e: CatalogEntry, model: ServingModel) -> s.CatalogItem:
    return s.CatalogItem(
        item_id=e.item_id,
        title=e.title,
        text=e.text,
        genres=list(e.genres),
        popularity=e.popularity,
        known_to_model=e.known,
        text_neighbours=bool(model.text and e.text),
    )


@router.get("/v1/items", response_model=s.CatalogOut, tags=["catalog"])
def catalog(
    state: State,
    model: Model,
    q: Annotated[str, Query(max_length=200, description="words the text must contain")] = "",
    genre: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_CATALOG_PAGE)] = 24,
) -> s.CatalogOut:
    """A page of the catalog (most popular first), filtered by words and a genre."""
    found = _catalog_cache(state).get(state, model).search(q, genre)
    page = found[offset : offset + limit]
    return s.CatalogOut(total=len(found), offset=offset, items=[_item_out(e, model) for e in page])


@router.get("/v1/items/{item_id}", response_model=s.CatalogItem, tags=["catalog"])
def catalog_item(item_id: ItemIdPath, state: State, model: Model) -> s.CatalogItem:
    """One catalog entry (404 when neither the model nor the stored texts know it)."""
    entry = _catalog_cache(state).get(state, model).by_id.get(item_id)
    if entry is None:
        raise HTTPException(status_code=404, detail=f"unknown item {item_id!r}")
    return _item_out(entry, model)


@router.get("/v1/items/{item_id}/text-neighbours", response_model=s.SimilarOut, tags=["catalog"])
def text_neighbours(
    item_id: ItemIdPath,
    state: State,
    model: Model,
    n: Annotated[int, Query(ge=1, le=s.MAX_N)] = 10,
) -> s.SimilarOut:
    """The items whose text is nearest to this item's stored text, by the model's embedder:
    the list ``/v1/items/{id}/similar`` gives an item new to the model with that text (so for
    a known item, its neighbours by description alone, next to its CF neighbours). 404 when
    the item has no stored text; 400 when the model has no text embeddings."""
    if not model.text:
        raise HTTPException(status_code=400, detail="the loaded model has no text embeddings")
    text = state.store.item_text(item_id)
    if not text:
        raise HTTPException(status_code=404, detail=f"item {item_id!r} has no stored text")
    # the new-item path of ServingModel.similar, under an id no catalog holds
    probe = "\x1ftext-of:" + item_id
    ranked = model.similar(probe, n + 1, lambda _id: text)
    keep = [k for k, i in enumerate(ranked.item_ids) if i != item_id][:n]
    items = [
        s.ScoredItem(item_id=ranked.item_ids[k], score=ranked.scores[k], source=ranked.sources[k])  # type: ignore[arg-type]
        for k in keep
    ]
    return s.SimilarOut(item_id=item_id, items=items, was_fallback=False, reason="text neighbours")


@router.get("/v1/genres", tags=["catalog"])
def genres(state: State, model: Model) -> dict[str, list[str]]:
    """The genres of the catalog's texts, most frequent first."""
    return {"genres": _catalog_cache(state).get(state, model).genres()}


# ---------------------------------------------------------------------- dashboard data
def histogram_quantiles(
    buckets: list[tuple[float, float]], qs: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> dict[str, float | None]:
    """Quantiles from cumulative Prometheus buckets ``(upper bound, count)``, interpolated
    linearly inside the bucket (as PromQL's ``histogram_quantile``); ``None`` when empty."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0.0
    out: dict[str, float | None] = {}
    for q in qs:
        name = f"p{round(q * 100):d}"
        if total <= 0:
            out[name] = None
            continue
        rank = q * total
        lo_bound, lo_count = 0.0, 0.0
        value = buckets[-1][0]
        for bound, count in buckets:
            if count >= rank:
                if np.isinf(bound):  # above the last finite bucket: its bound
                    value = lo_bound
                else:
                    width = count - lo_count
                    frac = (rank - lo_count) / width if width > 0 else 1.0
                    value = lo_bound + (bound - lo_bound) * frac
                break
            lo_bound, lo_count = bound, count
        out[name] = float(value)
    return out


def metrics_summary(state: AppState) -> dict[str, Any]:
    """Counters and latency percentiles per route, read from the app's Prometheus registry."""
    routes: dict[str, dict[str, Any]] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    counters: dict[str, float] = {}
    for family in state.metrics.registry.collect():
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "llmcf_http_requests_total":
                r = routes.setdefault(labels["route"], {"requests": 0.0, "errors": 0.0})
                r["requests"] += value
                if labels["status"].startswith("5"):
                    r["errors"] += value
            elif name == "llmcf_http_request_duration_seconds_bucket":
                buckets.setdefault(labels["route"], []).append((float(labels["le"]), value))
            elif name.endswith("_total") and not labels:
                counters[name[: -len("_total")]] = value
            elif name.endswith("_total") and "endpoint" in labels:
                counters[f"{name[: -len('_total')]}:{labels['endpoint']}"] = value
    for route, b in buckets.items():
        routes.setdefault(route, {"requests": 0.0, "errors": 0.0})["latency_s"] = (
            histogram_quantiles(b)
        )
    return {
        "requests": sum(r["requests"] for r in routes.values()),
        "routes": dict(sorted(routes.items())),
        "counters": counters,
    }


def model_summary(model: ServingModel) -> dict[str, Any]:
    """What the dashboard shows of a loaded model: ``info()`` plus its saved manifest (class,
    config, artifact hash) and training data size."""
    from llmcf.persist import read_manifest

    out: dict[str, Any] = dict(model.info())
    out["n_interactions"] = len(model.model.rating_)
    fit = getattr(model.model, "fit_seconds_", None)
    out["fit_seconds"] = None if fit is None else float(fit)
    out["prepare_seconds"] = model.prepare_seconds
    out["rating_scale"] = getattr(model.model, "rating_scale_", None)
    try:
        config = model.model.get_config()
    except Exception:  # a model without a JSON config: shown as missing
        config = None
    out["config"] = config
    out["artifact"] = None
    out["saved_at"] = None
    folder = Path(model.source)
    if folder.is_dir():
        try:
            manifest = read_manifest(folder)
        except Exception as exc:  # the folder changed since the load
            out["manifest_error"] = str(exc)
        else:
            out["artifact"] = manifest.get("artifact")
            out["config"] = manifest.get("config", config)
            out["model"] = manifest.get("model")
            out["llmcf_version"] = manifest.get("llmcf_version")
            out["saved_at"] = (folder / "manifest.json").stat().st_mtime
    return out


WindowQuery = Annotated[
    float, Query(gt=0, le=30 * 86_400, description="seconds after a list that count")
]
SinceQuery = Annotated[
    float, Query(gt=0, le=366 * 86_400, description="lists of the last this many seconds")
]


def _online(state: AppState, window: float, since: float) -> dict[str, Any]:
    from llmcf.serve.impressions import online_metrics

    state.impressions.flush()  # what was served so far counts
    out = online_metrics(state.store, window, since)
    out["log"] = state.impressions.stats()
    return out


@router.get("/v1/admin/online", tags=["admin"], dependencies=[AdminAuthorized])
def admin_online(
    state: State, window: WindowQuery = 1800.0, since: SinceQuery = 86_400.0
) -> dict[str, Any]:
    """Online evaluation: CTR@N and conversion per arm/model with 95% intervals, and the
    difference of the A/B arms' CTR (:mod:`llmcf.serve.impressions`)."""
    return _online(state, window, since)


@router.get("/v1/admin/status", tags=["admin"], dependencies=[AdminAuthorized])
def admin_status(
    state: State, request: Request, window: WindowQuery = 1800.0, since: SinceQuery = 86_400.0
) -> dict[str, Any]:
    """The dashboard's data: loaded model(s), metrics, event store size, online metrics
    (admin key)."""
    model = state.model
    models = [] if model is None else [{"arm": "A", **model_summary(model)}]
    if state.model_b is not None:
        models.append(
            {"arm": "B", "ab_split": state.settings.ab_split, **model_summary(state.model_b)}
        )
    try:
        online: dict[str, Any] | None = _online(state, window, since)
    except Exception as exc:  # the store is down: the dashboard says so
        online = {"error": str(exc)[:200], "arms": []}
    try:
        events, texts = state.store.count(), state.store.count_item_texts()
        store: dict[str, Any] = {"url": repr(state.store), "events": events, "item_texts": texts}
    except Exception as exc:  # the store is down: the dashboard says so
        store = {"url": repr(state.store), "error": str(exc)[:200]}
    return {
        "time": time.time(),
        "ready": model is not None,
        "load_error": state.load_error,
        "models": models,
        "metrics": metrics_summary(state),
        "online": online,
        "store": store,
        "cached_users": len(state.history),
    }


@router.post("/v1/admin/refit-catalog", tags=["admin"], dependencies=[AdminAuthorized])
def refit_catalog(state: State, model: Model) -> dict[str, Any]:
    """Refit the served text model with the stored item texts, so that products added with
    ``PUT /v1/items/{id}`` are known to it and recommended through their text
    (:mod:`llmcf.serve.refit`); the result is saved beside the served folder and swapped in
    like a reload. 400 for a model without text or not loaded from a folder."""
    from llmcf.errors import LlmcfError
    from llmcf.serve.refit import refit_with_catalog
    from llmcf.serve.state import load_serving_model

    if not state.reload_lock.acquire(blocking=False):
        raise HTTPException(status_code=409, detail="a reload is already running")
    try:
        t0 = time.perf_counter()
        try:
            folder, added = refit_with_catalog(model, state.store.all_item_texts())
            fresh = load_serving_model(folder)
        except (LlmcfError, OSError, ValueError, KeyError) as exc:
            raise HTTPException(status_code=400, detail=f"cannot refit: {exc}") from None
        previous = state.set_model(fresh)
        state.settings.model_dir = folder
        state.history.clear()
        state.metrics.reloads.labels("ok").inc()
        return {
            "model": fresh.info(),
            "previous": previous.info() if previous else None,
            "items_added": added,
            "seconds": time.perf_counter() - t0,
        }
    finally:
        state.reload_lock.release()
