"""The Compare page's session logic, without streamlit: one live comparison and a conversation.

A page keeps a :class:`LiveComparison` in its session state, calls :meth:`LiveComparison.pump`
from its own script thread and draws :attr:`LiveComparison.columns`. The run is logged from the
pool's thread as soon as every model has answered (``Comparison.on_done``), so a page that is
left, rerun or stopped mid-stream loses nothing.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import CompareRequest, Message, RequestError, Settings
from qwen_dash.engine import Comparison, Event, ModelPool
from qwen_dash.engine.turns import describe_wait
from qwen_dash.store.outbox import Outbox, PendingSave

LOG_WAIT_S = 10.0


@dataclass
class ColumnState:
    """What one model's column shows, built up from the comparison's events."""

    key: str
    state: str = "waiting"  # waiting | queued | running | done
    answer: str = ""
    reasoning: str = ""
    n_tokens: int = 0
    n_reasoning: int = 0
    last_reasoning_ms: float | None = None
    last_t_ms: float | None = None
    result: GenerationResult | None = None
    position: int | None = None  # place in line for the local worker (1 = next)
    eta_s: float | None = None
    eta_at: float = 0.0  # when the estimate was made (time.monotonic)

    def apply(self, event: Event) -> None:
        if event.kind == "queued":
            self.state = "queued"
            if event.position is not None:
                self.position, self.eta_s = event.position, event.eta_s
                self.eta_at = time.monotonic()
        elif event.kind == "started":
            self.state = "running"
        elif event.kind == "delta":
            self.state = "running"
            self.n_tokens = event.n
            self.last_t_ms = event.t_ms
            if event.part == "reasoning":
                self.reasoning += event.text
                self.n_reasoning += 1
                self.last_reasoning_ms = event.t_ms
            else:
                self.answer += event.text
        elif event.kind == "result" and event.result is not None:
            self.state = "done"
            self.result = event.result
            self.answer = event.result.text
            self.reasoning = event.result.reasoning or ""

    def place_in_line(self, now: float | None = None) -> str | None:
        """ "2nd in line, about 40 s" while this answer waits its turn, else None. The estimate
        counts down between the updates the pool sends."""
        if self.state != "queued" or self.position is None:
            return None
        eta = self.eta_s
        if eta is not None:
            eta = max(0.0, eta - ((now or time.monotonic()) - self.eta_at))
        return describe_wait(self.position, eta)

    @property
    def has_reasoning(self) -> bool:
        if self.result is not None:
            return self.result.reasoning is not None
        return self.n_reasoning > 0

    @property
    def reasoning_tokens(self) -> int | None:
        """Tokens up to and including ``</think>`` once finished; counted live before."""
        if self.result is not None:
            return self.result.n_think
        return self.n_reasoning or None

    @property
    def reasoning_ms(self) -> float | None:
        """Time from the generate call to the end of the reasoning."""
        r = self.result
        if r is not None and r.n_think and len(r.token_times_ms) >= r.n_think:
            return r.token_times_ms[r.n_think - 1]
        return self.last_reasoning_ms


@dataclass
class Turn:
    """One prompt of a conversation and what each model answered."""

    prompt: str
    results: dict[str, GenerationResult]
    run_id: int | None = None


@dataclass
class Conversation:
    """The turns so far; a follow-up sends each model its own earlier answers."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    system_prompt: str | None = None
    turns: list[Turn] = field(default_factory=list)
    # Blind arena: the side order drawn for this conversation (side a first), and whether the
    # names were revealed (a vote was cast, or a turn was sent with Blind off).
    sides: list[str] | None = None
    revealed: bool = False

    def blind_sides(self, keys: Sequence[str], blind: bool, rng: random.Random) -> list[str] | None:
        """The side order for the next turn, or None when it is not blind.

        Drawn at random once per conversation and logged with each of its runs: a follow-up
        continues each model's own answers, so a new draw per turn would hide nothing (and would
        move a model's answers from one column to the other). Once the names were shown, the
        rest of the conversation is not blind.
        """
        if not blind:
            if self.sides is None:
                self.revealed = True
            return None
        if self.revealed:
            return None
        if self.sides is None or sorted(self.sides) != sorted(keys):
            self.sides = rng.sample(list(keys), len(keys))
        return list(self.sides)

    def history(self, key: str) -> list[Message]:
        """One model's side of the conversation. Thinking text is never carried over; a turn
        where the model gave no answer (error, cancelled before a token) is left out."""
        out: list[Message] = []
        for turn in self.turns:
            result = turn.results.get(key)
            if result is None or not result.text:
                continue
            out += [Message("user", turn.prompt), Message("assistant", result.text)]
        return out


def build_request(
    prompt: str,
    settings: dict[str, Settings],
    system_prompt: str | None = None,
    mode: str = "concurrent",
    conversation: Conversation | None = None,
) -> CompareRequest:
    """A first prompt or a follow-up. For a follow-up each model's own history travels in
    ``meta["histories"]`` (the pool sends it to that model); ``messages`` holds the first
    model's, so the logged run reads as a normal conversation."""
    keys = list(settings)
    system = (system_prompt or "").strip() or None
    if conversation is None or not conversation.turns:
        return CompareRequest.from_prompt(prompt, settings, system, mode)
    histories = {k: conversation.history(k) for k in keys}
    request = CompareRequest.from_prompt(prompt, settings, system, mode, history=histories[keys[0]])
    request.meta["histories"] = {
        k: [{"role": m.role, "content": m.content} for m in h] for k, h in histories.items()
    }
    return request


