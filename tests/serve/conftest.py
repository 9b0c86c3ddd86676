"""Fixtures of the service tests: small fitted models saved in the npz format, event stores,
a real app behind httpx (TestClient), and a helper that runs ``llmcf serve`` as a process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip(
    "fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')"
)
pytest.importorskip(
    "sqlalchemy", reason="the serve extra is not installed (pip install -e '.[serve]')"
)

import httpx

from llmcf import ItemKNN, UserKNN
from llmcf.data.dataset import Dataset
from llmcf.persist import save_model

API_KEY = "test-api-key-0123456789"


def small_dataset(seed: int = 0, n_users: int = 60, n_items: int = 40, n: int = 700) -> Dataset:
    """Random ratings with string ids (u0.., i0..), no duplicate pairs."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    users, items = pairs // n_items, pairs % n_items
    # a popularity skew so that neighbours and popularity differ
    ratings = rng.integers(1, 6, size=n).astype(float)
    return Dataset.from_arrays(
        [f"u{u}" for u in users],
        [f"i{i}" for i in items],
        ratings,
        rating_scale=(1, 5),
        name="serve-small",
    )


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return small_dataset()


@pytest.fixture(scope="session")
def item_model(dataset: Dataset) -> ItemKNN:
    return ItemKNN(k=10, similarity="cosine", prediction="basic").fit(dataset)


@pytest.fixture(scope="session")
def model_dir(item_model: ItemKNN, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(item_model, tmp_path_factory.mktemp("model") / "item-knn")


@pytest.fixture(scope="session")
def user_model_dir(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = UserKNN(k=10, similarity="cosine", prediction="basic").fit(dataset)
    return save_model(model, tmp_path_factory.mktemp("model") / "user-knn")


def wait_ready(client: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/readyz")
        if r.status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"service not ready after {timeout} s: {r.text}")


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Any]:
    """``make_client(**settings) -> TestClient`` on a fresh SQLite store, ready to serve."""
    from fastapi.testclient import TestClient

    from llmcf.serve.app import create_app
    from llmcf.serve.state import ServeSettings

    opened: list[Any] = []

    def make(wait: bool = True, **overrides: Any) -> Any:
        values: dict[str, Any] = {"events_db": str(tmp_path / "events.sqlite"), "api_key": API_KEY}
        values.update(overrides)
        app = create_app(ServeSettings(**values))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        if wait and values.get("model_dir") is not None:
            wait_ready(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Any, model_dir: Path) -> Any:
    return make_client(model_dir=model_dir)


def auth() -> dict[str, str]:
    return {"X-API-Key": API_KEY}


# ---------------------------------------------------------------------- PostgreSQL
@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A clean database at $LLMCF_TEST_POSTGRES_URL (tables dropped before the test)."""
    url = os.environ.get("LLMCF_TEST_POSTGRES_URL")
    if not url:
        pytest.skip(
            "LLMCF_TEST_POSTGRES_URL is not set: start PostgreSQL with "
            ". .ci/setup.d/20-postgres.sh (as root) to run this test"
        )
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        for table in ("impressions", "item_texts", "events", "alembic_version"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()
    yield url


# ---------------------------------------------------------------------- a real server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``llmcf serve`` in a subprocess on 127.0.0.1 (stopped by :meth:`stop` or ``kill``)."""

    def __init__(
        self, model_dir: Path, events_db: str, log: Path, extra: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, LLMCF_API_KEY=API_KEY, PYTHONUNBUFFERED="1")
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmcf.cli", "serve", "--model-dir", str(model_dir),
             "--events-db", events_db, "--port", str(self.port), *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.proc.returncode}: {log.read_text()}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server not ready after 60 s: {log.read_text()}")

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
