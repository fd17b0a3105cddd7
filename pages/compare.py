"""Compare: one prompt to every model; the answers stream side by side, then their metrics."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from pages._ui.auth import refuse, who
from pages._ui.compare_form import DEFAULT_MAX_NEW_TOKENS, CompareForm
from pages._ui.navigation import HISTORY_PAGE, ensure_entrypoint
from pages._ui.resources import get_outbox, model_labels, pool_or_stop, store_or_none
from pages._ui.sidebar import current_user
from pages._ui.text import literal, md
from pages._ui.voting import vote_buttons
from pages._ui.widgets import (
    finish_note,
    headline_metrics,
    result_status,
    show_text,
    source_banner,
)
from qwen_dash.core.access import can_run, refusal
from qwen_dash.core.arena import SIDE_LETTERS, side_label
from qwen_dash.core.request import MODES, SETTING_RANGES, RequestError
from qwen_dash.engine import WorkerStatus
from qwen_dash.views import compare as session
from qwen_dash.views.display import fmt_metric, fmt_ms, is_random_source
from qwen_dash.views.leaderboard import verdict_text

HIDDEN_NOTE = (
    "Blind: the answers are shown as Model A and Model B, in an order drawn at random for this "
    "conversation. Hidden until you vote: the model names, their weights sources, the reasoning "
    "block (only a thinking model has one) and every metric (tokens in, speed and memory tell "
    "the models apart)."
)
DRAW_EVERY_S = 0.2
TICK_EVERY_S = 0.5
MODE_LABELS = {"concurrent": "Concurrent", "isolated": "Isolated"}

ensure_entrypoint()
identity = who()
may_run = can_run(identity)
pool = pool_or_stop()
store, store_error = store_or_none()
labels = model_labels(pool)
keys = list(pool.workers)
specs = pool.specs
thinkers = [k for k in keys if specs[k].can_think]
state = st.session_state


form = CompareForm(state, pool)


# ---- actions (callbacks run before the page is drawn) --------------------------------------------


def _running() -> bool:
    live = state.get("live")
    return live is not None and not live.done


def _send() -> None:
    if not may_run:
        state["compare_error"] = refusal("run", identity)
        return
    if _running():
        state["compare_error"] = "The models are still answering: wait, or press Stop."
        return
    conversation = state.get("conversation") or session.Conversation()
    previous = state.get("live")
    if previous is not None:
        session.finish_turn(conversation, previous)
    request = session.build_request(
        state.get("prompt") or "",
        form.settings(),
        state.get("system_prompt"),
        state.get("mode") or "concurrent",
        conversation,
    )
    try:
        live = session.start(
            pool,
            request,
            get_outbox(),
            conversation=conversation,
            user=current_user(),
            blind=bool(state.get("blind", True)),
        )
    except RequestError as exc:
        state["compare_error"] = str(exc)
        return
    state["conversation"] = conversation
    state["live"] = live
    state["prompt"] = ""


def _stop() -> None:
    live = state.get("live")
    if live is not None and not live.done:
        live.cancel()


def _new_conversation() -> None:
    _stop()
    state.pop("live", None)
    state.pop("conversation", None)


# ---- drawing -------------------------------------------------------------------------------------


def _name(key: str, live: Any) -> str:
    """The model's name, or its side while the names are hidden."""
    if live is not None and live.hidden:
        return side_label(live.sides.index(key))
    return labels[key]


def _title(index: int, key: str, hidden: bool, sided: bool) -> str:
    """A column's heading: 'Model A' while blind, 'Model A · name' after the vote, else the name."""
    if hidden:
        return side_label(index)
    return f"{side_label(index)} · {labels[key]}" if sided else labels[key]


def _waiting_text(key: str, column: session.ColumnState, status: WorkerStatus, live: Any) -> str:
    name = _name(key, live)
    if status.state in ("starting", "loading"):
        return f"Waiting for {name} to load: {status.message or 'starting'}…"
    if column.state == "queued":
        place = column.place_in_line()
        if place is not None:
            return f"Waiting for your turn on {name}: {place}."
        return f"Queued: {name} is finishing another request."
    return "Waits for the other model to finish first (isolated mode)."


