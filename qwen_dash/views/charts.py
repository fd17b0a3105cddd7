"""Tables and plotly figures for the Trends and Models pages; no streamlit.

A series is always one model from one weights source in one timing mode ("Qwen3-0.6B · twin ·
isolated"): twins and real weights, concurrent and isolated runs, are never drawn as one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from qwen_dash.core.metrics import REGISTRY, TREND_METRICS
from qwen_dash.store import PairedDifference, Store, TrendRow
from qwen_dash.store.filters import RunFilters
from qwen_dash.views.display import metric_label
from qwen_dash.views.safe_text import escape_html

# The trend metrics drawn as lines over time (output length has its own histogram).
TREND_CHARTS: tuple[str, ...] = tuple(m for m in TREND_METRICS if REGISTRY[m].unit != "tokens")
MAX_RUNS = 2000  # distributions and scatter plots draw every answer of this many newest runs
GENERATION_COLUMNS = (
    "run_id",
    "created_at",
    "model_key",
    "source",
    "mode",
    "thinking",
    "kind",
    "status",
    "ttft_ms",
    "e2e_ms",
    "decode_tps",
    "n_in",
    "n_out",
    "peak_memory_bytes",
)
PALETTE = qualitative.Safe


def axis_unit(metric: str) -> str:
    m = REGISTRY.get(metric)
    return m.axis_unit if m else ""


def axis_title(metric: str) -> str:
    unit = axis_unit(metric)
    label = metric_label(metric)
    return f"{label} ({unit})" if unit else label


def series_name(model_label: str, source: str, mode: str) -> str:
    """A series' name as plotly shows it (legend, hover): HTML-escaped, so a label is text."""
    return escape_html(f"{model_label} · {source} · {mode}")


def _label(labels: Mapping[str, str], key: str) -> str:
    return labels.get(key, key)


# ---- frames -------------------------------------------------------------------------------------


def load_generations(
    store: Store, filters: RunFilters | None, labels: Mapping[str, str], max_runs: int = MAX_RUNS
) -> pd.DataFrame:
    """The newest ``max_runs`` matching runs, one row per generation (metric columns only):
    for the charts that need every value; per-bucket aggregates come from SQL."""
    return generations_frame(store.generation_figures(filters, max_runs), labels)


def trend_frame(rows: Iterable[TrendRow], labels: Mapping[str, str]) -> pd.DataFrame:
    """Store trend rows (bucket, key, count, stats) as a tidy frame with a ``series`` column."""
    records = []
    for row in rows:
        key = row.key
        rec = {
            "bucket": row.bucket,
            "model_key": key.get("model_key"),
            "source": key.get("source"),
            "mode": key.get("mode"),
            "count": row.count,
            **row.stats,
        }
        model = str(key.get("model_key"))
        rec["series"] = series_name(_label(labels, model), str(rec["source"]), str(rec["mode"]))
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
        frame = frame.sort_values(["series", "bucket"]).reset_index(drop=True)
    return frame


def generations_frame(rows: Iterable[Mapping[str, Any]], labels: Mapping[str, str]) -> pd.DataFrame:
    """One row per generation, from ``Store.generation_figures`` rows, with its series name."""
    records = [
        {
            **{name: row[name] for name in GENERATION_COLUMNS},
            "series": series_name(_label(labels, row["model_key"]), row["source"], row["mode"]),
        }
        for row in rows
    ]
    frame = pd.DataFrame.from_records(records, columns=[*GENERATION_COLUMNS, "series"])
    if not frame.empty:
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def paired_frame(diffs: Iterable[PairedDifference]) -> pd.DataFrame:
    records = [
        {
            "run_id": d.run_id,
            "created_at": d.created_at,
            "mode": d.mode,
            "thinking": d.thinking,
            "sources": f"{d.source_a} vs {d.source_b}",
            **d.values,
        }
        for d in diffs
    ]
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        frame["group"] = frame["sources"] + " · " + frame["mode"]
    return frame


def scaled(values: pd.Series, metric: str) -> pd.Series:
    m = REGISTRY.get(metric)
    return pd.to_numeric(values, errors="coerce") * (m.chart_scale if m else 1.0)


# ---- figures ------------------------------------------------------------------------------------


def _style(fig: go.Figure, title: str, height: int = 340) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 15}},
        height=height,
        margin={"l": 10, "r": 10, "t": 48, "b": 10},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0, "title": None},
        hovermode="x unified",
    )
    return fig


