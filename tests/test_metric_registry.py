"""The metric registry is the one list of metrics: the worker's result, the ORM columns, the
rollups, the display, the export and the CLI all agree with it."""

from __future__ import annotations

import dataclasses
import io
import json

from sqlalchemy import BigInteger, Float, Integer

from qwen_dash.core.metrics import (
    HEADLINE_METRICS,
    MEASURED,
    METRIC_NAMES,
    METRICS,
    REGISTRY,
    TREND_METRICS,
    GenerationResult,
)
from qwen_dash.store import Store, open_store
from qwen_dash.store.schema import ROLLUP_STATS, Generation, TrendRollup
from qwen_dash.views import display
from qwen_dash.views.history import metrics_table
from tests.conftest_db import make_comparison


def test_each_metric_is_declared_once_with_everything_a_reader_needs() -> None:
    assert len(METRIC_NAMES) == len(set(METRIC_NAMES)) == len(METRICS)
    for m in METRICS:
        assert m.label and m.definition and m.unit in ("ms", "tok/s", "tokens", "bytes"), m
    assert HEADLINE_METRICS[0] == "ttft_ms" and len(HEADLINE_METRICS) == 6
    assert set(TREND_METRICS) <= set(METRIC_NAMES)


def test_the_worker_result_has_a_typed_field_for_each_measured_metric() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(GenerationResult)}
    for name in MEASURED:
        wanted = "int | None" if REGISTRY[name].integer else "float | None"
        assert fields.get(name) == wanted, f"GenerationResult.{name}: {fields.get(name)}"
    derived = set(METRIC_NAMES) - set(MEASURED)
    assert all(isinstance(getattr(GenerationResult, d), property) for d in derived)


def test_the_orm_has_a_column_of_the_right_type_for_every_metric() -> None:
    columns = Generation.__table__.columns
    for m in METRICS:
        assert m.name in columns, f"generations has no column {m.name}"
        kind = type(columns[m.name].type)
        assert kind in ((BigInteger, Integer) if m.integer else (Float,)), (m.name, kind)
        assert columns[m.name].nullable, f"{m.name} must be nullable: unmeasured is NULL"
    rollup = TrendRollup.__table__.columns
    assert all(stat in rollup for stat in ROLLUP_STATS)
    assert {c.name for c in rollup if c.name.endswith(("_p50", "_p95", "_mean"))} == set(
        ROLLUP_STATS
    )


def test_display_and_history_table_read_the_registry() -> None:
    for m in METRICS:
        assert display.metric_label(m.name) == m.label
        assert display.metric_definition(m.name) == m.definition
    table = metrics_table([], {})
    assert list(table.index) == [m.label for m in METRICS]


def test_export_writes_every_metric(tmp_path) -> None:
    store: Store = open_store(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    try:
        store.save_comparison(*make_comparison("registry"))
        out = io.StringIO()
        store.export("jsonl", None, out)
        generation = json.loads(out.getvalue())["generations"][0]
        assert set(METRIC_NAMES) <= set(generation)
        csv_out = io.StringIO()
        store.export("csv", None, csv_out)
        header = csv_out.getvalue().splitlines()[0].split(",")
        assert set(METRIC_NAMES) <= set(header)
    finally:
        store.close()
