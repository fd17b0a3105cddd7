"""Streamlit pieces every page shares: the one model pool and store, the sidebar, and how an
answer, its metrics and its source are drawn. Logic lives in qwen_dash; this file only draws.

Model output and user text are shown with ``st.code``/``st.text`` (never HTML, never Markdown).
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from qwen_dash.database import StoreError, describe, resolve_url
from qwen_dash.display import (
    HEADLINE_METRICS,
    fmt_metric,
    is_random_source,
    metric_definition,
    source_label,
    twin_warning,
)
from qwen_dash.metrics import GenerationResult
from qwen_dash.pool import ModelPool, WorkerStatus
from qwen_dash.specs import SpecError
from qwen_dash.store import Store, open_store

COMPARE_PAGE = "pages/compare.py"
HISTORY_PAGE = "pages/history.py"
STATE_ICONS = {
    "stopped": ":gray[:material/stop_circle:]",
    "starting": ":orange[:material/hourglass_top:]",
    "loading": ":orange[:material/hourglass_top:]",
    "ready": ":green[:material/check_circle:]",
    "failed": ":red[:material/cancel:]",
    "dead": ":red[:material/cancel:]",
}


# ---- the entry point ---------------------------------------------------------------------------


def ensure_entrypoint() -> None:
    """Make sure the page runs under app.py's navigation.

    Streamlit treats a folder named ``pages/`` beside the entry point as an old-style multipage
    app until ``st.navigation`` has run once in the server process: the first visitor who lands
    straight on /history would get that page alone, without app.py (no shared sidebar, a menu of
    file names). Switch the process to ``st.navigation`` and run again, through app.py."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


# ---- shared resources ---------------------------------------------------------------------------


POOLS: list[ModelPool] = []  # every pool this process started, for shutdown_pools()


@st.cache_resource(show_spinner="Starting the model workers…")
def _pool(source: str, models_file: str, compare: str) -> ModelPool:
    """One pool per server (per configuration), shared by every browser session."""
    pool = ModelPool(source=source or None)
    pool.start()
    POOLS.append(pool)
    return pool


def shutdown_pools() -> None:
    """Stop the workers of every pool this process started (tests; the server's exit does it
    anyway, as workers leave when their stdin closes)."""
    _pool.clear()
    while POOLS:
        POOLS.pop().shutdown()


def get_pool() -> ModelPool:
    """The server's model pool; its workers start (in the background) on first use."""
    env = os.environ
    return _pool(
        env.get("QWEN_DASH_SOURCE", ""),
        env.get("QWEN_DASH_MODELS", ""),
        env.get("QWEN_DASH_COMPARE", ""),
    )


@st.cache_resource(show_spinner="Opening the database…")
def _store(url: str) -> Store:
    return open_store(url or None)


def get_store() -> Store:
    return _store(os.environ.get("QWEN_DASH_DB_URL", ""))


def pool_or_stop() -> ModelPool:
    """The pool, or an error the user can act on (a malformed models.toml) and a stopped page."""
    try:
        return get_pool()
    except (SpecError, KeyError) as exc:
        st.error(f"The model specs cannot be used: {exc}", icon=":material/error:")
        st.stop()
        raise  # unreachable: st.stop raises


def store_or_none() -> tuple[Store | None, str | None]:
    try:
        return get_store(), None
    except StoreError as exc:
        return None, str(exc)


def store_or_stop() -> Store:
    store, error = store_or_none()
    if store is None:
        st.error(f"The database cannot be opened: {error}", icon=":material/error:")
        st.stop()
    return store  # type: ignore[return-value]


def model_labels(pool: ModelPool) -> dict[str, str]:
    return {key: spec.label for key, spec in pool.specs.items()}


# ---- the shared sidebar -------------------------------------------------------------------------


def current_user() -> str | None:
    name = (st.session_state.get("user") or "").strip()
    return name or None


def _database_line() -> str:
    try:
        return describe(resolve_url())
    except StoreError as exc:
        return f"invalid: {exc}"


def _status_line(status: WorkerStatus, label: str) -> str:
    icon = STATE_ICONS.get(status.state, "")
    if status.state == "ready":
        return f"{icon} **{label}**: {source_label(status.source)}"
    if status.state in ("failed", "dead"):
        return f"{icon} **{label}**: {status.state}"
    return f"{icon} **{label}**: {status.state}"


