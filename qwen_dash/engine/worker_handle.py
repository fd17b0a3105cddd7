"""The pool's side of one worker process: start it, send it commands, read its events.

Generate jobs wait here, not in the worker: the handle hands the worker a job only when it is free,
choosing the next one by fair turns between people (``turns``), and tells each waiting job its
place in line (a ``waiting`` event: position, eta_s). A job cancelled while it waits leaves the
line at once (a ``dropped`` event).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwen_dash.core.defaults import cache_root
from qwen_dash.core.specs import ModelSpec
from qwen_dash.engine.protocol import WORKER_MODULE, WorkerStatus
from qwen_dash.engine.turns import ANONYMOUS, Callback, FairQueue, RecentDurations, Waiting

READY_TIMEOUT_S = 600.0
Notice = tuple[Callback, dict[str, Any]]  # a callback to call, outside the lock, with its event


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
        self.turns = FairQueue()
        self.durations = RecentDurations()
        self.running: tuple[str, float] | None = None  # the job the worker has, since when
        self.closed = False

    # -- process lifecycle -----------------------------------------------------------------

    def _command(self) -> list[str]:
        cmd = [sys.executable, "-m", WORKER_MODULE, "--model", self.spec.key]
        cmd += ["--source", self.source, "--device", self.device, "--dtype", self.dtype]
        if self.models_file is not None:
            cmd += ["--models-file", str(self.models_file)]
        if not self.warmup:
            cmd.append("--no-warmup")
        return cmd

    def start(self) -> None:
        with self.lock:
            self.closed = False
            if self.alive:
                return
            log_dir = _log_dir()
            log_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = log_dir / f"worker-{self.spec.key}.log"
            root = Path(__file__).resolve().parents[2]
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

    def abandon(self, job_id: str, reason: str) -> None:
        """Give up one generation (a timeout): a worker runs one at a time, so it is restarted."""
        self.kill(reason)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the worker; jobs still in line fail ("the pool was shut down")."""
        with self.lock:
            self.closed = True
            proc = self.proc
            running = proc is not None and proc.poll() is None
            notices = [] if running else self._fail_waiting("the pool was shut down")
            if proc is not None and running:
                self.death_reason = "the pool was shut down"
                _write(proc, {"op": "shutdown"})
        _tell(notices)  # when it runs, its death fails them (_died)
        if proc is None or not running:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # -- commands and events ---------------------------------------------------------------

    def send(self, command: dict[str, Any], callback: Callback | None = None) -> None:
        """A generate job joins the line (its ``person``'s lane); a cancel of a job still in line
        takes it out; anything else goes to the worker at once."""
        op = command.get("op")
        if op == "generate":
            person = str(command.get("person") or ANONYMOUS)
            with self.lock:
                self.turns.add(Waiting(command, callback, person))
                notices = self._next()
        elif op == "cancel":
            with self.lock:
                notices = self._drop(str(command["id"]))
                if not notices:
                    self._write(command)
        else:
            with self.lock:
                self._write(command)
            notices = []
        _tell(notices)

    def _write(self, command: dict[str, Any]) -> None:
        self.ensure_started()
        if self.proc is not None:
            _write(self.proc, command)

    def _next(self) -> list[Notice]:
        """(Lock held.) Hand the worker the next job if it is free; the places in line."""
        if self.running is None and not self.closed:
            job = self.turns.pop()
            if job is not None:
                self.running = (job.id, time.monotonic())
                if job.callback is not None:
                    self.pending[job.id] = job.callback
                self._write(job.command)
        return self._places()

    def _places(self) -> list[Notice]:
        """(Lock held.) A ``waiting`` event for each job whose place or estimate changed."""
        running_for = None if self.running is None else time.monotonic() - self.running[1]
        notices: list[Notice] = []
        for position, job in enumerate(self.turns.order(), start=1):
            eta = self.durations.wait(position, running_for)
            told = (position, None if eta is None else round(eta))
            if job.callback is not None and told != job.told:
                job.told = told
                event = {"event": "waiting", "id": job.id, "position": position, "eta_s": eta}
                notices.append((job.callback, event))
        return notices

    def _drop(self, job_id: str) -> list[Notice]:
        """(Lock held.) A job cancelled before its turn leaves the line."""
        job = self.turns.remove(job_id)
        if job is None:
            return []
        gone: list[Notice] = []
        if job.callback is not None:
            event = {"event": "dropped", "id": job_id, "message": "cancelled before it started"}
            gone.append((job.callback, event))
        return gone + self._places()

    def _fail_waiting(self, reason: str) -> list[Notice]:
        """(Lock held.) The jobs in line cannot run (the pool is shut down, the model does not
        load): each fails as if its worker had died."""
        return [
            (job.callback, {"event": "worker_died", "id": job.id, "message": reason})
            for job in self.turns.drain()
            if job.callback is not None
        ]

    def waiting(self) -> int:
        """How many jobs are in line for this worker (not counting the one it runs)."""
        with self.lock:
            return len(self.turns)

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
            notices: list[Notice] = []
            with self.lock:
                callback = self.pending.get(event["id"])
                if kind == "result":
                    self.pending.pop(event["id"], None)
                    notices = self._finished(event["id"])
            if callback is not None:
                callback(event)
            _tell(notices)

    def _finished(self, job_id: str) -> list[Notice]:
        """(Lock held.) The worker is free: time the job, hand it the next."""
        if self.running is not None and self.running[0] == job_id:
            self.durations.add(time.monotonic() - self.running[1])
            self.running = None
        return self._next()

    def _died(self, proc: subprocess.Popen[str], code: int) -> None:
        with self.lock:
            if proc is not self.proc:
                return
            reason = self.death_reason or f"the {self.spec.label} worker exited with code {code}"
            if self.status.state != "failed":
                self.status = WorkerStatus(self.spec.key, "dead", reason, error=reason)
            self.ready.set()
            orphans, self.pending = self.pending, {}
            self.running = None
            # A model that does not load fails the jobs in line; after a crash or a timeout the
            # next job in line restarts the worker (a dead worker restarts on the next request).
            if self.closed or self.status.state == "failed":
                notices = self._fail_waiting(reason)
            else:
                notices = self._next()
        for job_id, callback in orphans.items():
            callback({"event": "worker_died", "id": job_id, "message": reason})
        _tell(notices)


def _tell(notices: list[Notice]) -> None:
    """Report to comparisons outside the handle's lock (a callback may call back into it)."""
    for callback, event in notices:
        callback(event)


def _write(proc: subprocess.Popen[str], command: dict[str, Any]) -> None:
    """One command line to a worker; a dead worker's pipe is left to the reader thread, which
    sees the death and fails what is pending."""
    if proc.stdin is None:
        return
    try:
        proc.stdin.write(json.dumps(command) + "\n")
        proc.stdin.flush()
    except (BrokenPipeError, OSError):
        pass
