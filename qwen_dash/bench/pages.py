"""``python -m qwen_dash bench pages``: how fast each page renders in a real browser.

Fills a temporary SQLite database with N synthetic runs (``qwen_dash.bench.store.fill``), starts
``streamlit run app.py`` on a free loopback port against it with tiny models, and drives the
system Chromium (Playwright, never a downloaded browser) through every page: Compare, History, a
run's page, Trends, Models. A page's time is from navigation start until Streamlit's script state
is ``notRunning`` after its script ran (read in the browser by a MutationObserver on the
``data-test-script-state`` attribute, on the browser's clock). Trends' tabs are timed from the
click until the tab is shown, its charts drawn and the script idle.

"first" is the first visit of the page in a fresh server process (the server's caches cold);
"next" is the median of ``--rounds`` later visits, each a fresh browser session (a new
navigation, as a reload or a shared link gives). Target: <= 1 s each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen_dash.bench.store import fill
from qwen_dash.store import open_store

ROOT = Path(__file__).resolve().parent.parent.parent
APP = ROOT / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TARGET_MS = 1000.0
SERVER_START_S = 120
PAGE_TIMEOUT_MS = 180_000
SETTLE_MS = 600  # a page is done when no script run starts for this long after one finished
PAGES = (
    ("compare", "/compare"),
    ("history", "/history"),
    ("run", "/history?run={run_id}"),
    ("trends", "/trends"),
    ("models", "/models"),
)
SCRIPT = " (script)"  # the part of a page's time its script ran
TRENDS_TABS = ("Distributions", "A - B", "Memory vs input", "Over time")

# Installed in every document before Streamlit's own scripts: logs each change of the app's
# script state with the browser's clock (performance.now(): ms since navigation start).
_OBSERVER_JS = """
(() => {
  const qd = {log: [], ran: false, idleAt: null, clickAt: null};
  window.__qd = qd;
  let app = null, last = null;
  const check = () => {
    if (!app || !app.isConnected) app = document.querySelector('[data-testid="stApp"]');
    if (!app) return;
    const state = app.getAttribute('data-test-script-state');
    if (state === last) return;
    last = state;
    const t = performance.now();
    qd.log.push([t, state]);
    if (state === 'running' || state === 'rerunRequested') { qd.ran = true; qd.idleAt = null; }
    else if (state === 'notRunning' && qd.ran) qd.idleAt = t;
  };
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, attributes: true,
    attributeFilter: ['data-test-script-state'],
  });
})();
"""

# True (the time) once the script ran and has been idle SETTLE_MS; false until then.
_SETTLED_JS = f"""
() => {{
  const qd = window.__qd;
  if (!qd || qd.idleAt === null) return false;
  return performance.now() - qd.idleAt >= {SETTLE_MS} ? qd.idleAt : false;
}}
"""

_CLICK_TAB_JS = """
(label) => {
  const tab = [...document.querySelectorAll('[role="tab"]')]
    .find(t => t.innerText.trim() === label);
  if (!tab) return false;
  const qd = window.__qd;
  qd.ran = false; qd.idleAt = null;
  qd.clickAt = performance.now();
  tab.click();
  return true;
}
"""

# The time once the tab is selected, its panel's charts are drawn and no script is running.
_TAB_READY_JS = """
(label) => {
  const qd = window.__qd;
  const tab = [...document.querySelectorAll('[role="tab"]')]
    .find(t => t.innerText.trim() === label);
  if (!tab || tab.getAttribute('aria-selected') !== 'true') return false;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (qd.ran && qd.idleAt === null) return false;
  const panelId = tab.getAttribute('aria-controls');
  const panel = panelId ? document.getElementById(panelId) : null;
  if (panel) {
    if (panel.offsetParent === null) return false;
    const charts = panel.querySelectorAll('[data-testid="stPlotlyChart"]');
    for (const c of charts) if (!c.querySelector('.main-svg')) return false;
  }
  return performance.now();
}
"""


@dataclass
class Timings:
    """Milliseconds per measured thing: the first visit and the later ones."""

    first: dict[str, float] = field(default_factory=dict)
    later: dict[str, list[float]] = field(default_factory=dict)
    timed_out: set[str] = field(default_factory=set)

    def add(self, name: str, ms: float, first: bool) -> None:
        if first:
            self.first[name] = ms
        else:
            self.later.setdefault(name, []).append(ms)

    def _median(self, name: str) -> float | None:
        later = self.later.get(name)
        return round(statistics.median(later), 1) if later else None

    def rows(self) -> list[dict[str, Any]]:
        """One row per page or tab: first, next (median), and for pages the script's part."""
        names = [n for n in dict.fromkeys([*self.first, *self.later]) if not n.endswith(SCRIPT)]
        out = []
        for name in names:
            first = self.first.get(name)
            script_first = self.first.get(name + SCRIPT)
            out.append(
                {
                    "page": name,
                    "first_ms": None if first is None else round(first, 1),
                    "next_ms": self._median(name),
                    "first_script_ms": None if script_first is None else round(script_first, 1),
                    "next_script_ms": self._median(name + SCRIPT),
                    "next_all_ms": [round(v, 1) for v in self.later.get(name, [])],
                    "timed_out": name in self.timed_out,
                }
            )
        return out


