"""Fixtures for the dashboard tests: AppTest runs of the pages, and a real ``streamlit run``
server driven by the system Chromium through Playwright. Tiny models only; no network."""

from __future__ import annotations

import shutil
import socket
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
# Streamlit's own end-to-end tests wait for this: the page script has finished running.
SCRIPT_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
SERVER_START_S = 90
APP_TIMEOUT_S = 240  # an AppTest run that waits for the tiny workers to start and answer


# ---- AppTest ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ui_pool_env(_offline: None) -> Iterator[None]:
    """Tiny models for every page test; the one pool is shut down at the end of the session."""
    mp = pytest.MonkeyPatch()
    mp.setenv("QWEN_DASH_SOURCE", "tiny")
    mp.delenv("QWEN_DASH_MODELS", raising=False)
    mp.delenv("QWEN_DASH_COMPARE", raising=False)
    yield
    from pages._ui.resources import shutdown_pools

    shutdown_pools()
    mp.undo()


@pytest.fixture
def ui_store(ui_pool_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh SQLite database for one page test, the one the pages open."""
    from qwen_dash.store import open_store

    url = f"sqlite:///{tmp_path / 'ui.sqlite3'}"
    monkeypatch.setenv("QWEN_DASH_DB_URL", url)
    store = open_store(url)
    yield store
    store.close()


@pytest.fixture
def app(ui_store: Any) -> Callable[..., Any]:
    """``app(page=None, **query)``: an AppTest of the whole app (app.py), run once, optionally
    switched to ``pages/<page>.py`` with query parameters."""
    from streamlit.testing.v1 import AppTest

    def make(page: str | None = None, **query: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
        at.run()
        if page is not None:
            at.switch_page(f"pages/{page}.py")
            for key, value in query.items():
                at.query_params[key] = value
            at.run()
        return at

    return make


# ---- a real server and a real browser -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def streamlit_server(_offline: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run app.py`` on a free loopback port with tiny models and a temporary
    database; its base URL. Started as ``bench pages`` starts it (one way to start the server);
    its log is kept in artifacts/streamlit-server.log."""
    from qwen_dash.bench.pages import streamlit_server as start_server

    tmp = tmp_path_factory.mktemp("ui-server")
    log_path = ROOT / "artifacts" / "streamlit-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = start_server(f"sqlite:///{tmp / 'server.sqlite3'}", log_path)
    try:
        url = server.__enter__()
    except RuntimeError as exc:
        pytest.fail(f"{exc}; see {log_path}", pytrace=False)
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The system Chromium (never a downloaded one), headless."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.fail(
            "Chromium is not installed at /usr/bin/chromium, so the browser tests cannot run. "
            "Install the Debian package 'chromium' (make test does it through make system-deps).",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser session at 1280x800; fails the test if the app's JavaScript crashed."""
    context = browser.new_context(viewport=VIEWPORT, timezone_id="UTC")
    context.set_default_timeout(60_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda error: errors.append(str(error)))
    yield pg
    context.close()
    if errors:
        pytest.fail(f"the page raised in the browser: {errors}", pytrace=False)


def wait_idle(page: Any, timeout_ms: int = 120_000) -> None:
    page.wait_for_selector(SCRIPT_IDLE, timeout=timeout_ms)


def screenshot(page: Any, name: str, tall: bool = False) -> Path:
    """Save the viewport (1280x800), or the whole page when ``tall``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if not tall:
        page.screenshot(path=str(path))
        return path
    height = page.evaluate(
        "() => { const b = document.querySelector('[data-testid=\"stMainBlockContainer\"]');"
        " return b ? b.scrollHeight + 80 : 800 }"
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, 800), 8000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)
    return path
