"""The Suites page's logic, no streamlit: which suites there are, loading one safely, the
results matrix and its filters, the per-model summary, regressions between two runs, and the
pass rate over time.

Everything here reads stored verdicts (``qwen_dash.store.SuiteResultRow``), so a running suite,
a finished one and one run by the CLI look the same.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from qwen_dash.core.defaults import suites_dir
from qwen_dash.quality.assertions import AssertionResult, CaseResult
from qwen_dash.quality.suite_results import (
    FAILED_TO_PASSED,
    GONE,
    NEW,
    PASSED_TO_FAILED,
    UNCHANGED,
    ResultRow,
    diff_counts,
    diff_runs,
    metric_means,
    pass_rates,
)
from qwen_dash.quality.suites import Suite, load_suite
from qwen_dash.services.suite_runner import Progress
from qwen_dash.store import SuitePassPoint, SuiteResultRow, SuiteRunInfo
from qwen_dash.views.charts import PALETTE, _style

FILTERS = ("all", "failures", "different")
FILTER_LABELS = {
    "all": "All",
    "failures": "Failures",
    "different": "Different between the models",
}
STATUS_MARK = {"pass": "pass", "fail": "FAIL", "error": "ERROR"}
# Cell colours of the matrix (light, so the text stays readable in either theme).
STATUS_COLORS = {"pass": "#d9f2e3", "fail": "#fbdcdc", "error": "#fdf0c8"}
HISTORY_URL = "/history?run={run_id}"
# Per model in the pass-rate chart, so that two models with the same rates stay visible.
DASHES = ("solid", "dash", "dot", "dashdot")
MARKERS = ("circle", "diamond", "square", "triangle-up")
MAX_STYLED_ROWS = 300  # the matrix's cells are coloured up to this many rows
SHOWN_CHANGES = (PASSED_TO_FAILED, FAILED_TO_PASSED, NEW, GONE)


# ---- suites on disk and uploaded ----------------------------------------------------------------


def shipped_suites(folder: Path | None = None) -> dict[str, Path]:
    """The server's suite files by name (``*.yaml``, ``*.yml``), sorted."""
    root = folder or suites_dir()
    if not root.is_dir():
        return {}
    files = [p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()]
    return {p.name: p for p in sorted(files)}


def load_shipped(path: Path, known_models: Sequence[str]) -> tuple[Suite, str]:
    """A suite from the server's own folder: trusted, so ``python`` assertions may run."""
    text = path.read_text(encoding="utf-8")
    return load_suite(text, name=path.name, allow_python=True, known_models=known_models), text


def load_uploaded(name: str, data: bytes, known_models: Sequence[str]) -> tuple[Suite, str]:
    """A suite a browser uploaded: never trusted, so a ``python`` assertion is a load error."""
    from qwen_dash.quality.suites import SuiteError

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError([f"{name}: not UTF-8 text: {exc}"]) from exc
    return load_suite(text, name=name, allow_python=False, known_models=known_models), text


def default_models(suite: Suite, available: Sequence[str]) -> list[str]:
    """The suite's models that this server has, else every model it has."""
    chosen = [m for m in suite.models or () if m in available]
    return chosen or list(available)


# ---- labels --------------------------------------------------------------------------------------


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def size_text(suite: Suite, cases: int) -> str:
    """ "22 cases: 11 tests, 2 prompts, run 3 times each; isolated timing"."""
    times = "once" if suite.repeat == 1 else f"{suite.repeat} times each"
    return (
        f"{_n(cases, 'case')}: {_n(len(suite.tests), 'test')}, "
        f"{_n(len(suite.prompts), 'prompt')}, run {times}; {suite.mode} timing"
    )


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def progress_text(p: Progress) -> str:
    """ "3 of 11 cases · 0:12 elapsed · about 0:32 left"."""
    text = f"{p.done} of {p.total} cases · {duration(p.elapsed_s)} elapsed"
    if p.running:
        return text + (f" · about {duration(p.eta_s)} left" if p.eta_s is not None else "")
    return f"{text} · {p.status}"


def run_label(info: SuiteRunInfo) -> str:
    """How a suite run is named in pickers: "#12 · arithmetic.yaml · 2025-12-02 14:03 UTC".
    Nothing in it changes while the run runs (a picker keeps the label it was first given)."""
    return f"#{info.id} · {info.suite} · {info.created_at.strftime('%Y-%m-%d %H:%M UTC')}"


