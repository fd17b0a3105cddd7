"""``python -m qwen_dash bench overhead|startup``: the engine against bare ``generate``, and
what a worker costs to start and to keep.

Overhead: the engine's decode speed against bare ``generate``.

For each model, the same weights, prompt and token count go through the engine (worker process,
streaming, per-token clock, memory sampling) and through a plain ``model.generate`` in this
process, interleaved over several rounds so that machine noise hits both alike. Bare decode tok/s
is (N - 1) / (T(N tokens) - T(1 token)), from two plain calls with no streamer at all; the engine's
is its own ``decode_tps``. The figure to read is the median of the per-round ratios.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from qwen_dash.core.request import CompareRequest, Settings
from qwen_dash.engine import ModelPool

BENCH_PROMPT = "Explain in a few sentences why the sky is blue."


@dataclass
class OverheadResult:
    model_key: str
    source: str
    tokens: int
    engine_tps: list[float] = field(default_factory=list)
    bare_tps: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [e / b for e, b in zip(self.engine_tps, self.bare_tps, strict=True)]

    def summary(self) -> dict[str, Any]:
        return {
            "model_key": self.model_key,
            "source": self.source,
            "tokens": self.tokens,
            "rounds": len(self.ratios),
            "engine_tps": statistics.median(self.engine_tps),
            "bare_tps": statistics.median(self.bare_tps),
            "ratio": statistics.median(self.ratios),
            "engine_tps_all": [round(x, 3) for x in self.engine_tps],
            "bare_tps_all": [round(x, 3) for x in self.bare_tps],
        }


def _bare_generate_s(model: Any, input_ids: Any, tokens: int, pad_id: int) -> float:
    import torch

    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            pad_token_id=pad_id,
        )
    elapsed = time.perf_counter() - start
    assert out.shape[1] - input_ids.shape[1] == tokens
    return elapsed


def measure_overhead(key: str, source: str, tokens: int, rounds: int) -> OverheadResult:
    import torch

    from qwen_dash.worker.sources import load_model
    from qwen_dash.worker.tokenizer import encode_chat

    pool = ModelPool([key], source=source)
    try:
        status = pool.wait_ready()[key]
        if status.state != "ready":
            raise RuntimeError(status.error or status.message)
        spec = pool.specs[key]
        loaded = load_model(spec, status.source or source)
        prompt = [{"role": "user", "content": BENCH_PROMPT}]
        input_ids = torch.tensor(
            [encode_chat(loaded.tokenizer, prompt, False if spec.can_think else None)]
        )
        threads = pool.threads_for("isolated", 1)
        torch.set_num_threads(threads)
        pad_id = loaded.tokenizer.pad_token_id
        _bare_generate_s(loaded.model, input_ids, 2, pad_id)  # warm-up, as the worker does
        settings = Settings(greedy=True, max_new_tokens=tokens, seed=0)
        request = CompareRequest.from_prompt(BENCH_PROMPT, {key: settings}, mode="isolated")
        result = OverheadResult(key, status.source or source, tokens)
        for _ in range(rounds):
            gen = pool.compare(request).wait()[key]
            if gen.status != "ok" or gen.n_out != tokens or gen.decode_tps is None:
                raise RuntimeError(f"engine run failed: {gen.error or gen.finish_reason}")
            result.engine_tps.append(gen.decode_tps)
            t_n = _bare_generate_s(loaded.model, input_ids, tokens, pad_id)
            t_1 = _bare_generate_s(loaded.model, input_ids, 1, pad_id)
            result.bare_tps.append((tokens - 1) / (t_n - t_1))
        return result
    finally:
        pool.shutdown()


def run_overhead(keys: list[str], source: str, tokens: int, rounds: int, as_json: bool) -> int:
    summaries = []
    for key in keys:
        res = measure_overhead(key, source, tokens, rounds).summary()
        summaries.append(res)
        if not as_json:
            print(
                f"{key:24} source={res['source']:5} tokens={tokens} rounds={rounds}  "
                f"engine {res['engine_tps']:.2f} tok/s  bare {res['bare_tps']:.2f} tok/s",
                flush=True,
            )
            print(f"  per round engine: {res['engine_tps_all']}  bare: {res['bare_tps_all']}")
    if as_json:
        print(json.dumps({s["model_key"]: s for s in summaries}, indent=2))
    else:
        for s in summaries:
            print(f"median ratio engine/bare {s['model_key']}: {s['ratio']:.3f}")
    return 0


def _pss(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_full_info().pss


def measure_startup(keys: list[str], source: str) -> dict[str, Any]:
    """Worker start (process up, weights loaded, before warm-up) and the memory both workers hold
    beyond their weights, after one short generation has touched every weight page."""
    pool = ModelPool(keys, source=source, warmup=False)
    try:
        starts: dict[str, float] = {}
        for key, handle in pool.workers.items():  # one at a time: a start is not a race
            t0 = time.perf_counter()
            status = handle.wait_ready()
            if status.state != "ready":
                raise RuntimeError(status.error or status.message)
            starts[key] = (time.perf_counter() - t0) * 1000
        settings = {k: Settings(greedy=True, max_new_tokens=4) for k in keys}
        pool.compare(CompareRequest.from_prompt(BENCH_PROMPT, settings)).wait()
        out: dict[str, Any] = {"models": {}}
        for key, handle in pool.workers.items():
            assert handle.proc is not None
            pid = handle.proc.pid
            weights = handle.status.info["weights_bytes"]
            pss = _pss(pid)
            out["models"][key] = {
                "source": handle.status.source,
                "start_ms": round(starts[key], 1),
                "load_ms": handle.status.info["load_ms"],
                "weights_bytes": weights,
                "pss_bytes": pss,
                "overhead_bytes": pss - weights,
            }
        out["overhead_total_bytes"] = sum(m["overhead_bytes"] for m in out["models"].values())
        return out
    finally:
        pool.shutdown()


def run_startup(keys: list[str], source: str, as_json: bool) -> int:
    res = measure_startup(keys, source)
    if as_json:
        print(json.dumps(res, indent=2))
        return 0
    for key, m in res["models"].items():
        print(
            f"{key:24} source={m['source']:5} start {m['start_ms'] / 1000:.2f} s "
            f"(load {m['load_ms'] / 1000:.2f} s)  PSS {m['pss_bytes'] / 2**20:.0f} MiB  "
            f"weights {m['weights_bytes'] / 2**20:.0f} MiB  beyond weights "
            f"{m['overhead_bytes'] / 2**20:.0f} MiB"
        )
    print(f"both workers beyond their weights: {res['overhead_total_bytes'] / 2**20:.0f} MiB")
    return 0
