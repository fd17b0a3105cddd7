"""The one place where generation metrics are defined (docs/architecture.md, "Metrics").

Each metric is declared once in :data:`METRICS`: its name, label, unit, definition, whether higher
is better, and whether trends chart it. The worker's result (:class:`GenerationResult`), the
database columns, the display, the charts, the tables, the export and the CLI all read this
registry; tests prove the typed fields and the ORM columns agree with it.

Every timestamp is ``time.perf_counter_ns()`` taken in the worker process. What cannot be measured
is ``None``: never 0, never estimated.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Unit = Literal["ms", "tok/s", "tokens", "bytes"]


@dataclass(frozen=True)
class Metric:
    """One measured figure of a generation."""

    name: str
    label: str
    unit: Unit
    definition: str
    higher_is_better: bool | None  # None: neither (a count, a length)
    integer: bool = False  # stored and shown as a whole number
    trend: bool = False  # charted on the Trends page (and kept in its rollups)
    headline: int | None = None  # its place among the figures a Compare column shows, if any
    short: str | None = None  # a shorter label where space is tight (a Compare column)
    measured: bool = True  # False: derived from other metrics when the row is saved
    chart_unit: str | None = None  # the unit a chart axis shows, when not ``unit``
    chart_scale: float = 1.0  # stored value x chart_scale = value in chart_unit

    @property
    def short_label(self) -> str:
        return self.short or self.label

    @property
    def axis_unit(self) -> str:
        return self.chart_unit or self.unit


METRICS: tuple[Metric, ...] = (
    Metric(
        "queue_ms", "Queue wait", "ms", "request received by the pool -> worker starts it", False
    ),
    Metric("tokenize_ms", "Tokenize", "ms", "chat template + tokenisation", False),
    Metric(
        "ttft_ms",
        "TTFT",
        "ms",
        "generate called -> first new token (prefill + first step)",
        False,
        trend=True,
        headline=1,
    ),
    Metric(
        "e2e_ms",
        "End to end",
        "ms",
        "generate called -> last token",
        False,
        trend=True,
        headline=3,
        chart_unit="s",
        chart_scale=1e-3,
    ),
    Metric(
        "decode_tps",
        "Decode speed",
        "tok/s",
        "(n_out - 1) / (last token - first token)",
        True,
        trend=True,
        headline=2,
        short="Decode",
    ),
    Metric(
        "gen_tps",
        "Generated tok/s (Qwen2.5 page formula)",
        "tok/s",
        "n_out / e2e (Qwen2.5 speed page)",
        True,
    ),
    Metric(
        "total_tps",
        "Total tok/s (Qwen3 page formula)",
        "tok/s",
        "(n_in + n_out) / e2e (Qwen3 speed page)",
        True,
    ),
    Metric(
        "itl_p50_ms",
        "Inter-token latency p50",
        "ms",
        "median gap between consecutive new tokens",
        False,
    ),
    Metric(
        "itl_p95_ms",
        "Inter-token latency p95",
        "ms",
        "95th percentile gap between consecutive new tokens",
        False,
    ),
    Metric(
        "n_in",
        "Tokens in",
        "tokens",
        "prompt tokens, by the model's own tokenizer",
        None,
        integer=True,
        headline=4,
    ),
    Metric(
        "n_out",
        "Tokens out",
        "tokens",
        "generated tokens",
        None,
        integer=True,
        trend=True,
        headline=5,
    ),
    Metric(
        "n_think",
        "Reasoning tokens",
        "tokens",
        "tokens up to and including </think>",
        None,
        integer=True,
    ),
    Metric("n_answer", "Answer tokens", "tokens", "tokens after </think>", None, integer=True),
    Metric(
        "ttfa_ms",
        "Time to first answer token",
        "ms",
        "generate called -> first answer token",
        False,
    ),
    Metric("weights_bytes", "Weight memory", "bytes", "parameters + buffers", None, integer=True),
    Metric(
        "cuda_peak_alloc_bytes",
        "CUDA peak allocated",
        "bytes",
        "torch.cuda.max_memory_allocated, reset per generation",
        False,
        integer=True,
    ),
    Metric(
        "cuda_peak_reserved_bytes",
        "CUDA peak reserved",
        "bytes",
        "torch.cuda.max_memory_reserved, reset per generation",
        False,
        integer=True,
    ),
    Metric(
        "nvml_process_bytes",
        "GPU memory (NVML, process)",
        "bytes",
        "NVML: this worker's GPU memory, peak sampled",
        False,
        integer=True,
    ),
    Metric(
        "nvml_device_used_bytes",
        "GPU memory (NVML, device)",
        "bytes",
        "NVML: whole device used memory, peak sampled",
        False,
        integer=True,
    ),
    Metric(
        "rss_peak_bytes",
        "Peak RSS",
        "bytes",
        "worker process RSS, peak sampled during generation",
        False,
        integer=True,
    ),
    Metric(
        "peak_memory_bytes",
        "Peak memory",
        "bytes",
        "CUDA allocator peak on a GPU, else the worker's peak RSS",
        False,
        integer=True,
        trend=True,
        headline=6,
        measured=False,
        chart_unit="MiB",
        chart_scale=1 / 2**20,
    ),
)

REGISTRY: dict[str, Metric] = {m.name: m for m in METRICS}
METRIC_NAMES: tuple[str, ...] = tuple(REGISTRY)
# What the worker measures (every metric but the derived ones), in display order.
MEASURED: tuple[str, ...] = tuple(m.name for m in METRICS if m.measured)
# What trends chart and their rollups keep p50/p95/mean of, in order.
TREND_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.trend)
# What a Compare column shows when its answer finishes, in its order.
HEADLINE_METRICS: tuple[str, ...] = tuple(
    m.name for m in sorted(METRICS, key=lambda m: m.headline or 0) if m.headline is not None
)


def metric(name: str) -> Metric:
    """The registry entry; KeyError for an unknown name."""
    return REGISTRY[name]


@dataclass
class GenerationResult:
    """One model's answer to one request, with everything measured about it.

    The metric fields are the registry's measured metrics, typed (a test checks they agree)."""

    model_key: str
    hf_id: str
    source: str
    status: str = "ok"  # ok | error | cancelled
    error: str | None = None
    finish_reason: str | None = None  # stop | length | cancelled | error
    text: str = ""  # the answer (after </think> where the model thinks)
    reasoning: str | None = None  # the thinking text, None when there is none
    mode: str = "concurrent"
    overlapped: bool | None = None
    revision: str | None = None
    device: str | None = None
    dtype: str | None = None
    started_at: str | None = None  # ISO 8601, UTC
    queue_ms: float | None = None
    tokenize_ms: float | None = None
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    decode_tps: float | None = None
    gen_tps: float | None = None
    total_tps: float | None = None
    itl_p50_ms: float | None = None
    itl_p95_ms: float | None = None
    n_in: int | None = None
    n_out: int | None = None
    n_think: int | None = None
    n_answer: int | None = None
    ttfa_ms: float | None = None
    weights_bytes: int | None = None
    cuda_peak_alloc_bytes: int | None = None
    cuda_peak_reserved_bytes: int | None = None
    nvml_process_bytes: int | None = None
    nvml_device_used_bytes: int | None = None
    rss_peak_bytes: int | None = None
    token_times_ms: list[float] = field(default_factory=list)  # each new token, from generate call
    output_ids: list[int] = field(default_factory=list)  # the generated token ids, for replay
    settings: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def peak_memory_bytes(self) -> int | None:
        """The memory figure the UI shows: the GPU allocator peak on CUDA, else RSS."""
        if self.cuda_peak_alloc_bytes is not None:
            return self.cuda_peak_alloc_bytes
        return self.rss_peak_bytes

    def metric_values(self) -> dict[str, Any]:
        """Every registry metric's value, derived ones included."""
        return {name: getattr(self, name) for name in METRIC_NAMES}


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolation percentile (numpy's default), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _ms(ns: int) -> float:
    return ns / 1e6


def timing_metrics(
    call_ns: int,
    token_ns: list[int],
    n_in: int,
    n_think: int | None = None,
) -> dict[str, float | int | None]:
    """Latency and speed from the generate-call time and one timestamp per new token.

    ``n_think`` is the number of tokens up to and including ``</think>`` (None when the
    output has no thinking part); the first answer token is the one after it.
    """
    n_out = len(token_ns)
    out: dict[str, float | int | None] = {
        "n_in": n_in,
        "n_out": n_out,
        "ttft_ms": None,
        "e2e_ms": None,
        "decode_tps": None,
        "gen_tps": None,
        "total_tps": None,
        "itl_p50_ms": None,
        "itl_p95_ms": None,
        "n_think": n_think,
        "n_answer": None if n_think is None else n_out - n_think,
        "ttfa_ms": None,
    }
    if n_out == 0:
        return out
    e2e_ns = token_ns[-1] - call_ns
    out["ttft_ms"] = _ms(token_ns[0] - call_ns)
    out["e2e_ms"] = _ms(e2e_ns)
    if e2e_ns > 0:
        out["gen_tps"] = n_out / (e2e_ns / 1e9)
        out["total_tps"] = (n_in + n_out) / (e2e_ns / 1e9)
    decode_ns = token_ns[-1] - token_ns[0]
    if n_out > 1 and decode_ns > 0:
        out["decode_tps"] = (n_out - 1) / (decode_ns / 1e9)
    gaps = [_ms(b - a) for a, b in itertools.pairwise(token_ns)]
    out["itl_p50_ms"] = statistics.median(gaps) if gaps else None
    out["itl_p95_ms"] = percentile(gaps, 95)
    if n_think is None:
        out["ttfa_ms"] = out["ttft_ms"]
    elif n_think < n_out:
        out["ttfa_ms"] = _ms(token_ns[n_think] - call_ns)
    return out


def split_thinking(ids: list[int], think_end_id: int) -> int | None:
    """Number of output tokens up to and including the last ``</think>``; None if absent.

    ``think_end_id`` is the model's own ``</think>`` id, from its tokenizer."""
    for i in range(len(ids) - 1, -1, -1):
        if ids[i] == think_end_id:
            return i + 1
    return None


def chunk_timing_metrics(
    call_ns: int,
    chunk_ns: list[int],
    n_in: int | None,
    n_out: int | None,
    n_think: int | None = None,
    first_answer_ns: int | None = None,
) -> dict[str, float | int | None]:
    """The same metrics, measured on a client from streamed chunks (a remote server).

    A chunk may carry several tokens, so the clock has one stamp per chunk, not per token:
    ``ttft_ms`` is the first chunk with text, ``e2e_ms`` the last, ITL percentiles are the gaps
    between chunks. Counts come from the server's usage (or a tokenizer): ``decode_tps`` is
    ``(n_out - 1) / (last chunk - first chunk)``, ``gen_tps`` and ``total_tps`` as for local models.
    ``ttfa_ms`` is the first chunk with answer text. A figure that needs an unknown count is None.
    """
    out = timing_metrics(call_ns, chunk_ns, n_in or 0)
    out.update(n_in=n_in, n_out=n_out, gen_tps=None, total_tps=None, decode_tps=None)
    out["n_think"] = n_think
    out["n_answer"] = None if n_think is None or n_out is None else max(0, n_out - n_think)
    out["ttfa_ms"] = None if first_answer_ns is None else _ms(first_answer_ns - call_ns)
    if not chunk_ns or n_out is None:
        return out
    e2e_ns = chunk_ns[-1] - call_ns
    if e2e_ns > 0:
        out["gen_tps"] = n_out / (e2e_ns / 1e9)
        if n_in is not None:
            out["total_tps"] = (n_in + n_out) / (e2e_ns / 1e9)
    span_ns = chunk_ns[-1] - chunk_ns[0]
    if n_out > 1 and span_ns > 0:
        out["decode_tps"] = (n_out - 1) / (span_ns / 1e9)
    return out