def run_state(info: SuiteRunInfo, live: bool) -> str:
    """ "done · 11 of 11 cases · 2 models"; a run left "running" by a process that is gone (or
    run by the CLI) says so."""
    status = info.status
    if status == "running" and not live:
        status = "not running in this server"
    return (
        f"{status} · {info.done_cases} of {_n(info.total_cases, 'case')} · "
        f"{_n(len(info.models), 'model')}, {info.source} weights, {info.mode} timing"
    )


def cell_color(text: str) -> str:
    """CSS for a matrix cell from its text ("FAIL · 0.00")."""
    for status, mark in STATUS_MARK.items():
        if text.startswith(mark):
            return f"background-color: {STATUS_COLORS[status]}; color: #1f1f1f"
    return ""


# ---- from stored rows ----------------------------------------------------------------------------


def case_result(row: SuiteResultRow) -> CaseResult:
    assertions = tuple(
        AssertionResult(
            a.get("type", "?"),
            bool(a.get("passed")),
            float(a.get("score", 0.0)),
            str(a.get("reason", "")),
            a.get("metric"),
            float(a.get("weight", 1.0)),
        )
        for a in row.assertions
    )
    return CaseResult(row.case_id, row.passed, row.score, row.status, assertions, row.error)


def result_rows(rows: Sequence[SuiteResultRow]) -> list[ResultRow]:
    return [ResultRow(r.case_id, r.model_key, case_result(r)) for r in rows]


# ---- the matrix ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matrix:
    """Cases by models: ``frame`` to show (one row per case, one column per model) and, per row
    and model column, the run that holds the answer (for a selected cell to open)."""

    frame: pd.DataFrame
    run_ids: list[int | None]
    model_columns: list[str]

    def run_for(self, row: int) -> int | None:
        return self.run_ids[row] if 0 <= row < len(self.run_ids) else None


def _cell(row: SuiteResultRow) -> str:
    return f"{STATUS_MARK.get(row.status, row.status)} · {row.score:.2f}"


def _keep(cells: Mapping[str, SuiteResultRow], models: Sequence[str], which: str) -> bool:
    if which == "failures":
        return any(not cells[m].passed for m in models if m in cells)
    if which == "different":
        return len({cells[m].status if m in cells else None for m in models}) > 1
    return True


def matrix(
    rows: Sequence[SuiteResultRow],
    models: Sequence[str],
    labels: Mapping[str, str],
    which: str = "all",
) -> Matrix:
    """The results matrix, filtered: all cases, those that failed on some model, or those whose
    verdicts differ between the models."""
    if which not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {which!r}")
    by_case: dict[str, dict[str, SuiteResultRow]] = {}
    for r in rows:
        by_case.setdefault(r.case_id, {})[r.model_key] = r
    columns = [labels.get(m, m) for m in models]
    records: list[dict[str, object]] = []
    run_ids: list[int | None] = []
    for case_id, cells in by_case.items():
        if not _keep(cells, models, which):
            continue
        first = next(iter(cells.values()))
        record: dict[str, object] = {"case": case_id, "name": first.case_name}
        for model, column in zip(models, columns, strict=True):
            record[column] = _cell(cells[model]) if model in cells else "—"
        run_id = first.run_id
        record["run"] = HISTORY_URL.format(run_id=run_id) if run_id is not None else None
        records.append(record)
        run_ids.append(run_id)
    frame = pd.DataFrame.from_records(records, columns=["case", "name", *columns, "run"])
    return Matrix(frame, run_ids, columns)


def filter_counts(rows: Sequence[SuiteResultRow], models: Sequence[str]) -> dict[str, int]:
    """How many cases each filter keeps, for its label."""
    by_case: dict[str, dict[str, SuiteResultRow]] = {}
    for r in rows:
        by_case.setdefault(r.case_id, {})[r.model_key] = r
    return {w: sum(_keep(cells, models, w) for cells in by_case.values()) for w in FILTERS}