def _draw_status(slot: Any, key: str, column: session.ColumnState, live: Any) -> None:
    """One element in the slot, always: a stale second element would linger, greyed out."""
    status = pool.status()[key]
    if column.state in ("waiting", "queued"):
        text = _waiting_text(key, column, status, live)
        if status.state in ("starting", "loading"):
            slot.progress(status.fraction or 0.0, text=literal(text))
        else:
            slot.caption(literal(text))
    elif column.state == "running":
        elapsed = time.monotonic() - live.started
        stop = " · stopping…" if live.stop_requested else ""
        count = "" if live.hidden else f" · {column.n_tokens} tokens"  # thinking adds tokens
        line = "Streaming{count} · {s} s{stop}"
        slot.caption(md(line, count=count, s=f"{elapsed:.1f}", stop=stop))
    elif column.result is not None and column.result.status != "ok":
        with slot.container():
            result_status(column.result)
    else:
        slot.empty()


def _expected_source(key: str, live: Any) -> str | None:
    """What the column's weights are: the answer's source, the loaded worker's, or the one
    asked for (known before loading unless it is auto)."""
    result = live.columns[key].result if live else None
    if result is not None:
        return result.source
    status = pool.status()[key]
    if status.source:
        return status.source
    return pool.source if pool.source != "auto" else None


def _draw_banner(slot: Any, key: str, live: Any, hidden: bool = False) -> None:
    source = _expected_source(key, live)
    if hidden or (live is not None and live.hidden):
        slot.empty()
    elif source:
        with slot.container():
            source_banner(source)


def _draw_reasoning(key: str, column: session.ColumnState) -> None:
    if not column.has_reasoning:
        return
    n = column.reasoning_tokens
    took = column.reasoning_ms
    with st.expander(
        md("Reasoning · {n} tokens · {took}", n=n if n is not None else "n/a", took=fmt_ms(took)),
        expanded=False,
        icon=":material/psychology:",
    ):
        show_text(column.reasoning, empty="(no reasoning text)")


def _draw_column(key: str, slots: dict[str, Any], live: session.LiveComparison) -> None:
    column = live.columns[key]
    _draw_banner(slots["banner"], key, live)
    _draw_status(slots["status"], key, column, live)
    with slots["reasoning"].container():
        if not live.hidden:
            _draw_reasoning(key, column)
    with slots["answer"].container():
        placeholder = "…" if column.state != "done" else "(no answer)"
        show_text(column.answer, empty=placeholder)
    if column.result is not None and not live.hidden:
        with slots["metrics"].container():
            headline_metrics(column.result)
            finish_note(column.result)


def _you(prompt: str) -> None:
    with st.chat_message("user", avatar=":material/person:"):
        show_text(prompt)


def _past_answer(turn: session.Turn, key: str, hidden: bool) -> None:
    result = turn.results.get(key)
    if result is None:
        st.caption("No answer.")
        return
    if hidden:
        show_text(result.text, empty=result.error or "(no answer)")
        return
    if result.reasoning is not None:
        with st.expander(md("Reasoning · {n} tokens", n=fmt_metric("n_think", result.n_think))):
            show_text(result.reasoning)
    show_text(result.text, empty=result.error or "(no answer)")
    st.caption(
        md(
            "TTFT {ttft} · {tps} · {n} tokens out",
            ttft=fmt_metric("ttft_ms", result.ttft_ms),
            tps=fmt_metric("decode_tps", result.decode_tps),
            n=fmt_metric("n_out", result.n_out),
        )
    )


def _settings_panel() -> None:
    max_tokens = min(specs[k].max_new_tokens for k in keys)
    top = st.columns([1, 3])
    top[0].number_input(
        "Max new tokens",
        step=32,
        key="max_new_tokens",
        persist_state="session",
        help=md("1 to {n} (the smallest limit of the models shown).", n=f"{max_tokens:,}"),
    )
    top[1].text_area(
        "System prompt (optional)",
        key="system_prompt",
        height=68,
        placeholder="e.g. You are a concise assistant.",
        persist_state="session",
    )
    st.caption("Sampling starts at each model's own recommended settings.")
    for key, col in zip(keys, st.columns(len(keys), gap="large"), strict=True):
        with col:
            with st.container(horizontal=True, vertical_alignment="center"):
                st.markdown(md("**{label}**", label=labels[key]))
                st.button(
                    "Reset to recommended",
                    key=f"reset:{key}",
                    on_click=form.reset_sampling,
                    args=(key,),
                    type="tertiary",
                    icon=":material/restart_alt:",
                )
            greedy = st.checkbox(
                "Greedy decoding", key=form.widget_key(key, "greedy"), persist_state="session"
            )
            cols = st.columns(3)
            for i, (name, r) in enumerate(SETTING_RANGES.items()):
                # No bounds on the widget: a value out of range is kept and reported beside
                # Send (a bounded widget would silently put the old value back).
                cols[i % 3].number_input(
                    literal(r.label),
                    step=r.step,
                    key=form.widget_key(key, name),
                    disabled=greedy and r.sampling,
                    persist_state="session",
                    help=md("From {low} to {high}.", low=f"{r.low:g}", high=f"{r.high:g}"),
                )


