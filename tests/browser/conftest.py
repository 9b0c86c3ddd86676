"""Browser tests of the storefront and the dashboard: a real llmcf app (uvicorn in a thread on
a free port) over a small hand-made catalog with item text and a T-ItemKNN fitted with the
MiniLM embedder, driven by Playwright with the system's chromium (no browser download).

Skipped, with the reason, only when Playwright or chromium is missing (CI installs both:
``.ci/setup.d/50-browser.sh``).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from llmcf.data.dataset import Catalog, Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.persist import save_model

pytest.importorskip(
    "fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')"
)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[browser]')"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no chromium on PATH: install it with . .ci/setup.d/50-browser.sh (as root)",
        allow_module_level=True,
    )


KEY = "browser-test-key-0123"

#: four genres of six products each: (title, description)
GENRES: dict[str, list[tuple[str, str]]] = {
    "Space": [
        ("Rocket Telescope", "A refracting telescope for watching planets and galaxies."),
        ("Mars Rover Kit", "Build a model rover that explores the red planet."),
        ("Astronaut Helmet", "A replica space helmet worn by astronauts on the moon."),
        ("Star Map Poster", "A poster of the constellations and the night sky."),
        ("Moon Lamp", "A glowing lamp shaped like the full moon with craters."),
        ("Planetarium Projector", "Projects stars, planets and nebulae onto your ceiling."),
    ],
    "Kitchen": [
        ("Cast Iron Pan", "A heavy skillet for searing steak and frying eggs."),
        ("Chef Knife", "A sharp steel knife for chopping vegetables and meat."),
        ("Spice Rack", "Holds jars of pepper, cumin, paprika and other spices."),
        ("Bread Oven", "A dutch oven for baking crusty sourdough bread."),
        ("Espresso Maker", "Brews strong coffee on the stove top."),
        ("Pasta Machine", "Rolls and cuts fresh pasta dough into noodles."),
    ],
    "Garden": [
        ("Rose Bush", "A climbing rose with red flowers for the garden."),
        ("Watering Can", "A metal can for watering plants and seedlings."),
        ("Tulip Bulbs", "Spring flower bulbs to plant in garden beds."),
        ("Pruning Shears", "Cuts branches and shapes hedges and shrubs."),
        ("Compost Bin", "Turns kitchen scraps and leaves into rich soil."),
        ("Herb Planter", "Grow basil, mint and thyme on the windowsill."),
    ],
    "Running": [
        ("Trail Shoes", "Running shoes with grip for muddy mountain trails."),
        ("Sports Watch", "Tracks your pace, distance and heart rate on a run."),
        ("Running Jacket", "A light waterproof jacket for jogging in the rain."),
        ("Hydration Vest", "Carries water bottles on long distance runs."),
        ("Compression Socks", "Support the calves of marathon runners."),
        ("Headlamp", "Lights the path for running at night."),
    ],
}


def catalog_rows() -> list[tuple[str, str, str, str]]:
    """``(item_id, title, genre, description)`` of the fixture catalog."""
    rows = []
    for g, items in GENRES.items():
        for k, (title, desc) in enumerate(items):
            rows.append((f"{g.lower()}-{k}", title, g, desc))
    return rows


def item_text(title: str, genre: str, desc: str) -> str:
    return f"{title}\nGenres: {genre}\n{desc}"


def fixture_dataset(seed: int = 0) -> Dataset:
    """60 shoppers who each mostly rate products of one genre (1-5 stars)."""
    rng = np.random.default_rng(seed)
    rows = catalog_rows()
    by_genre = {g: [r[0] for r in rows if r[2] == g] for g in GENRES}
    genres = list(GENRES)
    users, items, ratings = [], [], []
    for u in range(60):
        home = genres[u % len(genres)]
        picks = set(rng.choice(by_genre[home], size=4, replace=False).tolist())
        other = [r[0] for r in rows if r[2] != home]
        picks |= set(rng.choice(other, size=1).tolist())
        for item in sorted(picks):
            users.append(f"user-{u}")
            items.append(item)
            ratings.append(5.0 if item in by_genre[home] else float(rng.integers(1, 3)))
    ids = [r[0] for r in rows]
    return Dataset.from_arrays(
        users,
        items,
        np.array(ratings),
        items=Vocabulary(ids, name="item"),
        rating_scale=(1.0, 5.0),
        item_catalog=Catalog(
            {"title": [r[1] for r in rows], "description": [f"{r[2]}. {r[3]}" for r in rows]}
        ),
        name="browser-shop",
    )


@dataclass
class Server:
    url: str
    app: Any
    genre_of: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import uvicorn
    from tests.serve.conftest import free_port

    from llmcf.serve.app import create_app
    from llmcf.serve.state import ServeSettings
    from llmcf.text.fused import TItemKNN

    tmp = tmp_path_factory.mktemp("browser")
    model = TItemKNN(k=10, embedder="minilm", rank_weight=0.5).fit(fixture_dataset())
    folder = save_model(model, tmp / "t-item-knn")
    settings = ServeSettings(
        model_dir=folder, events_db=str(tmp / "events.sqlite"), api_key=KEY, follow_interval=0
    )
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    else:
        raise AssertionError("the server did not become ready in 60 s")
    # the operator loads the catalog's titles (the model keeps ids only)
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}) as http:
        for item_id, title, genre, desc in catalog_rows():
            http.put(f"/v1/items/{item_id}", json={"text": item_text(title, genre, desc)})
    yield Server(url, app, {r[0]: r[2] for r in catalog_rows()})
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    # package scope: Playwright's sync API keeps an asyncio loop running on the main thread
    # while it is open, so it must be closed before the other test packages (asyncio.run)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """A fresh browser context and page that records console errors and page errors."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(10_000)
        self.base = base
        self.errors: list[str] = []
        #: errors a test provokes on purpose (e.g. a wrong key's 401), each allowed once
        self.expected: list[str] = []
        self.page = self.new_page()

    def new_page(self) -> Any:
        """Another tab of this context, its console errors recorded too."""
        page = self.context.new_page()
        page.on("console", lambda m: self._console(m))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        return page

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        if url.rstrip("/").endswith("/admin") and "status of 401" in message.text:
            # chromium logs the 401 that GET /admin answers a navigation without the key
            # (the contract); the page then asks for the key. Not a script error.
            return
        self.errors.append(f"{message.text} ({url})")

    def unexpected_errors(self) -> list[str]:
        left = list(self.errors)
        for text in self.expected:
            hits = [e for e in left if text in e]
            if hits:
                left.remove(hits[0])
        return left

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Page]:
    p = Page(browser, server.url)
    yield p
    errors = p.unexpected_errors()
    p.close()
    assert errors == [], f"console errors: {errors}"


def screenshots_dir(tmp_path: Path) -> Path:
    """``$LLMCF_SCREENSHOTS`` (e.g. docs/img, to refresh the README's images), else tmp."""
    target = os.environ.get("LLMCF_SCREENSHOTS")
    out = Path(target) if target else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    return out
