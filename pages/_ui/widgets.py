"""How an answer, its metrics and its weights source are drawn, on every page.

Model output and user text are shown with ``st.code`` (never HTML, never Markdown).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages._ui.text import literal, md
from qwen_dash.core.metrics import HEADLINE_METRICS, REGISTRY
from qwen_dash.views.display import (
    fmt_metric,
    is_random_source,
    metric_definition,
    source_label,
    twin_warning,
)


def show_text(text: str, empty: str = "") -> None:
    """Untrusted text (model output, a user's prompt), shown literally."""
    if text:
        st.code(text, language=None, wrap_lines=True, height="content")
    elif empty:
        st.caption(literal(empty))


def source_badge(source: str | None) -> None:
    color = "orange" if is_random_source(source) else "green"
    st.badge(source_label(source), color=color)


def source_banner(source: str | None) -> None:
    """Random weights: a warning no one can miss. Real weights: a quiet green badge."""
    if twin_warning(source):
        twin_banner(source)
    elif source:
        source_badge(source)


def twin_banner(source: str | None) -> None:
    warning = twin_warning(source)
    if warning:
        head, _, rest = warning.partition(". ")
        st.warning(md("**{head}.** {rest}", head=head, rest=rest), icon=":material/warning:")


def headline_metrics(result: Any) -> None:
    """The registry's headline figures (TTFT, decode speed, ...); 'n/a' where not measured."""
    per_row = 3
    for start in range(0, len(HEADLINE_METRICS), per_row):
        row = HEADLINE_METRICS[start : start + per_row]
        for name, col in zip(row, st.columns(per_row, gap="small"), strict=False):
            value = getattr(result, name, None)
            label = REGISTRY[name].short_label
            col.metric(
                literal(label), fmt_metric(name, value), help=literal(metric_definition(name))
            )


def result_status(result: Any) -> None:
    if result.status == "error":
        st.error(literal(result.error or "The model failed."), icon=":material/error:")
    elif result.status == "cancelled":
        st.warning("Stopped: what was generated so far is kept.", icon=":material/stop_circle:")


def finish_note(result: Any) -> None:
    if result.status == "ok" and result.finish_reason == "length":
        st.caption("Stopped at the max new tokens limit.")
