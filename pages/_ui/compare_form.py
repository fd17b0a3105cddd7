"""The Compare page's form state, owned here: the widget keys, their defaults, the settings they
describe, and loading a request into them (History's "Rerun" does, before it switches page).

No other module writes these session keys; pages go through :class:`CompareForm`.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from qwen_dash.core.request import CompareRequest, RequestError, Settings, validate_settings
from qwen_dash.engine import ModelPool

SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
DEFAULT_MAX_NEW_TOKENS = 256
# Session keys of the form's shared widgets.
THINKING, MODE, MAX_NEW_TOKENS, SYSTEM_PROMPT = (
    "thinking",
    "mode",
    "max_new_tokens",
    "system_prompt",
)


@dataclass
class CompareForm:
    """The Compare form of one browser session (``state`` is its ``st.session_state``)."""

    state: MutableMapping[str, Any]
    pool: ModelPool

    @property
    def keys(self) -> list[str]:
        return list(self.pool.workers)

    @staticmethod
    def widget_key(model_key: str, name: str) -> str:
        """The session key of one model's setting widget (sampling, greedy, seed)."""
        return f"s:{model_key}:{name}"

    def init(self) -> None:
        """Defaults for whatever this session has not set yet."""
        self.state.setdefault(THINKING, False)
        self.state.setdefault(MODE, "concurrent")
        self.state.setdefault(MAX_NEW_TOKENS, DEFAULT_MAX_NEW_TOKENS)
        self.state.setdefault(SYSTEM_PROMPT, "")
        for key in self.keys:
            if self.widget_key(key, "temperature") not in self.state:
                self.reset_sampling(key)
            self.state.setdefault(self.widget_key(key, "seed"), 0)

    def reset_sampling(self, key: str) -> None:
        """The model's recommended sampling (for the current thinking switch)."""
        rec = self.pool.recommended(key, thinking=bool(self.state.get(THINKING)))
        for name in SAMPLING:
            self.state[self.widget_key(key, name)] = getattr(rec, name)
        self.state[self.widget_key(key, "greedy")] = False

    def thinking_changed(self) -> None:
        """Thinking has its own recommended sampling: reset the models that can think."""
        for key in self.keys:
            if self.pool.specs[key].can_think:
                self.reset_sampling(key)

    def settings(self) -> dict[str, Settings]:
        """Each model's settings exactly as the form holds them: nothing rounded, clamped or
        replaced, so validation sees what the user typed."""
        thinking = bool(self.state.get(THINKING))
        out = {}
        for key in self.keys:
            values = {n: self.state.get(self.widget_key(key, n)) for n in (*SAMPLING, "seed")}
            out[key] = Settings(
                **values,
                max_new_tokens=self.state.get(MAX_NEW_TOKENS),
                greedy=bool(self.state.get(self.widget_key(key, "greedy"))),
                thinking=thinking and self.pool.specs[key].can_think,
            )
        return out

    def problems(self) -> list[str]:
        """Why Send would be refused, one message per model that has a bad setting."""
        out = []
        for key, settings in self.settings().items():
            try:
                validate_settings(settings, self.pool.specs[key])
            except RequestError as exc:
                out.append(str(exc))
        return out

    def load(self, request: CompareRequest) -> None:
        """Show a request's settings in the form (a rerun from History)."""
        self.state[MODE] = request.mode
        first = next(iter(request.settings.values()))
        self.state[MAX_NEW_TOKENS] = first.max_new_tokens
        self.state[THINKING] = any(s.thinking for s in request.settings.values())
        self.state[SYSTEM_PROMPT] = request.system_prompt or ""
        for key, s in request.settings.items():
            for name in (*SAMPLING, "greedy", "seed"):
                self.state[self.widget_key(key, name)] = getattr(s, name)
