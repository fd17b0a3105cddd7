"""Suite runs end to end: the runner through real tiny-model workers, the store's suite tables
(SQLite and PostgreSQL), and ``python -m qwen_dash suite run`` (JSON Lines, JUnit, exit status)."""

from __future__ import annotations

import dataclasses
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from qwen_dash import cli
from qwen_dash.core.specs import load_specs
from qwen_dash.engine import ModelPool
from qwen_dash.quality.suites import Suite, load_suite
from qwen_dash.services import suite_report
from qwen_dash.services.suite_runner import (
    SuitePlan,
    SuiteRunError,
    SuiteRunner,
    case_request,
    choose_models,
    with_repeat,
)
from qwen_dash.store import Store, SuiteCaseRef, SuiteVerdict, open_store
from tests.conftest_db import MODEL_A, MODEL_B, make_comparison
from tests.engine_fixtures import QWEN3, QWEN25

ROOT = Path(__file__).resolve().parent.parent

# Deterministic verdicts on any model: t0 passes (4 tokens fit in 8), t1 fails (no answer holds
# "zzz"), t2 passes through not- and weight 0, t3 fails through not-.
MIXED = """\
description: mixed verdicts
settings:
  greedy: true
  max_new_tokens: 4
prompts: ["Say {{word}}."]
tests:
  - description: within the token budget
    vars: {word: hi}
    assert:
      - {type: max-tokens, value: 8, metric: length}
  - description: an impossible answer
    vars: {word: yo}
    assert:
      - {type: contains, value: "{{word}} zzz"}
  - description: not-contains and an informational check
    vars: {word: ok}
    assert:
      - {type: not-contains, value: zzz}
      - {type: equals, value: "never this", weight: 0, metric: exact}
  - description: not-max-tokens cannot pass
    vars: {word: no}
    assert:
      - {type: not-max-tokens, value: 8}
"""
EXPECTED = {"t0": True, "t1": False, "t2": True, "t3": False}
ALL_PASS = """\
settings: {greedy: true, max_new_tokens: 4}
prompts: ["{{q}}"]
tests:
  - vars: {q: one}
    assert: [{type: max-tokens, value: 8}]
  - vars: {q: two}
    assert: [{type: not-contains, value: zzz}]
"""


def _suite(text: str, name: str = "mixed.yaml", **kw: object) -> Suite:
    return load_suite(text, name=name, allow_python=True, known_models=list(load_specs()), **kw)


def _plan(text: str, models: tuple[str, ...] = (QWEN25, QWEN3), **kw: object) -> SuitePlan:
    return SuitePlan(_suite(text, **kw), text, models)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    store = open_store(f"sqlite:///{tmp_path / 'suites.sqlite3'}")
    yield store
    store.close()


# ---- through real workers --------------------------------------------------------------------


def test_a_suite_runs_every_case_on_every_model_and_logs_each(
    tiny_pool: ModelPool, sqlite_store: Store
) -> None:
    live = SuiteRunner(tiny_pool, sqlite_store).run(_plan(MIXED))
    assert live.status == "done" and live.error is None
    assert [o.case.id for o in live.outcomes] == list(EXPECTED)
    for outcome in live.outcomes:
        assert list(outcome.verdicts) == [QWEN25, QWEN3]
        for verdict in outcome.verdicts.values():
            assert verdict.passed is EXPECTED[outcome.case.id], verdict
    assert suite_report.exit_status(live) == 1

    info = sqlite_store.suite_run(live.id)
    assert info is not None
    assert (info.status, info.done_cases, info.total_cases) == ("done", 4, 4)
    assert info.models == [QWEN25, QWEN3] and info.source == "tiny" and info.mode == "isolated"
    assert sqlite_store.suite_text(live.id) == MIXED
    rows = sqlite_store.suite_results(live.id)
    assert [(r.case_id, r.model_key) for r in rows] == [
        (c, m) for c in EXPECTED for m in (QWEN25, QWEN3)
    ]
    for row in rows:
        assert row.passed is EXPECTED[row.case_id] and row.status in ("pass", "fail")
        assert row.e2e_ms is not None and row.e2e_ms > 0
        run = sqlite_store.get_run(row.run_id)
        assert run is not None and run.kind == "suite" and run.mode == "isolated"
        assert run.meta["suite_run_id"] == live.id and run.meta["case_id"] == row.case_id
        assert {g.model_key for g in run.generations} == {QWEN25, QWEN3}
    t2 = next(r for r in rows if r.case_id == "t2")
    assert [a["type"] for a in t2.assertions] == ["not-contains", "equals"]
    assert t2.assertions[1]["weight"] == 0 and t2.assertions[1]["metric"] == "exact"


