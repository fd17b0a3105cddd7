"""Per-generation figures for charts that need every value (distributions, memory against input
tokens, the Models page's medians); the per-bucket aggregates come from the store in SQL."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from qwen_dash.charts import generations_frame
from qwen_dash.store import RunFilters, Store

MAX_RUNS = 2000
CHUNK = 500


def load_generations(
    store: Store,
    filters: RunFilters | None = None,
    labels: Mapping[str, str] | None = None,
    max_runs: int = MAX_RUNS,
) -> pd.DataFrame:
    """The newest ``max_runs`` matching runs, one row per generation."""
    runs = []
    page = 0
    while len(runs) < max_runs:
        result = store.list_runs(filters, page=page, page_size=CHUNK)
        runs += result.runs
        if not result.has_more:
            break
        page += 1
    return generations_frame(runs[:max_runs], labels or {})
