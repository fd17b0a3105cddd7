"""The model pool: one worker process per model, shared by every caller of this process.

The pool never imports torch: it only starts workers (``python -m qwen_dash.worker``), writes
commands to their stdin and reads their events from their stdout, on one reader thread per worker
(``worker_handle``). A comparison's events are gathered in a queue that its owner polls
(``comparison``), so a Streamlit page can write them into its own placeholders from its own thread.

Fair turns: each request names its person; local workers serve people round robin (``turns``),
and one person may have at most ``queue_cap`` requests waiting or running at once (QueueFull).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from qwen_dash.core.defaults import default_source
from qwen_dash.core.defaults import queue_cap as default_queue_cap
from qwen_dash.core.request import (
    CompareRequest,
    RequestError,
    Settings,
    recommended_settings,
    validate_request,
)
from qwen_dash.core.specs import default_model_keys, load_specs
from qwen_dash.engine.comparison import Comparison, Handle
from qwen_dash.engine.protocol import WorkerStatus
from qwen_dash.engine.remote_handle import RemoteHandle
from qwen_dash.engine.worker_handle import READY_TIMEOUT_S, WorkerHandle

DEFAULT_TIMEOUT_S = 900.0
OVERLAP_MEMORY_S = 3600.0


class QueueFull(RequestError):
    """A person has as many requests waiting or running as one person may; others are served."""


class ModelPool:
    """Workers for a set of models, started together, shared by every caller."""

    def __init__(
        self,
        model_keys: list[str] | None = None,
        source: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        models_file: Path | None = None,
        warmup: bool = True,
        queue_cap: int | None = None,
    ) -> None:
        self.specs = load_specs(models_file)
        self.source = source or default_source()
        keys = model_keys or default_model_keys()
        unknown = [k for k in keys if k not in self.specs]
        if unknown:
            raise KeyError(f"Unknown model(s) {', '.join(unknown)}; known: {', '.join(self.specs)}")
        self.workers: dict[str, Handle] = {
            k: (
                RemoteHandle(self.specs[k])
                if self.specs[k].remote
                else WorkerHandle(self.specs[k], self.source, device, dtype, models_file, warmup)
            )
            for k in keys
        }
        self.queue_cap = queue_cap or default_queue_cap()
        self._active: dict[str, set[str]] = {}  # person -> their unfinished comparisons
        self._active_lock = threading.Lock()
        self._intervals: dict[str, tuple[int, int | None]] = {}
        self._interval_lock = threading.Lock()
        for handle in self.workers.values():
            handle.on_start = self._started

    def __enter__(self) -> ModelPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        for handle in self.workers.values():
            handle.ensure_started()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> dict[str, WorkerStatus]:
        deadline = time.monotonic() + timeout
        for handle in self.workers.values():
            handle.wait_ready(max(0.0, deadline - time.monotonic()))
        return self.status()

    def status(self) -> dict[str, WorkerStatus]:
        return {k: h.status for k, h in self.workers.items()}

    def shutdown(self) -> None:
        for handle in self.workers.values():
            handle.shutdown()

    def threads_for(self, mode: str, n_models: int) -> int:
        """Cores per generation: all of them when isolated, a fair share when concurrent."""
        cores = os.cpu_count() or 1
        return cores if mode == "isolated" else max(1, cores // n_models)

    def compare(
        self,
        request: CompareRequest,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        person: str | None = None,
    ) -> Comparison:
        """Validate (raising RequestError with a user-facing message) and start the request.

        ``person`` (an email, a name; None for a local single-user dashboard) decides whose turn
        the request takes on the local workers. QueueFull when that person already has
        ``queue_cap`` requests waiting or running; other people are not affected."""
        validate_request(request, self.specs)
        missing = [k for k in request.settings if k not in self.workers]
        if missing:
            raise KeyError(f"Model(s) not in this pool: {', '.join(missing)}")
        comparison = Comparison(self, request, timeout_s, person)
        if any(isinstance(self.workers[k], WorkerHandle) for k in request.settings):
            self._admit(person or "", comparison)  # only local workers keep a line here
        for key in request.settings:
            self.workers[key].ensure_started()
        return comparison.start()

    def _admit(self, person: str, comparison: Comparison) -> None:
        """Count the comparison against its person's cap until it is done; QueueFull if full."""
        with self._active_lock:
            active = self._active.setdefault(person, set())
            if len(active) >= self.queue_cap:
                n = len(active)
                raise QueueFull(
                    f"You already have {n} request{'s' if n != 1 else ''} waiting or running, "
                    f"the most one person may have at once on this server. Wait for one to "
                    "finish (or stop one), then send again."
                )
            active.add(comparison.id)
        comparison.on_done(lambda done: self._release(person, done.id))

    def _release(self, person: str, comparison_id: str) -> None:
        with self._active_lock:
            active = self._active.get(person)
            if active is not None:
                active.discard(comparison_id)
                if not active:
                    del self._active[person]

    def active(self, person: str | None) -> int:
        """How many of this person's requests are waiting or running."""
        with self._active_lock:
            return len(self._active.get(person or "", ()))

    def recommended(self, key: str, thinking: bool = False, **overrides: Any) -> Settings:
        return recommended_settings(self.specs[key], thinking, **overrides)

    # -- overlap bookkeeping ---------------------------------------------------------------

    def _started(self, job_id: str, start_ns: int) -> None:
        with self._interval_lock:
            self._intervals[job_id] = (start_ns, None)

    def overlapped(self, job_id: str, start_ns: int, end_ns: int) -> bool:
        """Whether any other generation ran during [start_ns, end_ns]."""
        horizon = time.perf_counter_ns() - int(OVERLAP_MEMORY_S * 1e9)
        with self._interval_lock:
            self._intervals[job_id] = (start_ns, end_ns)
            for other in [k for k, (_, e) in self._intervals.items() if e and e < horizon]:
                del self._intervals[other]
            return any(
                s < end_ns and (e is None or e > start_ns)
                for other, (s, e) in self._intervals.items()
                if other != job_id
            )
