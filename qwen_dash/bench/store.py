"""``python -m qwen_dash bench store``: how fast the store is on a busy team's history.

Fills a fresh database with N synthetic runs (bulk inserts, not one ORM save per run), then times
what the app does: save one run the way the app saves it, the first history page (50 rows, newest
first, one filter), a text search, a trend aggregate over all rows. Prints medians; targets are
save <= 5 ms, history page <= 50 ms, search <= 300 ms, trend <= 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import CompareRequest, Settings
from qwen_dash.store import RunFilters, Store, open_store
from qwen_dash.store.database import ENV_SQLITE_SYNC
from qwen_dash.store.schema import SEARCH_FIELD_SEPARATOR, fold

TARGETS_MS = {"save_ms": 5.0, "history_page_ms": 50.0, "search_ms": 300.0, "trend_ms": 300.0}
MODELS = (
    ("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
    ("qwen3-0.6b", "Qwen/Qwen3-0.6B"),
)
WORDS = str.split(
    "the model answer token latency prompt memory speed river mountain python code function "
    "list sort data table chart user question explain write story poem summary translate french "
    "german number math proof reason think step first second then because however result value "
    "error cache layer head attention weight matrix vector sequence context window batch decode "
    "prefill sample greedy temperature top nucleus beam length stop end start begin time day week "
    "light dark blue green red cat dog house tree ocean planet star galaxy energy force mass"
)
RARE_PHRASE = "zebra crossing"  # planted in 1 run in 1,000
CHUNK = 5_000
SAVES_BETWEEN_TRENDS = 3


def _sentence_pool(rng: random.Random, size: int, low: int, high: int) -> list[str]:
    return [
        " ".join(rng.choices(WORDS, k=rng.randint(low, high))).capitalize() + "."
        for _ in range(size)
    ]


def _synthetic_rows(
    n_runs: int, rng: random.Random, end: datetime
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]]:
    """Chunks of (runs, generations, tags) rows for Core bulk inserts, ids 1..n_runs."""
    span = timedelta(days=90).total_seconds()
    prompts = _sentence_pool(rng, 5_000, 5, 25)
    outputs = _sentence_pool(rng, 20_000, 20, 80)
    for start in range(1, n_runs + 1, CHUNK):
        runs, gens, tags = [], [], []
        for run_id in range(start, min(start + CHUNK, n_runs + 1)):
            created = end - timedelta(seconds=span * (n_runs - run_id) / n_runs)
            prompt = rng.choice(prompts)
            if run_id % 1000 == 0:
                prompt += f" What about a {RARE_PHRASE}?"
            thinking = rng.random() < 0.3
            mode = "concurrent" if rng.random() < 0.8 else "isolated"
            source = "hub" if rng.random() < 0.7 else "twin"
            texts = []
            for pos, (key, hf_id) in enumerate(MODELS):
                out_text = rng.choice(outputs)
                texts.append(out_text)
                n_out = rng.randint(20, 256)
                ttft = rng.lognormvariate(3.5, 0.4) * (1.3 if pos else 1.0)
                tps = rng.gauss(40 if pos else 50, 5)
                gens.append(
                    {
                        "run_id": run_id,
                        "position": pos,
                        "created_at": created,
                        "model_key": key,
                        "hf_id": hf_id,
                        "revision": "main",
                        "source": source,
                        "device": "cpu",
                        "dtype": "float32",
                        "status": "ok" if rng.random() < 0.98 else "error",
                        "mode": mode,
                        "overlapped": mode == "concurrent",
                        "text": out_text,
                        "ttft_ms": ttft,
                        "e2e_ms": ttft + n_out / tps * 1000,
                        "decode_tps": tps,
                        "n_in": rng.randint(10, 60),
                        "n_out": n_out,
                        "rss_peak_bytes": rng.randint(1_500_000_000, 3_000_000_000),
                        "peak_memory_bytes": rng.randint(1_500_000_000, 3_000_000_000),
                        "settings": {"temperature": 0.7, "max_new_tokens": 256},
                        "environment": {},
                    }
                )
            runs.append(
                {
                    "id": run_id,
                    "created_at": created,
                    "kind": "ui",
                    "mode": mode,
                    "thinking": thinking,
                    "prompt": prompt,
                    "messages": [{"role": "user", "content": prompt}],
                    "settings": {},
                    "meta": {},
                    "turn": 0,
                    "search_text": SEARCH_FIELD_SEPARATOR.join(fold(t) for t in (prompt, *texts)),
                }
            )
            if run_id % 10 == 0:
                tags.append({"run_id": run_id, "tag": rng.choice(("regression", "demo", "eval"))})
        yield runs, gens, tags


def fill(store: Store, n_runs: int, seed: int = 0) -> None:
    """Bulk-load ``n_runs`` synthetic runs (2 generations each) into an empty store
    (``Store.bulk_load``: the search index rebuilt once, every trend rollup marked dirty, as
    migration 0003 does for an existing database)."""
    rng = random.Random(seed)
    end = datetime.now(UTC) - timedelta(minutes=1)
    store.bulk_load(_synthetic_rows(n_runs, rng, end))


def _sample_comparison(i: int) -> tuple[CompareRequest, dict[str, GenerationResult]]:
    settings = {key: Settings() for key, _ in MODELS}
    request = CompareRequest.from_prompt(f"Benchmark prompt number {i}: explain caches.", settings)
    results = {
        key: GenerationResult(
            model_key=key,
            hf_id=hf_id,
            source="twin",
            text="A cache keeps recent data close. " * 20,
            ttft_ms=30.0,
            e2e_ms=2000.0,
            decode_tps=50.0,
            n_in=20,
            n_out=100,
            rss_peak_bytes=2_000_000_000,
            token_times_ms=[30.0 + 20 * t for t in range(100)],
            settings=settings[key].to_dict(),
            environment={"torch": "2.13.0", "device_name": "cpu"},
        )
        for key, hf_id in MODELS
    }
    return request, results


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches once, as a long-running app has them
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _with_sync_full(store: Store, fn: Callable[[], float]) -> float | None:
    """``fn`` run with SQLite's synchronous=FULL (QWEN_DASH_SQLITE_SYNCHRONOUS), else None."""
    if store.dialect != "sqlite":
        return None
    old = os.environ.get(ENV_SQLITE_SYNC)
    os.environ[ENV_SQLITE_SYNC] = "FULL"
    store.engine.dispose()  # new connections take the setting
    try:
        return fn()
    finally:
        if old is None:
            os.environ.pop(ENV_SQLITE_SYNC)
        else:
            os.environ[ENV_SQLITE_SYNC] = old
        store.engine.dispose()


