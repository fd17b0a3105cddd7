"""Per-generation figures for charts that need every value (distributions, memory against input
tokens, the Models page's medians); the per-bucket aggregates come from the store in SQL."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from qwen_dash.charts import generations_frame
from qwen_dash.store import RunFilters, Store

MAX_RUNS = 2000


def load_generations(
    store: Store,
    filters: RunFilters | None = None,
    labels: Mapping[str, str] | None = None,
    max_runs: int = MAX_RUNS,
) -> pd.DataFrame:
    """The newest ``max_runs`` matching runs, one row per generation (metric columns only)."""
    return generations_frame(store.generation_figures(filters, max_runs), labels or {})
