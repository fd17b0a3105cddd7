"""The Suites page in Chromium: upload a suite, watch it run, leave and come back while it runs,
read the matrix, filter to failures, open a cell's run, run it again and compare the two runs.
A real ``streamlit run`` server with tiny models (tests/ui_fixtures.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.ui_fixtures import screenshot, wait_idle

pytestmark = pytest.mark.browser

CASES = 16
SUITE = "description: browser suite, tiny models\nsettings: {greedy: true, max_new_tokens: 8}\n"
SUITE += "prompts: ['Say {{w}}.']\ntests:\n" + "".join(
    f"  - description: word {i}\n    vars: {{w: w{i}}}\n    assert:\n"
    + (
        "      - {type: max-tokens, value: 8, metric: length}\n"
        if i % 2
        else "      - {type: contains, value: zzz, metric: correct}\n"
    )
    for i in range(CASES)
)
RUN_TIMEOUT_MS = 240_000
BAR = '[class*="st-key-live-"] [data-testid="stProgress"]'  # a running suite's, not the sidebar's


def progress_text(page: Any) -> str:
    return page.locator(BAR).first.inner_text()


def done_count(text: str) -> int:
    match = re.search(r"(\d+) of (\d+) cases", text)
    assert match, text
    return int(match.group(1))


def wait_done_at_least(page: Any, n: int) -> None:
    """Until the running suite's bar says ``n`` cases are done, or the bar is gone (it ended)."""
    page.wait_for_function(
        """([selector, n]) => { const el = document.querySelector(selector);
                               const m = el && el.innerText.match(/(\\d+) of/);
                               return !el || (m && Number(m[1]) >= n); }""",
        arg=[BAR, n],
        timeout=RUN_TIMEOUT_MS,
    )


def start_uploaded(page: Any, base_url: str, suite_file: Path) -> None:
    page.goto(base_url + "/suites")
    wait_idle(page)
    page.get_by_role("radio", name="Upload").click()
    wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(suite_file))
    page.get_by_text(f"{CASES} cases: {CASES} tests, 1 prompt").wait_for()
    wait_idle(page)
    page.locator(".st-key-s_run_button button").click()


def wait_finished(page: Any) -> None:
    bar = page.locator(BAR).first
    bar.wait_for(state="detached", timeout=RUN_TIMEOUT_MS)
    wait_idle(page)


def test_a_suite_runs_on_the_server_and_its_results_and_regressions_show(
    streamlit_server: str, page: Any, tmp_path: Path
) -> None:
    suite_file = tmp_path / "browser.yaml"
    suite_file.write_text(SUITE)
    start_uploaded(page, streamlit_server, suite_file)

    # The progress bar moves.
    page.locator(BAR).first.wait_for(timeout=RUN_TIMEOUT_MS)
    first = done_count(progress_text(page))
    assert page.get_by_role("button", name="Stop").count() == 1
    screenshot(page, "suites-running")

    # Leave the page; come back in a new page load: the suite is still running.
    page.goto(streamlit_server + "/history")
    wait_idle(page)
    page.goto(streamlit_server + "/suites")
    page.locator(BAR).first.wait_for(timeout=30_000)
    assert page.get_by_text(re.compile(r"Running suite run #\d+: browser\.yaml")).count() == 1
    wait_done_at_least(page, first + 1)
    wait_finished(page)

    # The matrix: every case, then only the failures (the even ones fail on both models).
    matrix = page.locator('[class*="st-key-s_matrix_"]').first
    matrix.wait_for()
    page.get_by_role("radio", name=re.compile(r"^Failures \(8\)")).wait_for()
    page.get_by_text("Qwen2.5-0.5B-Instruct").first.wait_for()
    screenshot(page, "suites-results")
    screenshot(page, "suites-results-full", tall=True)
    page.get_by_role("radio", name=re.compile(r"^Failures")).click()
    page.locator('[class*="st-key-s_matrix_"][class*="_failures"]').wait_for()
    wait_idle(page)

    # Select a cell: its assertions and a link to its run.
    grid = page.locator('[class*="st-key-s_matrix_"] [data-testid="stDataFrame"]').first
    grid.scroll_into_view_if_needed()  # the grid draws (on a canvas) only once it is in view
    grid.wait_for()
    page.wait_for_timeout(500)
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 30, box["y"] + 35 + 17)  # first row, "case" column
    details = page.locator(".st-key-suite-case")
    details.wait_for()
    assert "Case t0: why each model passed or failed" in details.inner_text()  # t0 fails
    details.locator('[data-testid="stDataFrame"]').wait_for()  # its assertions, with reasons
    screenshot(page, "suites-case")
    link = details.get_by_role("link", name=re.compile(r"Open run #\d+"))
    run_id = re.search(r"#(\d+)", link.inner_text()).group(1)  # type: ignore[union-attr]
    link.click()
    page.wait_for_url(re.compile(rf"/history\?run={run_id}$"))
    wait_idle(page)
    assert page.get_by_role("heading", level=1).inner_text() == f"Run #{run_id}"

    # A second run, stopped part-way, and the two compared.
    start_uploaded(page, streamlit_server, suite_file)
    page.get_by_role("button", name="Stop").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_done_at_least(page, 3)
    stop = page.get_by_role("button", name="Stop")
    if stop.count():
        stop.click()
    wait_finished(page)
    page.get_by_role("tab", name="Regressions").click()
    chart = page.locator(".js-plotly-plot")
    chart.first.wait_for()
    legend = page.locator(".js-plotly-plot .legend").first.text_content() or ""
    assert "Qwen3-0.6B" in legend and "Qwen2.5-0.5B-Instruct" in legend
    gone = page.locator('[data-testid="stMetric"]').filter(has_text="gone")
    gone.wait_for()
    screenshot(page, "suites-regressions")
    screenshot(page, "suites-regressions-full", tall=True)
