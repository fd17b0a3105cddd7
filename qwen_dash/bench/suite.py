"""``python -m qwen_dash bench suite``: what the suite runner adds per case beyond generation,
and how long the Suites page's results take to build for a big suite.

Runner overhead: the same N cases go (1) bare through the pool (``compare().wait()``, nothing
else) and (2) through the :class:`SuiteRunner` (request building, assertions, one store
transaction per case with its run and verdicts, progress). The per-case difference of the two
totals is the overhead; the passes alternate in blocks, so that a machine that speeds up or
slows down (other work on shared cores) hits both alike. The runner's own clock of its time
outside generation is printed beside it: it is the figure that machine noise moves least.
Tiny models and one new token keep generation short, so the overhead is not lost in it.

Results page: a suite run of M cases x 2 models is written to a temporary SQLite database and
the page's data built as the page builds it (read the verdicts, the summary, the filter counts,
the matrix for each filter). tests/test_pages_suites.py times the whole page in AppTest.
"""

from __future__ import annotations

import functools
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import CompareRequest, Settings
from qwen_dash.core.specs import default_model_keys
from qwen_dash.engine import ModelPool
from qwen_dash.quality.suites import load_suite
from qwen_dash.services.suite_runner import SuitePlan, SuiteRunner, case_request
from qwen_dash.store import Store, SuiteCaseRef, SuiteVerdict, open_store
from qwen_dash.views import suites as view

RUNNER_TARGET_MS = 50.0
PAGE_TARGET_S = 1.0


def bench_suite_text(cases: int) -> str:
    """A suite of ``cases`` questions, each judged by the kinds of checks suites use."""
    tests = "".join(
        f"  - description: question {i}\n    vars: {{q: 'What is {i} + {i}?', a: '{2 * i}'}}\n"
        for i in range(cases)
    )
    return (
        "description: runner overhead benchmark\n"
        "settings: {greedy: true, max_new_tokens: 1}\n"
        "prompts: ['{{q}} Answer with the number only.']\n"
        "defaultTest:\n  assert:\n"
        "    - {type: contains, value: '{{a}}', metric: correct}\n"
        "    - {type: regex, value: '\\d+', weight: 0}\n"
        "    - {type: max-tokens, value: 8}\n"
        "    - {type: latency, threshold: 60000}\n"
        f"tests:\n{tests}"
    )


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _bare(pool: ModelPool, requests: list[CompareRequest]) -> None:
    for request in requests:
        pool.compare(request).wait()


def measure_runner(source: str, cases: int, store: Store, block: int = 5) -> dict[str, Any]:
    """Bare and runner passes over the same cases, alternating every ``block`` cases; the
    overhead is the median over blocks of (runner - bare) per case, robust to a block that
    other work on the machine slowed down."""
    models = tuple(default_model_keys())
    text = bench_suite_text(cases)
    suite = load_suite(text, name="bench.yaml", allow_python=False, known_models=models)
    chunks = [suite.tests[i : i + block] for i in range(0, len(suite.tests), block)]
    bare_s = runner_s = 0.0
    per_block: list[float] = []
    clock: list[float] = []
    with ModelPool(list(models), source=source) as pool:
        pool.wait_ready()
        runner = SuiteRunner(pool, store)
        for k, tests in enumerate(chunks):
            part = replace(suite, tests=tests)
            requests = [case_request(part, c, models, pool.specs) for c in part.cases()]
            if k == 0:
                pool.compare(requests[0]).wait()  # warm both workers
            bare = _timed(functools.partial(_bare, pool, requests))
            live = runner.prepare(SuitePlan(part, text, models))
            with_runner = _timed(live.run)
            bare_s, runner_s = bare_s + bare, runner_s + with_runner
            per_block.append((with_runner - bare) / len(requests) * 1000)
            clock += live.overhead_ms
    clock.sort()
    return {
        "models": list(models),
        "source": source,
        "cases": cases,
        "blocks": len(chunks),
        "bare_s": round(bare_s, 3),
        "runner_s": round(runner_s, 3),
        "overhead_ms_per_case": round(statistics.median(per_block), 2),
        "overhead_ms_per_case_mean": round((runner_s - bare_s) / cases * 1000, 2),
        "runner_clock_ms_median": round(statistics.median(clock), 2),
        "runner_clock_ms_p95": round(clock[int(0.95 * (len(clock) - 1))], 2),
    }


