"""``python -m qwen_dash bench remote --base-url URL --model NAME``: a remote server seen through
qwen-dash against the bare ``openai`` client, and many comparisons at once.

1. Client overhead: the same prompt and seeded sampling, rounds interleaved (qwen-dash, bare
   client, order alternating); decode tok/s = (completion tokens - 1) / (last chunk - first
   chunk) on both sides; the figure is the median of the per-round ratios (target >= 0.97).
2. Concurrency: one comparison alone, then N at once; every run logged to a scratch SQLite
   store (none lost); aggregate tok/s = all completion tokens / wall time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from openai import OpenAI

from qwen_dash.core.request import CompareRequest, Settings
from qwen_dash.engine import Comparison, ModelPool
from qwen_dash.store import open_store

KEY = "bench-remote"
PROMPT = "Write a short story about a lighthouse keeper."


def _spec_file(folder: Path, base_url: str, model: str) -> Path:
    path = folder / "models.toml"
    path.write_text(
        f'[models."{KEY}"]\nlabel = "bench (remote)"\nhf_id = {json.dumps(model)}\n'
        f'backend = "openai"\nbase_url = {json.dumps(base_url)}\n'
        f"served_model = {json.dumps(model)}\ncontext_window = 32768\n"
    )
    return path


def _request(tokens: int, prompt: str = PROMPT) -> CompareRequest:
    settings = Settings(temperature=0.7, top_p=0.8, top_k=0, seed=0, max_new_tokens=tokens)
    return CompareRequest.from_prompt(prompt, {KEY: settings})


def dash_decode_tps(pool: ModelPool, tokens: int) -> float | None:
    return pool.compare(_request(tokens)).wait(600)[KEY].decode_tps


def bare_decode_tps(client: OpenAI, model: str, tokens: int) -> float | None:
    """The bare openai client, timed the same way: one stamp per chunk with text."""
    stamps: list[int] = []
    n_out: int | None = None
    stream: Any = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=tokens,
        temperature=0.7,
        top_p=0.8,
        seed=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        now = time.perf_counter_ns()
        if chunk.usage is not None:
            n_out = chunk.usage.completion_tokens
        for choice in chunk.choices:
            delta = choice.delta
            text = (delta.content or "") + (getattr(delta, "reasoning_content", None) or "")
            if text:
                stamps.append(now)
    if n_out is None or n_out < 2 or len(stamps) < 2 or stamps[-1] == stamps[0]:
        return None
    return (n_out - 1) / ((stamps[-1] - stamps[0]) / 1e9)


def overhead(pool: ModelPool, client: OpenAI, model: str, tokens: int, rounds: int) -> dict:
    ratios, dash, bare = [], [], []
    for i in range(rounds):
        pair: dict[str, float | None] = {}
        order = ("dash", "bare") if i % 2 == 0 else ("bare", "dash")
        for side in order:
            if side == "dash":
                pair[side] = dash_decode_tps(pool, tokens)
            else:
                pair[side] = bare_decode_tps(client, model, tokens)
        d, b = pair["dash"], pair["bare"]
        if d and b:
            dash.append(d)
            bare.append(b)
            ratios.append(d / b)
    return {
        "rounds": len(ratios),
        "dash_decode_tps_median": statistics.median(dash) if dash else None,
        "bare_decode_tps_median": statistics.median(bare) if bare else None,
        "ratio_median": statistics.median(ratios) if ratios else None,
        "ratios": [round(r, 4) for r in ratios],
    }


def concurrent(pool: ModelPool, tokens: int, n: int, db: Path) -> dict:
    store = open_store(f"sqlite:///{db}")
    saved: list[int] = []
    lock = threading.Lock()

    def batch(count: int) -> tuple[float, int, int]:
        start = time.perf_counter()
        comparisons: list[Comparison] = []
        for i in range(count):
            request = _request(tokens, f"{PROMPT} ({i})")
            comparison = pool.compare(request)

            def log(c: Comparison, request: CompareRequest = request) -> None:
                run_id = store.save_comparison(request, c.results)
                with lock:
                    saved.append(run_id)

            comparison.on_done(log)
            comparisons.append(comparison)
        results = [c.wait(900)[KEY] for c in comparisons]
        wall = time.perf_counter() - start
        ok = [r for r in results if r.status == "ok"]
        return wall, sum(r.n_out or 0 for r in ok), len(ok)

    def wait_saved(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(saved) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    wall1, tok1, _ = batch(1)
    wait_saved(1)
    wall_n, tok_n, ok_n = batch(n)
    wait_saved(1 + n)
    logged = sum(store.get_run(i) is not None for i in saved[1:])
    store.close()
    return {
        "one_alone_tps": tok1 / wall1,
        "concurrent": n,
        "concurrent_ok": ok_n,
        "concurrent_logged": logged,
        "aggregate_tps": tok_n / wall_n,
        "speedup": (tok_n / wall_n) / (tok1 / wall1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m qwen_dash bench remote")
    p.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="the name the server knows the model by")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrent", type=int, default=8)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qwen-dash-bench-") as tmp:
        folder = Path(tmp)
        pool = ModelPool([KEY], models_file=_spec_file(folder, args.base_url, args.model))
        client = OpenAI(base_url=args.base_url, api_key="unused", max_retries=0)
        try:
            pool.wait_ready(30)
            dash_decode_tps(pool, 4)  # warm-up: the server loads, refused fields are learnt
            out = {
                "overhead": overhead(pool, client, args.model, args.tokens, args.rounds),
                "concurrency": concurrent(pool, args.tokens, args.concurrent, folder / "b.db"),
            }
        finally:
            pool.shutdown()
            client.close()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        o, c = out["overhead"], out["concurrency"]
        print(
            f"decode tok/s, median of {o['rounds']} interleaved rounds: qwen-dash "
            f"{o['dash_decode_tps_median']:.1f}, bare openai client "
            f"{o['bare_decode_tps_median']:.1f}; median ratio {o['ratio_median']:.3f}"
        )
        print(
            f"{c['concurrent']} comparisons at once: {c['concurrent_ok']} ok, "
            f"{c['concurrent_logged']} logged; aggregate {c['aggregate_tps']:.1f} tok/s vs "
            f"{c['one_alone_tps']:.1f} alone ({c['speedup']:.2f}x)"
        )
    return 0
