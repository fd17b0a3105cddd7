"""The worker protocol: what the pool and a worker process say to each other, and what a
comparison reports to whoever follows it.

Commands (pool -> worker, JSON lines on its stdin): ``{"op": "generate", "id", "messages",
"settings", "mode", "threads", "received_ns", "template", "prompt_tokens"}`` (``template``
false: the one user message is the prompt as it is, no chat template; ``prompt_tokens``: the
exact token count the prompt must have, else the job fails with a message),
``{"op": "cancel", "id"}``, ``{"op": "shutdown"}``.
Events (worker -> pool, JSON lines on its stdout): ``progress`` (message, fraction), ``ready``
(info), ``load_failed`` (message), then per job ``started`` (start_ns), ``delta`` (one per token:
part, text, n, t_ms) and ``result`` (the GenerationResult as a dict, start_ns, end_ns). The pool
adds ``worker_died`` for the jobs of a worker that exited, and, for a job waiting its turn in the
dashboard (``turns``), ``waiting`` (position, eta_s) and ``dropped`` (cancelled before its turn).
A generate command names its ``person`` (whose turn it is); the worker ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qwen_dash.core.metrics import GenerationResult

WORKER_MODULE = "qwen_dash.worker"


@dataclass
class Event:
    """Something that happened to one model's answer. ``kind`` is one of: queued, started,
    delta, result. A ``queued`` event of a request waiting its turn has its ``position`` in line
    (1 = next) and ``eta_s``, the estimated seconds until it starts (None before the worker has
    timed a generation)."""

    model_key: str
    kind: str
    text: str = ""
    part: str = "answer"  # answer | reasoning (for deltas)
    n: int = 0
    t_ms: float | None = None
    result: GenerationResult | None = None
    position: int | None = None
    eta_s: float | None = None


@dataclass
class WorkerStatus:
    model_key: str
    state: str = "stopped"  # stopped | starting | loading | ready | failed | dead
    message: str = ""
    fraction: float | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str | None:
        return self.info.get("source")