def _rgba(color: str, alpha: float) -> str:
    color = color.strip()
    if color.startswith("rgb("):
        return color.replace("rgb(", "rgba(").replace(")", f", {alpha})")
    if color.startswith("#") and len(color) == 7:
        r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
        return f"rgba({r}, {g}, {b}, {alpha})"
    return color


BUCKET_STEPS = {"hour": pd.Timedelta(hours=1), "day": pd.Timedelta(days=1)}
BUCKET_TICKS = {"hour": "%b %d %H:00", "day": "%b %d"}


def trend_figure(frame: pd.DataFrame, metric: str, bucket: str = "day") -> go.Figure:
    """The median per bucket as a line, with a shaded band up to the 95th percentile."""
    traces: list[go.Scatter] = []
    for i, (key, part) in enumerate(frame.groupby("series", sort=True)):
        series, color = str(key), PALETTE[i % len(PALETTE)]
        p50 = scaled(part[f"{metric}_p50"], metric)
        p95 = scaled(part[f"{metric}_p95"], metric)
        x = part["bucket"]
        traces += [
            go.Scatter(
                x=x,
                y=p50,
                mode="lines",
                line={"width": 0},
                showlegend=False,
                legendgroup=series,
                hoverinfo="skip",
            ),
            go.Scatter(
                x=x,
                y=p95,
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=_rgba(color, 0.18),
                name=f"{series} p95",
                legendgroup=series,
                showlegend=False,
                hovertemplate="p95 %{y:,.1f}<extra></extra>",
            ),
            go.Scatter(
                x=x,
                y=p50,
                mode="lines+markers",
                name=series,
                legendgroup=series,
                line={"color": color, "width": 2.5},
                marker={"size": 7},
                customdata=part["count"],
                hovertemplate="median %{y:,.1f} (n=%{customdata})<extra>" + series + "</extra>",
            ),
        ]
    fig = go.Figure(data=traces)  # one constructor: add_trace per trace costs far more
    fig.update_yaxes(title=axis_title(metric), range=_y_range(frame, metric))
    step = BUCKET_STEPS.get(bucket, BUCKET_STEPS["day"])
    if not frame.empty:
        first, last = frame["bucket"].min(), frame["bucket"].max()
        fig.update_xaxes(range=[first - step * 0.6, last + step * 0.6])
        if (last - first) / step <= 8:
            fig.update_xaxes(dtick=step.total_seconds() * 1000)
    fig.update_xaxes(title=None, tickformat=BUCKET_TICKS.get(bucket, "%b %d"))
    return _style(fig, f"{metric_label(metric)}: median, band to p95")


def _y_range(frame: pd.DataFrame, metric: str) -> list[float]:
    """From zero to a little above the highest p95, so no point sits on the edge."""
    values = [scaled(frame[c], metric) for c in (f"{metric}_p50", f"{metric}_p95") if c in frame]
    top = max((float(v.max()) for v in values if v.notna().any()), default=1.0)
    return [0.0, top * 1.15 if top > 0 else 1.0]


def _by_series(data: pd.DataFrame, column: str) -> list[tuple[int, str, pd.DataFrame]]:
    """(colour index, name, rows) per value of ``column``, sorted by name."""
    return [(i, str(key), part) for i, (key, part) in enumerate(data.groupby(column, sort=True))]


def _run_ids(part: pd.DataFrame) -> list[str]:
    return [f"run #{run_id}" for run_id in part["run_id"]]


def distribution_figure(frame: pd.DataFrame, metric: str) -> go.Figure:
    """A box per series from every value; the points drawn are its outliers (hover: the run).
    Built from plotly's graph objects in one constructor: plotly express costs ~10x more."""
    data = frame.assign(value=scaled(frame[metric], metric)).dropna(subset=["value"])
    fig = go.Figure(
        data=[
            go.Box(
                y=part["value"],
                name=series,
                boxpoints="outliers",
                marker={"color": PALETTE[i % len(PALETTE)]},
                text=_run_ids(part),
                hoverinfo="y+text+name",
            )
            for i, series, part in _by_series(data, "series")
        ]
    )
    fig.update_yaxes(title=axis_title(metric), rangemode="tozero")
    fig.update_xaxes(title=None, showticklabels=False)
    fig = _style(fig, f"{metric_label(metric)}: distribution")
    fig.update_layout(hovermode="closest", showlegend=True)
    return fig


