"""One request answered by several models: submitting it to their workers (at once or one after
the other), gathering their events for whoever follows it, timeouts, cancel, and the callback
where a finished run gets logged."""

from __future__ import annotations

import functools
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qwen_dash.core.metrics import GenerationResult, timing_metrics
from qwen_dash.core.request import CompareRequest
from qwen_dash.engine.protocol import Event
from qwen_dash.engine.remote_handle import RemoteHandle
from qwen_dash.engine.worker_handle import WorkerHandle

Handle = WorkerHandle | RemoteHandle  # a local worker process, or a remote server


@dataclass
class Partial:
    """What one model streamed before its result: its text and per-token times. A worker that
    dies mid-answer sends no result; this is what is kept of its answer."""

    answer: str = ""
    reasoning: str = ""
    n: int = 0
    times_ms: list[float] = field(default_factory=list)

    def add(self, delta: dict[str, Any]) -> None:
        if delta["part"] == "reasoning":
            self.reasoning += delta["text"]
        else:
            self.answer += delta["text"]
        self.n = delta["n"]
        self.times_ms.append(delta["t_ms"])

    def keep_in(self, result: GenerationResult) -> None:
        """Fill a failed result with the partial answer, marked as cut off. Timing figures that
        need the whole answer (n_in-based speeds, the thinking split) stay null."""
        result.text = self.answer.strip("\n")
        result.reasoning = self.reasoning.strip("\n") or None
        result.token_times_ms = list(self.times_ms)
        timing = timing_metrics(0, [round(t * 1e6) for t in self.times_ms], n_in=0)
        for name in ("n_out", "ttft_ms", "e2e_ms", "decode_tps", "gen_tps", "itl_p50_ms"):
            setattr(result, name, timing[name])
        result.itl_p95_ms = timing["itl_p95_ms"]
        result.error = (
            f"{result.error}. The answer is cut off after {self.n} tokens: what came before "
            "the crash is kept."
        )


class Workers(Protocol):
    """What a comparison needs of the pool that runs it."""

    @property
    def workers(self) -> Mapping[str, Handle]: ...

    def threads_for(self, mode: str, n_models: int) -> int: ...

    def overlapped(self, job_id: str, start_ns: int, end_ns: int) -> bool: ...


