"""What a suite run reports: one record per case and model, a summary, JUnit XML, an exit
status. Shared by the CLI (``--json``, ``--junit``) and the tests; pure functions of the
outcomes, so the three can never disagree."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from typing import Any

from qwen_dash.quality.assertions import STATUS_ERROR, STATUS_FAIL
from qwen_dash.quality.suite_results import PassRate, ResultRow, pass_rates
from qwen_dash.services.suite_runner import CaseOutcome, LiveSuiteRun

EXIT_PASSED, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def result_rows(outcomes: Sequence[CaseOutcome]) -> list[ResultRow]:
    return [
        ResultRow(o.case.id, model, verdict)
        for o in outcomes
        for model, verdict in o.verdicts.items()
    ]


def case_records(outcome: CaseOutcome) -> Iterator[dict[str, Any]]:
    """One JSON-ready object per model for one case."""
    for model, v in outcome.verdicts.items():
        yield {
            "case": outcome.case.id,
            "name": outcome.case.name,
            "repeat": outcome.case.repeat_index,
            "model": model,
            "passed": v.passed,
            "status": v.status,
            "score": round(v.score, 6),
            "assertions": [
                {
                    "type": a.type,
                    "passed": a.passed,
                    "reason": a.reason,
                    "score": round(a.score, 6),
                    "metric": a.metric,
                }
                for a in v.assertions
            ],
            "error": v.error,
            "e2e_ms": outcome.results[model].e2e_ms,
            "run_id": outcome.run_id,
        }


def _rate_record(rate: PassRate) -> dict[str, Any]:
    return {
        "pass_rate": rate.rate,
        "passed": rate.passed,
        "judged": rate.total,
        "errors": rate.errors,
        "low": round(rate.low, 6),
        "high": round(rate.high, 6),
    }


def summary_record(live: LiveSuiteRun) -> dict[str, Any]:
    """The last JSON object: each model's pass rate (errors apart) and the verdict."""
    rates = pass_rates(result_rows(live.outcomes))
    return {
        "summary": True,
        "suite": live.plan.suite.name,
        "suite_run_id": live.id,
        "status": live.status,
        "cases": len(live.outcomes),
        "total_cases": live.total,
        "passed": exit_status(live) == EXIT_PASSED,
        "pass_rate": {m: r.rate for m, r in rates.items()},
        "models": {m: _rate_record(r) for m, r in rates.items()},
    }


def exit_status(live: LiveSuiteRun) -> int:
    """0 when the suite ran to the end and every case passed on every model; else 1."""
    every = all(v.passed for o in live.outcomes for v in o.verdicts.values())
    return EXIT_PASSED if live.status == "done" and every else EXIT_FAILED


def _failure_text(records: dict[str, Any]) -> str:
    lines = [
        f"{'PASS' if a['passed'] else 'FAIL'} {a['type']}: {a['reason']}"
        for a in records["assertions"]
    ]
    return "\n".join(lines)


def junit_xml(live: LiveSuiteRun) -> ET.ElementTree[ET.Element]:
    """JUnit XML: one testsuite per model, one testcase per case (name: case id and name)."""
    root = ET.Element("testsuites", name=live.plan.suite.name)
    suites = {
        m: ET.SubElement(root, "testsuite", name=f"{live.plan.suite.name} [{m}]")
        for m in live.plan.models
    }
    counts = {m: {"tests": 0, "failures": 0, "errors": 0, "time": 0.0} for m in live.plan.models}
    for outcome in live.outcomes:
        for record in case_records(outcome):
            model = record["model"]
            seconds = (record["e2e_ms"] or 0.0) / 1000
            case = ET.SubElement(
                suites[model],
                "testcase",
                classname=f"{live.plan.suite.name}.{model}",
                name=f"{record['case']}: {record['name']}",
                time=f"{seconds:.3f}",
            )
            c = counts[model]
            c["tests"] += 1
            c["time"] += seconds
            if record["status"] == STATUS_ERROR:
                c["errors"] += 1
                error = ET.SubElement(case, "error", message=record["error"] or "generation failed")
                error.text = record["error"]
            elif record["status"] == STATUS_FAIL:
                c["failures"] += 1
                failure = ET.SubElement(case, "failure", message=f"score {record['score']:.2f}")
                failure.text = _failure_text(record)
            ET.SubElement(case, "system-out").text = f"run {record['run_id']}"
    for model, element in suites.items():
        c = counts[model]
        element.set("tests", str(c["tests"]))
        element.set("failures", str(c["failures"]))
        element.set("errors", str(c["errors"]))
        element.set("time", f"{c['time']:.3f}")
    return ET.ElementTree(root)


def text_lines(outcome: CaseOutcome) -> Iterator[str]:
    """A case for a terminal: one line per model, failed assertions under it."""
    for record in case_records(outcome):
        status = record["status"].upper()
        yield (
            f"{status:<5} {record['case']:<12} {record['model']:<24} {record['score']:.2f}  "
            + (record["name"])
        )
        if record["status"] == STATUS_ERROR:
            yield f"      error: {record['error']}"
        for a in record["assertions"]:
            if not a["passed"]:
                yield f"      {a['type']}: {a['reason']}"


def summary_lines(live: LiveSuiteRun) -> Iterator[str]:
    summary = summary_record(live)
    yield ""
    yield f"{summary['suite']}: {summary['cases']} of {summary['total_cases']} cases, {live.status}"
    for model, r in summary["models"].items():
        rate = "n/a" if r["pass_rate"] is None else f"{r['pass_rate']:.0%}"
        errors = f"; {r['errors']} errors" if r["errors"] else ""
        yield (
            f"  {model:<24} {rate:>5} passed ({r['passed']}/{r['judged']}; 95% interval "
            f"{r['low']:.0%} to {r['high']:.0%}){errors}"
        )
    yield f"logged as suite run {live.id}"