def test_stop_ends_the_suite_and_keeps_what_finished(
    tiny_pool: ModelPool, sqlite_store: Store
) -> None:
    many = "settings: {greedy: true, max_new_tokens: 8}\nprompts: ['{{q}}']\ntests:\n" + "".join(
        f"  - vars: {{q: 'question {i}'}}\n    assert: [{{type: max-tokens, value: 8}}]\n"
        for i in range(40)
    )
    runner = SuiteRunner(tiny_pool, sqlite_store)
    live = runner.start(_plan(many, name="many.yaml"))
    assert runner.live(live.id) is live and live in runner.active()
    deadline = time.monotonic() + 120
    while live.progress().done < 2:
        assert time.monotonic() < deadline, "no case finished"
        time.sleep(0.05)
    running = live.progress()
    assert running.running and running.total == 40 and running.eta_s is not None
    live.stop()
    assert live.wait(60)
    progress = live.progress()
    assert progress.status == "stopped" and 2 <= progress.done < 40 and progress.eta_s is None
    assert live not in runner.active()
    info = sqlite_store.suite_run(live.id)
    assert info is not None and info.status == "stopped" and info.finished_at is not None
    assert info.done_cases == progress.done
    rows = sqlite_store.suite_results(live.id)
    assert len(rows) == 2 * progress.done
    assert all(r.status == "pass" and r.run_id is not None for r in rows)


def test_the_shipped_suites_parse_and_run_on_tiny_models(
    tiny_pool: ModelPool, sqlite_store: Store
) -> None:
    runner = SuiteRunner(tiny_pool, sqlite_store)
    for path in sorted((ROOT / "suites").glob("*.yaml")):
        suite = load_suite(path, allow_python=True, known_models=list(tiny_pool.specs))
        assert suite.models == (QWEN25, QWEN3)
        short = {**suite.shared_settings, "max_new_tokens": 4}
        suite = dataclasses.replace(suite, shared_settings=short)
        live = runner.run(SuitePlan(suite, path.read_text(), (QWEN25, QWEN3)))
        assert live.status == "done", live.error
        assert len(live.outcomes) == len(suite.cases()) > 5
        statuses = {v.status for o in live.outcomes for v in o.verdicts.values()}
        assert statuses <= {"pass", "fail"}, f"{path.name}: a generation failed"


# ---- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("QWEN_DASH_DB_URL", url)
    return url


