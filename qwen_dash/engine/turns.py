"""Fair turns on one local worker: the jobs waiting for it, one lane per person, served round robin.

A local worker answers one generation at a time. Its handle (``worker_handle``) keeps the jobs that
wait here, in the dashboard, and hands the worker the next one only when it is free, so that the
order is decided here and not first come, first served in the worker's stdin:

- each person has a lane (their jobs, oldest first); the next job is the first of the next lane
  in a ring of the people waiting, so people take turns whatever each one sent;
- every waiting job knows its place in line and an estimate of its wait, from the worker's recent
  generation times (:class:`RecentDurations`).

Remote backends (an OpenAI-compatible server) batch requests themselves and are never queued here:
only ``WorkerHandle`` uses this. Pure data structures, no threads: the handle holds the lock.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Callback = Callable[[dict[str, Any]], None]
RECENT = 8  # generation times the estimate is made from
ANONYMOUS = ""  # the lane of requests that name no person (a local, single-user dashboard)


@dataclass
class Waiting:
    """One job waiting for the worker, with whom it is for and how to report back."""

    command: dict[str, Any]
    callback: Callback | None
    person: str
    told: tuple[int, int | None] | None = None  # the (position, eta) last reported

    @property
    def id(self) -> str:
        return str(self.command["id"])


class FairQueue:
    """Waiting jobs in lanes per person; :meth:`pop` serves the lanes round robin."""

    def __init__(self) -> None:
        self._lanes: dict[str, deque[Waiting]] = {}
        self._ring: deque[str] = deque()  # people with waiting jobs, whose turn is next first

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def add(self, job: Waiting) -> None:
        """A new job goes to the end of its person's lane; a new person, to the end of the ring."""
        lane = self._lanes.get(job.person)
        if lane is None:
            lane = self._lanes[job.person] = deque()
            self._ring.append(job.person)
        lane.append(job)

    def pop(self) -> Waiting | None:
        """The job whose turn it is: the first of the next person's lane. That person goes to
        the end of the ring if they have more waiting."""
        if not self._ring:
            return None
        person = self._ring.popleft()
        lane = self._lanes[person]
        job = lane.popleft()
        if lane:
            self._ring.append(person)
        else:
            del self._lanes[person]
        return job

    def remove(self, job_id: str) -> Waiting | None:
        """Take a waiting job out (cancelled before its turn); None if it is not waiting."""
        for person, lane in self._lanes.items():
            for job in lane:
                if job.id == job_id:
                    lane.remove(job)
                    if not lane:
                        del self._lanes[person]
                        self._ring.remove(person)
                    return job
        return None

    def drain(self) -> list[Waiting]:
        """Every waiting job, taken out (the worker cannot run them)."""
        jobs = list(self.order())
        self._lanes.clear()
        self._ring.clear()
        return jobs

    def order(self) -> Iterator[Waiting]:
        """The waiting jobs in the order they will run if nobody else sends one."""
        lanes = [list(self._lanes[person]) for person in self._ring]
        for depth in range(max((len(lane) for lane in lanes), default=0)):
            for lane in lanes:
                if depth < len(lane):
                    yield lane[depth]


class RecentDurations:
    """How long the worker's recent jobs took, from hand-over to result: the wait estimate."""

    def __init__(self, keep: int = RECENT) -> None:
        self._recent: deque[float] = deque(maxlen=keep)

    def add(self, seconds: float) -> None:
        self._recent.append(max(0.0, seconds))

    def typical(self) -> float | None:
        """The median of the recent jobs, or None before the first one finished."""
        return statistics.median(self._recent) if self._recent else None

    def wait(self, position: int, running_for: float | None) -> float | None:
        """Seconds until the job at ``position`` (1 = next) starts: what the running job has
        left, then one typical job per job ahead. None when nothing has been timed yet."""
        typical = self.typical()
        if typical is None:
            return None
        left = 0.0 if running_for is None else max(0.0, typical - running_for)
        return left + (position - 1) * typical


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe_wait(position: int, eta_s: float | None) -> str:
    """What a person waiting reads: "2nd in line, about 40 s"."""
    if eta_s is None:
        return f"{ordinal(position)} in line"
    if eta_s < 1:
        return f"{ordinal(position)} in line, any moment now"
    if eta_s < 90:
        return f"{ordinal(position)} in line, about {round(eta_s)} s"
    return f"{ordinal(position)} in line, about {round(eta_s / 60)} min"
