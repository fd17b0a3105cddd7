"""Hostile input in a real browser: Markdown and HTML payloads typed into every field a user can
set stay text, and the browser never fetches a host they name; junk URL parameters and odd search
text get a clear message, never a traceback."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.test_browser import ANSWER_TIMEOUT_MS, open_settings, wait_models_ready
from tests.ui_fixtures import screenshot, wait_idle

pytestmark = pytest.mark.browser

EVIL = "evil.example"


def payload(field: str) -> str:
    """Markdown and HTML that would fetch from, or link to, EVIL if rendered."""
    return (
        f"[{field} link](http://{EVIL}/{field}) ![x](http://{EVIL}/{field}.png) "
        f"<img src=http://{EVIL}/{field}-html.png> :red[{field}] **{field}**"
    )


TAG = f"[t](http://{EVIL}/t)<img src=//{EVIL}/t.png>"  # a tag is at most 64 characters


def short_payload(field: str) -> str:
    return f"[{field}](http://{EVIL}/{field}) <img src=http://{EVIL}/{field}.png>"


JOINER = "\u2060"  # what escaping puts before ':' (it breaks auto-links); invisible


def shown(page: Any) -> str:
    """The page's text as a reader sees it."""
    return str(page.locator("body").inner_text()).replace(JOINER, "")


def no_live_markup(page: Any) -> None:
    """Nothing on the page links to or loads from EVIL, and no traceback is shown."""
    assert page.locator(f'a[href*="{EVIL}"]').count() == 0
    assert page.locator(f'img[src*="{EVIL}"]').count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.fixture
def watched(page: Any) -> Any:
    """The page, with every request to EVIL recorded (and refused)."""
    fetched: list[str] = []

    def refuse(route: Any) -> None:
        fetched.append(route.request.url)
        route.abort()

    page.context.route(lambda url: (urlparse(url).hostname or "").endswith(EVIL), refuse)
    page.fetched = fetched
    return page


def test_payloads_in_every_field_stay_text_and_fetch_nothing(
    streamlit_server: str, watched: Any
) -> None:
    page = watched
    page.goto(streamlit_server + "/")
    wait_models_ready(page)
    # Who am I (logged with the run, shown on its page)
    name = page.locator('[data-testid="stSidebar"] input').first
    name.fill(short_payload("name"))
    name.press("Enter")
    wait_idle(page)
    # System prompt and prompt
    tokens = open_settings(page)
    tokens.fill("4")
    tokens.press("Enter")
    wait_idle(page)
    page.locator(".st-key-system_prompt textarea").fill(payload("system"))
    page.locator(".st-key-prompt textarea").fill(payload("prompt"))
    page.locator(".st-key-run button").click()
    link = page.get_by_role("link", name=re.compile(r"Logged as run #\d+"))
    link.wait_for(timeout=ANSWER_TIMEOUT_MS)
    wait_idle(page)
    no_live_markup(page)
    assert payload("prompt") in shown(page)
    link.click()
    page.wait_for_url(re.compile(r"/history\?run=\d+"))
    wait_idle(page)
    # The run page: the name in its caption, the prompts; then tags and notes.
    assert short_payload("name") in shown(page)
    no_live_markup(page)
    tags = page.locator('[data-testid="stMultiSelect"] input').first
    tags.click()
    tags.press_sequentially(TAG)
    page.get_by_text("Add:", exact=False).first.click()
    wait_idle(page)
    page.locator('[data-testid="stTextArea"] textarea').last.fill(payload("notes"))
    page.get_by_role("button", name="Save tags and notes").click()
    wait_idle(page)
    page.reload()
    wait_idle(page)
    screenshot(page, "hostile-run-page", tall=True)
    assert (
        TAG in shown(page)
        and payload("notes")
        in page.locator('[data-testid="stTextArea"] textarea').last.input_value()
    )
    no_live_markup(page)
    screenshot(page, "hostile-run-page", tall=True)
    # History search with the payload and a NUL character
    page.goto(streamlit_server + "/history")
    wait_idle(page)
    search = page.locator('[data-testid="stTextInput"] input').last
    search.fill("\x00" + short_payload("search"))
    search.press("Enter")
    wait_idle(page)
    no_live_markup(page)
    assert page.fetched == [], f"the browser fetched {page.fetched}"


@pytest.mark.parametrize(
    "raw",
    [
        f"[x](http://{EVIL}/url)",
        "99999999999999999999999",
        "\u00b2",
        "\u0661",
        "%00",
        "-1",
    ],
)
def test_junk_run_parameters_get_a_clear_message(
    streamlit_server: str, watched: Any, raw: str
) -> None:
    page = watched
    page.goto(f"{streamlit_server}/history?run={raw}")
    wait_idle(page)
    error = page.locator('[data-testid="stAlertContentError"]')
    error.first.wait_for()
    assert "does not name a run" in error.first.inner_text()
    no_live_markup(page)
    assert page.fetched == []
