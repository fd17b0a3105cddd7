"""Qwen3 thinking: the split of reasoning from answer, on crafted ids and on ids that a real
``generate`` produced (a tiny Qwen3 steered through a script by a logits processor)."""

from __future__ import annotations

import threading

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from qwen_dash.core.metrics import split_thinking, timing_metrics
from qwen_dash.core.request import Settings
from qwen_dash.core.specs import load_specs
from qwen_dash.worker.generation import Generator, Job
from qwen_dash.worker.sources import load_model

THINK_START_ID, THINK_END_ID = 151667, 151668  # crafted ids; the generator reads its tokenizer's


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([], None),
        ([5, 6, 7], None),
        ([THINK_START_ID, 5, THINK_END_ID, 8, 9], 3),
        ([THINK_END_ID], 1),
        ([THINK_START_ID, 5, THINK_END_ID, 6, THINK_END_ID, 7], 5),  # the last one counts
        ([1, 2, 3, THINK_END_ID], 4),
    ],
)
def test_split_on_crafted_ids(ids: list[int], expected: int | None) -> None:
    assert split_thinking(ids, THINK_END_ID) == expected


def test_timing_with_thinking_counts_answer_from_after_think_end() -> None:
    ms = 1_000_000
    stamps = [10 * ms, 20 * ms, 30 * ms, 45 * ms, 60 * ms]
    m = timing_metrics(0, stamps, n_in=7, n_think=3)
    assert m["n_think"] == 3 and m["n_answer"] == 2
    assert m["ttfa_ms"] == 45.0 and m["ttft_ms"] == 10.0 and m["e2e_ms"] == 60.0
    assert m["decode_tps"] == pytest.approx(4 / 0.05)
    only_thinking = timing_metrics(0, stamps, n_in=7, n_think=5)
    assert only_thinking["n_answer"] == 0 and only_thinking["ttfa_ms"] is None
    no_output = timing_metrics(0, [], n_in=7)
    assert no_output["ttft_ms"] is None and no_output["decode_tps"] is None
    assert no_output["n_out"] == 0


class Script(LogitsProcessor):
    """Forces the next token to follow a script: the ids still come out of ``generate``."""

    def __init__(self, script: list[int]) -> None:
        self.script = script
        self.prompt_len: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        if self.prompt_len is None:  # the first call sees the prompt alone
            self.prompt_len = input_ids.shape[1]
        step = input_ids.shape[1] - self.prompt_len
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.script[step]] = 0.0
        return forced


@pytest.fixture(scope="module")
def qwen3_generator() -> Generator:
    spec = load_specs()["qwen3-0.6b"]
    return Generator(spec, load_model(spec, "tiny"), "cpu")


def _run_script(generator: Generator, script: list[int], thinking: bool) -> tuple:
    original = generator.generation_kwargs
    events: list[dict] = []

    def steered(settings: Settings) -> dict:
        return {**original(settings), "logits_processor": LogitsProcessorList([Script(script)])}

    generator.generation_kwargs = steered  # type: ignore[method-assign]
    try:
        job = Job(
            id="t",
            messages=[{"role": "user", "content": "Think first."}],
            settings=Settings(greedy=True, max_new_tokens=len(script), thinking=thinking),
        )
        result = generator.run(job, events.append, threading.Event())
    finally:
        generator.generation_kwargs = original  # type: ignore[method-assign]
    return result, events


def test_token_ids_come_from_the_tokenizer(qwen3_generator: Generator) -> None:
    tok, ids = qwen3_generator.tokenizer, qwen3_generator.token_ids
    assert ids.think_start == tok.convert_tokens_to_ids("<think>") == THINK_START_ID
    assert ids.think_end == tok.convert_tokens_to_ids("</think>") == THINK_END_ID
    im_end, endoftext = (tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>"))
    assert ids.stop == (im_end, endoftext) and ids.pad == endoftext


def test_split_on_really_generated_ids(qwen3_generator: Generator) -> None:
    tok = qwen3_generator.tokenizer
    ids = qwen3_generator.token_ids
    assert ids.think_start is not None and ids.think_end is not None
    THINK_START_ID, THINK_END_ID, EOS = ids.think_start, ids.think_end, ids.stop[0]
    thought = tok.encode("\nLet me see.\n", add_special_tokens=False)
    answer = tok.encode("\n\nIt is 4.", add_special_tokens=False)
    script = [THINK_START_ID, *thought, THINK_END_ID, *answer, EOS]
    result, events = _run_script(qwen3_generator, script, thinking=True)

    assert result.status == "ok", result.error
    assert result.output_ids == script  # generate really produced these ids
    assert result.n_think == len(thought) + 2
    assert result.n_answer == len(answer) + 1
    assert result.reasoning == "Let me see."
    assert result.text == "It is 4."
    assert result.ttfa_ms == pytest.approx(result.token_times_ms[result.n_think], abs=0.001)
    assert result.finish_reason == "stop"
    parts = {"reasoning": "", "answer": ""}
    for e in events:
        parts[e["part"]] += e["text"]
    assert parts["reasoning"].strip("\n") == "Let me see."
    assert parts["answer"].strip("\n") == "It is 4."


def test_no_think_end_means_no_thinking_part(qwen3_generator: Generator) -> None:
    tok = qwen3_generator.tokenizer
    EOS = qwen3_generator.token_ids.stop[0]
    answer = tok.encode("Just the answer.", add_special_tokens=False)
    result, events = _run_script(qwen3_generator, [*answer, EOS], thinking=False)
    assert result.reasoning is None and result.n_think is None and result.n_answer is None
    assert result.text == "Just the answer."
    assert result.ttfa_ms == result.ttft_ms
    assert {e["part"] for e in events} == {"answer"}