def output_length_figure(frame: pd.DataFrame) -> go.Figure:
    data = frame.dropna(subset=["n_out"])
    fig = go.Figure(
        data=[
            go.Histogram(
                x=part["n_out"],
                name=series,
                opacity=0.7,
                marker={"color": PALETTE[i % len(PALETTE)]},
            )
            for i, series, part in _by_series(data, "series")
        ]
    )
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title="Tokens out")
    fig.update_yaxes(title="Answers")
    fig = _style(fig, "Output length")
    fig.update_layout(hovermode="closest")
    return fig


def paired_figure(frame: pd.DataFrame, metric: str, label_a: str, label_b: str) -> go.Figure:
    label_a, label_b = escape_html(label_a), escape_html(label_b)
    data = frame.assign(value=scaled(frame[metric], metric)).dropna(subset=["value"])
    fig = go.Figure(
        data=[
            go.Scatter(
                x=part["created_at"],
                y=part["value"],
                name=group,
                mode="markers",
                marker={"size": 9, "color": PALETTE[i % len(PALETTE)]},
                text=_run_ids(part),
                hoverinfo="x+y+text+name",
            )
            for i, group, part in _by_series(data, "group")
        ]
    )
    fig.add_hline(y=0, line_dash="dot", line_color="gray")
    fig.update_yaxes(title=f"{label_a} - {label_b} ({axis_unit(metric)})")
    fig.update_xaxes(title=None)
    fig = _style(fig, f"{metric_label(metric)}: {label_a} - {label_b}, per run")
    fig.update_layout(hovermode="closest")
    return fig


def memory_slopes(frame: pd.DataFrame) -> pd.DataFrame:
    """Per series: least-squares bytes of peak memory per input token (needs 2+ prompt sizes)."""
    rows = []
    for series, part in frame.dropna(subset=["n_in", "peak_memory_bytes"]).groupby("series"):
        x = part["n_in"].astype(float).to_numpy()
        y = part["peak_memory_bytes"].astype(float).to_numpy()
        slope = float(np.polyfit(x, y, 1)[0]) if len(np.unique(x)) >= 2 else None
        rows.append({"series": series, "runs": len(part), "bytes_per_input_token": slope})
    return pd.DataFrame(rows, columns=["series", "runs", "bytes_per_input_token"])


def memory_vs_input_figure(frame: pd.DataFrame) -> go.Figure:
    data = frame.dropna(subset=["n_in", "peak_memory_bytes"]).assign(
        memory_mib=lambda d: d["peak_memory_bytes"] / 2**20
    )
    traces: list[go.Scatter] = []
    for i, series, part in _by_series(data, "series"):
        color = PALETTE[i % len(PALETTE)]
        traces.append(
            go.Scatter(
                x=part["n_in"],
                y=part["memory_mib"],
                name=series,
                mode="markers",
                marker={"color": color},
                text=_run_ids(part),
                hoverinfo="x+y+text+name",
            )
        )
        if part["n_in"].nunique() < 2:
            continue
        slope, intercept = np.polyfit(part["n_in"].astype(float), part["memory_mib"], 1)
        xs = np.array([part["n_in"].min(), part["n_in"].max()], dtype=float)
        traces.append(
            go.Scatter(
                x=xs,
                y=slope * xs + intercept,
                mode="lines",
                showlegend=False,
                line={"dash": "dash", "color": color},
                hoverinfo="skip",
            )
        )
    fig = go.Figure(data=traces)
    fig.update_xaxes(title="Tokens in (prompt)")
    fig.update_yaxes(title="Peak memory (MiB)")
    fig = _style(fig, "Peak memory against input tokens")
    fig.update_layout(hovermode="closest")
    return fig


def summary_table(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per series: answers, and median and p95 of each metric (display units)."""
    out = []
    for series, part in frame.groupby("series", sort=True):
        row: dict[str, Any] = {"series": series, "answers": len(part)}
        for m in metrics:
            values = scaled(part[m], m).dropna()
            name = axis_title(m)
            row[f"{name} median"] = round(float(values.median()), 1) if len(values) else None
            row[f"{name} p95"] = round(float(values.quantile(0.95)), 1) if len(values) else None
        out.append(row)
    return pd.DataFrame(out)
