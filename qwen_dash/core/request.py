"""What a user asks for: the conversation, and each model's settings. Validated here.

Messages that fail validation are written for the person who typed the prompt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from math import isfinite
from typing import Any

from qwen_dash.core.specs import ModelSpec

MAX_PROMPT_CHARS = 100_000
MODES = ("concurrent", "isolated")
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class SettingRange:
    """One sampling knob: its label, bounds and UI step. The one place these limits live."""

    label: str
    low: float
    high: float
    step: float
    sampling: bool = True  # ignored by greedy decoding


SETTING_RANGES: dict[str, SettingRange] = {
    "temperature": SettingRange("Temperature", 0.0, 2.0, 0.05),
    "top_p": SettingRange("Top p", 0.0, 1.0, 0.05),
    "top_k": SettingRange("Top k", 0, 1000, 1),
    "min_p": SettingRange("Min p", 0.0, 1.0, 0.01),
    "repetition_penalty": SettingRange("Repetition penalty", 0.5, 2.0, 0.05, sampling=False),
    "seed": SettingRange("Seed", 0, 2**32 - 1, 1, sampling=False),
}


class RequestError(ValueError):
    """A request a user can fix; the message says how."""


@dataclass(frozen=True)
class Settings:
    """One model's generation settings. ``greedy`` ignores the sampling knobs.

    ``min_new_tokens`` forces at least that many new tokens (the stop tokens are suppressed until
    then), as Qwen's speed script does; set it to ``max_new_tokens`` for an exact length.
    Benchmarks use it; the Compare page does not offer it."""

    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 256
    min_new_tokens: int = 0
    seed: int | None = 0
    greedy: bool = False
    thinking: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def recommended_settings(spec: ModelSpec, thinking: bool = False, **overrides: Any) -> Settings:
    """The model's own recommended sampling, with thinking off unless asked and possible."""
    thinking = thinking and spec.can_think
    s = spec.recommended_sampling(thinking)
    base = Settings(
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        min_p=s.min_p,
        repetition_penalty=s.repetition_penalty,
        thinking=thinking,
    )
    return replace(base, **overrides)


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass
class CompareRequest:
    """One prompt (or conversation) for several models at once.

    ``template=False`` sends a raw prompt: the one user message is tokenized as text, without the
    chat template (benchmarks whose prompt must be exactly N tokens). ``prompt_tokens``, when set,
    makes each worker refuse a prompt that does not tokenize to exactly that many tokens."""

    messages: list[Message]
    settings: dict[str, Settings]  # model key -> settings
    system_prompt: str | None = None
    mode: str = "concurrent"
    meta: dict[str, Any] = field(default_factory=dict)
    template: bool = True
    prompt_tokens: int | None = None

    @classmethod
    def raw(
        cls,
        text: str,
        settings: dict[str, Settings],
        prompt_tokens: int | None = None,
        mode: str = "isolated",
    ) -> CompareRequest:
        """A prompt sent as it is, without the chat template."""
        return cls(
            [Message("user", text)],
            settings,
            mode=mode,
            template=False,
            prompt_tokens=prompt_tokens,
        )

    def prompt_format(self) -> dict[str, Any]:
        """How the prompt is sent, for the record (a run's meta): empty for a templated chat."""
        if self.template and self.prompt_tokens is None:
            return {}
        return {"template": self.template, "prompt_tokens": self.prompt_tokens}

    @classmethod
    def from_prompt(
        cls,
        prompt: str,
        settings: dict[str, Settings],
        system_prompt: str | None = None,
        mode: str = "concurrent",
        history: list[Message] | None = None,
    ) -> CompareRequest:
        messages = [*(history or []), Message("user", prompt)]
        return cls(messages=messages, settings=settings, system_prompt=system_prompt, mode=mode)

    @property
    def prompt(self) -> str:
        """The last user message: what this turn asks."""
        for m in reversed(self.messages):
            if m.role == "user":
                return m.content
        return ""

    def chat(self) -> list[dict[str, str]]:
        """Messages in the form chat templates take, system prompt first."""
        out = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return out + [{"role": m.role, "content": m.content} for m in self.messages]

    def chat_for(self, key: str) -> list[dict[str, str]]:
        """The chat one model is sent. A follow-up turn carries each model's own earlier turns in
        ``meta["histories"][key]`` (the models' answers differ, so their histories do);
        otherwise every model gets ``chat()``."""
        history = (self.meta.get("histories") or {}).get(key)
        if history is None:
            return self.chat()
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, *history, {"role": "user", "content": self.prompt}]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _check_range(name: str, value: float, model: str) -> None:
    r = SETTING_RANGES[name]
    if not (r.low <= value <= r.high):
        raise RequestError(
            f"{model}: {name} must be between {_num(r.low)} and {_num(r.high)}, got {_num(value)}."
        )