# ---- the summary ---------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def summary(
    rows: Sequence[SuiteResultRow], models: Sequence[str], labels: Mapping[str, str]
) -> pd.DataFrame:
    """Per model: pass rate with its Wilson 95% interval, counts, median latency, and the mean
    score of each named metric."""
    converted = result_rows(rows)
    rates = pass_rates(converted)
    means = metric_means(converted)
    metric_names = sorted({name for m in means.values() for name in m})
    records = []
    for model in models:
        rate = rates.get(model)
        latencies = [r.e2e_ms for r in rows if r.model_key == model and r.e2e_ms is not None]
        record: dict[str, object] = {
            "model": labels.get(model, model),
            "pass rate": _pct(rate.rate if rate else None),
            "95% interval": f"{rate.low:.0%} to {rate.high:.0%}" if rate else "n/a",
            "passed": f"{rate.passed} / {rate.total}" if rate else "0 / 0",
            "errors": rate.errors if rate else 0,
            "median latency": f"{statistics.median(latencies):,.0f} ms" if latencies else "n/a",
        }
        for name in metric_names:
            mean = means.get(model, {}).get(name)
            record[f"metric: {name}"] = f"{mean.mean:.2f} (n={mean.count})" if mean else "n/a"
        records.append(record)
    return pd.DataFrame.from_records(records)


def assertion_details(
    rows: Sequence[SuiteResultRow], case_id: str, labels: Mapping[str, str]
) -> pd.DataFrame:
    """Every assertion of one case, per model: the reasons behind a cell."""
    records = [
        {
            "model": labels.get(r.model_key, r.model_key),
            "assertion": a.get("type"),
            "passed": bool(a.get("passed")),
            "score": round(float(a.get("score", 0.0)), 3),
            "weight": a.get("weight", 1.0),
            "metric": a.get("metric") or "",
            "reason": a.get("reason", ""),
        }
        for r in rows
        if r.case_id == case_id
        for a in (r.assertions or [{"type": "(generation)", "reason": r.error or ""}])
    ]
    return pd.DataFrame.from_records(records)


# ---- regressions ---------------------------------------------------------------------------------


def regressions(
    before: Sequence[SuiteResultRow],
    after: Sequence[SuiteResultRow],
    labels: Mapping[str, str],
    changed_only: bool = True,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Per (case, model): how the verdict moved from ``before`` to ``after``, and the counts."""
    changes = diff_runs(result_rows(before), result_rows(after))
    names = {r.case_id: r.case_name for r in [*before, *after]}
    records = [
        {
            "case": c.case_id,
            "name": names.get(c.case_id, ""),
            "model": labels.get(c.model, c.model),
            "change": c.change,
            "before": STATUS_MARK.get(c.before or "", "—"),
            "after": STATUS_MARK.get(c.after or "", "—"),
        }
        for c in changes
        if not changed_only or c.change != UNCHANGED
    ]
    frame = pd.DataFrame.from_records(
        records, columns=["case", "name", "model", "change", "before", "after"]
    )
    return frame, diff_counts(changes)


def pass_rate_frame(points: Sequence[SuitePassPoint], labels: Mapping[str, str]) -> pd.DataFrame:
    """One row per (suite run, model): the pass rate and its Wilson interval, for the chart."""
    from qwen_dash.quality.suite_results import wilson

    records = []
    for p in points:
        low, high = wilson(p.passed, p.judged)
        records.append(
            {
                "suite_run_id": p.suite_run_id,
                "created_at": p.created_at,
                "model": labels.get(p.model_key, p.model_key),
                "pass_rate": p.passed / p.judged if p.judged else None,
                "low": low,
                "high": high,
                "judged": p.judged,
                "errors": p.errors,
            }
        )
    return pd.DataFrame.from_records(
        records,
        columns=[
            "suite_run_id",
            "created_at",
            "model",
            "pass_rate",
            "low",
            "high",
            "judged",
            "errors",
        ],
    )


def pass_rate_figure(frame: pd.DataFrame, suite: str) -> go.Figure:
    """Each model's pass rate per run of the suite, over time, with its 95% interval."""
    fig = go.Figure()
    for i, (model, part) in enumerate(frame.groupby("model", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        rate = part["pass_rate"] * 100
        fig.add_trace(
            go.Scatter(
                x=part["created_at"],
                y=rate,
                mode="lines+markers",
                name=str(model),
                line={"color": color, "dash": DASHES[i % len(DASHES)], "width": 2.5},
                marker={"symbol": MARKERS[i % len(MARKERS)], "size": 9},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": part["high"] * 100 - rate,
                    "arrayminus": rate - part["low"] * 100,
                    "color": color,
                    "thickness": 1,
                },
                customdata=part[["suite_run_id", "judged", "errors"]].to_numpy(),
                hovertemplate=(
                    "run #%{customdata[0]}: %{y:.0f}% of %{customdata[1]} cases"
                    " (%{customdata[2]} errors)<extra>%{fullData.name}</extra>"
                ),
            )
        )
    _style(fig, f"Pass rate across runs of {suite} (95% interval)")
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(title="pass rate (%)", range=[-5, 105])
    return fig
