"""Remote models through a real OpenAI-compatible server (``transformers serve`` on loopback,
``tests/remote_fixtures.py``): streaming, usage, thinking, side by side with a local worker,
cancel, a server that dies, wrong URL and model, concurrent comparisons. No mocks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwen_dash.core.request import CompareRequest, Settings
from qwen_dash.core.specs import load_specs
from qwen_dash.engine import Comparison, Event, ModelPool
from qwen_dash.engine.token_count import count_tokens
from qwen_dash.store import open_store
from tests.engine_fixtures import greedy
from tests.remote_fixtures import LOCAL25, REMOTE3, REMOTE25, Server, free_port, write_spec_file

SECRET = "sk-test-never-logged-7f3a"


@pytest.fixture(scope="module")
def remote_pool(openai_server: Server) -> Iterator[ModelPool]:
    """Both remote models and one local tiny worker, from the fixture's spec file."""
    mp = pytest.MonkeyPatch()
    mp.setenv("QWEN_DASH_TEST_KEY", SECRET)
    pool = ModelPool(
        [REMOTE25, REMOTE3, LOCAL25], source="tiny", models_file=openai_server.spec_file
    )
    pool.start()
    status = pool.wait_ready(timeout=300)
    assert all(s.state == "ready" for s in status.values()), status
    yield pool
    pool.shutdown()
    mp.undo()


def _events(comparison: Comparison, timeout: float = 120) -> list[Event]:
    out: list[Event] = []
    deadline = time.monotonic() + timeout
    while not comparison.done:
        assert time.monotonic() < deadline, "comparison did not finish"
        out += comparison.poll(0.1)
    return out


def _until_text(comparison: Comparison, key: str, timeout: float = 60) -> list[Event]:
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    while not "".join(e.text for e in seen if e.model_key == key and e.kind == "delta").strip():
        assert time.monotonic() < deadline, f"no text from {key}"
        seen += comparison.poll(0.1)
    return seen


def test_streamed_answer_with_usage_counts(remote_pool: ModelPool, openai_server: Server) -> None:
    status = remote_pool.status()[REMOTE25]
    assert status.source == "remote" and status.info["base_url"] == openai_server.base_url
    comparison = remote_pool.compare(CompareRequest.from_prompt("Count.", {REMOTE25: greedy(12)}))
    events = _events(comparison)
    result = comparison.results[REMOTE25]
    assert result.status == "ok", result.error
    assert result.source == "remote" and result.finish_reason == "length"
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["queued", "started"] and kinds[-1] == "result"
    deltas = [e for e in events if e.kind == "delta"]
    assert "".join(d.text for d in deltas).strip("\n") == result.text
    # Counts from the server's usage; one stamp per chunk, a chunk may hold several tokens.
    assert result.n_out == 12 and result.n_in > 0
    assert result.environment["token_counts"] == "server usage"
    chunks = result.environment["chunks"]
    assert 1 <= chunks == len(result.token_times_ms) <= 12
    assert 0 < result.ttft_ms <= result.e2e_ms
    assert result.ttft_ms == pytest.approx(result.token_times_ms[0], abs=0.01)
    if chunks > 1:
        span_s = (result.token_times_ms[-1] - result.token_times_ms[0]) / 1000
        assert result.decode_tps == pytest.approx(11 / span_s, rel=1e-3)
        assert result.itl_p50_ms <= result.itl_p95_ms
    assert result.gen_tps == pytest.approx(12 / (result.e2e_ms / 1000), rel=1e-6)
    # What a client cannot measure stays null.
    assert result.rss_peak_bytes is None and result.cuda_peak_alloc_bytes is None
    assert result.weights_bytes is None and result.peak_memory_bytes is None
    env = result.environment
    assert env["backend"] == "openai" and env["base_url"] == openai_server.base_url
    assert env["server_model"] == str(openai_server.folders["qwen2.5"])
    # transformers serve refuses vLLM's extra sampling fields: named, dropped, recorded.
    assert "repetition_penalty" in env["refused_by_server"]
    assert "repetition_penalty" not in env["sent"]


def test_a_refused_setting_is_named_and_the_key_never_logged(
    remote_pool: ModelPool, tmp_path: Path
) -> None:
    sampled = Settings(max_new_tokens=6, seed=3, top_k=20, min_p=0.05)
    request = CompareRequest.from_prompt("Hi", {REMOTE3: sampled})
    result = remote_pool.compare(request).wait(120)[REMOTE3]
    assert result.status == "ok", result.error
    assert {"top_k", "min_p"} <= set(result.environment["refused_by_server"])
    assert result.environment["sent"]["seed"] == 3
    store = open_store(f"sqlite:///{tmp_path / 'k.sqlite3'}")
    run = store.get_run(store.save_comparison(request, {REMOTE3: result}))
    assert run is not None
    assert SECRET not in json.dumps(result.to_dict()) and SECRET not in repr(run)
    store.close()


