"""``bench speed``: Qwen's speed protocol (raw prompts of exactly N tokens, exactly M new tokens,
both formulas, memory), on tiny models; and the request fields it rests on."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from qwen_dash.bench.speed import plan_for
from qwen_dash.core.request import (
    CompareRequest,
    Message,
    RequestError,
    Settings,
    validate_request,
)
from qwen_dash.core.specs import DEFAULT_MODELS, load_specs
from qwen_dash.core.speed import PROTOCOLS, REPEAT_UNIT, SPEED_TAG, convert_tps, speed_prompt
from qwen_dash.store import open_store
from qwen_dash.views.compare import request_from_run
from qwen_dash.worker.generation import Generator, Job
from qwen_dash.worker.sources import LoadedModel, build_random
from tests.test_cli import run_cli

QWEN25, QWEN3 = DEFAULT_MODELS
SPECS = load_specs()
EOS = 151645  # <|im_end|>


# ---- the protocol --------------------------------------------------------------------------------


def test_cpu_defaults_to_the_quick_protocol_and_says_why() -> None:
    cpu = plan_for("cpu", None, None, None)
    assert (cpu.protocol, cpu.inputs, cpu.output) == ("quick", (1, 512, 2048), 128)
    assert "would take hours on a CPU" in cpu.why
    gpu = plan_for("cuda", None, None, None)
    assert (gpu.protocol, gpu.inputs, gpu.output) == ("qwen", (1, 6144, 14336, 30720), 2048)
    custom = plan_for("cpu", "quick", [1, 16], 8)
    assert (custom.protocol, custom.inputs, custom.output) == ("custom", (1, 16), 8)


def test_qwens_prompt_is_one_token_per_character() -> None:
    _, tok = build_random(SPECS[QWEN3], tiny=True)
    assert tok.encode(REPEAT_UNIT) == [35946]
    for n in sorted({*PROTOCOLS["qwen"].inputs, *PROTOCOLS["quick"].inputs}):
        assert len(tok.encode(speed_prompt(n))) == n


def test_official_figures_convert_between_the_two_formulas() -> None:
    # The research note: Qwen3-0.6B's 175.93 (prompt + generated) tok/s at 30,720 input tokens
    # is about 11.0 generated tok/s.
    assert convert_tps(175.93, "total", "generated", 30720, 2048) == pytest.approx(10.995, abs=1e-3)
    assert convert_tps(47.16, "generated", "total", 1, 2048) == pytest.approx(47.183, abs=1e-3)
    assert convert_tps(47.16, "generated", "generated", 1, 2048) == 47.16


# ---- the request fields ----------------------------------------------------------------------


def test_a_raw_prompt_is_one_user_message_and_lengths_are_checked() -> None:
    specs = {QWEN25: SPECS[QWEN25]}
    ok = CompareRequest.raw("我我", {QWEN25: Settings(max_new_tokens=4, min_new_tokens=4)}, 2)
    validate_request(ok, specs)
    assert ok.prompt_format() == {"template": False, "prompt_tokens": 2}
    with_system = CompareRequest.raw("我", {QWEN25: Settings()})
    with_system.system_prompt = "Be brief."
    with pytest.raises(RequestError, match="no system prompt"):
        validate_request(with_system, specs)
    two = CompareRequest([Message("user", "a"), Message("user", "b")], {QWEN25: Settings()})
    two.template = False
    with pytest.raises(RequestError, match="one user message"):
        validate_request(two, specs)
    over = CompareRequest.raw("我", {QWEN25: Settings(max_new_tokens=4, min_new_tokens=5)})
    with pytest.raises(RequestError, match="min_new_tokens must be between 0 and max_new_tokens"):
        validate_request(over, specs)
    assert CompareRequest.from_prompt("hi", {QWEN25: Settings()}).prompt_format() == {}


@pytest.fixture(scope="module")
def eager_eos() -> Generator:
    """A tiny Qwen2.5 whose every greedy token is <|im_end|>: it stops at once unless forced."""
    spec = SPECS[QWEN25]
    model, tokenizer = build_random(spec, tiny=True)

    def favour_eos(_module: Any, _inputs: Any, logits: torch.Tensor) -> torch.Tensor:
        logits[..., EOS] += 1e4
        return logits

    model.lm_head.register_forward_hook(favour_eos)
    loaded = LoadedModel(model, tokenizer, "tiny", None, None, 0.0, None)
    return Generator(spec, loaded, "cpu")


def _run(generator: Generator, job: Job) -> Any:
    return generator.run(job, lambda event: None, threading.Event())


def test_the_forced_length_is_exact_where_the_model_would_stop(eager_eos: Generator) -> None:
    messages = [{"role": "user", "content": speed_prompt(5)}]
    free = Job("free", messages, Settings(greedy=True, max_new_tokens=8), template=False)
    stopped = _run(eager_eos, free)
    assert (stopped.n_out, stopped.finish_reason) == (1, "stop")
    forced = Settings(greedy=True, max_new_tokens=8, min_new_tokens=8)
    result = _run(eager_eos, Job("forced", messages, forced, template=False, prompt_tokens=5))
    assert result.status == "ok", result.error
    assert (result.n_in, result.n_out, result.finish_reason) == (5, 8, "length")
    assert EOS not in result.output_ids


def test_a_raw_prompt_of_the_wrong_length_is_refused(eager_eos: Generator) -> None:
    messages = [{"role": "user", "content": speed_prompt(5)}]
    settings = Settings(greedy=True, max_new_tokens=2)
    job = Job("j", messages, settings, template=False, prompt_tokens=4)
    result = _run(eager_eos, job)
    assert result.status == "error"
    assert "the prompt is 5 tokens by this model's tokenizer, but exactly 4" in result.error


# ---- the command -----------------------------------------------------------------------------


def test_bench_speed_quick_on_tiny_models(tmp_path: Path) -> None:
    db = tmp_path / "bench.sqlite3"
    env = {"QWEN_DASH_DB_URL": f"sqlite:///{db}", "HF_HUB_OFFLINE": "1"}
    args = ["bench", "speed", "--source", "tiny", "--protocol", "quick", "--json"]
    proc = run_cli(*args, "--inputs", "1,16", "--output", "8", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "protocol custom: inputs 1 / 16 tokens, 8 new tokens" in proc.stderr
    out = json.loads(proc.stdout)
    rows = out["rows"]
    assert [(r["model_key"], r["input_tokens"]) for r in rows] == [
        (QWEN25, 1), (QWEN25, 16), (QWEN3, 1), (QWEN3, 16),
    ]  # fmt: skip
    for row in rows:
        assert (row["n_in"], row["n_out"]) == (row["input_tokens"], 8)  # exact lengths
        for figure in ("e2e_ms", "ttft_ms", "gen_tps", "total_tps", "decode_tps"):
            assert row[figure] is not None and row[figure] > 0, figure
        assert row["rss_peak_bytes"] > 0  # CPU: the RSS peak
        assert row["cuda_peak_alloc_bytes"] is None and row["nvml_process_bytes"] is None
    assert set(out["environment"]) == {QWEN25, QWEN3}

    store = open_store(f"sqlite:///{db}")
    for row in rows:
        run = store.get_run(row["run_id"])
        assert run is not None and run.kind == "benchmark" and run.tags == [SPEED_TAG]
        assert run.mode == "isolated" and run.prompt == speed_prompt(row["input_tokens"])
        assert run.meta["template"] is False and run.meta["prompt_tokens"] == row["input_tokens"]
        assert run.meta["session"] == out["session"] and run.meta["output_tokens"] == 8
        (gen,) = run.generations
        assert gen.settings["min_new_tokens"] == gen.settings["max_new_tokens"] == 8
        assert gen.environment["device_name"] and gen.environment["torch"]
        e2e_s = gen.e2e_ms / 1000
        # Both formulas follow from the logged counts and times.
        assert gen.gen_tps == pytest.approx(gen.n_out / e2e_s, rel=1e-9)
        assert gen.total_tps == pytest.approx((gen.n_in + gen.n_out) / e2e_s, rel=1e-9)
        assert gen.gen_tps == pytest.approx(row["gen_tps"], rel=1e-9)
        again = request_from_run(run, [QWEN25, QWEN3])  # a rerun sends the same raw prompt
        assert (again.template, again.prompt_tokens) == (False, row["input_tokens"])


def test_bench_speed_fresh_starts_a_worker_per_case(tmp_path: Path) -> None:
    """--fresh: Qwen's script runs each case in a new process, with no warm-up."""
    env = {"HF_HUB_OFFLINE": "1", "QWEN_DASH_DB_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"}
    args = ["bench", "speed", "--source", "tiny", "--models", QWEN3, "--fresh", "--no-log"]
    proc = run_cli(*args, "--inputs", "1,4", "--output", "2", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert [(r["n_in"], r["n_out"], r["run_id"]) for r in rows] == [(1, 2, None), (4, 2, None)]
    assert not (tmp_path / "x.sqlite3").exists()  # --no-log: no database touched
