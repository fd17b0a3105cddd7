"""The sidebar every page shares: who I am (signed in, or the local name), the database in use,
each model's state."""

from __future__ import annotations

import streamlit as st

from pages._ui.auth import account_panel, admitted
from pages._ui.resources import get_outbox, model_labels, store_or_none
from pages._ui.text import literal, md
from qwen_dash.core.access import Identity
from qwen_dash.engine import ModelPool, WorkerStatus
from qwen_dash.store import StoreError, describe, resolve_url
from qwen_dash.views.display import source_label

STATE_ICONS = {
    "stopped": ":gray[:material/stop_circle:]",
    "starting": ":orange[:material/hourglass_top:]",
    "loading": ":orange[:material/hourglass_top:]",
    "ready": ":green[:material/check_circle:]",
    "failed": ":red[:material/cancel:]",
    "dead": ":red[:material/cancel:]",
}


def current_user() -> str | None:
    """What this person's runs, votes and changes are recorded under: the signed-in email on a
    team server, the typed name (or None) on a local dashboard."""
    identity = admitted()
    return identity.name if identity is not None else None


def _database_line() -> str:
    try:
        return describe(resolve_url())
    except StoreError as exc:
        return f"invalid: {exc}"


def _state(status: WorkerStatus) -> str:
    return source_label(status.source) if status.state == "ready" else status.state


def all_settled(pool: ModelPool) -> bool:
    return all(s.state in ("ready", "failed", "dead") for s in pool.status().values())


def model_status_panel(pool: ModelPool, progress: bool = True) -> None:
    """Each model's state and weights source; loading progress while it loads."""
    labels = model_labels(pool)
    for key, status in pool.status().items():
        st.markdown(
            STATE_ICONS.get(status.state, "")
            + md(" **{label}**: {what}", label=labels[key], what=_state(status))
        )
        if status.state in ("starting", "loading") and progress:
            st.progress(status.fraction or 0.0, text=literal(status.message or "Loading"))
        elif status.state in ("failed", "dead") and status.error:
            st.caption(literal(status.error))
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
        st.caption(md("Source: {s} (set by QWEN_DASH_SOURCE)", s=pool.source))


def sidebar(pool: ModelPool | None, identity: Identity) -> None:
    with st.sidebar:
        account_panel(identity)
        st.caption(md("Database: {db}", db=_database_line()))
        _store_notices()
        if pool is None:
            return
        st.markdown("**Models**")
        if all_settled(pool):
            model_status_panel(pool)
        else:
            st.fragment(run_every=1.0)(_refreshing_status)(pool)


def _store_notices() -> None:
    """What happened to the database that a user should know: it was recreated; runs waiting
    to be saved."""
    store, _ = store_or_none()
    if store is not None and store.notice:
        st.warning(literal(store.notice), icon=":material/database:")
    waiting = len(get_outbox().waiting())
    if waiting:
        st.warning(
            md("{n} run(s) not saved yet: kept and retried.", n=waiting),
            icon=":material/sync_problem:",
        )


def _refreshing_status(pool: ModelPool) -> None:
    """Redrawn every second while models load; reruns the page once they all have. (While a
    page holds the script, streaming, this waits; the columns show their model's loading.)"""
    model_status_panel(pool)
    if all_settled(pool) and not _streaming():
        st.rerun(scope="app")


def _streaming() -> bool:
    live = st.session_state.get("live")
    return live is not None and not live.done