# ---- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def streamlit_server(db_url: str, log_path: Path) -> Iterator[str]:
    """``streamlit run app.py`` on a free loopback port, tiny models, this database; its URL.
    Started as the page tests start it (tests/ui_fixtures.py, ``streamlit_server``)."""
    port = _free_port()
    env = {
        **os.environ,
        "QWEN_DASH_SOURCE": "tiny",
        "QWEN_DASH_DB_URL": db_url,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("QWEN_DASH_MODELS", None)
    env.pop("QWEN_DASH_COMPARE", None)
    cmd = [
        str(Path(sys.executable).parent / "streamlit"),
        "run", str(APP),
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit run exited with {proc.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit run did not answer in {SERVER_START_S} s")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, 15)  # the server and the model workers it started
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


# ---- the browser --------------------------------------------------------------------------------


def _settled(page: Any) -> float:
    """Wait until the page's script ran and stayed idle; the time it went idle (ms since
    navigation start)."""
    handle = page.wait_for_function(_SETTLED_JS, timeout=PAGE_TIMEOUT_MS, polling=100)
    return float(handle.json_value())


def load_ms(page: Any, url: str) -> tuple[float, float]:
    """Navigate to ``url``: ms from navigation start until the script state is notRunning, and
    ms of that the script ran (from its first start; the rest is the browser and the
    connection)."""
    page.goto(url, wait_until="commit", timeout=PAGE_TIMEOUT_MS)
    idle = _settled(page)
    started = page.evaluate("() => (window.__qd.log.find(e => e[1] === 'running') || [null])[0]")
    return idle, idle - float(started if started is not None else idle)


def tab_ms(page: Any, label: str) -> float:
    """Click a tab of the page: ms until it is shown, its charts drawn and the script idle."""
    if not page.evaluate(_CLICK_TAB_JS, label):
        raise RuntimeError(f"no tab '{label}' on {page.url}")
    handle = page.wait_for_function(
        _TAB_READY_JS, arg=label, timeout=PAGE_TIMEOUT_MS, polling="raf"
    )
    ready = float(handle.json_value())
    page.wait_for_timeout(SETTLE_MS)  # a rerun the click started late still counts
    if page.evaluate("() => window.__qd.ran"):
        page.wait_for_function(_TAB_READY_JS, arg=label, timeout=PAGE_TIMEOUT_MS, polling="raf")
        ready = max(ready, float(page.evaluate("() => window.__qd.idleAt")))
    return ready - float(page.evaluate("() => window.__qd.clickAt"))


def wait_for_models(page: Any, url: str, timeout_s: float = SERVER_START_S) -> float:
    """Open Compare until the sidebar shows every model ready; seconds it took."""
    t0 = time.monotonic()
    page.goto(f"{url}/compare", wait_until="commit", timeout=PAGE_TIMEOUT_MS)
    sidebar = '[data-testid="stSidebar"]'
    ready_js = f"""() => {{
        const s = document.querySelector('{sidebar}');
        if (!s) return false;
        const text = s.innerText;
        return text.includes('check_circle') && !text.includes('hourglass_top');
    }}"""
    page.wait_for_function(ready_js, timeout=timeout_s * 1000, polling=250)
    _settled(page)
    return time.monotonic() - t0


def measure(url: str, run_id: int, rounds: int) -> tuple[Timings, float]:
    """Every page once cold, then ``rounds`` times; Trends' tabs after each Trends load."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    timings = Timings()
    executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    if executable is None:
        raise RuntimeError("Chromium is not installed (/usr/bin/chromium).")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 800}, timezone_id="UTC"
            )
            context.add_init_script(_OBSERVER_JS)
            page = context.new_page()
            models_s = wait_for_models(page, url)
            for i in range(rounds + 1):
                first = i == 0
                for name, path in PAGES:
                    try:
                        total, script = load_ms(page, url + path.format(run_id=run_id))
                    except PlaywrightTimeout:  # recorded as the limit, and said so
                        timings.timed_out.add(name)
                        timings.add(name, PAGE_TIMEOUT_MS, first)
                        continue
                    timings.add(name, total, first)
                    timings.add(name + SCRIPT, script, first)
                    if name == "trends":
                        for label in TRENDS_TABS:
                            tab = f"trends: {label} tab"
                            try:
                                timings.add(tab, tab_ms(page, label), first)
                            except PlaywrightTimeout:
                                timings.timed_out.add(tab)
                                timings.add(tab, PAGE_TIMEOUT_MS, first)
        finally:
            browser.close()
    return timings, models_s


# ---- the command --------------------------------------------------------------------------------


def run_pages_bench(
    runs: int = 200_000, rounds: int = 3, as_json: bool = False, log: str | None = None
) -> dict[str, Any]:
    """Fill a temporary database, serve the app on it, time every page; print and return."""
    with tempfile.TemporaryDirectory(prefix="qwen-dash-pages-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        store = open_store(db_url)
        try:
            t0 = time.perf_counter()
            fill(store, runs)
            fill_s = time.perf_counter() - t0
            # A database in use keeps its trend rollups current as runs are saved; a bulk load
            # marks them all dirty and the first trend query builds them, once. Build them here
            # (timed apart) so that the pages are timed on a database in its steady state.
            t0 = time.perf_counter()
            for bucket in ("day", "hour"):
                store.trends(bucket=bucket)
            rollups_s = time.perf_counter() - t0
        finally:
            store.close()
        log_path = Path(log) if log else Path(tmp) / "streamlit.log"
        with streamlit_server(db_url, log_path) as url:
            timings, models_s = measure(url, runs, rounds)
    figures: dict[str, Any] = {
        "runs": runs,
        "rounds": rounds,
        "fill_s": round(fill_s, 1),
        "rollups_s": round(rollups_s, 1),
        "models_ready_s": round(models_s, 1),
        "pages": timings.rows(),
    }
    _report(figures, as_json)
    return figures


def _fmt(ms: float | None) -> str:
    return "     -" if ms is None else f"{ms:8.0f}"


def _report(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
        return
    print(
        f"{figures['runs']:,} synthetic runs on SQLite, filled in {figures['fill_s']} s, trend "
        f"rollups built in {figures['rollups_s']} s (once after a bulk load); tiny models ready "
        f"in {figures['models_ready_s']} s"
    )
    print(
        f"  {'page':<28} {'first ms':>8} {'next ms':>8}   script ran: {'first':>6} {'next':>6}"
        f"   (next: median of {figures['rounds']})"
    )
    for row in figures["pages"]:
        worst = max(v for v in (row["first_ms"], row["next_ms"]) if v is not None)
        verdict = "ok" if worst <= TARGET_MS else f"OVER TARGET ({TARGET_MS:g} ms)"
        if row["timed_out"]:
            verdict = f"TIMED OUT (gave up at {PAGE_TIMEOUT_MS / 1000:g} s)"
        script = ""
        if row["first_script_ms"] is not None:
            script = f"{_fmt(row['first_script_ms'])[2:]} {_fmt(row['next_script_ms'])[2:]}"
        print(
            f"  {row['page']:<28} {_fmt(row['first_ms'])} {_fmt(row['next_ms'])}"
            f"   {script:>25}  {verdict}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwen_dash bench pages", description=__doc__)
    parser.add_argument("--runs", type=int, default=200_000, help="synthetic runs (200000)")
    parser.add_argument("--rounds", type=int, default=3, help="later visits per page (3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--log", default=None, help="keep the server's log in this file")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    run_pages_bench(args.runs, args.rounds, args.json, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
