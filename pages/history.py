"""History: every logged run, searchable; a run's own page at ?run=<id>, shareable by URL."""

from __future__ import annotations

import io
import math
from typing import Any

import streamlit as st

from pages._ui.auth import refuse, who
from pages._ui.compare_form import CompareForm
from pages._ui.filters import run_filters, user_zone
from pages._ui.navigation import COMPARE_PAGE, ensure_entrypoint
from pages._ui.resources import get_outbox, model_labels, pool_or_stop, store_or_stop
from pages._ui.sidebar import current_user
from pages._ui.text import literal, md
from pages._ui.voting import vote_buttons, voter
from pages._ui.widgets import finish_note, result_status, show_text, source_banner
from qwen_dash.core.access import (
    can_audit,
    can_delete,
    can_edit,
    can_restore,
    can_run,
    refusal,
)
from qwen_dash.core.arena import SIDE_LETTERS
from qwen_dash.core.request import RequestError
from qwen_dash.store import PAGE_SIZE, RunFilters, Store, StoreError
from qwen_dash.views import compare as session
from qwen_dash.views.diff import side_markdown, similarity, word_diff
from qwen_dash.views.display import fmt_metric
from qwen_dash.views.history import (
    environment_table,
    metrics_table,
    runs_table,
    settings_table,
)
from qwen_dash.views.leaderboard import votes_table
from qwen_dash.views.safe_text import parse_run_id

ensure_entrypoint()
identity = who()
RUN_COLUMNS = ("run", "when", "prompt", "source", "mode", "thinking", "tags", "user", "status")
COUNT_LIMIT = 10_000  # counting stops here; more pages are reached by narrowing the filters
EXPORTS = (("csv", "CSV", "text/csv"), ("jsonl", "JSON Lines", "application/x-ndjson"))

pool = pool_or_stop()
store = store_or_stop()
labels = {**model_labels(pool)}
state = st.session_state


# ---- the list ------------------------------------------------------------------------------------


def _export(store: Store, fmt: str, filters: RunFilters) -> bytes:
    out = io.StringIO()
    store.export(fmt, filters, out)
    return out.getvalue().encode("utf-8")


def _open(run_id: int) -> None:
    st.query_params["run"] = str(run_id)


def list_view() -> None:
    st.title("History", anchor=False)
    st.caption("Every logged run, newest first. Select a row to open it.")
    filters = run_filters(store, labels, "h_", text=True)
    total = store.count_runs(filters, limit=COUNT_LIMIT)
    if total == 0:
        if store.count_runs() == 0:
            st.info(
                "No runs logged yet: send a prompt on the Compare page.",
                icon=":material/lightbulb:",
            )
            st.page_link(COMPARE_PAGE, label="Go to Compare", icon=":material/compare_arrows:")
        else:
            st.info("No run matches these filters.", icon=":material/search:")
        return
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = 1
    with st.container(horizontal=True, vertical_alignment="center"):
        shown = f"{COUNT_LIMIT:,}+" if total >= COUNT_LIMIT else f"{total:,}"
        st.markdown(md("**{n}** run{s}", n=shown, s="s" if total != 1 else ""))
        st.space("stretch")
        for fmt, label, mime in EXPORTS:
            st.download_button(
                literal(label),
                lambda fmt=fmt: _export(store, fmt, filters),
                file_name=f"qwen-dash-runs.{fmt}",
                mime=mime,
                icon=":material/download:",
                key=f"export_{fmt}",
                on_click="ignore",
            )
    if pages > 1:
        if state.get("h_page", 1) > pages:  # fewer pages since the filters changed
            state["h_page"] = 1
        page = st.pagination(pages, key="h_page")
    result = store.list_runs(filters, page=page - 1)
    table = runs_table(result.runs, labels, user_zone())
    selection = st.dataframe(
        table,
        hide_index=True,
        key="runs_table",
        on_select="rerun",
        selection_mode="single-row",
        column_order=RUN_COLUMNS,
        column_config={
            "run": st.column_config.NumberColumn("Run", format="#%d", width=55),
            "when": st.column_config.TextColumn("When", width=118),
            "prompt": st.column_config.TextColumn("Prompt", width=250),
            "source": st.column_config.TextColumn("Source", width=70),
            "mode": st.column_config.TextColumn("Mode", width=85),
            "thinking": st.column_config.CheckboxColumn("Thinking", width=65),
            "tags": st.column_config.ListColumn("Tags", width=90),
            "user": st.column_config.TextColumn("User", width=75),
            "status": st.column_config.TextColumn("Status", width=65),
        },
    )
    rows = selection.selection.rows if selection else []
    if rows:
        _open(int(table.iloc[rows[0]]["run"]))
        st.rerun()


# ---- one run -------------------------------------------------------------------------------------