def request_from_run(run: Any, available: Sequence[str]) -> CompareRequest:
    """The request that reproduces a logged run (rerun with the same settings).

    Raises RequestError when a model of the run is not loaded in this server."""
    keys = [g.model_key for g in run.generations] or list(run.settings)
    missing = [k for k in keys if k not in available]
    if missing:
        raise RequestError(
            f"This run used {', '.join(missing)}, which this server has not loaded; "
            f"loaded: {', '.join(available)}."
        )
    settings = {k: Settings.from_dict(run.settings.get(k, {})) for k in keys}
    messages = [Message(m["role"], m["content"]) for m in run.messages or []]
    if not messages:
        messages = [Message("user", run.prompt)]
    meta = run.meta or {}
    request = CompareRequest(
        messages,
        settings,
        run.system_prompt,
        run.mode,
        template=meta.get("template", True),
        prompt_tokens=meta.get("prompt_tokens"),
    )
    histories = (run.meta or {}).get("histories")
    if histories:
        request.meta["histories"] = {k: v for k, v in histories.items() if k in keys}
    request.meta["rerun_of"] = run.id
    return request


class LiveComparison:
    """One comparison in flight (or finished), as the Compare page follows it."""

    def __init__(
        self,
        comparison: Comparison,
        request: CompareRequest,
        *,
        conversation_id: str,
        turn: int,
    ) -> None:
        self.comparison = comparison
        self.request = request
        self.conversation_id = conversation_id
        self.turn = turn
        self.columns = {key: ColumnState(key) for key in comparison.model_keys}
        self.started = time.monotonic()
        self.save: PendingSave | None = None  # set once every model has answered
        self._handed = threading.Event()
        self.stop_requested = False
        self.in_conversation = False
        arena = request.meta.get("arena") or {}
        # The side order the voter sees (side a first), and whether names are hidden until a vote.
        self.sides: list[str] = list(arena.get("sides") or comparison.model_keys)
        self.blind: bool = bool(arena.get("blind"))
        self.vote: str | None = None  # this session's verdict on the run, once cast

    @property
    def hidden(self) -> bool:
        """Names, sources, reasoning and metrics are hidden: blind and not voted yet."""
        return self.blind and self.vote is None

    @property
    def keys(self) -> list[str]:
        return list(self.columns)

    def pump(self, timeout: float = 0.05) -> bool:
        """Apply the events that arrived; True when something changed."""
        events = self.comparison.poll(timeout)
        for event in events:
            self.columns[event.model_key].apply(event)
        return bool(events)

    @property
    def done(self) -> bool:
        return self.comparison.done and all(c.state == "done" for c in self.columns.values())

    def cancel(self) -> None:
        self.stop_requested = True
        self.comparison.cancel()

    def wait_logged(self, timeout: float = LOG_WAIT_S) -> bool:
        """Until the first attempt to save the run is over (saved, or kept for a retry)."""
        if not self._handed.wait(timeout) or self.save is None:
            return False
        return self.save.settled.wait(timeout)

    @property
    def run_id(self) -> int | None:
        """The run's id once it is in the database, else None."""
        return self.save.run_id if self.save is not None and self.save.saved else None

    @property
    def log_error(self) -> str | None:
        """Why the run is not in the database yet (it is kept and retried), else None."""
        return None if self.save is None or self.save.saved else self.save.error

    def results(self) -> dict[str, GenerationResult]:
        return {k: c.result for k, c in self.columns.items() if c.result is not None}

    def log_with(
        self, outbox: Outbox, *, user: str | None = None, tags: list[str] | None = None
    ) -> None:
        """Hand the run to the outbox from the pool's thread once every model has answered:
        a page that is left, rerun or stopped mid-stream loses nothing."""

        def log(comparison: Comparison) -> None:
            # In the request's order (model A first), not the order the answers finished.
            results = {
                k: comparison.results[k] for k in comparison.model_keys if k in comparison.results
            }
            self.save = outbox.submit(
                self.request,
                results,
                kind="ui",
                user=user or None,
                tags=tags,
                conversation_id=self.conversation_id,
                turn=self.turn,
            )
            self._handed.set()

        self.comparison.on_done(log)


def start(
    pool: ModelPool,
    request: CompareRequest,
    outbox: Outbox,
    *,
    conversation: Conversation,
    user: str | None = None,
    tags: list[str] | None = None,
    blind: bool = False,
    rng: random.Random | None = None,
) -> LiveComparison:
    """Validate and start a comparison, and log it when it finishes. RequestError on a request
    the user can fix (QueueFull when ``user`` has as many requests in line as one may; ``user``
    also decides whose turn the request takes on the local workers). With ``blind``, the side
    order is drawn (see :meth:`Conversation.blind_sides`) and logged in the run's meta as
    ``arena``."""
    sides = conversation.blind_sides(list(request.settings), blind, rng or random.Random())
    if sides is not None:
        request.meta["arena"] = {"blind": True, "sides": sides}
    elif conversation.sides is not None:  # names shown, the columns keep their places
        request.meta["arena"] = {"blind": False, "sides": list(conversation.sides)}
    comparison = pool.compare(request, person=user)
    live = LiveComparison(
        comparison, request, conversation_id=conversation.id, turn=len(conversation.turns)
    )
    live.log_with(outbox, user=user, tags=tags)
    return live


def finish_turn(conversation: Conversation, live: LiveComparison) -> None:
    """Move a finished comparison into its conversation's turns (once)."""
    if live.in_conversation:
        return
    live.in_conversation = True
    conversation.turns.append(Turn(live.request.prompt, live.results(), live.run_id))
