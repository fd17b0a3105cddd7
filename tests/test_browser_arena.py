"""The arena in Chromium, on a real ``streamlit run`` server with tiny models: a blind comparison
hides the names until the vote and reveals them after, the vote is logged with the side order the
voter saw; a History run page takes a named vote; the Leaderboard renders with no votes and with
some. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from qwen_dash.store import Store, open_store
from tests.test_browser import ANSWER_TIMEOUT_MS, MODELS, open_settings, output, set_blind
from tests.test_browser import wait_models_ready as models_ready
from tests.ui_fixtures import VIEWPORT, screenshot, wait_idle

pytestmark = pytest.mark.browser
TESTER = "Browser tester"


@pytest.fixture(scope="module")
def server_store(streamlit_server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The database the server writes (the streamlit_server fixture's temporary SQLite file)."""
    found = sorted(tmp_path_factory.getbasetemp().glob("ui-server*/server.sqlite3"))
    assert found, "the server's database was not found"
    store = open_store(f"sqlite:///{found[-1]}")
    yield store
    store.close()


def test_leaderboard_with_no_votes_says_how_to_get_some(streamlit_server: str, page: Any) -> None:
    page.goto(streamlit_server + "/leaderboard")
    wait_idle(page)
    page.get_by_text("No votes yet.", exact=False).wait_for()
    page.get_by_text("QWEN_DASH_SOURCE=local", exact=False).wait_for()
    assert page.locator(".js-plotly-plot").count() == 0
    screenshot(page, "leaderboard-empty")


@pytest.fixture(scope="module")
def blind_vote(streamlit_server: str, browser: Any, server_store: Store) -> dict[str, Any]:
    """A blind comparison, voted on, as a user does it; what the page showed before and after."""
    context = browser.new_context(viewport=VIEWPORT, timezone_id="UTC")
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        return _blind_vote(page, streamlit_server)
    except Exception:
        screenshot(page, "failed-blind-vote", tall=True)
        raise
    finally:
        context.close()


def _headings(page: Any) -> list[str]:
    return [h.strip() for h in page.locator('[data-testid="stMain"] h3').all_inner_texts()]


def _blind_vote(page: Any, base_url: str) -> dict[str, Any]:
    page.goto(base_url + "/")
    page.locator(".st-key-prompt textarea").wait_for(timeout=ANSWER_TIMEOUT_MS)
    models_ready(page)
    set_blind(page, True)  # the default
    page.locator(".st-key-prompt textarea").fill("Which answer is better?")
    tokens = open_settings(page)
    tokens.fill("16")
    tokens.press("Enter")
    wait_idle(page)
    page.get_by_text("Settings: up to").click()
    page.locator(".st-key-run button").click()
    page.locator(".st-key-vote-a button").wait_for(timeout=ANSWER_TIMEOUT_MS)
    wait_idle(page)
    main = page.locator('[data-testid="stMain"]')
    found: dict[str, Any] = {
        "before": _headings(page),
        "answers": [page.locator(f".st-key-output-side-{s} code").first.inner_text() for s in "ab"],
        "named_outputs": sum(output(page, k).count() for k in MODELS),
        "banners_before": main.get_by_text("Tiny test model: random weights.").count(),
        "metrics_before": main.locator('[data-testid="stMetric"]').count(),
        "run_id": int(
            re.search(
                r"#(\d+)",
                page.get_by_role("link", name=re.compile(r"Logged as run #\d+")).inner_text(),
            ).group(1)  # type: ignore[union-attr]
        ),
    }
    screenshot(page, "compare-blind")
    screenshot(page, "compare-blind-full", tall=True)
    page.locator(".st-key-vote-a button").click()
    main.get_by_text(re.compile(r"^Model A · ")).wait_for()
    main.locator('[data-testid="stMetric"]').nth(11).wait_for()
    wait_idle(page)
    found["after"] = _headings(page)
    found["metrics_after"] = main.locator('[data-testid="stMetric"]').count()
    found["revealed"] = {k: output(page, k).locator("code").first.inner_text() for k in MODELS}
    found["your_vote"] = main.get_by_text(re.compile(r"Your vote \(blind\): A \(")).inner_text()
    screenshot(page, "compare-voted", tall=True)
    return found


