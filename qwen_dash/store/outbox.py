"""Saving runs so that none is lost: a run that cannot be saved now is kept and retried.

The Compare page and the CLI hand a finished comparison to :meth:`Outbox.submit`. It is saved on
the outbox's own thread; if the database refuses (locked, read-only, unreachable, deleted and
being recreated), the run stays queued and is tried again every ``retry_s`` seconds until it
lands, and whoever holds its :class:`PendingSave` can tell the user where it stands. "Logged" is
only ever said of a save that committed into the database the app reads.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import CompareRequest

log = logging.getLogger("qwen_dash.store")

SaveState = Literal["saving", "saved", "retrying"]
RETRY_S = 5.0


@dataclass
class PendingSave:
    """One run on its way into the database."""

    request: CompareRequest
    results: dict[str, GenerationResult]
    fields: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: SaveState = "saving"
    run_id: int | None = None
    error: str | None = None  # why the last attempt failed
    attempts: int = 0
    settled: threading.Event = field(default_factory=threading.Event)  # first attempt done

    @property
    def saved(self) -> bool:
        return self.state == "saved"


class StoreOpener:
    """Opens a store on first use and keeps it; a database that cannot be opened yet is tried
    again on the next call (so a run waiting in the outbox lands once it can be opened)."""

    def __init__(self, open_store: Callable[[], Any]) -> None:
        self._open = open_store
        self._store: Any = None
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            if self._store is None:
                self._store = self._open()
            return self._store


class Outbox:
    """Saves runs on a thread of its own, retrying those that fail until they land.

    ``open_store`` gives the store to save into (it may raise: a database that cannot be opened
    yet is retried like one that refuses a write)."""

    def __init__(self, open_store: Callable[[], Any], retry_s: float = RETRY_S) -> None:
        self.open_store = open_store
        self.retry_s = retry_s
        self._queue: list[PendingSave] = []
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()

    def submit(
        self, request: CompareRequest, results: dict[str, GenerationResult], **fields: Any
    ) -> PendingSave:
        """Queue a finished comparison for saving; returns at once."""
        pending = PendingSave(request, dict(results), fields)
        with self._lock:
            self._queue.append(pending)
            self._lock.notify()
        return pending

    def waiting(self) -> list[PendingSave]:
        """Runs not saved yet, oldest first."""
        with self._lock:
            return list(self._queue)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._lock.wait()
                batch = list(self._queue)
            for pending in batch:
                if self._attempt(pending):
                    with self._lock:
                        self._queue.remove(pending)
            with self._lock:
                retry = [p for p in self._queue if not p.saved]
                if retry and len(retry) == len(self._queue):
                    self._lock.wait(self.retry_s)  # new submissions wake it early

    def _attempt(self, pending: PendingSave) -> bool:
        pending.attempts += 1
        try:
            store = self.open_store()
            pending.run_id = store.save_comparison(
                pending.request, pending.results, **pending.fields
            )
        except Exception as exc:  # any failure keeps the run for the next try
            pending.error = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
            pending.state = "retrying"
            log.warning("run not saved yet (attempt %d): %s", pending.attempts, pending.error)
            return False
        else:
            pending.state, pending.error = "saved", None
            return True
        finally:
            pending.settled.set()

    def wait_idle(self, timeout: float) -> bool:
        """Until nothing is queued (tests, and the CLI before it exits); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.waiting():
                return True
            time.sleep(0.05)
        return not self.waiting()