INTEGER_SETTINGS = ("top_k", "seed", "max_new_tokens")
NUMBER_SETTINGS = ("temperature", "top_p", "min_p", "repetition_penalty")
SWITCH_SETTINGS = ("greedy", "thinking")


def _check_types(s: Settings, model: str) -> None:
    """Whole numbers where whole numbers are meant, finite numbers elsewhere, switches as bools:
    a value of the wrong kind is refused, never rounded or replaced."""
    for name in INTEGER_SETTINGS:
        value = getattr(s, name)
        if name == "seed" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"{model}: {name} must be a whole number, got {value!r}.")
    for name in NUMBER_SETTINGS:
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not isfinite(value):
            raise RequestError(f"{model}: {name} must be a number, got {value!r}.")
    for name in SWITCH_SETTINGS:
        if not isinstance(getattr(s, name), bool):
            raise RequestError(f"{model}: {name} must be on or off, got {getattr(s, name)!r}.")


def validate_settings(s: Settings, spec: ModelSpec) -> None:
    m = spec.label
    _check_types(s, m)
    for name, r in SETTING_RANGES.items():
        value = getattr(s, name)
        if value is not None and not (s.greedy and r.sampling):
            _check_range(name, value, m)
    if not s.greedy and s.temperature == 0.0:
        raise RequestError(f"{m}: temperature 0 means greedy decoding: tick 'greedy' instead.")
    if not s.greedy and s.top_p == 0.0:
        raise RequestError(f"{m}: top_p must be above 0.")
    if s.max_new_tokens < 1:
        raise RequestError(f"{m}: max_new_tokens must be at least 1, got {s.max_new_tokens}.")
    if not 0 <= s.min_new_tokens <= s.max_new_tokens:
        raise RequestError(
            f"{m}: min_new_tokens must be between 0 and max_new_tokens ({s.max_new_tokens}), "
            f"got {s.min_new_tokens}."
        )
    if s.max_new_tokens > spec.max_new_tokens:
        raise RequestError(
            f"{m}: max_new_tokens {s.max_new_tokens} is above this model's limit of "
            f"{spec.max_new_tokens}."
        )
    if s.thinking and not spec.can_think:
        raise RequestError(f"{m} cannot think: turn thinking off for it.")


def validate_request(req: CompareRequest, specs: dict[str, ModelSpec]) -> None:
    """Checks that need no tokenizer. Context-window checks happen per model in the worker."""
    if req.mode not in MODES:
        raise RequestError(f"Mode must be one of {', '.join(MODES)}, got '{req.mode}'.")
    if not req.messages:
        raise RequestError("The conversation is empty: type a prompt.")
    for msg in req.messages:
        if msg.role not in ROLES:
            raise RequestError(f"Unknown message role '{msg.role}'.")
    if req.messages[-1].role != "user" or not req.messages[-1].content.strip():
        raise RequestError("The prompt is empty: type something for the models to answer.")
    if not req.settings:
        raise RequestError("No model chosen: pick at least one model.")
    _check_prompt_format(req)
    total = max(sum(len(m["content"]) for m in req.chat_for(key)) for key in req.settings)
    if total > MAX_PROMPT_CHARS:
        raise RequestError(
            f"The prompt is {total:,} characters long; the limit is {MAX_PROMPT_CHARS:,}. "
            "Shorten it or start a new conversation."
        )
    for key, settings in req.settings.items():
        if key not in specs:
            raise RequestError(f"Unknown model '{key}'. Known: {', '.join(specs)}.")
        validate_settings(settings, specs[key])


def _check_prompt_format(req: CompareRequest) -> None:
    if not req.template and (
        len(req.messages) != 1 or req.system_prompt or req.meta.get("histories")
    ):
        raise RequestError(
            "A raw prompt (no chat template) is one user message: no system prompt, no history."
        )
    if req.prompt_tokens is not None and req.prompt_tokens < 1:
        raise RequestError(f"prompt_tokens must be at least 1, got {req.prompt_tokens}.")


def check_prompt_tokens(n_in: int, expected: int | None, spec: ModelSpec) -> None:
    """A prompt meant to be exactly ``expected`` tokens must be (Qwen's speed script asserts it)."""
    if expected is not None and n_in != expected:
        raise RequestError(
            f"{spec.label}: the prompt is {n_in:,} tokens by this model's tokenizer, but exactly "
            f"{expected:,} were asked for."
        )


def check_context(n_in: int, max_new_tokens: int, spec: ModelSpec) -> None:
    """Prompt tokens plus the tokens asked for must fit the model's context window."""
    over = n_in + max_new_tokens - spec.context_window
    if over > 0:
        raise RequestError(
            f"{spec.label}: the prompt is {n_in:,} tokens and {max_new_tokens:,} new tokens are "
            f"asked for, {over:,} tokens beyond the {spec.context_window:,}-token context window. "
            "Shorten the prompt or lower max new tokens."
        )
