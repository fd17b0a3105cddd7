"""``python -m qwen_dash bench speed``: both models under the protocol of Qwen's speed pages.

Batch 1; for each input length N, a raw prompt of exactly N tokens (``'我' * N`` without the chat
template; the worker refuses it unless it tokenizes to N tokens, as Qwen's script asserts);
exactly M new tokens (``min_new_tokens = max_new_tokens``: the stop tokens are suppressed, no
early stop); greedy decoding. Isolated: one model at a time, in its own worker process, while no
other model's worker runs. Each case reports both formulas (generated / time and (prompt +
generated) / time), TTFT and memory: on CUDA the allocator's ``max_memory_allocated`` (GiB, as
Qwen's script) and NVML's per-process bytes (MiB, as nvidia-smi); on CPU the process's RSS peak.
Every case is logged as a run of kind ``benchmark``, tagged ``bench-speed``, with its environment.

Differences from Qwen's script, on purpose: one worker per model serves every input length, after
one short untimed warm-up (``--fresh`` starts a worker per case with no warm-up, as Qwen's script
does); greedy decoding instead of the model's sampling defaults (the length is forced either
way).
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import CompareRequest, Settings
from qwen_dash.core.speed import (
    CPU_DEFAULT_WHY,
    PROTOCOLS,
    SPEED_TAG,
    default_protocol,
    speed_prompt,
)
from qwen_dash.engine import ModelPool
from qwen_dash.store import Store, StoreError

CASE_TIMEOUT_S = 4 * 3600.0
Print = Callable[[str], None]


class SpeedError(RuntimeError):
    """A case failed or did not follow the protocol; the message says which and why."""


@dataclass(frozen=True)
class SpeedPlan:
    protocol: str  # qwen | quick | custom
    inputs: tuple[int, ...]
    output: int
    why: str  # why this protocol, for the output


@dataclass
class SpeedRow:
    """One case's figures, as printed and as ``--json`` writes them."""

    model_key: str
    source: str
    device: str | None
    dtype: str | None
    threads: int | None
    input_tokens: int
    output_tokens: int
    n_in: int | None
    n_out: int | None
    e2e_ms: float | None
    ttft_ms: float | None
    gen_tps: float | None
    total_tps: float | None
    decode_tps: float | None
    rss_peak_bytes: int | None
    cuda_peak_alloc_bytes: int | None
    nvml_process_bytes: int | None
    run_id: int | None

    @classmethod
    def of(cls, result: GenerationResult, n_in: int, n_out: int, run_id: int | None) -> SpeedRow:
        env = result.environment or {}
        return cls(
            model_key=result.model_key,
            source=result.source,
            device=result.device,
            dtype=result.dtype,
            threads=env.get("threads"),
            input_tokens=n_in,
            output_tokens=n_out,
            n_in=result.n_in,
            n_out=result.n_out,
            e2e_ms=result.e2e_ms,
            ttft_ms=result.ttft_ms,
            gen_tps=result.gen_tps,
            total_tps=result.total_tps,
            decode_tps=result.decode_tps,
            rss_peak_bytes=result.rss_peak_bytes,
            cuda_peak_alloc_bytes=result.cuda_peak_alloc_bytes,
            nvml_process_bytes=result.nvml_process_bytes,
            run_id=run_id,
        )

    def memory(self) -> str:
        """Memory as each page reports it, labelled; RSS on CPU."""
        parts = []
        if self.cuda_peak_alloc_bytes is not None:
            parts.append(f"alloc peak {self.cuda_peak_alloc_bytes / 2**30:.2f} GiB")
        if self.nvml_process_bytes is not None:
            parts.append(f"NVML {self.nvml_process_bytes / 2**20:,.0f} MiB")
        if not parts and self.rss_peak_bytes is not None:
            parts.append(f"RSS peak {self.rss_peak_bytes / 2**20:,.0f} MiB (CPU process)")
        return " · ".join(parts) or "n/a"


def plan_for(
    device: str, protocol: str | None, inputs: Sequence[int] | None, output: int | None
) -> SpeedPlan:
    """The cases to run: the named protocol (default: by device), with --inputs/--output over it."""
    name = protocol or default_protocol(device)
    base = PROTOCOLS[name]
    why = base.about
    if protocol is None:
        why += f" ({CPU_DEFAULT_WHY})" if name == "quick" else " (the default on a GPU)"
    chosen_inputs = tuple(inputs) if inputs else base.inputs
    chosen_output = output if output is not None else base.output
    if (chosen_inputs, chosen_output) != (base.inputs, base.output):
        name = "custom"
        why = f"inputs {' / '.join(f'{n:,}' for n in chosen_inputs)} tokens, "
        why += f"{chosen_output:,} new tokens (--inputs/--output over the {base.name} protocol)"
    if any(n < 1 for n in chosen_inputs) or chosen_output < 1:
        raise SpeedError("input and output lengths must be at least 1 token")
    return SpeedPlan(name, chosen_inputs, chosen_output, why)


def speed_request(key: str, plan: SpeedPlan, n_in: int, session: str) -> CompareRequest:
    """One case: Qwen's prompt of ``n_in`` tokens, exactly ``plan.output`` new tokens."""
    settings = Settings(
        greedy=True,
        max_new_tokens=plan.output,
        min_new_tokens=plan.output,
        repetition_penalty=1.0,
        seed=0,
    )
    request = CompareRequest.raw(speed_prompt(n_in), {key: settings}, prompt_tokens=n_in)
    request.meta.update(
        bench="speed",
        protocol=plan.protocol,
        input_tokens=n_in,
        output_tokens=plan.output,
        session=session,
    )
    return request


