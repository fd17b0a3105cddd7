"""The model pool: one worker process per model, and comparisons run across them.

The pool never imports torch: it only starts workers (``python -m qwen_dash.worker``), writes
commands to their stdin and reads their events from their stdout, on one reader thread per worker.
A comparison's events are gathered in a queue that its owner polls, so a Streamlit page can write
them into its own placeholders from its own thread.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen_dash.defaults import cache_root, default_source
from qwen_dash.metrics import GenerationResult
from qwen_dash.request import CompareRequest, Settings, validate_request
from qwen_dash.specs import ModelSpec, load_specs

READY_TIMEOUT_S = 600.0
DEFAULT_TIMEOUT_S = 900.0
OVERLAP_MEMORY_S = 3600.0


@dataclass
class Event:
    """Something that happened to one model's answer. ``kind`` is one of: queued, started,
    delta, result."""

    model_key: str
    kind: str
    text: str = ""
    part: str = "answer"  # answer | reasoning (for deltas)
    n: int = 0
    t_ms: float | None = None
    result: GenerationResult | None = None


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


Callback = Callable[[dict[str, Any]], None]


def _log_dir() -> Path:
    return cache_root() / "logs"


class WorkerHandle:
    """The pool's side of one worker process."""

    def __init__(
        self,
        spec: ModelSpec,
        source: str,
        device: str = "auto",
        dtype: str = "auto",
        models_file: Path | None = None,
        warmup: bool = True,
    ) -> None:
        self.spec = spec
        self.source = source
        self.device = device
        self.dtype = dtype
        self.models_file = models_file
        self.warmup = warmup
        self.status = WorkerStatus(spec.key)
        self.proc: subprocess.Popen[str] | None = None
        self.pending: dict[str, Callback] = {}
        self.lock = threading.RLock()
        self.ready = threading.Event()
        self.death_reason: str | None = None
        self.on_start: Callable[[str, int], None] = lambda job_id, start_ns: None

    # -- process lifecycle -----------------------------------------------------------------

    def _command(self) -> list[str]:
        cmd = [sys.executable, "-m", "qwen_dash.worker", "--model", self.spec.key]
        cmd += ["--source", self.source, "--device", self.device, "--dtype", self.dtype]
        if self.models_file is not None:
            cmd += ["--models-file", str(self.models_file)]
        if not self.warmup:
            cmd.append("--no-warmup")
        return cmd

    def start(self) -> None:
        with self.lock:
            if self.alive:
                return
            log_dir = _log_dir()
            log_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = log_dir / f"worker-{self.spec.key}.log"
            root = Path(__file__).resolve().parent.parent
            paths = [str(root), os.environ.get("PYTHONPATH", "")]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
            self.ready.clear()
            self.death_reason = None
            self.status = WorkerStatus(self.spec.key, "starting", "Starting worker")
            with open(self.log_path, "a") as log:
                self.proc = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    encoding="utf-8",
                    bufsize=1,
                    env=env,
                    cwd=str(root),
                )
            threading.Thread(
                target=self._read, args=(self.proc,), name=f"reader-{self.spec.key}", daemon=True
            ).start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_started(self) -> None:
        if not self.alive:
            self.start()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> WorkerStatus:
        self.ensure_started()
        self.ready.wait(timeout)
        return self.status

    def kill(self, reason: str) -> None:
        with self.lock:
            self.death_reason = reason
            if self.alive and self.proc is not None:
                self.proc.kill()

    def shutdown(self, timeout: float = 5.0) -> None:
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                return
            self.death_reason = "the pool was shut down"
            try:
                proc.stdin.write(json.dumps({"op": "shutdown"}) + "\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError):
                pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # -- commands and events ---------------------------------------------------------------

    def send(self, command: dict[str, Any], callback: Callback | None = None) -> None:
        with self.lock:
            self.ensure_started()
            if callback is not None:
                self.pending[command["id"]] = callback
            try:
                self.proc.stdin.write(json.dumps(command) + "\n")  # type: ignore[union-attr]
                self.proc.stdin.flush()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError):
                pass  # the reader thread sees the death and fails what is pending

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            self._dispatch(event)
        code = proc.wait()
        self._died(proc, code)

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "progress":
            self.status.state = "loading"
            self.status.message = event["message"]
            self.status.fraction = event.get("fraction")
        elif kind == "ready":
            self.status = WorkerStatus(self.spec.key, "ready", "Ready", 1.0, info=event["info"])
            self.ready.set()
        elif kind == "load_failed":
            self.status = WorkerStatus(self.spec.key, "failed", "Failed to load")
            self.status.error = f"{self.spec.label} failed to load: {event['message']}"
            self.death_reason = self.status.error
            self.ready.set()
        else:
            if kind == "started":
                self.on_start(event["id"], event["start_ns"])
            with self.lock:
                callback = self.pending.get(event["id"])
                if kind == "result":
                    self.pending.pop(event["id"], None)
            if callback is not None:
                callback(event)

    def _died(self, proc: subprocess.Popen[str], code: int) -> None:
        with self.lock:
            if proc is not self.proc:
                return
            reason = self.death_reason or f"the {self.spec.label} worker exited with code {code}"
            if self.status.state != "failed":
                self.status = WorkerStatus(self.spec.key, "dead", reason, error=reason)
            self.ready.set()
            orphans, self.pending = self.pending, {}
        for job_id, callback in orphans.items():
            callback({"event": "worker_died", "id": job_id, "message": reason})


