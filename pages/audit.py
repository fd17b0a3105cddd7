"""Audit (admins): who changed what and when, and the deleted runs, which an admin can restore."""

from __future__ import annotations

import streamlit as st

from pages._ui.auth import denied, who
from pages._ui.filters import user_zone
from pages._ui.navigation import HISTORY_PAGE, ensure_entrypoint
from pages._ui.resources import store_or_stop
from pages._ui.text import md
from qwen_dash.core.access import can_audit, can_restore
from qwen_dash.store import RunFilters
from qwen_dash.views.audit import audit_table, deleted_table

ensure_entrypoint()
identity = who()
if not can_audit(identity):
    denied("audit", identity)
store = store_or_stop()


def _restore(run_id: int) -> None:
    if not can_restore(identity):
        return
    if store.restore_run(run_id, actor=identity.name):
        st.toast(md("Run #{n} restored.", n=run_id), icon=":material/restore_from_trash:")


st.title("Audit", anchor=False)
st.caption("Every change to a run, newest first: saves, votes, tags, notes, deletes, restores.")
st.dataframe(
    audit_table(store.audit_log(limit=500), user_zone()),
    hide_index=True,
    key="audit_table",
    column_config={
        "when": st.column_config.TextColumn("When", width=140),
        "who": st.column_config.TextColumn("Who", width=180),
        "action": st.column_config.TextColumn("Action", width=110),
        "run": st.column_config.NumberColumn("Run", format="#%d", width=60),
        "detail": st.column_config.TextColumn("Detail"),
    },
)

st.subheader("Deleted runs", anchor=False)
deleted = store.list_runs(RunFilters(deleted=True)).runs
if not deleted:
    st.caption("No deleted runs.")
else:
    st.dataframe(
        deleted_table(deleted, user_zone()),
        hide_index=True,
        key="deleted_table",
        column_config={"run": st.column_config.NumberColumn("Run", format="#%d", width=60)},
    )
    for run in deleted:
        with st.container(horizontal=True, vertical_alignment="center"):
            st.page_link(
                HISTORY_PAGE,
                label=md("Run #{n}", n=run.id),
                query_params={"run": str(run.id)},
                icon=":material/history:",
            )
            st.button(
                md("Restore run #{n}", n=run.id),
                key=f"restore-{run.id}",
                icon=":material/restore_from_trash:",
                on_click=_restore,
                args=(run.id,),
            )
