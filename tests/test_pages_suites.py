"""The Suites page through AppTest: tiny models in real workers, a real SQLite database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from qwen_dash.quality.suites import PYTHON_NOT_ALLOWED, SuiteError
from qwen_dash.store import SuiteCaseRef, SuiteVerdict
from qwen_dash.views import suites as view
from tests.conftest_db import make_comparison

QWEN25, QWEN3 = "qwen2.5-0.5b-instruct", "qwen3-0.6b"
TINY_SUITE = """\
description: two tiny cases
settings: {greedy: true, max_new_tokens: 4}
prompts: ["Say {{w}}."]
tests:
  - description: short answer
    vars: {w: hi}
    assert: [{type: max-tokens, value: 8, metric: length}]
  - description: impossible
    vars: {w: yo}
    assert: [{type: contains, value: zzz}]
"""


def _errors(at: Any) -> list[str]:
    return [e.value for e in at.error] + [str(e.value) for e in at.exception]


def _seed(store: Any, statuses: list[tuple[str, str]], suite: str = "s.yaml") -> int:
    suite_run_id = store.start_suite_run(
        suite=suite, suite_text="prompts: ['{{q}}']", models=[QWEN25, QWEN3], source="tiny",
        mode="isolated", repeat=1, total_cases=len(statuses),
    )  # fmt: skip
    for position, (a, b) in enumerate(statuses):
        request, results = make_comparison(f"case {position}")
        verdicts = [
            SuiteVerdict(m, s, s == "pass", 1.0 if s == "pass" else 0.0,
                         [{"type": "contains", "passed": s == "pass", "score": float(s == "pass"),
                           "reason": f"reason {m}", "metric": "correct", "weight": 1.0}],
                         None, 100.0 + position)
            for m, s in ((QWEN25, a), (QWEN3, b))
        ]  # fmt: skip
        ref = SuiteCaseRef(position, f"t{position}", f"case {position}")
        store.save_suite_case(suite_run_id, ref, verdicts, request, results)
    store.finish_suite_run(suite_run_id, "done")
    return suite_run_id


@pytest.fixture
def suites_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(TINY_SUITE)
    monkeypatch.setenv("QWEN_DASH_SUITES", str(folder))
    return folder


def test_suites_page_offers_the_shipped_suites_before_any_run(app) -> None:
    at = app("suites")
    assert not _errors(at)
    assert at.title[0].value == "Suites"
    assert at.selectbox(key="s_file").options == ["arithmetic.yaml", "json_and_thinking.yaml"]
    assert set(at.multiselect(key="s_models_arithmetic.yaml").value) == {QWEN25, QWEN3}
    assert any("No suite has run yet" in i.value for i in at.info)
    assert any("python" in c.value for c in at.code)  # the suite's source is shown


def test_results_matrix_filters_summary_and_regressions(app, ui_store) -> None:
    first = _seed(ui_store, [("pass", "pass"), ("pass", "fail"), ("fail", "fail")])
    second = _seed(
        ui_store, [("fail", "pass"), ("pass", "pass"), ("fail", "fail"), ("pass", "error")]
    )
    at = app("suites", suite_run=str(first))
    assert not _errors(at)
    assert at.selectbox(key="s_run").value == first
    summary, matrix = at.dataframe[0].value, at.dataframe[1].value
    assert list(summary["model"]) == ["Qwen2.5-0.5B-Instruct", "Qwen3-0.6B"]
    assert list(summary["pass rate"]) == ["67%", "33%"]
    assert list(summary["metric: correct"]) == ["0.67 (n=3)", "0.33 (n=3)"]
    assert list(summary["median latency"]) == ["101 ms", "101 ms"]
    assert list(matrix["case"]) == ["t0", "t1", "t2"]
    assert matrix["run"][0].startswith("/history?run=")
    at.segmented_control(key="s_filter").set_value("failures").run()
    assert list(at.dataframe[1].value["case"]) == ["t1", "t2"]
    at.segmented_control(key="s_filter").set_value("different").run()
    assert list(at.dataframe[1].value["case"]) == ["t1"]

    at.selectbox(key="s_run").set_value(second).run()
    assert at.query_params["suite_run"] == str(second)
    regressions = at.dataframe[2].value  # summary, matrix, regressions
    changes = {(r["case"], r["model"]): r["change"] for _, r in regressions.iterrows()}
    assert changes == {
        ("t0", "Qwen2.5-0.5B-Instruct"): "passed→failed",
        ("t1", "Qwen3-0.6B"): "failed→passed",
        ("t3", "Qwen2.5-0.5B-Instruct"): "new",
        ("t3", "Qwen3-0.6B"): "new",
    }
    assert [m.value for m in at.metric] == ["1", "1", "2", "0"]


def test_a_suite_started_on_the_page_runs_on_the_server_and_its_results_show(
    app, ui_store, suites_dir: Path
) -> None:
    at = app("suites")
    assert at.selectbox(key="s_file").value == "tiny.yaml"
    at.button(key="s_run_button").click().run()
    assert not _errors(at)
    (info,) = ui_store.list_suite_runs()
    assert at.query_params["suite_run"] == str(info.id)
    deadline = time.monotonic() + 180
    while ui_store.suite_run(info.id).status == "running":
        assert time.monotonic() < deadline, "the suite did not finish"
        time.sleep(0.2)
    at.run()  # a fresh run of the page, as after a reload: the results are there
    assert ui_store.suite_run(info.id).status == "done"
    matrix = at.dataframe[1].value
    assert list(matrix["case"]) == ["t0", "t1"]
    assert all(cell.startswith("FAIL") for cell in matrix.iloc[1, 2:4])
    runs = {r.run_id for r in ui_store.suite_results(info.id)}
    assert all(ui_store.get_run(r).kind == "suite" for r in runs)


def test_an_uploaded_suite_may_not_run_python(tmp_path: Path) -> None:
    text = TINY_SUITE.replace("type: contains, value: zzz", "type: python, value: 'True'")
    with pytest.raises(SuiteError, match="python") as info:
        view.load_uploaded("up.yaml", text.encode(), [QWEN25, QWEN3])
    assert PYTHON_NOT_ALLOWED in str(info.value) and "up.yaml line" in str(info.value)
    shipped = tmp_path / "trusted.yaml"
    shipped.write_text(text)
    suite, _ = view.load_shipped(shipped, [QWEN25, QWEN3])
    assert suite.has_python
    with pytest.raises(SuiteError, match="not UTF-8"):
        view.load_uploaded("bin.yaml", b"\xff\xfe", [QWEN25])


def test_the_results_of_500_cases_on_two_models_render(app, ui_store) -> None:
    """The page with a big suite run: every case in the matrix. The time is printed (the
    target, <= 1 s, is checked by `python -m qwen_dash bench suite` and this figure)."""
    from qwen_dash.bench.suite import seed_big_suite_run

    suite_run_id, _ = seed_big_suite_run(ui_store, 500)
    at = app("suites", suite_run=str(suite_run_id))
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    assert not _errors(at)
    assert len(at.dataframe[1].value) == 500
    print(f"\nSuites page, 500 cases x 2 models: AppTest run {elapsed * 1000:.0f} ms")