def all_settled(pool: ModelPool) -> bool:
    return all(s.state in ("ready", "failed", "dead") for s in pool.status().values())


def model_status_panel(pool: ModelPool, progress: bool = True) -> None:
    """Each model's state and weights source; loading progress while it loads."""
    labels = model_labels(pool)
    for key, status in pool.status().items():
        st.markdown(_status_line(status, labels[key]))
        if status.state in ("starting", "loading") and progress:
            st.progress(status.fraction or 0.0, text=status.message or "Loading")
        elif status.state in ("failed", "dead") and status.error:
            st.caption(status.error)
    if pool.source == "auto":
        resolved = {s.source for s in pool.status().values() if s.source}
        if "twin" in resolved:
            st.caption(
                "Source **auto** fell back to twins: no cached weights and the Hugging Face hub "
                "did not answer. Random weights: timing and memory are real, text is not."
            )
        else:
            st.caption("Source: auto (hub when cached or reachable, else twin)")
    else:
        st.caption(f"Source: {pool.source} (set by QWEN_DASH_SOURCE)")


def sidebar(pool: ModelPool | None) -> None:
    with st.sidebar:
        st.text_input(
            "Who am I",
            key="user",
            placeholder="your name (logged with your runs)",
            persist_state="session",
        )
        st.caption(f"Database: `{_database_line()}`")
        if pool is None:
            return
        st.markdown("**Models**")
        if all_settled(pool):
            model_status_panel(pool)
        else:
            st.fragment(run_every=1.0)(_refreshing_status)(pool)


def _refreshing_status(pool: ModelPool) -> None:
    """Redrawn every second while models load; reruns the page once they all have. (While a
    page holds the script, streaming, this waits; the columns show their model's loading.)"""
    model_status_panel(pool)
    if all_settled(pool) and not _streaming():
        st.rerun(scope="app")


def _streaming() -> bool:
    live = st.session_state.get("live")
    return live is not None and not live.done


# ---- answers and metrics ------------------------------------------------------------------------


def show_text(text: str, empty: str = "") -> None:
    """Untrusted text (model output, a user's prompt), shown literally."""
    if text:
        st.code(text, language=None, wrap_lines=True, height="content")
    elif empty:
        st.caption(empty)


def source_badge(source: str | None) -> None:
    color = "orange" if is_random_source(source) else "green"
    st.badge(source_label(source), color=color)  # type: ignore[arg-type]


def source_banner(source: str | None) -> None:
    """Random weights: a warning no one can miss. Real weights: a quiet green badge."""
    if twin_warning(source):
        twin_banner(source)
    elif source:
        source_badge(source)


def twin_banner(source: str | None) -> None:
    warning = twin_warning(source)
    if warning:
        st.warning(warning, icon=":material/warning:")


def headline_metrics(result: GenerationResult | Any) -> None:
    """TTFT, decode speed, e2e, tokens in/out, peak memory; 'n/a' where not measured."""
    per_row = 3
    for start in range(0, len(HEADLINE_METRICS), per_row):
        row = HEADLINE_METRICS[start : start + per_row]
        for (name, label), col in zip(row, st.columns(per_row, gap="small"), strict=False):
            value = getattr(result, name, None)
            col.metric(label, fmt_metric(name, value), help=metric_definition(name))


def result_status(result: GenerationResult | Any) -> None:
    if result.status == "error":
        st.error(result.error or "The model failed.", icon=":material/error:")
    elif result.status == "cancelled":
        st.warning("Stopped: what was generated so far is kept.", icon=":material/stop_circle:")


def finish_note(result: GenerationResult | Any) -> None:
    if result.status == "ok" and result.finish_reason == "length":
        st.caption("Stopped at the max new tokens limit.")


# ---- filters (History and Trends) ---------------------------------------------------------------


def user_zone() -> Any:
    from qwen_dash.runs_view import zone

    return zone(st.context.timezone)


def run_filters(store: Store, labels: dict[str, str], prefix: str, *, text: bool) -> Any:
    """Filter widgets in one row; returns the RunFilters they describe."""
    from qwen_dash.runs_view import THINKING_CHOICES, make_filters

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
        thinking=thinking,
        mode=mode,
        tz=user_zone(),
    )