def test_thinking_on_and_off_on_the_tiny_qwen3(remote_pool: ModelPool) -> None:
    on = remote_pool.compare(
        CompareRequest.from_prompt("hi", {REMOTE3: greedy(20, thinking=True)})
    ).wait(120)[REMOTE3]
    assert on.status == "ok", on.error
    # The thinker's fixed chain: <think>hm</think>OK<|im_end|>, reasoning from the server's
    # reasoning_content deltas.
    assert on.reasoning == "hm" and on.text == "OK" and on.finish_reason == "stop"
    assert on.n_out == 7
    assert on.n_think == count_tokens("qwen3", "hm") + 2 and on.n_answer == 7 - on.n_think
    assert on.environment["token_counts"].startswith("server usage; reasoning/answer split")
    assert on.ttfa_ms is not None and on.ttft_ms < on.ttfa_ms <= on.e2e_ms
    assert on.environment["sent"]["chat_template_kwargs"] == {"enable_thinking": True}
    off = remote_pool.compare(
        CompareRequest.from_prompt("hi", {REMOTE3: greedy(20, thinking=False)})
    ).wait(120)[REMOTE3]
    assert off.status == "ok", off.error
    assert off.environment["sent"]["chat_template_kwargs"] == {"enable_thinking": False}
    # Thinking off puts the empty think block into the prompt: its tokens, by Qwen's tokenizer
    # (<think>, "\n\n", </think>, "\n\n": 4).
    block = count_tokens("qwen3", "<think>\n\n</think>\n\n")
    assert block == 4 and off.n_in == on.n_in + block


def test_local_and_remote_side_by_side_in_one_comparison(
    remote_pool: ModelPool, tmp_path: Path
) -> None:
    request = CompareRequest.from_prompt("Hello", {LOCAL25: greedy(8), REMOTE25: greedy(8)})
    results = remote_pool.compare(request).wait(180)
    local, remote = results[LOCAL25], results[REMOTE25]
    assert local.status == remote.status == "ok", (local.error, remote.error)
    assert local.source == "tiny" and remote.source == "remote"
    assert local.rss_peak_bytes and remote.rss_peak_bytes is None
    # The same tiny weights and greedy decoding on both sides: the same answer.
    assert local.text == remote.text and local.n_out == remote.n_out == 8
    # n_in is each side's own count: the server renders the chat template its own way.
    assert remote.n_in > 0
    store = open_store(f"sqlite:///{tmp_path / 'side.sqlite3'}")
    run = store.get_run(store.save_comparison(request, results))
    assert run is not None
    assert run.generation(REMOTE25).source == "remote"
    assert run.generation(REMOTE25).environment["backend"] == "openai"
    assert run.generation(LOCAL25).source == "tiny"
    store.close()


def test_cancel_mid_stream_closes_the_stream_and_keeps_the_partial_answer(
    remote_pool: ModelPool,
) -> None:
    sampled = Settings(max_new_tokens=4000, seed=1)
    comparison = remote_pool.compare(CompareRequest.from_prompt("Go on.", {REMOTE25: sampled}))
    seen = _until_text(comparison, REMOTE25)
    comparison.cancel()
    result = comparison.wait(30)[REMOTE25]
    seen += comparison.poll(0)
    assert result.status == "cancelled" and result.finish_reason == "cancelled"
    streamed = "".join(e.text for e in seen if e.kind == "delta").strip("\n")
    assert result.text.startswith(streamed[:10]) and result.text
    # No usage arrives for a closed stream: counted with Qwen's tokenizer, and said so.
    assert result.environment["token_counts"].startswith("counted")
    assert 0 < result.n_out < 4000 and result.n_in is None
    # The server stopped generating for the client that left: the next answer is not stuck
    # behind 4,000 tokens.
    start = time.monotonic()
    after = remote_pool.compare(CompareRequest.from_prompt("Hi", {REMOTE25: greedy(3)})).wait(60)
    assert after[REMOTE25].status == "ok" and time.monotonic() - start < 30


def test_timeout_fails_that_model_and_keeps_what_streamed(remote_pool: ModelPool) -> None:
    sampled = Settings(max_new_tokens=4000, seed=2)
    req = CompareRequest.from_prompt("Slow", {REMOTE25: sampled})
    result = remote_pool.compare(req, timeout_s=10).wait(60)[REMOTE25]
    assert result.status == "error" and "timed out after 10 s" in result.error
    assert "cut off" in result.error and result.text


