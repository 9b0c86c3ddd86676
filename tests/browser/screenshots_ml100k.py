"""The README's storefront and dashboard screenshots on real data (not a test).

Usage: ``python tests/browser/screenshots_ml100k.py docs/img`` (needs ``$LLMCF_DATA_DIR/ml-100k``,
Playwright and chromium). Fits t-item-knn (defaults) on the whole of ml-100k, loads the
catalog's texts into a fresh event store (:func:`llmcf.serve.web.catalog_texts`), serves it
in-process, and as a visitor with a key rates three films 5 stars, then takes the item page,
a catalog search and the dashboard. Exits 1 on a console error.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path


def main(out: Path) -> int:
    import httpx
    import uvicorn
    from playwright.sync_api import sync_playwright

    from llmcf.data.loaders import resolve_dataset
    from llmcf.models import make_model
    from llmcf.persist import save_model
    from llmcf.serve.app import create_app
    from llmcf.serve.state import ServeSettings
    from llmcf.serve.store import EventStore
    from llmcf.serve.web import catalog_texts

    tmp = Path(tempfile.mkdtemp(prefix="llmcf-shots-"))
    dataset = resolve_dataset("ml-100k")
    folder = save_model(make_model("t-item-knn").fit(dataset), tmp / "t-item-knn")
    db = str(tmp / "events.sqlite")
    store = EventStore.open(db)
    store.put_item_texts(catalog_texts(dataset))
    store.close()
    key = "screenshots-key"
    app = create_app(ServeSettings(model_dir=folder, events_db=db, api_key=key))
    with socket_port() as port:
        pass
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    errors: list[str] = []
    wait = "v => Number(document.getElementById('recs').dataset.version) > v"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        page.wait_for_selector("#catalog li a")
        page.fill("#key", key)
        page.click("#key-form button[type=submit]")
        for item in ("172", "181", "96"):  # Empire Strikes Back, Return of the Jedi, T2
            v = int(page.get_attribute("#recs", "data-version") or 0)
            page.goto(f"{url}/#/item/{item}")
            page.wait_for_function(wait, arg=v)
            page.select_option("#rating", "5")
            v = int(page.get_attribute("#recs", "data-version") or 0)
            page.click("#item button[data-action=rating]")
            page.wait_for_function(wait, arg=v)
        page.screenshot(path=str(out / "storefront-ml100k-item.png"))
        page.goto(url + "/#/")
        page.wait_for_selector("#catalog li a")
        page.fill("#q", "star")
        page.press("#q", "Enter")
        page.wait_for_selector("#count:has-text('20 items')")
        page.screenshot(path=str(out / "storefront-ml100k.png"))
        dash = ctx.new_page()
        dash.goto(url + "/admin")  # its 401 is the contract (docs/storefront.md)
        dash.fill("#admin-key", key)
        dash.press("#admin-key", "Enter")
        dash.wait_for_function("() => window.llmcfPolls >= 2", timeout=20_000)
        dash.screenshot(path=str(out / "dashboard-ml100k.png"), full_page=True)
        browser.close()
    server.should_exit = True
    errors = [e for e in errors if "status of 401" not in e]
    print("console errors:", errors)
    return 1 if errors else 0


class socket_port:
    """A free local port (closed before use)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")))