def _result(model: str, i: int) -> GenerationResult:
    return GenerationResult(
        model_key=model, hf_id=f"Qwen/{model}", source="tiny", text=f"answer {i}",
        mode="isolated", e2e_ms=100.0 + i % 17, ttft_ms=10.0, n_in=12, n_out=8,
    )  # fmt: skip


def seed_big_suite_run(store: Store, cases: int) -> tuple[int, list[str]]:
    """A finished suite run of ``cases`` cases on both models, with varied verdicts."""
    models = default_model_keys()
    suite_run_id = store.start_suite_run(
        suite="big.yaml", suite_text="# synthetic", models=models, source="tiny",
        mode="isolated", repeat=1, total_cases=cases,
    )  # fmt: skip
    for i in range(cases):
        statuses = ["pass" if (i + k) % 3 else "fail" for k in range(len(models))]
        verdicts = [
            SuiteVerdict(m, s, s == "pass", float(s == "pass"),
                         [{"type": "contains", "passed": s == "pass", "score": float(s == "pass"),
                           "reason": "found" if s == "pass" else "not found", "metric": "correct",
                           "weight": 1.0}],
                         None, 100.0 + i % 17)
            for m, s in zip(models, statuses, strict=True)
        ]  # fmt: skip
        request = CompareRequest.from_prompt(
            f"question {i}", {m: Settings() for m in models}, mode="isolated"
        )
        results = {m: _result(m, i) for m in models}
        ref = SuiteCaseRef(i, f"t{i}", f"question {i}")
        store.save_suite_case(suite_run_id, ref, verdicts, request, results)
    store.finish_suite_run(suite_run_id, "done")
    return suite_run_id, models


def build_results_page(store: Store, suite_run_id: int, models: list[str]) -> None:
    """What the Suites page computes for one suite run."""
    labels = {m: m for m in models}
    rows = store.suite_results(suite_run_id)
    view.summary(rows, models, labels)
    view.filter_counts(rows, models)
    for which in view.FILTERS:
        view.matrix(rows, models, labels, which)
    store.suite_pass_history("big.yaml")


def measure_page(store: Store, cases: int, rounds: int = 5) -> dict[str, Any]:
    suite_run_id, models = seed_big_suite_run(store, cases)
    build_results_page(store, suite_run_id, models)  # warm
    times = [_timed(lambda: build_results_page(store, suite_run_id, models)) for _ in range(rounds)]
    median = round(statistics.median(times), 4)
    return {"cases": cases, "models": len(models), "build_s_median": median}


def run_suite_bench(source: str, cases: int, page_cases: int, as_json: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="qwen-dash-bench-suite-") as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        try:
            page = measure_page(store, page_cases)
            runner = measure_runner(source, cases, store)
        finally:
            store.close()
    if as_json:
        print(json.dumps({"runner": runner, "page": page}, indent=2))
        return 0
    print(
        f"runner: {cases} cases x {len(runner['models'])} models (source {source}, 1 new token)\n"
        f"  bare pool {runner['bare_s']:.2f} s, with the runner {runner['runner_s']:.2f} s "
        f"({runner['blocks']} alternating blocks)\n"
        f"  overhead per case: {runner['overhead_ms_per_case']:.1f} ms median over blocks, "
        f"{runner['overhead_ms_per_case_mean']:.1f} ms from the totals "
        f"(target <= {RUNNER_TARGET_MS:.0f} ms); runner's own clock: median "
        f"{runner['runner_clock_ms_median']:.1f} ms, p95 {runner['runner_clock_ms_p95']:.1f} ms"
    )
    print(
        f"results page data: {page['cases']} cases x {page['models']} models built in "
        f"{page['build_s_median'] * 1000:.0f} ms (median of 5; target <= {PAGE_TARGET_S:.0f} s)"
    )
    return 0