def check_case(result: GenerationResult, n_in: int, n_out: int) -> None:
    """The case ran, on exactly the tokens asked for."""
    if result.status != "ok":
        raise SpeedError(f"{result.model_key}, input {n_in:,}: {result.error or result.status}")
    if result.n_in != n_in or result.n_out != n_out:
        raise SpeedError(
            f"{result.model_key}: {result.n_in} prompt and {result.n_out} new tokens, "
            f"expected exactly {n_in} and {n_out}"
        )


@contextmanager
def ready_pool(key: str, source: str, warmup: bool = True) -> Iterator[ModelPool]:
    """A pool of this one model, its worker loaded (no other model's worker runs)."""
    pool = ModelPool([key], source=source, warmup=warmup)
    try:
        status = pool.wait_ready()[key]
        if status.state != "ready":
            raise SpeedError(status.error or status.message)
        yield pool
    finally:
        pool.shutdown()


class SpeedBench:
    """Runs the cases model by model, logs each, and reports the rows."""

    def __init__(
        self,
        source: str,
        protocol: str | None,
        inputs: Sequence[int] | None,
        output: int | None,
        store: Store | None,
        fresh: bool = False,
        say: Print = print,
    ) -> None:
        self.source = source
        self.protocol = protocol
        self.inputs = inputs
        self.output = output
        self.store = store
        self.fresh = fresh
        self.say = say
        self.session = uuid.uuid4().hex
        self.plan: SpeedPlan | None = None
        self.rows: list[SpeedRow] = []
        self.environments: dict[str, dict[str, Any]] = {}

    def run(self, keys: Sequence[str]) -> list[SpeedRow]:
        for key in keys:
            if self.fresh:
                self._run_fresh(key)
            else:
                with ready_pool(key, self.source) as pool:
                    for n_in in self._plan(pool, key).inputs:
                        self._case(pool, key, n_in)
        return self.rows

    def _run_fresh(self, key: str) -> None:
        with ready_pool(key, self.source, warmup=False) as pool:
            inputs = self._plan(pool, key).inputs
            self._case(pool, key, inputs[0])
        for n_in in inputs[1:]:
            with ready_pool(key, self.source, warmup=False) as pool:
                self._case(pool, key, n_in)

    def _plan(self, pool: ModelPool, key: str) -> SpeedPlan:
        """Decided once the first worker says which device it runs on."""
        info = pool.status()[key].info
        if self.plan is None:
            device = str(info.get("device", "cpu"))
            self.plan = plan_for(device, self.protocol, self.inputs, self.output)
            self.say(f"protocol {self.plan.protocol}: {self.plan.why}")
            self.say(HEADER)
        return self.plan

    def _case(self, pool: ModelPool, key: str, n_in: int) -> None:
        assert self.plan is not None
        request = speed_request(key, self.plan, n_in, self.session)
        result = pool.compare(request, timeout_s=CASE_TIMEOUT_S).wait()[key]
        check_case(result, n_in, self.plan.output)
        run_id = self._log(request, result)
        row = SpeedRow.of(result, n_in, self.plan.output, run_id)
        self.rows.append(row)
        self.environments.setdefault(key, dict(result.environment or {}))
        self.say(format_row(row))

    def _log(self, request: CompareRequest, result: GenerationResult) -> int | None:
        if self.store is None:
            return None
        try:
            return self.store.save_comparison(
                request, {result.model_key: result}, kind="benchmark", tags=[SPEED_TAG]
            )
        except (StoreError, SQLAlchemyError) as exc:
            print(f"warning: case not logged: {exc}", file=sys.stderr)
            return None


HEADER = (
    f"{'model':24} {'source':6} {'input':>6} {'new':>5} {'e2e s':>8} {'TTFT ms':>9} "
    f"{'gen tok/s':>10} {'total tok/s':>12}  memory"
)


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def format_row(row: SpeedRow) -> str:
    e2e_s = None if row.e2e_ms is None else row.e2e_ms / 1000
    return (
        f"{row.model_key:24} {row.source:6} {row.input_tokens:>6,} {row.output_tokens:>5,} "
        f"{_num(e2e_s, '8.2f'):>8} {_num(row.ttft_ms, '9.1f'):>9} "
        f"{_num(row.gen_tps, '10.2f'):>10} {_num(row.total_tps, '12.2f'):>12}  {row.memory()}"
    )


LEGEND = (
    "gen tok/s = new tokens / e2e (Qwen2.5 page's formula); total tok/s = (prompt + new tokens) "
    "/ e2e (Qwen3 page's formula); e2e and TTFT from the call to generate, batch 1, greedy, the "
    "prompt '我' x input tokens without chat template, exactly the new tokens asked for."
)


def run_speed(
    keys: list[str],
    source: str,
    protocol: str | None,
    inputs: Sequence[int] | None,
    output: int | None,
    as_json: bool,
    store: Store | None,
    fresh: bool = False,
) -> int:
    def say(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

    bench = SpeedBench(source, protocol, inputs, output, store, fresh, say)
    say(f"bench speed: {', '.join(keys)} (source {source}), one model at a time")
    try:
        rows = bench.run(keys)
    except SpeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if as_json:
        assert bench.plan is not None
        out = {
            "protocol": asdict(bench.plan),
            "session": bench.session,
            "rows": [asdict(r) for r in rows],
            "environment": bench.environments,
        }
        print(json.dumps(out, indent=2))
    else:
        say(LEGEND)
    return 0
