"""The filter row History and Trends share."""

from __future__ import annotations

from datetime import tzinfo

import streamlit as st

from qwen_dash.store import RunFilters, Store
from qwen_dash.views.history import THINKING_CHOICES, make_filters, zone


def user_zone() -> tzinfo:
    return zone(st.context.timezone)


def run_filters(store: Store, labels: dict[str, str], prefix: str, *, text: bool) -> RunFilters:
    """Filter widgets in one row; returns the RunFilters they describe."""
    options = store.filter_options()
    query = ""
    if text:
        query = st.text_input(
            "Search",
            key=f"{prefix}q",
            placeholder="Search prompts, answers and reasoning (exact text, any case)",
            icon=":material/search:",
            persist_state="session",
        )
    cols = st.columns([1.4, 1, 1.3, 1, 0.8, 1])
    models = cols[0].multiselect(
        "Model",
        options["models"],
        key=f"{prefix}models",
        format_func=lambda k: labels.get(k, k),
        placeholder="All",
        persist_state="session",
    )
    sources = cols[1].multiselect(
        "Source",
        options["sources"],
        key=f"{prefix}sources",
        placeholder="All",
        persist_state="session",
    )
    dates = cols[2].date_input("Dates", value=(), key=f"{prefix}dates", persist_state="session")
    tag = cols[3].selectbox(
        "Tag",
        options["tags"],
        index=None,
        key=f"{prefix}tag",
        placeholder="Any",
        persist_state="session",
    )
    thinking = cols[4].selectbox(
        "Thinking", list(THINKING_CHOICES), key=f"{prefix}thinking", persist_state="session"
    )
    mode = cols[5].selectbox(
        "Mode", ["Any", "concurrent", "isolated"], key=f"{prefix}mode", persist_state="session"
    )
    return make_filters(
        text=query,
        models=models,
        sources=sources,
        dates=tuple(dates) if isinstance(dates, tuple | list) else (dates,),
        tag=tag,
        thinking=thinking or "Any",
        mode=mode,
        tz=user_zone(),
    )
