"""The one place where generation metrics are defined (DESIGN.md, Metrics).

Every timestamp is ``time.perf_counter_ns()`` taken in the worker process. What cannot be measured
is ``None``: never 0, never estimated.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Names, units and meanings, in the order the UI and the CLI show them.
METRICS: dict[str, tuple[str, str]] = {
    "queue_ms": ("ms", "request received by the pool -> worker starts it"),
    "tokenize_ms": ("ms", "chat template + tokenisation"),
    "ttft_ms": ("ms", "generate called -> first new token (prefill + first step)"),
    "e2e_ms": ("ms", "generate called -> last token"),
    "decode_tps": ("tok/s", "(n_out - 1) / (last token - first token)"),
    "gen_tps": ("tok/s", "n_out / e2e (Qwen2.5 speed page)"),
    "total_tps": ("tok/s", "(n_in + n_out) / e2e (Qwen3 speed page)"),
    "itl_p50_ms": ("ms", "median gap between consecutive new tokens"),
    "itl_p95_ms": ("ms", "95th percentile gap between consecutive new tokens"),
    "n_in": ("tokens", "prompt tokens, by the model's own tokenizer"),
    "n_out": ("tokens", "generated tokens"),
    "n_think": ("tokens", "tokens up to and including </think>"),
    "n_answer": ("tokens", "tokens after </think>"),
    "ttfa_ms": ("ms", "generate called -> first answer token"),
    "weights_bytes": ("bytes", "parameters + buffers"),
    "cuda_peak_alloc_bytes": ("bytes", "torch.cuda.max_memory_allocated, reset per generation"),
    "cuda_peak_reserved_bytes": ("bytes", "torch.cuda.max_memory_reserved, reset per generation"),
    "nvml_process_bytes": ("bytes", "NVML: this worker's GPU memory, peak sampled"),
    "nvml_device_used_bytes": ("bytes", "NVML: whole device used memory, peak sampled"),
    "rss_peak_bytes": ("bytes", "worker process RSS, peak sampled during generation"),
}

THINK_END_ID = 151668


@dataclass
class GenerationResult:
    """One model's answer to one request, with everything measured about it."""

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


def split_thinking(ids: list[int], think_end_id: int = THINK_END_ID) -> int | None:
    """Number of output tokens up to and including the last ``</think>``; None if absent."""
    for i in range(len(ids) - 1, -1, -1):
        if ids[i] == think_end_id:
            return i + 1
    return None