class Comparison:
    """One request answered by several models; events are polled by whoever asked."""

    def __init__(
        self,
        pool: Workers,
        request: CompareRequest,
        timeout_s: float,
        person: str | None = None,
    ) -> None:
        self.pool = pool
        self.request = request
        self.person = person  # whose turn it takes on local workers (fair turns)
        self.id = uuid.uuid4().hex
        self.timeout_s = timeout_s
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.results: dict[str, GenerationResult] = {}
        self.model_keys = list(request.settings)
        self.received_ns = time.perf_counter_ns()
        self._todo = list(self.model_keys)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._cancelled = False
        self._timers: list[threading.Timer] = []
        self._partial: dict[str, Partial] = {}  # what streamed so far, kept if a worker dies
        self._callbacks: list[Callable[[Comparison], None]] = []
        self._waiting: set[str] = set()  # models whose job waits its turn in the dashboard

    def job_id(self, key: str) -> str:
        return f"{self.id}:{key}"

    def start(self) -> Comparison:
        if self.request.mode == "isolated":
            self._submit_next()
        else:
            while self._submit_next():
                pass
        return self

    def _submit_next(self) -> bool:
        with self._lock:
            if not self._todo:
                return False
            key = self._todo.pop(0)
        handle = self.pool.workers[key]
        self.events.put(Event(key, "queued"))
        job = {
            "op": "generate",
            "id": self.job_id(key),
            "messages": self.request.chat_for(key),
            "settings": self.request.settings[key].to_dict(),
            "mode": self.request.mode,
            "threads": self.pool.threads_for(self.request.mode, len(self.model_keys)),
            "received_ns": self.received_ns,
            "template": self.request.template,
            "prompt_tokens": self.request.prompt_tokens,
            "person": self.person or "",
        }
        self._arm_timer(key)
        handle.send(job, functools.partial(self._on_event, key))
        return True

    def _arm_timer(self, key: str) -> None:
        timer = threading.Timer(self.timeout_s, self._time_out, args=(key,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _time_out(self, key: str) -> None:
        if key in self.results or self._done.is_set():
            return
        if key in self._waiting:  # waiting its turn is not hanging: the clock starts again
            self._arm_timer(key)
            return
        handle = self.pool.workers[key]
        reason = f"timed out after {self.timeout_s:g} s"
        if isinstance(handle, WorkerHandle):
            reason += "; it restarts on the next request"
        handle.abandon(self.job_id(key), reason)

    def _on_event(self, key: str, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "waiting":
            self._waiting.add(key)
            position, eta = event["position"], event["eta_s"]
            self.events.put(Event(key, "queued", position=position, eta_s=eta))
        elif kind == "dropped":
            self._waiting.discard(key)
            self._fail_unsubmitted(event["message"], [key])
            self._after_result()
        elif kind == "started":
            self._waiting.discard(key)
            self.events.put(Event(key, "started"))
        elif kind == "delta":
            self._partial.setdefault(key, Partial()).add(event)
            self.events.put(
                Event(key, "delta", event["text"], event["part"], event["n"], event["t_ms"])
            )
        elif kind in ("result", "worker_died"):
            result = self._result(key, event)
            self.results[key] = result
            self.events.put(Event(key, "result", result=result))
            self._after_result()

    def _result(self, key: str, event: dict[str, Any]) -> GenerationResult:
        if event["event"] == "worker_died":
            handle = self.pool.workers[key]
            spec = handle.spec
            result = GenerationResult(
                model_key=key,
                hf_id=spec.hf_id,
                source=handle.status.source or handle.source,
                status="error",
                error=f"{spec.label}: {event['message']}",
                finish_reason="error",
                mode=self.request.mode,
                settings=self.request.settings[key].to_dict(),
            )
            partial = self._partial.get(key)
            if partial is not None and partial.n:
                partial.keep_in(result)
            return result
        result = GenerationResult.from_dict(event["result"])
        result.overlapped = self.pool.overlapped(event["id"], event["start_ns"], event["end_ns"])
        return result

    def _after_result(self) -> None:
        if self._cancelled:
            self._fail_unsubmitted("cancelled before it started")
        elif self.request.mode == "isolated":
            self._submit_next()
        if len(self.results) == len(self.model_keys):
            self._finish()

    def _finish(self) -> None:
        for timer in self._timers:
            timer.cancel()
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
            self._done.set()
        for callback in callbacks:
            callback(self)

    def on_done(self, callback: Callable[[Comparison], None]) -> None:
        """Call ``callback(self)`` once every model has answered (at once if they have).

        It runs on a pool thread, whether or not anyone is still polling: this is where a run
        gets logged, so that a page that is left or rerun mid-stream loses nothing."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def _fail_unsubmitted(self, why: str, keys: list[str] | None = None) -> None:
        """Cancelled results for the models not yet sent (or ``keys``: dropped from the line)."""
        with self._lock:
            if keys is None:
                keys, self._todo = self._todo, []
        for key in keys:
            if key in self.results:
                continue
            spec = self.pool.workers[key].spec
            result = GenerationResult(
                model_key=key,
                hf_id=spec.hf_id,
                source=self.pool.workers[key].source,
                status="cancelled",
                finish_reason="cancelled",
                error=f"{spec.label}: {why}",
                mode=self.request.mode,
                settings=self.request.settings[key].to_dict(),
            )
            self.results[key] = result
            self.events.put(Event(key, "result", result=result))

    def cancel(self) -> None:
        """Stop every model's answer; what was generated so far is kept."""
        self._cancelled = True
        for key in self.model_keys:
            if key not in self.results:
                self.pool.workers[key].send({"op": "cancel", "id": self.job_id(key)})
        with self._lock:
            nothing_running = len(self._todo) + len(self.results) == len(self.model_keys)
        if nothing_running:
            self._fail_unsubmitted("cancelled before it started")
            self._finish()

    @property
    def done(self) -> bool:
        return self._done.is_set() and self.events.empty()

    def poll(self, timeout: float = 0.05) -> list[Event]:
        """The events so far; waits up to ``timeout`` for the first."""
        out: list[Event] = []
        try:
            out.append(self.events.get(timeout=timeout))
            while True:
                out.append(self.events.get_nowait())
        except queue.Empty:
            pass
        return out

    def wait(self, timeout: float | None = None) -> dict[str, GenerationResult]:
        self._done.wait(timeout)
        return self.results
