"""Browser tests: a real ``streamlit run`` server with tiny models, driven by the system Chromium
through Playwright at 1280x800. Each page is photographed into artifacts/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.ui_fixtures import VIEWPORT, screenshot, wait_idle

pytestmark = pytest.mark.browser

MODELS = {
    "qwen2.5-0.5b-instruct": "Qwen2.5-0.5B-Instruct",
    "qwen3-0.6b": "Qwen3-0.6B",
}
PROMPT = "Explain a KV cache <b>briefly</b>, see [the docs](http://example.com)."
MAX_NEW_TOKENS = "24"
ANSWER_TIMEOUT_MS = 180_000  # first use: both workers start (imports) and answer


def css_key(key: str) -> str:
    """The class Streamlit gives a keyed container: st-key-<key>, odd characters as '-'."""
    return "st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key)


def wait_models_ready(page: Any) -> None:
    """Both workers loaded (the sidebar says what weights each has); the page settled."""
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("tiny test model: random weights").nth(1).wait_for(
        timeout=ANSWER_TIMEOUT_MS
    )
    wait_idle(page)


def open_settings(page: Any) -> Any:
    """Unfold the settings; the max-new-tokens box in it."""
    box = page.locator(".st-key-max_new_tokens input")
    for _ in range(3):
        if box.is_visible():
            break
        page.get_by_text("Settings: up to").click()
        try:
            box.wait_for(timeout=5_000)
        except Exception:
            continue
    return box


def set_blind(page: Any, on: bool) -> None:
    """The Blind switch of the Compare page (on by default); these tests compare named."""
    switch = page.locator(".st-key-blind input")
    switch.wait_for(state="attached")
    if switch.is_checked() != on:
        page.locator(".st-key-blind label").click()
        wait_idle(page)
    assert switch.is_checked() == on


def output(page: Any, model_key: str) -> Any:
    return page.locator(f".{css_key('output-' + model_key)}")


@pytest.fixture(scope="module")
def compared(streamlit_server: str, browser: Any) -> dict[str, Any]:
    """Send one prompt on the Compare page, as a user does; what came back."""
    context = browser.new_context(viewport=VIEWPORT, timezone_id="UTC")
    context.set_default_timeout(60_000)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    try:
        return _compare(page, streamlit_server, console)
    except Exception:
        screenshot(page, "failed-compare")
        print("browser console:", *console, sep="\n  ")
        raise
    finally:
        context.close()


def _compare(page: Any, base_url: str, console: list[str]) -> dict[str, Any]:
    page.goto(base_url + "/")
    page.locator(".st-key-prompt textarea").wait_for(timeout=ANSWER_TIMEOUT_MS)
    wait_models_ready(page)
    set_blind(page, False)
    for key in MODELS:
        output(page, key).wait_for()
    page.locator(".st-key-prompt textarea").fill(PROMPT)
    tokens = open_settings(page)
    tokens.fill(MAX_NEW_TOKENS)
    tokens.press("Enter")
    wait_idle(page)
    page.get_by_text("Settings: up to").click()  # fold the settings again
    page.locator(".st-key-run button").click()
    for key in MODELS:
        metrics = output(page, key).locator('[data-testid="stMetric"]')
        metrics.nth(5).wait_for(timeout=ANSWER_TIMEOUT_MS)
    link = page.get_by_role("link", name=re.compile(r"Logged as run #\d+"))
    link.wait_for(timeout=30_000)
    wait_idle(page)
    answers = {key: output(page, key).locator("code").first.inner_text() for key in MODELS}
    metric_labels = {
        key: output(page, key).locator('[data-testid="stMetricLabel"]').all_inner_texts()
        for key in MODELS
    }
    found = {
        "page_errors": [line for line in console if line.startswith("pageerror")],
        "answers": answers,
        "metric_labels": metric_labels,
        "prompt_visible": page.get_by_text(PROMPT, exact=True).count(),
        "html_from_prompt": page.locator('[data-testid="stMain"] b', has_text="briefly").count(),
        "links_from_prompt": page.locator('a[href="http://example.com"]').count(),
        "random_banners": page.get_by_text("Tiny test model: random weights.").count(),
    }
    screenshot(page, "compare")
    screenshot(page, "compare-full", tall=True)
    link.click()
    page.wait_for_url(re.compile(r"/history\?run=\d+"))
    wait_idle(page)
    found["run_url"] = page.url
    found["run_title"] = page.get_by_role("heading", level=1).inner_text()
    return found


def test_both_answers_stream_side_by_side_with_their_metrics(compared: dict[str, Any]) -> None:
    for key, answer in compared["answers"].items():
        assert answer.strip(), f"{MODELS[key]} shows no answer"
        labels = [label.strip() for label in compared["metric_labels"][key]]
        assert labels == ["TTFT", "Decode", "End to end", "Tokens in", "Tokens out", "Peak memory"]
    assert compared["answers"]["qwen2.5-0.5b-instruct"] != compared["answers"]["qwen3-0.6b"]
    # Each column says loudly that its weights are random.
    assert compared["random_banners"] == 2
    assert compared["page_errors"] == []


def test_user_text_is_shown_literally_never_as_html(compared: dict[str, Any]) -> None:
    assert compared["prompt_visible"] >= 1
    assert compared["html_from_prompt"] == 0
    assert compared["links_from_prompt"] == 0


def test_the_run_opens_from_the_compare_page_and_by_its_url(
    compared: dict[str, Any], page: Any
) -> None:
    assert re.fullmatch(r"Run #\d+", compared["run_title"])
    page.goto(compared["run_url"])  # a fresh session: the URL alone is enough to share it
    wait_idle(page)
    assert page.get_by_role("heading", level=1).inner_text() == compared["run_title"]
    for key, answer in compared["answers"].items():
        shown = output(page, key).locator("code").first.inner_text()
        assert shown == answer
    assert page.get_by_text("Metrics", exact=True).count() == 1
    screenshot(page, "run")
    page.get_by_text("Word diff").click()
    page.get_by_text(re.compile(r"The answers share \d+% of their words")).wait_for()
    screenshot(page, "run-full", tall=True)


def test_history_lists_the_run_and_filters_by_text(
    compared: dict[str, Any], streamlit_server: str, page: Any
) -> None:
    page.goto(streamlit_server + "/history")
    wait_idle(page)
    page.get_by_text(re.compile(r"^\d+ runs?$")).wait_for()
    page.locator('[data-testid="stDataFrame"]').wait_for()
    page.locator('[data-testid="stDownloadButton"]').nth(1).wait_for()  # CSV and JSON Lines
    page.get_by_text("Dates").wait_for()
    page.wait_for_timeout(300)  # let the data grid paint before the picture
    screenshot(page, "history")
    search = page.get_by_placeholder(re.compile("Search prompts"))
    search.fill("words nobody typed")
    search.press("Enter")
    page.get_by_text("No run matches these filters.").wait_for()
    search.fill("kv CACHE")  # the search ignores case
    search.press("Enter")
    page.get_by_text("1 run", exact=True).wait_for()


def test_trends_draws_its_charts(
    compared: dict[str, Any], streamlit_server: str, page: Any
) -> None:
    page.goto(streamlit_server + "/trends")
    wait_idle(page)
    plots = page.locator(".js-plotly-plot")
    plots.nth(3).wait_for()
    assert plots.count() >= 4
    legend = page.locator(".js-plotly-plot .legend").first.text_content() or ""
    assert "Qwen3-0.6B · tiny · concurrent" in legend
    screenshot(page, "trends")
    screenshot(page, "trends-full", tall=True)


def test_models_shows_one_column_per_model(
    compared: dict[str, Any], streamlit_server: str, page: Any
) -> None:
    page.goto(streamlit_server + "/models")
    wait_idle(page)
    table = page.locator('[data-testid="stTable"]').first
    table.wait_for()
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    assert headers == ["", *MODELS.values()]
    text = table.inner_text()
    for fact in ("Parameters (counted)", "Context window", "KV cache per token", "License"):
        assert fact in text
    assert "114,688 B (bf16)" in text and "12,288 B (bf16)" in text
    assert page.get_by_text("47.16 tokens/s").count() == 1
    screenshot(page, "models")
    screenshot(page, "models-full", tall=True)


def test_stop_cancels_both_answers_and_keeps_what_came(
    compared: dict[str, Any], streamlit_server: str, page: Any
) -> None:
    page.goto(streamlit_server + "/")
    wait_models_ready(page)
    set_blind(page, False)
    page.locator(".st-key-prompt textarea").fill("Count to ten thousand, slowly.")
    tokens = open_settings(page)
    tokens.fill("4000")
    tokens.press("Enter")
    wait_idle(page)
    page.locator(".st-key-run button").click()
    for key in MODELS:
        output(page, key).get_by_text(re.compile(r"Streaming · \d+ tokens")).wait_for()
    page.locator(".st-key-stop button").click()
    stopped = page.get_by_text("Stopped: what was generated so far is kept.")
    stopped.nth(1).wait_for(timeout=30_000)
    page.get_by_role("link", name=re.compile(r"Logged as run #\d+")).wait_for()
    for key in MODELS:
        assert output(page, key).locator("code").first.inner_text().strip()
        tokens_out = output(page, key).locator('[data-testid="stMetric"]').nth(4).inner_text()
        assert int(tokens_out.split()[-1].replace(",", "")) < 4000