class Comparison:
    """One request answered by several models; events are polled by whoever asked."""

    def __init__(self, pool: ModelPool, request: CompareRequest, timeout_s: float) -> None:
        self.pool = pool
        self.request = request
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
        self._callbacks: list[Callable[[Comparison], None]] = []

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
        }
        timer = threading.Timer(
            self.timeout_s,
            self._time_out,
            args=(key,),
        )
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        handle.send(job, lambda event, key=key: self._on_event(key, event))
        return True

    def _time_out(self, key: str) -> None:
        if key not in self.results:
            reason = f"timed out after {self.timeout_s:g} s; it restarts on the next request"
            self.pool.workers[key].kill(reason)

    def _on_event(self, key: str, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "started":
            self.events.put(Event(key, "started"))
        elif kind == "delta":
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
            return GenerationResult(
                model_key=key,
                hf_id=spec.hf_id,
                source=handle.status.source or handle.source,
                status="error",
                error=f"{spec.label}: {event['message']}",
                finish_reason="error",
                mode=self.request.mode,
                settings=self.request.settings[key].to_dict(),
            )
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

    def _fail_unsubmitted(self, why: str) -> None:
        with self._lock:
            todo, self._todo = self._todo, []
        for key in todo:
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

    def __iter__(self) -> Iterator[Event]:
        while not self.done:
            yield from self.poll(0.1)

    def wait(self, timeout: float | None = None) -> dict[str, GenerationResult]:
        self._done.wait(timeout)
        return self.results


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
    ) -> None:
        from qwen_dash.specs import default_model_keys

        self.specs = load_specs(models_file)
        self.source = source or default_source()
        keys = model_keys or default_model_keys()
        unknown = [k for k in keys if k not in self.specs]
        if unknown:
            raise KeyError(f"Unknown model(s) {', '.join(unknown)}; known: {', '.join(self.specs)}")
        self.workers = {
            k: WorkerHandle(self.specs[k], self.source, device, dtype, models_file, warmup)
            for k in keys
        }
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

    def compare(self, request: CompareRequest, timeout_s: float = DEFAULT_TIMEOUT_S) -> Comparison:
        """Validate (raising RequestError with a user-facing message) and start the request."""
        validate_request(request, self.specs)
        missing = [k for k in request.settings if k not in self.workers]
        if missing:
            raise KeyError(f"Model(s) not in this pool: {', '.join(missing)}")
        for key in request.settings:
            self.workers[key].ensure_started()
        return Comparison(self, request, timeout_s).start()

    def recommended(self, key: str, thinking: bool = False, **overrides: Any) -> Settings:
        from qwen_dash.request import recommended_settings

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
