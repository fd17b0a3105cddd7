"""The vote buttons Compare and a History run page share, and who the voter is."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence

import streamlit as st

from pages._ui.auth import admitted, refuse
from pages._ui.sidebar import current_user
from pages._ui.text import literal, md
from qwen_dash.core.access import can_vote, refusal
from qwen_dash.core.arena import SIDE_LETTERS
from qwen_dash.store import Store, StoreError
from qwen_dash.views.leaderboard import PAIRWISE_NOTE, verdict_text, vote_choices

BUTTON_KEYS = {"a": "vote-a", "b": "vote-b", "c": "vote-c", "d": "vote-d"}
BUTTON_KEYS |= {"tie": "vote-tie", "both_bad": "vote-both-bad"}


def voter() -> str:
    """Who votes: the name in the sidebar, else an id for this browser session (so that one
    person's votes on a run stay one vote, and two unnamed people never overwrite each other)."""
    name = current_user()
    if name:
        return name
    state = st.session_state
    if "anonymous_voter" not in state:
        state["anonymous_voter"] = f"anonymous-{uuid.uuid4().hex[:8]}"
    return str(state["anonymous_voter"])


def _cast(
    store: Store,
    run_id: int,
    winner: str,
    sides: list[str],
    blind: bool,
    done: Callable[[str], None] | None,
) -> None:
    identity = admitted()
    if identity is None or not can_vote(identity):  # the button was disabled; check again
        st.session_state["vote_error"] = refusal("vote", identity) if identity else "Sign in."
        return
    try:
        result = store.cast_vote(run_id, winner, sides=sides, voter=voter(), blind=blind)
    except StoreError as exc:
        st.session_state["vote_error"] = str(exc)
        return
    if done is not None:
        done(winner)
    word = "changed" if result.changed else ("recorded" if result.created else "unchanged")
    st.toast(md("Vote {word}.", word=word), icon=":material/how_to_vote:")


def vote_buttons(
    store: Store,
    run_id: int,
    sides: Sequence[str],
    labels: Mapping[str, str],
    *,
    blind: bool,
    current: str | None,
    done: Callable[[str], None] | None = None,
    names: bool = False,
) -> None:
    """The verdict buttons for one run (keys vote-a, vote-b, vote-tie, vote-both-bad, ...).

    ``sides``: the models in the order shown (side a first). ``current``: this voter's verdict
    so far, if any. ``names``: put the model names on the buttons (named votes).
    """
    sides = list(sides)
    identity = admitted()
    allowed = identity is not None and can_vote(identity)
    why = "" if allowed or identity is None else refusal("vote", identity)
    with st.container(horizontal=True, vertical_alignment="center", key="vote-buttons"):
        for winner, text in vote_choices(len(sides)):
            if names and winner in SIDE_LETTERS:
                text = verdict_text(winner, sides, labels)
            st.button(
                literal(text),
                key=BUTTON_KEYS[winner],
                type="primary" if winner == current else "secondary",
                on_click=_cast,
                args=(store, run_id, winner, sides, blind, done),
                disabled=not allowed,
                help=None if allowed else literal(why),
            )
    if identity is not None and not allowed:
        refuse("vote", identity)
    if len(sides) > 2:
        st.caption(PAIRWISE_NOTE)
    if error := st.session_state.pop("vote_error", None):
        st.error(literal(error), icon=":material/error:")