def test_server_killed_mid_stream_fails_alone_and_the_local_answer_is_logged(
    doomed_server: Server, tmp_path: Path
) -> None:
    pool = ModelPool([LOCAL25, REMOTE25], source="tiny", models_file=doomed_server.spec_file)
    pool.start()
    try:
        assert all(s.state == "ready" for s in pool.wait_ready(300).values())
        sampled = Settings(max_new_tokens=300, seed=1)
        request = CompareRequest.from_prompt("A long poem.", {LOCAL25: sampled, REMOTE25: sampled})
        comparison = pool.compare(request)
        seen = _until_text(comparison, REMOTE25, timeout=120)
        doomed_server.kill()
        results = comparison.wait(120)
        seen += comparison.poll(0)
        dead, local = results[REMOTE25], results[LOCAL25]
        assert dead.status == "error" and "cut off" in dead.error, dead.error
        assert "mid-answer" in dead.error or "connection" in dead.error, dead.error
        streamed = "".join(e.text for e in seen if e.model_key == REMOTE25 and e.kind == "delta")
        assert dead.text == streamed.strip("\n") and dead.text
        assert local.status == "ok" and local.n_out == 300
        store = open_store(f"sqlite:///{tmp_path / 'dead.sqlite3'}")
        run = store.get_run(store.save_comparison(request, results))
        assert run is not None and run.generation(LOCAL25).n_out == 300
        assert run.generation(REMOTE25).text == dead.text
        store.close()
        # A down server is that model's error, with a message a person can act on.
        again = pool.compare(CompareRequest.from_prompt("Hi", {REMOTE25: greedy(3)})).wait(30)
        assert "cannot reach" in again[REMOTE25].error
    finally:
        pool.shutdown()


def test_wrong_url_and_wrong_model_name(
    openai_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    folders = {"qwen2.5": tmp_path / "no-such-model", "qwen3": openai_server.folders["qwen3"]}
    wrong_url = write_spec_file(tmp_path / "url.toml", nowhere, openai_server.folders)
    wrong_model = write_spec_file(tmp_path / "model.toml", openai_server.base_url, folders)
    for spec_file, expected in ((wrong_url, "cannot reach"), (wrong_model, "does not list")):
        pool = ModelPool([REMOTE25, LOCAL25], source="tiny", models_file=spec_file)
        try:
            req = CompareRequest.from_prompt("Hi", {REMOTE25: greedy(3), LOCAL25: greedy(3)})
            results = pool.compare(req).wait(180)
            assert results[REMOTE25].status == "error"
            assert expected in results[REMOTE25].error, results[REMOTE25].error
            assert results[LOCAL25].status == "ok"
        finally:
            pool.shutdown()
    assert "no-such-model" in results[REMOTE25].error


def test_three_concurrent_comparisons_all_complete_and_are_logged(
    remote_pool: ModelPool, tmp_path: Path
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'many.sqlite3'}")
    requests = [CompareRequest.from_prompt(f"Prompt {i}", {REMOTE25: greedy(24)}) for i in range(3)]
    comparisons = [remote_pool.compare(r) for r in requests]
    saved: list[int] = []
    lock = threading.Lock()
    for request, comparison in zip(requests, comparisons, strict=True):

        def log(c: Comparison, request: CompareRequest = request) -> None:
            with lock:
                saved.append(store.save_comparison(request, c.results))

        comparison.on_done(log)
    results = [c.wait(180)[REMOTE25] for c in comparisons]
    assert all(r.status == "ok" and r.n_out == 24 for r in results), [r.error for r in results]
    # Not queued behind each other in the dashboard: each was sent at once.
    assert all(r.queue_ms < 1000 for r in results)
    assert all(r.overlapped for r in results)
    deadline = time.monotonic() + 10
    while len(saved) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(set(saved)) == 3
    assert all(store.get_run(i) is not None for i in saved)
    store.close()


def test_remote_specs_parse_and_count_tokens_like_the_worker(tmp_path: Path) -> None:
    spec_file = write_spec_file(
        tmp_path / "m.toml",
        "http://gpu-box:8000/v1",
        {"qwen2.5": Path("Qwen/Qwen2.5-0.5B-Instruct"), "qwen3": Path("Qwen/Qwen3-0.6B")},
    )
    spec = load_specs(spec_file)[REMOTE3]
    assert spec.remote and spec.base_url == "http://gpu-box:8000/v1"
    assert spec.served_model == "Qwen/Qwen3-0.6B" and spec.think_tokens == ("<think>", "</think>")
    from qwen_dash.core.qwen_bpe import backend

    text = "Hello, world! <think>hm</think> 12345 ünïcödé"
    assert count_tokens("qwen3", text) == len(backend("qwen3").encode(text).ids)


def test_models_page_shows_what_is_known_of_a_remote_model(
    remote_pool: ModelPool, openai_server: Server
) -> None:
    from qwen_dash.views import charts
    from qwen_dash.views.display import source_label
    from qwen_dash.views.models import comparison_table

    specs = {k: remote_pool.specs[k] for k in (REMOTE25, LOCAL25)}
    infos = {k: s.info for k, s in remote_pool.status().items()}
    table = comparison_table(specs, infos, charts.generations_frame([], {}))
    server = table.xs("This server", level="section")
    remote = server[remote_pool.specs[REMOTE25].label]
    assert remote["Backend"] == f"OpenAI-compatible server at {openai_server.base_url}"
    assert remote["Served as"] == str(openai_server.folders["qwen2.5"])
    assert remote["Server version"] == "not reported by the server"  # transformers serve
    assert remote["Weights"] == source_label("remote") == "remote: OpenAI-compatible server"
    assert server[remote_pool.specs[LOCAL25].label]["Backend"] == "local worker process"