def _prompt_box(following_up: bool, running: bool) -> None:
    conversation = state.get("conversation")
    done = len(conversation.turns) if conversation else 0
    next_turn = done + (1 if state.get("live") else 0) + 1
    problems = form.problems()
    with st.container(border=True):
        st.text_area(
            md("Follow-up message (turn {n})", n=next_turn) if following_up else "Prompt",
            key="prompt",
            height=72,
            placeholder="Ask both models something…",
        )
        with st.container(horizontal=True, vertical_alignment="center", gap="small"):
            st.button(
                "Send",
                key="run",
                type="primary",
                icon=":material/send:",
                on_click=_send,
                disabled=bool(problems) or not may_run,
            )
            st.button(
                "Stop", key="stop", icon=":material/stop:", on_click=_stop, disabled=not running
            )
            st.button(
                "New conversation",
                key="new_conversation",
                icon=":material/add_comment:",
                on_click=_new_conversation,
                disabled=not following_up,
            )
            st.space("stretch")
            st.toggle(
                "Blind",
                value=True,
                key="blind",
                persist_state="session",
                help="Show the answers as Model A and Model B, in a random order, and hide the "
                "names, weights sources, reasoning and metrics until you vote on them.",
            )
            if thinkers:
                st.toggle(
                    md("Thinking ({names})", names=", ".join(labels[k] for k in thinkers)),
                    key="thinking",
                    on_change=form.thinking_changed,
                    persist_state="session",
                    help="Qwen3's thinking switch (enable_thinking). Its reasoning is shown "
                    "apart from the answer. Models that cannot think ignore it.",
                )
            st.segmented_control(
                "Mode",
                MODES,
                key="mode",
                required=True,
                format_func=MODE_LABELS.get,
                persist_state="session",
                label_visibility="collapsed",
                help="Concurrent: both at once (what you watch). Isolated: one after the "
                "other, each with every core (fair latency).",
            )
        if not may_run:
            refuse("run", identity)
        for problem in problems:  # beside Send, not only inside the (closed) panel
            st.error(literal(problem), icon=":material/tune:")
        n = state.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS
        title = "Settings: up to {n} new tokens, system prompt, sampling"
        with st.expander(
            md(title, n=f"{n:,}" if isinstance(n, int) else n),
            key="settings_expander",
            icon=":material/tune:",
        ):
            _settings_panel()


def _logged_link(run_id: int) -> None:
    st.page_link(
        HISTORY_PAGE,
        label=md("Logged as run #{n}: open it in History", n=run_id),
        icon=":material/history:",
        query_params={"run": str(run_id)},
    )


def _save_status(live: session.LiveComparison) -> None:
    """Where the run stands: logged (with its link), or kept and retried (refreshing until it
    lands). "Logged" is only said of a run the database has committed."""
    if live.run_id is not None:
        _vote_panel(live)
        _logged_link(live.run_id)
    elif live.save is not None:
        st.fragment(run_every=2.0)(_retrying)(live)


def _retrying(live: session.LiveComparison) -> None:
    if live.run_id is not None:
        st.rerun(scope="app")  # landed: the whole page redraws, with its vote buttons
    why = live.log_error or "saving…"
    st.warning(
        md(
            "Not saved yet: {why} This run is kept on the server and tried again every few "
            "seconds; this line changes when it lands.",
            why=why,
        ),
        icon=":material/sync_problem:",
    )


# ---- voting --------------------------------------------------------------------------------------


def _voted(live: session.LiveComparison, winner: str) -> None:
    live.vote = winner
    conversation = state.get("conversation")
    if conversation is not None:
        conversation.revealed = True


