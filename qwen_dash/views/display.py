"""How numbers, sources and metrics read in the dashboard and the CLI: one place, no streamlit.

Units, labels and definitions come from the metric registry (``qwen_dash.core.metrics``). What was
not measured reads "n/a", never 0.
"""

from __future__ import annotations

from typing import Any

from qwen_dash.core.arena import RANDOM_SOURCES
from qwen_dash.core.metrics import REGISTRY

NA = "n/a"

# What each weights source means for the person reading the numbers.
SOURCE_LABELS: dict[str, str] = {
    "hub": "real weights (Hugging Face)",
    "local": "real weights (local folder)",
    "twin": "twin: random weights",
    "tiny": "tiny test model: random weights",
    "remote": "remote: OpenAI-compatible server",
}


def metric_label(name: str) -> str:
    m = REGISTRY.get(name)
    return m.label if m else name


def metric_unit(name: str) -> str:
    m = REGISTRY.get(name)
    return m.unit if m else ""


def metric_definition(name: str) -> str:
    m = REGISTRY.get(name)
    return m.definition if m else ""


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return NA
    value = float(value)
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:,.2f} {unit}" if unit == "GiB" else f"{value / size:,.0f} {unit}"
    return f"{value:,.0f} B"


def fmt_bytes_si(value: float | None) -> str:
    """Bytes in decimal units, as model cards and file listings write them: '988 MB', '1.50 GB'."""
    if value is None:
        return NA
    value = float(value)
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:,.2f} {unit}" if unit == "GB" else f"{value / size:,.0f} {unit}"
    return f"{value:,.0f} B"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return NA
    if abs(value) >= 10_000:
        return f"{value / 1000:,.1f} s"
    if abs(value) >= 1000:
        return f"{value / 1000:,.2f} s"
    return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"


def fmt_number(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def fmt_count(value: int | None) -> str:
    """Parameter counts as the model cards write them: 494,032,768 -> '0.49B'."""
    if value is None:
        return NA
    for unit, size in (("B", 1e8), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            if unit == "B":
                return f"{value / 1e9:,.2f}B"
            return f"{value / size:,.1f}{unit}"
    return str(value)


def fmt_metric(name: str, value: Any) -> str:
    """A metric value with its unit (from the registry), 'n/a' when not measured."""
    if value is None:
        return NA
    unit = metric_unit(name)
    if unit == "bytes":
        return fmt_bytes(value)
    if unit == "ms":
        return fmt_ms(value)
    if unit == "tok/s":
        return f"{value:,.1f} tok/s"
    return fmt_number(value)


def is_random_source(source: str | None) -> bool:
    return source in RANDOM_SOURCES


def source_label(source: str | None) -> str:
    if source is None:
        return "unknown"
    return SOURCE_LABELS.get(source, source)


def twin_warning(source: str | None) -> str | None:
    """The banner a column with random weights must show; None for real weights. Plain text:
    the page decides how it is emphasised."""
    if source == "twin":
        return "Twin: random weights. Timing and memory are real; the text is meaningless."
    if source == "tiny":
        return "Tiny test model: random weights. Text, timing and memory are not the real model's."
    return None