def test_cli_json_junit_and_exit_status_agree_with_the_assertions(
    tmp_path: Path, cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    suite_file, junit = tmp_path / "mixed.yaml", tmp_path / "junit.xml"
    suite_file.write_text(MIXED)
    argv = ["suite", "run", str(suite_file), "--models", QWEN3, "--source", "tiny"]
    status = cli.main([*argv, "--json", "--junit", str(junit)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    records, summary = lines[:-1], lines[-1]
    assert status == 1
    assert [(r["case"], r["model"]) for r in records] == [(c, QWEN3) for c in EXPECTED]
    for r in records:
        assert r["passed"] is EXPECTED[r["case"]]
        weighted = [a for a in r["assertions"] if a["type"] != "equals"]  # equals has weight 0
        assert r["passed"] is all(a["passed"] for a in weighted)
        assert set(r) >= {"case", "model", "passed", "score", "assertions"}
        assert all(set(a) >= {"type", "passed", "reason"} for a in r["assertions"])
    assert summary["summary"] is True and summary["passed"] is False
    assert summary["pass_rate"] == {QWEN3: 0.5}

    root = ET.parse(junit).getroot()
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(records)
    failed = {c.get("name", "").split(":")[0] for c in cases if c.find("failure") is not None}
    assert failed == {c for c, ok in EXPECTED.items() if not ok}
    (testsuite,) = root.findall("testsuite")
    assert (testsuite.get("tests"), testsuite.get("failures")) == ("4", "2")

    store = open_store(cli_db)
    try:
        (info,) = store.list_suite_runs()
        assert info.id == summary["suite_run_id"] and info.status == "done"
        assert {r["run_id"] for r in records} == {r.run_id for r in store.suite_results(info.id)}
    finally:
        store.close()

    suite_file.write_text(ALL_PASS)
    assert cli.main([*argv, "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "100% passed (4/4" in out and "t1#1" in out


BAD_FILES = {
    "unknown type": (
        MIXED.replace("type: contains,", "type: contians,"),
        "tests[1].assert[0].type: unknown type 'contians' (did you mean 'contains'?)",
    ),
    "missing tests": (
        "prompts: ['{{q}}']\n",
        "bad.yaml line 1: tests: missing",
    ),
    "undefined variable": (
        "prompts: ['{{q}} {{p}}']\ntests:\n  - vars: {q: one}\n",
        "tests[0]: prompts[0] uses variable 'p' that this test does not define",
    ),
    "invalid YAML": (
        "prompts: ['{{q}}']\ntests:\n  - vars: {q: one\n",
        "bad.yaml line",
    ),
}


@pytest.mark.parametrize("problem", list(BAD_FILES))
def test_a_bad_file_gets_its_error_exit_2_and_runs_nothing(
    problem: str, tmp_path: Path, cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text, message = BAD_FILES[problem]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert cli.main(["suite", "run", str(path), "--source", "tiny", "--json"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    store = open_store(cli_db)
    try:
        assert store.list_suite_runs() == [] and store.count_runs() == 0
    finally:
        store.close()


def test_unknown_model_and_bad_repeat_exit_2(
    tmp_path: Path, cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(ALL_PASS)
    assert cli.main(["suite", "run", str(path), "--models", "qwen9"]) == 2
    assert "qwen9 not available" in capsys.readouterr().err
    assert cli.main(["suite", "run", str(path), "--repeat", "0"]) == 2
    assert "--repeat must be from 1" in capsys.readouterr().err


# ---- planning, without workers ----------------------------------------------------------------


def test_models_come_from_the_flag_else_the_suite_else_all() -> None:
    suite = _suite("models: [qwen3-0.6b]\n" + ALL_PASS)
    available = [QWEN25, QWEN3]
    assert choose_models(suite, None, available) == (QWEN3,)
    assert choose_models(suite, [QWEN25], available) == (QWEN25,)
    assert choose_models(_suite(ALL_PASS), None, available) == (QWEN25, QWEN3)
    with pytest.raises(SuiteRunError, match="not available"):
        choose_models(suite, ["nope"], available)
    assert with_repeat(suite, 3).repeat == 3 and len(with_repeat(suite, 3).cases()) == 6


def test_each_model_gets_its_settings_and_its_own_system_prompt() -> None:
    specs = load_specs()
    text = (
        "settings:\n  max_new_tokens: 7\n  system: Be brief.\n"
        "  qwen3-0.6b: {thinking: true, system: Think first.}\n" + ALL_PASS.split("\n", 1)[1]
    )
    suite = _suite(text)
    case = suite.cases()[0]
    request = case_request(suite, case, [QWEN25, QWEN3], specs)
    assert request.settings[QWEN25].max_new_tokens == 7 and not request.settings[QWEN25].thinking
    assert request.settings[QWEN3].thinking and request.settings[QWEN3].max_new_tokens == 7
    assert request.system_prompt is None
    assert request.chat_for(QWEN25)[0] == {"role": "system", "content": "Be brief."}
    assert request.chat_for(QWEN3)[0] == {"role": "system", "content": "Think first."}
    assert request.chat_for(QWEN3)[-1] == {"role": "user", "content": "one"}
    same = case_request(_suite(ALL_PASS), case, [QWEN25, QWEN3], specs)
    assert same.system_prompt is None and "histories" not in same.meta


# ---- the store's suite tables (SQLite and PostgreSQL) -------------------------------------------


def _verdict(model: str, status: str, score: float = 1.0) -> SuiteVerdict:
    assertions = [{"type": "contains", "passed": status == "pass", "score": score}]
    return SuiteVerdict(model, status, status == "pass", score, assertions, None, 100.0)


def test_suite_runs_are_stored_listed_and_charted(store: Store) -> None:
    ids = []
    for n, statuses in enumerate([("pass", "fail"), ("pass", "pass")]):
        suite_run_id = store.start_suite_run(
            suite="s.yaml", suite_text="prompts: []", models=[MODEL_A, MODEL_B], source="tiny",
            mode="isolated", repeat=1, total_cases=2,
        )  # fmt: skip
        for position in range(2):
            request, results = make_comparison(f"case {position} of run {n}")
            verdicts = [_verdict(MODEL_A, statuses[position]), _verdict(MODEL_B, "error", 0.0)]
            ref = SuiteCaseRef(position, f"t{position}", f"case {position}")
            run_id = store.save_suite_case(suite_run_id, ref, verdicts, request, results)
            assert store.get_run(run_id).kind == "suite"  # type: ignore[arg-type, union-attr]
        store.finish_suite_run(suite_run_id, "done")
        ids.append(suite_run_id)
    other = store.start_suite_run(
        suite="other.yaml", suite_text="", models=[MODEL_A], source="tiny", mode="isolated",
        repeat=1, total_cases=1,
    )  # fmt: skip

    assert [r.id for r in store.list_suite_runs()] == [other, *reversed(ids)]
    assert [r.id for r in store.list_suite_runs("s.yaml")] == list(reversed(ids))
    assert store.suite_names() == ["other.yaml", "s.yaml"]
    first = store.suite_run(ids[0])
    assert first is not None and first.done_cases == 2 and first.status == "done"
    points = store.suite_pass_history("s.yaml")
    assert [(p.suite_run_id, p.model_key, p.passed, p.judged, p.errors) for p in points] == [
        (ids[0], MODEL_A, 1, 2, 0),
        (ids[0], MODEL_B, 0, 0, 2),
        (ids[1], MODEL_A, 2, 2, 0),
        (ids[1], MODEL_B, 0, 0, 2),
    ]
    # Deleting an answer's run keeps the verdict; deleting the suite run removes its verdicts.
    row = store.suite_results(ids[0])[0]
    # A deleted run is kept (soft delete, restorable): the verdict still links to it. Purging
    # the run for good keeps the verdict, without its link.
    assert row.run_id is not None and store.delete_run(row.run_id, actor="admin")
    assert store.suite_results(ids[0])[0].run_id == row.run_id
    assert store.purge_run(row.run_id)
    assert store.suite_results(ids[0])[0].run_id is None
    assert store.delete_suite_run(ids[0]) and store.suite_results(ids[0]) == []
    assert store.count_runs() == 3  # the other run's answers stay in History