def _once_ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def _trend_steady_ms(store: Store, save: Callable[[], None], repeat: int) -> float:
    """Median trend query time, with ``SAVES_BETWEEN_TRENDS`` runs saved before each."""
    times = []
    for _ in range(repeat):
        for _ in range(SAVES_BETWEEN_TRENDS):
            save()
        times.append(_once_ms(lambda: store.trends(bucket="day")))
    return statistics.median(times)


def measure(store: Store, repeat: int = 9) -> dict[str, float | None]:
    counter = iter(range(10**9))

    def save() -> None:
        request, results = _sample_comparison(next(counter))
        store.save_comparison(request, results, kind="benchmark", tags=["bench"])

    model = MODELS[1][0]
    trend_first_ms = _once_ms(lambda: store.trends(bucket="day"))  # builds the rollups
    return {
        "save_ms": _median_ms(save, repeat * 3),
        "save_sync_full_ms": _with_sync_full(store, lambda: _median_ms(save, repeat * 3)),
        "history_page_ms": _median_ms(lambda: store.list_runs(RunFilters(models=(model,))), repeat),
        "search_ms": _median_ms(lambda: store.list_runs(RunFilters(text=RARE_PHRASE)), repeat),
        "search_common_ms": _median_ms(lambda: store.list_runs(RunFilters(text="cache")), repeat),
        "trend_first_ms": trend_first_ms,
        "trend_ms": _trend_steady_ms(store, save, repeat),
    }


def run_store_bench(runs: int = 200_000, as_json: bool = False, url: str | None = None) -> dict:
    """Fill a fresh database (a temporary SQLite file unless ``url``), time, print, return."""
    with tempfile.TemporaryDirectory(prefix="qwen-dash-bench-") as tmp:
        db_url = url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        store = open_store(db_url)
        try:
            t0 = time.perf_counter()
            fill(store, runs)
            fill_s = time.perf_counter() - t0
            figures: dict[str, Any] = dict(measure(store))
        finally:
            store.close()
    figures |= {"runs": runs, "fill_s": round(fill_s, 1), "database": store.dialect}
    _report(figures, as_json)
    return figures


def _report(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
        print(json.dumps(rounded))
        return
    print(
        f"{figures['runs']:,} synthetic runs on {figures['database']}, "
        f"filled in {figures['fill_s']} s"
    )
    for name, value in figures.items():
        if name.endswith("_ms") and value is not None:
            target = TARGETS_MS.get(name)
            verdict = "" if target is None else ("  ok" if value <= target else "  OVER TARGET")
            limit = f"(target <= {target:g} ms)" if target else "(no target)"
            print(f"  {name:<18} {value:8.2f} ms median {limit}{verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwen_dash bench store", description=__doc__)
    parser.add_argument("--runs", type=int, default=200_000, help="synthetic runs (200000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--url", default=None, help="database URL (default: a temporary SQLite)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    run_store_bench(args.runs, args.json, args.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
