"""Schemathesis fuzzing of every operation of the OpenAPI schema: no answer may be a 5xx.

Bounded in time: a few dozen derandomised examples per operation (positive and negative
data), against the real app with a real SQLite store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis (dev extra) is not installed"
)

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from tests.serve.conftest import API_KEY  # noqa: E402


def _app():
    """The real app on a fresh SQLite store and a freshly fitted small item-kNN model."""
    import atexit
    import shutil
    import tempfile

    from tests.serve.conftest import small_dataset

    from llmcf import ItemKNN
    from llmcf.models import load_model
    from llmcf.persist import save_model
    from llmcf.serve.app import create_app
    from llmcf.serve.engine import ServingModel
    from llmcf.serve.state import ServeSettings

    tmp = Path(tempfile.mkdtemp(prefix="llmcf-fuzz-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    model_dir = save_model(
        ItemKNN(k=10, similarity="cosine", prediction="basic").fit(small_dataset()), tmp / "model"
    )
    settings_ = ServeSettings(
        model_dir=model_dir, events_db=str(tmp / "fuzz.sqlite"), api_key=API_KEY
    )
    return create_app(settings_, model=ServingModel(load_model(model_dir), source=str(model_dir)))


# built at import: schemathesis parametrises the test from the schema
schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case) -> None:
    # with the key (exercises the write paths) ...
    case.call_and_validate(headers={"X-API-Key": API_KEY}, checks=[not_a_server_error])
    # ... and without it
    response = case.call(headers={"X-API-Key": ""})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code}"
    )
