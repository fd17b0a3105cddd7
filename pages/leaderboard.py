"""Leaderboard: votes turned into ratings with intervals, and quality beside cost."""

from __future__ import annotations

import streamlit as st

from pages._ui.filters import run_filters
from pages._ui.navigation import COMPARE_PAGE, ensure_entrypoint
from pages._ui.resources import model_labels, pool_or_stop, store_or_stop
from pages._ui.text import literal, md
from qwen_dash.store import VoteFilters
from qwen_dash.views import leaderboard as arena

ensure_entrypoint()
pool = pool_or_stop()
store = store_or_stop()
labels = model_labels(pool)


def _options() -> VoteFilters:
    """The filter row (as on History and Trends) and the arena's own switches."""
    runs = run_filters(store, labels, "l_", text=False)
    with st.container(horizontal=True, vertical_alignment="center", key="l_switches"):
        blind = st.toggle(
            "Blind votes only",
            value=True,
            key="l_blind",
            persist_state="session",
            help="Votes cast with the names hidden (imported: FastChat's anony). Named votes "
            "are swayed by the names.",
        )
        random_weights = st.toggle(
            "Include random-weight models (twin, tiny)",
            value=False,
            key="l_random",
            persist_state="session",
            help=literal(arena.REAL_WEIGHTS_NOTE),
        )
        imported = st.toggle(
            "Imported battles",
            value=True,
            key="l_imported",
            persist_state="session",
            help="Battles loaded with 'python -m qwen_dash votes import'.",
        )
    return VoteFilters(
        runs=runs, blind_only=blind, include_random=random_weights, include_imported=imported
    )


def _empty(data: arena.ArenaData) -> None:
    if data.counts.votes == 0:
        st.info(
            "No votes yet. Send a prompt on the Compare page and pick the better answer under "
            "it (blind by default), or load battles with 'python -m qwen_dash votes import'.",
            icon=":material/how_to_vote:",
        )
        st.page_link(COMPARE_PAGE, label="Go to Compare", icon=":material/compare_arrows:")
    else:
        st.info("No battle matches these filters.", icon=":material/search:")
    for note in data.notes:
        st.text(note)
    st.info(literal(arena.GET_REAL_WEIGHTS), icon=":material/download:")


def _ratings(data: arena.ArenaData) -> None:
    assert data.board is not None
    st.dataframe(
        arena.display_table(data.board, labels),
        hide_index=True,
        key="l_table",
        column_config={
            "Rating": st.column_config.NumberColumn(format="%.0f"),
            "Length-controlled": st.column_config.NumberColumn(format="%.0f"),
        },
    )
    st.caption(literal(arena.RATING_NOTE.format(rounds=len(data.board.bootstrap))))
    st.caption(literal(arena.LENGTH_NOTE))
    for note in data.board.notes:  # may hold imported model names: shown as plain text
        st.text(note)
    st.plotly_chart(arena.rating_figure(data.board, labels), key="l_ratings")


def _which_model(data: arena.ArenaData, filters: VoteFilters) -> None:
    assert data.board is not None
    st.caption(
        md(
            "Quality beside cost, per model: the rating with its 95% interval, and the medians "
            "of what was measured here in isolated runs (one model at a time, so neither shares "
            "the machine; the newest {n} matching runs). Twins count for cost: their timing and "
            "memory are real, only their text is not.",
            n=f"{arena.COST_MAX_RUNS:,}",
        )
    )
    cost = arena.cost_frame(store, filters.runs, filters.include_random)
    frame = arena.which_model(data.board, cost)
    st.dataframe(arena.which_model_display(frame, labels), hide_index=True, key="l_which")
    if frame["decode_tps"].isna().all():
        st.info(
            "No isolated run of these models matches: send a prompt in Isolated mode on the "
            "Compare page to measure their speed and memory.",
            icon=":material/speed:",
        )
        return
    st.plotly_chart(arena.speed_figure(frame, labels), key="l_speed")


def _pairs(data: arena.ArenaData) -> None:
    st.caption(
        "Read across a row: how often that model beat the column's model (ties count half). "
        "A cell from a handful of battles says little: the battle counts are beside it."
    )
    left, right = st.columns(2)
    with left:
        st.plotly_chart(arena.win_rate_figure(data.battles, labels), key="l_winrate")
    with right:
        st.plotly_chart(arena.count_figure(data.battles, labels), key="l_counts")


def _over_time(data: arena.ArenaData) -> None:
    st.caption(
        "Online Elo moves with each vote in time order (K = 4), so it shows drift but depends "
        "on the order of votes; the table's Bradley-Terry ratings do not."
    )
    st.plotly_chart(arena.elo_figure(data.battles, labels), key="l_elo")


st.title("Leaderboard", anchor=False)
st.caption(
    "Pairwise votes on answers, turned into Bradley-Terry ratings with 95% intervals, as Chatbot "
    "Arena computes them; headline ratings count blind votes only."
)
filters = _options()
data = arena.load(store, filters)
if data.empty:
    _empty(data)
    st.stop()
for note in data.notes:
    st.text(note)
ratings, which, pairs, over_time = st.tabs(["Ratings", "Which model?", "Pairs", "Over time"])
with ratings:
    _ratings(data)
with which:
    _which_model(data, filters)
with pairs:
    _pairs(data)
with over_time:
    _over_time(data)