def _vote_panel(live: session.LiveComparison) -> None:
    """The verdict buttons under a finished, logged comparison; names revealed once voted."""
    assert store is not None and live.run_id is not None
    with st.container(border=True, key="vote-panel"):
        st.markdown("**Which answer is better?**")
        if live.hidden:
            st.caption(
                "The names are revealed once you vote. One vote per person per run: you can "
                "change it, and the change is recorded."
            )
        vote_buttons(
            store,
            live.run_id,
            live.sides,
            labels,
            blind=live.hidden,
            current=live.vote,
            done=lambda winner: _voted(live, winner),
        )
        if live.vote is not None:
            verdict = verdict_text(live.vote, live.sides, labels)
            how = "blind" if live.blind else "named"
            after = " Changing it now records a named vote: you have seen the names."
            st.caption(
                md(
                    "Your vote ({how}): {verdict}.{after}",
                    how=how,
                    verdict=verdict,
                    after=after if live.blind else "",
                )
            )


def _random_weights_note(live: session.LiveComparison | None) -> None:
    """While blind, one note for every column: it says random weights without saying whose."""
    sources = {s for key in keys if (s := _expected_source(key, live))}
    random_sources = sorted(s for s in sources if is_random_source(s))
    if random_sources:
        st.warning(
            md(
                "Random weights ({sources}) in this comparison: that text is meaningless. Votes "
                "on random-weight answers are left out of the Leaderboard by default.",
                sources=", ".join(random_sources),
            ),
            icon=":material/warning:",
        )


# ---- the page ------------------------------------------------------------------------------------

form.init()
live: session.LiveComparison | None = state.get("live")
conversation: session.Conversation | None = state.get("conversation")
following_up = live is not None

st.title("Compare", anchor=False)
st.caption("One prompt, every model, side by side. Every run is logged to History.")
if store_error:
    st.warning(
        md(
            "The database cannot be used right now: {e} Runs are kept on this server and saved "
            "as soon as it can be.",
            e=store_error,
        ),
        icon=":material/warning:",
    )
_prompt_box(following_up, _running())
if error := state.pop("compare_error", None):
    st.error(literal(error), icon=":material/error:")

statuses = pool.status()
gap = "large"
if live is not None:
    order, hidden = live.sides, live.hidden
else:
    blind_next = bool(state.get("blind", True)) and not (conversation and conversation.revealed)
    order, hidden = keys, blind_next
sided = conversation is not None and conversation.sides is not None
if hidden:
    st.info(HIDDEN_NOTE, icon=":material/visibility_off:")
    _random_weights_note(live)
banners: dict[str, Any] = {}
for i, (key, col) in enumerate(zip(order, st.columns(len(order), gap=gap), strict=True)):
    with col:
        status = statuses[key]
        st.subheader(literal(_title(i, key, hidden, sided)), anchor=False)
        banners[key] = st.empty()
        _draw_banner(banners[key], key, live, hidden)
        if status.state in ("failed", "dead") and status.error:
            st.error(
                md("{e} It is restarted on the next prompt.", e=status.error),
                icon=":material/error:",
            )
for turn in conversation.turns if conversation else []:
    _you(turn.prompt)
    for key, col in zip(order, st.columns(len(order), gap=gap), strict=True):
        with col:
            _past_answer(turn, key, hidden)
    st.divider()
slots: dict[str, dict[str, Any]] = {}
if live is not None:
    _you(live.request.prompt)
for i, (key, col) in enumerate(zip(order, st.columns(len(order), gap=gap), strict=True)):
    output_key = f"output-side-{SIDE_LETTERS[i]}" if hidden else f"output-{key}"
    with col, st.container(key=output_key):
        if live is None:
            st.caption("The answer appears here.")
        else:
            slots[key] = {n: st.empty() for n in ("status", "reasoning", "answer", "metrics")}
            slots[key]["banner"] = banners[key]

footer = st.empty()
if live is not None:
    for key in keys:
        _draw_column(key, slots[key], live)
    last_draw = last_tick = time.monotonic()
    while not live.done:
        changed = live.pump(0.1)
        now = time.monotonic()
        if changed and now - last_draw >= DRAW_EVERY_S:
            for key in keys:
                _draw_column(key, slots[key], live)
            last_draw = last_tick = now
        elif now - last_tick >= TICK_EVERY_S:  # the elapsed clock; lets Stop interrupt the loop
            for key in keys:
                _draw_banner(slots[key]["banner"], key, live)
                _draw_status(slots[key]["status"], key, live.columns[key], live)
            last_tick = now
    live.pump(0)
    for key in keys:
        _draw_column(key, slots[key], live)
    live.wait_logged()
    with footer.container():
        _save_status(live)
