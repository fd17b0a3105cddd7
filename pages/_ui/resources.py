"""The server's shared resources: one model pool and one store, cached for every session."""

from __future__ import annotations

import os
from typing import NoReturn

import streamlit as st

from qwen_dash.core.specs import SpecError
from qwen_dash.engine import ModelPool
from qwen_dash.services.suite_runner import SuiteRunner
from qwen_dash.store import Store, StoreError, open_store

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


@st.cache_resource(show_spinner="Opening the database…")
def _store(url: str) -> Store:
    return open_store(url or None)


def get_store() -> Store:
    return _store(os.environ.get("QWEN_DASH_DB_URL", ""))


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
    st.error(message, icon=":material/error:")
    st.stop()
    raise AssertionError("st.stop() returned")  # it raises; this tells the type checker


def pool_or_stop() -> ModelPool:
    """The pool, or an error the user can act on (a malformed models.toml) and a stopped page."""
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