def _back() -> None:
    st.query_params.clear()


def _rerun(run_id: int) -> None:
    """Start the same request again; the Compare page then shows it streaming."""
    if not can_run(identity):
        state["history_error"] = refusal("run", identity)
        return
    run = store.get_run(run_id)
    if run is None:
        state["history_error"] = f"There is no run #{run_id}."
        return
    try:
        request = session.request_from_run(run, list(pool.workers))
        conversation = session.Conversation(system_prompt=run.system_prompt)
        outbox = get_outbox()
        live = session.start(pool, request, outbox, conversation=conversation, user=current_user())
    except RequestError as exc:
        state["history_error"] = str(exc)
        return
    CompareForm(state, pool).load(request)
    state["conversation"] = conversation
    state["live"] = live
    state["goto_compare"] = True


def _owner(run_id: int) -> str | None:
    run = store.get_run(run_id, include_deleted=True)
    return run.user if run is not None else None


def _delete(run_id: int) -> None:
    if not can_delete(identity, _owner(run_id)):
        state["history_error"] = refusal("delete", identity)
        return
    store.delete_run(run_id, actor=identity.name)
    st.query_params.clear()
    st.toast(md("Run #{n} deleted.", n=run_id), icon=":material/delete:")


def _restore(run_id: int) -> None:
    if not can_restore(identity):
        state["history_error"] = refusal("restore", identity)
        return
    store.restore_run(run_id, actor=identity.name)
    st.toast(md("Run #{n} restored.", n=run_id), icon=":material/restore_from_trash:")


def _answers(run: Any) -> None:
    gens = run.generations
    show_diff = len(gens) == 2 and st.toggle(
        "Word diff",
        key="diff",
        help="Words only in the left answer in red, only in the right answer in green.",
    )
    if show_diff:
        a, b = gens
        share = f"{similarity(a.text, b.text):.0%}"
        st.caption(md("The answers share {share} of their words.", share=share))
        segments = word_diff(a.text, b.text)
    for i, (g, col) in enumerate(zip(gens, st.columns(len(gens), gap="large"), strict=True)):
        with col:
            st.subheader(literal(labels.get(g.model_key, g.model_key)), anchor=False)
            source_banner(g.source)
            result_status(g)
            finish_note(g)
            if g.reasoning is not None:
                with st.expander(
                    md("Reasoning · {n} tokens", n=fmt_metric("n_think", g.n_think)),
                    icon=":material/psychology:",
                ):
                    show_text(g.reasoning, empty="(no reasoning text)")
            with st.container(key=f"output-{g.model_key}"):
                if show_diff:
                    with st.container(border=True):
                        st.markdown(side_markdown(segments, "ab"[i]))
                else:
                    show_text(g.text, empty="(no answer)")


def _save_tags_and_notes(run_id: int) -> None:
    if not can_edit(identity, _owner(run_id)):
        state["history_error"] = refusal("edit", identity)
        return
    try:
        store.set_tags(run_id, state.get(f"tags-{run_id}") or [], actor=identity.name)
        store.set_notes(run_id, state.get(f"notes-{run_id}") or None, actor=identity.name)
    except StoreError as exc:
        state["history_error"] = str(exc)
    else:
        st.toast("Tags and notes saved.", icon=":material/check_circle:")


def _tags_and_notes(run: Any) -> None:
    editable = can_edit(identity, run.user) and not run.deleted
    options = sorted(set(store.filter_options()["tags"]) | set(run.tags))
    st.multiselect(
        "Tags",
        options,
        default=run.tags,
        key=f"tags-{run.id}",
        accept_new_options=True,
        placeholder="Add a tag and press Enter",
        disabled=not editable,
    )
    st.text_area(
        "Notes", value=run.notes or "", height=100, key=f"notes-{run.id}", disabled=not editable
    )
    st.button(
        "Save tags and notes",
        key="save_notes",
        icon=":material/save:",
        on_click=_save_tags_and_notes,
        args=(run.id,),
        disabled=not editable,
    )
    if not editable and not run.deleted:
        refuse("edit", identity)


def _deleted_banner(run: Any) -> None:
    when = run.deleted_at.astimezone(user_zone()).strftime("%Y-%m-%d %H:%M:%S %Z")
    st.warning(
        md("Deleted by {who} at {when}: hidden from History, Trends and exports.",
           who=run.deleted_by or "(nobody named)", when=when),
        icon=":material/delete:",
    )  # fmt: skip
    if can_restore(identity):
        st.button(
            "Restore this run",
            key="restore",
            icon=":material/restore_from_trash:",
            on_click=_restore,
            args=(run.id,),
        )


