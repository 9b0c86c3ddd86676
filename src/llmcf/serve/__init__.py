"""The REST service: ``llmcf serve --model-dir DIR [--events-db URL]``.

Endpoints (OpenAPI docs at ``/docs``, schema at ``/openapi.json``):

==========================================  ===================================================
GET  /v1/users/{user_id}/recommendations    top-n with stored events folded in; ?n=&rerank=false|true|learned&explain=
GET  /v1/items/{item_id}/similar            similar items; ?n=
POST /v1/predictions                        {"pairs": [{user_id, item_id}, ...]}
POST /v1/events                  (API key)  {"events": [{user_id, item_id, type, value?, timestamp?, event_id?, item_text?}]}
POST /v1/admin/reload            (API key)  {"model_dir": optional}: swap in a new model
GET  /healthz, /readyz, /metrics            liveness, readiness (503 until a model is loaded), Prometheus
==========================================  ===================================================

Modules: :mod:`~llmcf.serve.app` (factory, middleware), :mod:`~llmcf.serve.routes`,
:mod:`~llmcf.serve.schemas`, :mod:`~llmcf.serve.store` (event store, migrations),
:mod:`~llmcf.serve.engine` (scoring with fold-in), :mod:`~llmcf.serve.state`.
Needs the ``serve`` extra: ``pip install 'llmcf[serve]'``.
"""

from __future__ import annotations

from llmcf.serve.state import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def create_app(*args: object, **kwargs: object) -> object:
    """See :func:`llmcf.serve.app.create_app`."""
    from llmcf.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)  # type: ignore[arg-type]
