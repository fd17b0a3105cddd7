"""Validation: messages a user understands, before anything reaches a model."""

from __future__ import annotations

import dataclasses

import pytest

from qwen_dash.core.request import (
    MAX_PROMPT_CHARS,
    CompareRequest,
    Message,
    RequestError,
    Settings,
    recommended_settings,
    validate_request,
)
from qwen_dash.core.specs import load_specs

SPECS = load_specs()
Q25, Q3 = "qwen2.5-0.5b-instruct", "qwen3-0.6b"


def _req(prompt: str = "Hi", **settings: object) -> CompareRequest:
    s = {k: dataclasses.replace(recommended_settings(SPECS[k]), **settings) for k in (Q25, Q3)}
    return CompareRequest.from_prompt(prompt, s)


def test_recommended_settings_follow_each_model() -> None:
    assert recommended_settings(SPECS[Q25]).repetition_penalty == 1.1
    thinking = recommended_settings(SPECS[Q3], thinking=True)
    assert thinking.thinking and thinking.temperature == 0.6 and thinking.top_p == 0.95
    assert not recommended_settings(SPECS[Q25], thinking=True).thinking  # cannot think


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (_req(""), "The prompt is empty"),
        (_req("   \n"), "The prompt is empty"),
        (_req("x" * (MAX_PROMPT_CHARS + 1)), f"the limit is {MAX_PROMPT_CHARS:,}"),
        (_req(temperature=3.0), "temperature must be between 0 and 2, got 3"),
        (_req(temperature=0.0), "tick 'greedy'"),
        (_req(top_p=1.5), "top_p must be between 0 and 1, got 1.5"),
        (_req(top_k=-1), "top_k must be between 0 and 1000"),
        (_req(max_new_tokens=0), "max_new_tokens must be at least 1"),
        (_req(max_new_tokens=9000), "above this model's limit of 8192"),
        (_req(repetition_penalty=5.0), "repetition_penalty must be between 0.5 and 2"),
        (_req(seed=-1), "seed must be between 0 and 4294967295"),
    ],
)
def test_bad_requests_get_clear_messages(req: CompareRequest, message: str) -> None:
    with pytest.raises(RequestError, match=message.replace("(", r"\(").replace("'", ".")):
        validate_request(req, SPECS)


def test_thinking_on_a_model_that_cannot_think() -> None:
    req = CompareRequest.from_prompt("Hi", {Q25: Settings(thinking=True)})
    with pytest.raises(RequestError, match=r"Qwen2\.5-0\.5B-Instruct cannot think"):
        validate_request(req, SPECS)


def test_unknown_model_and_mode() -> None:
    with pytest.raises(RequestError, match="Unknown model 'gpt'"):
        validate_request(CompareRequest.from_prompt("Hi", {"gpt": Settings()}), SPECS)
    req = _req()
    req.mode = "parallel"
    with pytest.raises(RequestError, match="Mode must be one of concurrent, isolated"):
        validate_request(req, SPECS)


def test_good_request_passes_and_keeps_history() -> None:
    history = [Message("user", "Hi"), Message("assistant", "Hello")]
    req = CompareRequest.from_prompt(
        "More", {Q3: Settings()}, system_prompt="Be brief.", history=history
    )
    validate_request(req, SPECS)
    assert [m["role"] for m in req.chat()] == ["system", "user", "assistant", "user"]
    assert req.prompt == "More"


def test_each_models_own_history_counts_towards_the_size_limit() -> None:
    req = CompareRequest.from_prompt("More", {Q25: Settings(), Q3: Settings()})
    long_answer = "y" * MAX_PROMPT_CHARS
    req.meta["histories"] = {
        Q25: [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        Q3: [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": long_answer}],
    }
    assert req.chat_for(Q25)[-1] == {"role": "user", "content": "More"}
    with pytest.raises(RequestError, match="start a new conversation"):
        validate_request(req, SPECS)
    with pytest.raises(RequestError, match="No model chosen"):
        validate_request(CompareRequest.from_prompt("Hi", {}), SPECS)