def test_blind_mode_hides_the_names_until_the_vote(blind_vote: dict[str, Any]) -> None:
    assert blind_vote["before"][:2] == ["Model A", "Model B"]
    assert not any(name in " ".join(blind_vote["before"]) for name in MODELS.values())
    assert blind_vote["named_outputs"] == 0  # not even in the page's markup
    assert blind_vote["banners_before"] == 0 and blind_vote["metrics_before"] == 0
    assert all(answer.strip() for answer in blind_vote["answers"])


def test_the_vote_reveals_the_names_and_is_logged_with_the_sides(
    blind_vote: dict[str, Any], server_store: Store
) -> None:
    after = blind_vote["after"][:2]
    assert [h.split(" · ")[0] for h in after] == ["Model A", "Model B"]
    assert sorted(h.split(" · ")[1] for h in after) == sorted(MODELS.values())
    assert blind_vote["metrics_after"] == 12
    (vote,) = server_store.run_votes(blind_vote["run_id"])
    names = {v: k for k, v in MODELS.items()}
    shown_sides = [names[h.split(" · ")[1]] for h in after]
    assert vote.sides == shown_sides and vote.winner == "a" and vote.blind is True
    run = server_store.get_run(blind_vote["run_id"])
    assert run is not None and run.meta["arena"] == {"blind": True, "sides": shown_sides}
    # The answer shown as Model A is the one of the model revealed as A.
    assert blind_vote["revealed"][shown_sides[0]] == blind_vote["answers"][0]
    assert MODELS[shown_sides[0]] in blind_vote["your_vote"]


def test_a_history_run_page_takes_a_named_vote(
    blind_vote: dict[str, Any], streamlit_server: str, page: Any, server_store: Store
) -> None:
    run_id = blind_vote["run_id"]
    page.goto(f"{streamlit_server}/history?run={run_id}")
    wait_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    who = sidebar.get_by_placeholder("your name (logged with your runs)")
    who.fill(TESTER)
    who.press("Enter")
    wait_idle(page)
    button = page.locator(".st-key-vote-b button")
    assert MODELS["qwen3-0.6b"] in button.inner_text()  # named: the buttons say whose answer
    button.click()
    page.get_by_text("Vote recorded.").wait_for()
    wait_idle(page)
    screenshot(page, "run-vote", tall=True)
    votes = {v.voter: v for v in server_store.run_votes(run_id)}
    assert votes[TESTER].blind is False and votes[TESTER].winner == "b"
    assert votes[TESTER].sides == list(MODELS)


def test_leaderboard_with_votes(
    blind_vote: dict[str, Any], streamlit_server: str, page: Any
) -> None:
    page.goto(streamlit_server + "/leaderboard")
    wait_idle(page)
    # Tiny models have random weights: their votes are left out until asked for.
    page.get_by_text("No battle matches these filters.").wait_for()
    page.get_by_text(re.compile("random-weight answers")).first.wait_for()
    page.locator(".st-key-l_random label").click()
    wait_idle(page)
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    plots = page.locator(".js-plotly-plot")
    plots.first.wait_for()
    page.wait_for_timeout(500)
    screenshot(page, "leaderboard")
    screenshot(page, "leaderboard-full", tall=True)
    for tab in ("Which model?", "Pairs", "Over time"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(300)
    assert plots.count() >= 4  # ratings, win rate, counts, online Elo (speed: isolated runs)
    page.get_by_role("tab", name="Pairs").click()
    page.wait_for_timeout(500)
    screenshot(page, "leaderboard-pairs", tall=True)


def test_screenshots_were_written() -> None:
    folder = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
    for name in ("compare-blind", "compare-voted", "leaderboard", "leaderboard-empty"):
        assert (folder / f"{name}.png").is_file()
