"""A model worker's process: its own interpreter, one model, one generation at a time.

Started by the pool as ``python -m qwen_dash.worker --model KEY ...`` (never forked from a process
that has loaded torch, never through multiprocessing: under ``streamlit run`` a spawned child would
re-run the page script). Commands arrive as JSON lines on stdin; events leave as JSON lines on the
original stdout. Anything else the libraries print goes to stderr, which the pool sends to a log.

Commands: ``{"op": "generate", "id", "messages", "settings", "mode", "threads", "received_ns",
"template", "prompt_tokens"}`` (see ``qwen_dash.engine.protocol``),
``{"op": "cancel", "id"}``, ``{"op": "shutdown"}``.
Events: ``progress`` (message, fraction), ``ready`` (info), ``load_failed`` (message), then per
job ``started``, ``delta`` (one per token), ``result`` (the GenerationResult as a dict).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any


class EventWriter:
    """Writes events from a thread of its own, so a slow reader never stalls generation."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self.thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        self.queue.put(event)

    def _run(self) -> None:
        while (event := self.queue.get()) is not None:
            try:
                self.stream.write(json.dumps(event) + "\n")
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                os._exit(0)  # the pool is gone: nothing left to serve

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=5)


class CommandReader:
    """Reads commands on a thread: generate jobs are queued, cancels act at once."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.jobs: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.cancelled: set[str] = set()
        self.current: tuple[str, threading.Event] | None = None
        self.lock = threading.Lock()
        threading.Thread(target=self._run, name="command-reader", daemon=True).start()

    def _run(self) -> None:
        for line in self.stream:
            cmd = json.loads(line)
            op = cmd.get("op")
            if op == "generate":
                self.jobs.put(cmd)
            elif op == "cancel":
                self._cancel(cmd["id"])
            elif op == "shutdown":
                break
        self.jobs.put(None)  # shutdown, or stdin closed because the pool died

    def _cancel(self, job_id: str) -> None:
        with self.lock:
            self.cancelled.add(job_id)
            if self.current is not None and self.current[0] == job_id:
                self.current[1].set()

    def begin(self, job_id: str) -> threading.Event:
        flag = threading.Event()
        with self.lock:
            if job_id in self.cancelled:
                flag.set()
            self.current = (job_id, flag)
        return flag

    def end(self) -> None:
        with self.lock:
            self.current = None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m qwen_dash.worker")
    p.add_argument("--model", required=True)
    p.add_argument("--source", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--models-file", default=None)
    p.add_argument("--no-warmup", action="store_true")
    return p.parse_args(argv)


def _take_stdout() -> IO[str]:
    """The protocol keeps the real stdout; everything else printed goes to stderr."""
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return proto


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    emit = EventWriter(_take_stdout())
    emit({"event": "progress", "message": "Starting worker", "fraction": None})
    # Heavy imports after the first event: the pool sees the process is up.
    from qwen_dash.core.specs import load_specs
    from qwen_dash.worker.generation import Generator, Job
    from qwen_dash.worker.sources import load_model, resolve_device, resolve_dtype

    try:
        specs = load_specs(Path(args.models_file) if args.models_file else None)
        spec = specs[args.model]
        device = resolve_device(args.device)

        def progress(message: str, fraction: float | None) -> None:
            emit({"event": "progress", "message": message, "fraction": fraction})

        loaded = load_model(spec, args.source, device, resolve_dtype(args.dtype, device), progress)
        generator = Generator(spec, loaded, device)
        info = generator.info()
        if not args.no_warmup:
            progress(f"Warming up {spec.label}", None)
            info["warmup_ms"] = round(generator.warm_up(), 1)
    except Exception as exc:
        emit({"event": "load_failed", "message": f"{type(exc).__name__}: {exc}"})
        emit.close()
        return 1
    emit({"event": "ready", "info": info})
    serve(generator, CommandReader(sys.stdin), emit, Job)
    emit.close()
    return 0


def serve(generator: Any, reader: CommandReader, emit: EventWriter, job_type: Any) -> None:
    while (cmd := reader.jobs.get()) is not None:
        job = job_type.from_dict(cmd)
        flag = reader.begin(job.id)
        start_ns = time.perf_counter_ns()
        emit({"event": "started", "id": job.id, "start_ns": start_ns})
        result = generator.run(job, emit, flag)
        reader.end()
        emit(
            {
                "event": "result",
                "id": job.id,
                "start_ns": start_ns,
                "end_ns": time.perf_counter_ns(),
                "result": result.to_dict(),
            }
        )
