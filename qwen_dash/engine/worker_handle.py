"""The pool's side of one worker process: start it, send it commands, read its events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwen_dash.core.defaults import cache_root
from qwen_dash.core.specs import ModelSpec
from qwen_dash.engine.protocol import WORKER_MODULE, WorkerStatus

READY_TIMEOUT_S = 600.0

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
        cmd = [sys.executable, "-m", WORKER_MODULE, "--model", self.spec.key]
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
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                return
            self.death_reason = "the pool was shut down"
            _write(proc, {"op": "shutdown"})
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
            if self.proc is not None:
                _write(self.proc, command)

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