def _actions(run: Any) -> None:
    if run.deleted:
        _deleted_banner(run)
        return
    with st.container(horizontal=True):
        st.button(
            "Rerun with the same settings",
            icon=":material/replay:",
            key="rerun",
            on_click=_rerun,
            args=(run.id,),
            disabled=not can_run(identity),
        )
        if can_delete(identity, run.user):
            with st.popover("Delete", icon=":material/delete:"):
                st.write(
                    md("Delete run #{n}? It leaves History; an admin can restore it.", n=run.id)
                )
                st.button(
                    "Delete this run",
                    type="primary",
                    key="delete",
                    on_click=_delete,
                    args=(run.id,),
                )
        else:
            st.button(
                "Delete",
                icon=":material/delete:",
                key="delete_locked",
                disabled=True,
                help=literal(refusal("delete", identity)),
            )
    if error := state.pop("history_error", None):
        st.error(literal(error), icon=":material/error:")


def _current_verdict(vote: Any, sides: list[str]) -> str | None:
    """A vote's verdict in this page's side order (it may have been cast with another)."""
    if vote is None:
        return None
    if vote.winner not in SIDE_LETTERS:
        return str(vote.winner)
    picked = vote.sides[SIDE_LETTERS.index(vote.winner)]
    return SIDE_LETTERS[sides.index(picked)] if picked in sides else None


def _votes(run: Any) -> None:
    """Vote on this run (named: the names are on the page), and every vote cast on it."""
    sides = [g.model_key for g in run.generations]
    if len(sides) < 2 or run.deleted:  # a deleted run takes no votes until it is restored
        return
    st.subheader("Vote", anchor=False)
    st.caption(
        "Which answer is better? A vote here is named, not blind (the names are on this page): "
        "the Leaderboard counts it only when 'named votes too' is on. One vote per person per "
        "run: voting again changes it, and the change is recorded."
    )
    mine = store.get_vote(run.id, voter())
    current = _current_verdict(mine, sides)
    vote_buttons(store, run.id, sides, labels, blind=False, current=current, names=True)
    votes = store.run_votes(run.id)
    if votes:
        st.dataframe(votes_table(votes, labels), hide_index=True, key="run-votes")


def _earlier_turns(run: Any) -> None:
    """A follow-up's conversation so far, as each model saw it (their answers differ)."""
    histories = (run.meta or {}).get("histories") or {}
    if not any(histories.values()):
        return
    turns = max(len(h) for h in histories.values()) // 2
    with st.expander(
        md("Earlier turns of this conversation ({n})", n=turns), icon=":material/forum:"
    ):
        for key, col in zip(histories, st.columns(len(histories)), strict=True):
            with col:
                st.markdown(md("**{label}**", label=labels.get(key, key)))
                for message in histories[key]:
                    st.caption("You" if message["role"] == "user" else "Answer")
                    show_text(message["content"])


def run_view(run_id: int) -> None:
    st.button("All runs", icon=":material/arrow_back:", on_click=_back, type="tertiary")
    run = store.get_run(run_id, include_deleted=can_audit(identity))
    if run is None:
        st.error(
            md("There is no run #{n}: it was deleted, or the link is wrong.", n=run_id),
            icon=":material/search:",
        )
        return
    st.title(md("Run #{n}", n=run.id), anchor=False)
    when = run.created_at.astimezone(user_zone()).strftime("%Y-%m-%d %H:%M:%S %Z")
    facts = [when, f"mode {run.mode}", f"thinking {'on' if run.thinking else 'off'}"]
    facts += [f"by {run.user}"] if run.user else []
    facts += [f"turn {run.turn + 1} of a conversation"] if run.turn else []
    facts += [f"rerun of #{run.meta['rerun_of']}"] if (run.meta or {}).get("rerun_of") else []
    st.caption(literal(" · ".join(facts)))
    _actions(run)
    if run.system_prompt:
        st.markdown("**System prompt**")
        show_text(run.system_prompt)
    _earlier_turns(run)
    st.markdown("**Prompt**")
    show_text(run.prompt)
    _answers(run)
    _votes(run)
    st.subheader("Metrics", anchor=False)
    st.dataframe(metrics_table(run.generations, labels), height="content")
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Tags and notes", anchor=False)
        _tags_and_notes(run)
    with right:
        st.subheader("Settings and environment", anchor=False)
        st.dataframe(settings_table(run.generations, labels), height="content")
        with st.expander("Environment"):
            st.dataframe(environment_table(run.generations, labels), height="content")


if state.pop("goto_compare", False):
    st.switch_page(COMPARE_PAGE)
raw = st.query_params.get("run")
run_id = parse_run_id(raw)
if raw is None:
    list_view()
elif run_id is not None:
    run_view(run_id)
else:
    st.button("All runs", icon=":material/arrow_back:", on_click=_back, type="tertiary")
    st.error(
        md("That link does not name a run: {raw} is not a run number.", raw=repr(raw[:40])),
        icon=":material/search:",
    )
