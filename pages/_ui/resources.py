"""The server's shared resources: one model pool and one store, cached for every session."""

from __future__ import annotations

import importlib
import os
import threading
from typing import NoReturn

import streamlit as st

from pages._ui.text import literal
from qwen_dash.core.specs import SpecError
from qwen_dash.engine import ModelPool
from qwen_dash.services.suite_runner import SuiteRunner
from qwen_dash.store import Store, StoreError, open_store
from qwen_dash.store.outbox import Outbox, StoreOpener

POOLS: list[ModelPool] = []  # every pool this process started, for shutdown_pools()
RUNNERS: list[SuiteRunner] = []  # every suite runner made, so that shutdown stops their runs


def _suite_runners() -> list[SuiteRunner]:
    out, RUNNERS[:] = list(RUNNERS), []
    return out


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
    for runner in _suite_runners():
        runner.stop_all()
    _suite_runner.clear()
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


@st.cache_resource
def _store_opener(url: str) -> StoreOpener:
    """The server's store, opened on first use; a database that cannot be opened now is tried
    again on the next call."""
    return StoreOpener(lambda: open_store(url or None))


@st.cache_resource
def _outbox(url: str) -> Outbox:
    """Saves every session's runs; keeps and retries those the database refuses."""
    return Outbox(_store_opener(url))


def _url() -> str:
    return os.environ.get("QWEN_DASH_DB_URL", "")


def get_store() -> Store:
    store: Store = _store_opener(_url())()
    return store


def get_outbox() -> Outbox:
    return _outbox(_url())


@st.cache_resource(show_spinner=False)
def _suite_runner(source: str, models_file: str, compare: str, url: str) -> SuiteRunner:
    """One registry of suite runs per server (per pool and database): a run lives here, on a
    thread of the server, not in a browser tab."""
    runner = SuiteRunner(get_pool(), get_store())
    RUNNERS.append(runner)
    return runner


def get_suite_runner() -> SuiteRunner:
    env = os.environ
    return _suite_runner(
        env.get("QWEN_DASH_SOURCE", ""),
        env.get("QWEN_DASH_MODELS", ""),
        env.get("QWEN_DASH_COMPARE", ""),
        env.get("QWEN_DASH_DB_URL", ""),
    )


def _stop(message: str) -> NoReturn:
    st.error(literal(message), icon=":material/error:")
    st.stop()
    raise AssertionError("st.stop() returned")  # it raises; this tells the type checker


def _warm() -> None:
    charts = importlib.import_module("qwen_dash.views.charts")
    charts.go.Figure([charts.go.Scatter(x=[0], y=[0]), charts.go.Box(y=[0])]).to_json()


@st.cache_resource(show_spinner=False)
def warm_imports() -> threading.Thread:
    """Import the chart and table libraries (pandas, plotly) in the background, once per server:
    the first visit of History, Trends or Models then need not wait seconds for them."""
    thread = threading.Thread(target=_warm, name="qwen-dash-warm-imports", daemon=True)
    thread.start()
    return thread


def pool_or_stop() -> ModelPool:
    """The pool, or an error the user can act on (a malformed models.toml) and a stopped page."""
    warm_imports()
    try:
        return get_pool()
    except (SpecError, KeyError) as exc:
        _stop(f"The model specs cannot be used: {exc}")


def store_or_none() -> tuple[Store | None, str | None]:
    try:
        return get_store(), None
    except StoreError as exc:
        return None, str(exc)


def store_or_stop() -> Store:
    store, error = store_or_none()
    if store is None:
        _stop(f"The database cannot be opened: {error}")
    return store


def model_labels(pool: ModelPool) -> dict[str, str]:
    return {key: spec.label for key, spec in pool.specs.items()}
