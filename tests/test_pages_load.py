"""What a page load costs, in the terms that made pages slow (issue 8): how many SQL statements a
render issues and whether any reads a whole table, and how many charts a load sends to the
browser. Not timed: the times are `python -m qwen_dash bench pages`'s (README, Benchmarks)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from qwen_dash.bench.store import fill
from qwen_dash.store import Store
from qwen_dash.store.repository import distinct_values_query
from qwen_dash.store.schema import Generation, RunTag

RUNS = 300
# Generous: a page that issues more has started a query per row or per widget.
MAX_STATEMENTS = {"history": 12, "trends": 12}


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine in this process executes meanwhile (the app's store
    lives in this process under AppTest)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(" ".join(sql.split()))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _reads_generations_unbounded(sql: str) -> bool:
    """A SELECT over generations with neither a LIMIT nor a narrowing to given runs."""
    upper = sql.upper()
    if not upper.startswith(("SELECT", "WITH")) or "FROM GENERATIONS" not in upper:
        return False
    bounded = ("LIMIT" in upper, "RUN_ID IN" in upper, "MIN(GENERATIONS." in upper)
    return not any(bounded)


def _check(sqls: list[str], page: str) -> None:
    assert sqls, "the page issued no SQL at all: is the listener on the app's engine?"
    assert len(sqls) <= MAX_STATEMENTS[page], "\n".join(sqls)
    distinct = [s for s in sqls if re.search(r"SELECT DISTINCT", s, re.I)]
    assert not distinct, f"{page} reads whole tables for its filter options: {distinct}"
    unbounded = [s for s in sqls if _reads_generations_unbounded(s)]
    assert not unbounded, f"{page} reads every generation: {unbounded}"


def test_history_list_issues_a_few_bounded_statements(app, ui_store: Store) -> None:
    fill(ui_store, RUNS)
    at = app()
    with statements() as sqls:
        at.switch_page("pages/history.py")
        at = at.run()
    assert not at.exception
    assert at.dataframe, "the History list did not render"
    _check(sqls, "history")


def test_trends_load_issues_bounded_statements_and_sends_one_tab(app, ui_store: Store) -> None:
    fill(ui_store, RUNS)
    ui_store.trends()  # the rollups a bulk load leaves dirty are built once, not per load
    at = app()
    with statements() as sqls:
        at.switch_page("pages/trends.py")
        at = at.run()
    assert not at.exception
    _check(sqls, "trends")
    charts = at.get("plotly_chart")
    assert len(charts) == 4, "a load draws the open tab only (Over time: 4 charts)"
    for tab, expected in (("Distributions", 5), ("A - B", 4), ("Memory vs input", 1)):
        at.session_state["t_tab"] = tab
        with statements() as sqls:
            at = at.run()
        assert not at.exception
        _check(sqls, "trends")
        assert len(at.get("plotly_chart")) == expected, tab


def test_paired_differences_on_trends_are_limited(app, ui_store: Store) -> None:
    fill(ui_store, RUNS)
    at = app("trends")
    at.session_state["t_tab"] = "A - B"
    with statements() as sqls:
        at = at.run()
    assert not at.exception
    paired = [s for s in sqls if " AS ga " in s.replace('"', "") or "JOIN generations AS ga" in s]
    assert paired and all("LIMIT" in s.upper() for s in paired), paired


def test_filter_options_are_index_probes_not_table_scans(ui_store: Store) -> None:
    fill(ui_store, RUNS)
    with ui_store.reading() as session:
        for column in (Generation.model_key, Generation.source, RunTag.tag):
            query = distinct_values_query(column).compile(
                ui_store.engine, compile_kwargs={"literal_binds": True}
            )
            plan = " | ".join(
                str(row[-1]) for row in session.execute(text(f"EXPLAIN QUERY PLAN {query}"))
            )
            assert "SCAN generations" not in plan and "SCAN run_tags" not in plan, plan
    options = ui_store.filter_options()
    assert options["models"] == ["qwen2.5-0.5b-instruct", "qwen3-0.6b"]
    assert options["sources"] == ["hub", "twin"]
    assert options["tags"] == ["demo", "eval", "regression"]
