"""What the History page shows of logged runs, as pandas tables; and the filters it and Trends
use. No streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from qwen_dash.core.metrics import METRIC_NAMES
from qwen_dash.store import RunFilters
from qwen_dash.views.display import NA, fmt_metric, metric_definition, metric_label
from qwen_dash.views.safe_text import clean_search

PROMPT_PREVIEW_CHARS = 90
THINKING_CHOICES = {"Any": None, "On": True, "Off": False}


def zone(name: str | None) -> tzinfo:
    """The browser's time zone by name, UTC when unknown."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def make_filters(
    *,
    text: str | None = None,
    models: Sequence[str] = (),
    sources: Sequence[str] = (),
    dates: Sequence[date] = (),
    tag: str | None = None,
    thinking: str = "Any",
    mode: str | None = None,
    tz: tzinfo | None = None,
) -> RunFilters:
    """Filters from what the widgets give: a date range is whole days in the user's zone."""
    tz = tz or ZoneInfo("UTC")
    since = until = None
    if len(dates) >= 1 and dates[0] is not None:
        since = datetime.combine(dates[0], time.min, tz)
    if len(dates) >= 2 and dates[1] is not None:
        until = datetime.combine(dates[1] + timedelta(days=1), time.min, tz)
    return RunFilters(
        text=clean_search(text),
        models=tuple(models),
        sources=tuple(sources),
        since=since,
        until=until,
        tag=tag or None,
        thinking=THINKING_CHOICES.get(thinking),
        mode=mode if mode and mode != "Any" else None,
    )


def preview(text: str, limit: int = PROMPT_PREVIEW_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def run_status(run: Any) -> str:
    statuses = [g.status for g in run.generations]
    if not statuses:
        return "no answers"
    if all(s == "ok" for s in statuses):
        return "ok"
    if "error" in statuses:
        return "error"
    return "stopped"


def runs_table(runs: Sequence[Any], labels: Mapping[str, str], tz: tzinfo) -> pd.DataFrame:
    """One row per run for the History list, newest first as given."""
    rows = []
    for run in runs:
        gens = run.generations
        rows.append(
            {
                "run": run.id,
                "when": run.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                "prompt": preview(run.prompt),
                "models": ", ".join(labels.get(g.model_key, g.model_key) for g in gens),
                "source": ", ".join(sorted({g.source for g in gens})),
                "mode": run.mode,
                "thinking": bool(run.thinking),
                "tags": list(run.tags),
                "user": run.user or "",
                "status": run_status(run),
            }
        )
    columns = ["run", "when", "prompt", "models", "source", "mode", "thinking"]
    return pd.DataFrame(rows, columns=[*columns, "tags", "user", "status"])


def metrics_table(generations: Sequence[Any], labels: Mapping[str, str]) -> pd.DataFrame:
    """Every metric (rows) for every model of a run (columns), 'n/a' where not measured."""
    data: dict[str, list[str]] = {}
    for g in generations:
        data[labels.get(g.model_key, g.model_key)] = [
            fmt_metric(m, getattr(g, m, None)) for m in METRIC_NAMES
        ]
    index = pd.Index([metric_label(m) for m in METRIC_NAMES], name="metric")
    table = pd.DataFrame(data, index=index)
    table["definition"] = [metric_definition(m) for m in METRIC_NAMES]
    return table


def settings_table(generations: Sequence[Any], labels: Mapping[str, str]) -> pd.DataFrame:
    names: list[str] = []
    for g in generations:
        names += [k for k in (g.settings or {}) if k not in names]
    data = {
        labels.get(g.model_key, g.model_key): [_plain((g.settings or {}).get(n)) for n in names]
        for g in generations
    }
    return pd.DataFrame(data, index=pd.Index(names, name="setting"))


def environment_table(generations: Sequence[Any], labels: Mapping[str, str]) -> pd.DataFrame:
    names: list[str] = []
    for g in generations:
        names += [k for k in (g.environment or {}) if k not in names]
    for extra in ("device", "dtype", "revision"):
        if extra not in names:
            names.append(extra)
    data = {}
    for g in generations:
        env = dict(g.environment or {})
        env.setdefault("device", g.device)
        env.setdefault("dtype", g.dtype)
        env.setdefault("revision", g.revision)
        data[labels.get(g.model_key, g.model_key)] = [_plain(env.get(n)) for n in names]
    return pd.DataFrame(data, index=pd.Index(names, name="environment"))


def _plain(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
