"""Fair turns on local workers: round robin between people, places in line with an estimate, a
per-person cap; first as data structures, then with real tiny workers under load."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qwen_dash.engine import Event, ModelPool, QueueFull
from qwen_dash.engine.turns import FairQueue, RecentDurations, Waiting, describe_wait, ordinal
from qwen_dash.store import Store, open_store
from qwen_dash.store.outbox import Outbox, StoreOpener
from qwen_dash.views import compare as session
from tests.engine_fixtures import request_for

# ---- the line, as data ----------------------------------------------------------------------


def job(job_id: str, person: str) -> Waiting:
    return Waiting({"op": "generate", "id": job_id}, None, person)


def test_people_take_turns_whatever_each_one_sent() -> None:
    q = FairQueue()
    for job_id in ("a1", "a2", "a3", "b1", "c1", "c2"):
        q.add(job(job_id, job_id[0]))
    assert [j.id for j in q.order()] == ["a1", "b1", "c1", "a2", "c2", "a3"]
    assert q.pop().id == "a1"  # type: ignore[union-attr]
    q.add(job("d1", "d"))  # a newcomer waits one round, not behind everyone's backlog
    assert [j.id for j in q.order()] == ["b1", "c1", "a2", "d1", "c2", "a3"]
    assert q.remove("c1") is not None and q.remove("c1") is None
    assert q.remove("b1") is not None  # b's lane is empty: b leaves the ring
    popped = [q.pop().id for _ in range(len(q))]  # type: ignore[union-attr]
    assert popped == ["c2", "a2", "d1", "a3"] and q.pop() is None  # c keeps its place


def test_the_estimate_comes_from_recent_generation_times() -> None:
    d = RecentDurations(keep=3)
    assert d.wait(1, None) is None  # nothing timed yet: no figure is made up
    for seconds in (100.0, 10.0, 20.0, 30.0):  # only the last three count
        d.add(seconds)
    assert d.typical() == 20.0
    assert d.wait(1, running_for=5.0) == 15.0
    assert d.wait(3, running_for=25.0) == 40.0
    assert d.wait(2, None) == 20.0


def test_what_a_waiting_person_reads() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
    ]  # fmt: skip
    assert describe_wait(2, 40.4) == "2nd in line, about 40 s"
    assert describe_wait(1, None) == "1st in line"
    assert describe_wait(1, 0.2) == "1st in line, any moment now"
    assert describe_wait(5, 600) == "5th in line, about 10 min"


# ---- real workers under load ------------------------------------------------------------------

USERS = ("ana@team.example", "bo@team.example", "cy@team.example", "di@team.example")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'turns.sqlite3'}")
    yield s
    s.close()


def test_eight_sessions_of_four_people_take_turns_and_nothing_is_lost(
    tiny_pool: ModelPool, store: Store
) -> None:
    outbox = Outbox(StoreOpener(lambda: store))
    # Someone's long request holds both workers while the eight arrive at once.
    blocker = tiny_pool.compare(request_for("Hold the workers.", 96), person="zed@team.example")
    time.sleep(0.05)
    lives: dict[str, session.LiveComparison] = {}
    for user in USERS:  # each person sends twice, back to back: first come first served
        for tab in (1, 2):  # would serve ana, ana, bo, bo, ...
            name = f"{user.split('@')[0]}{tab}"
            lives[name] = session.start(
                tiny_pool,
                request_for(f"Session {name}: count to five.", 8),
                outbox,
                conversation=session.Conversation(),
                user=user,
            )
    comparisons = {name: live.comparison for name, live in lives.items()}
    started_at: dict[str, dict[str, float]] = {k: {} for k in tiny_pool.workers}
    events: dict[str, list[Event]] = {name: [] for name in comparisons}
    deadline = time.monotonic() + 300
    while not all(c.done for c in comparisons.values()):
        assert time.monotonic() < deadline, "the comparisons did not finish"
        for name, c in comparisons.items():
            for event in c.poll(0.005):
                events[name].append(event)
                if event.kind == "started":
                    started_at[event.model_key][name] = time.monotonic()
    blocker.wait(60)

    # Turns alternate between people on each worker: a1 b1 c1 d1, then a2 b2 c2 d2.
    for key in tiny_pool.workers:
        order = sorted(started_at[key], key=started_at[key].__getitem__)
        assert order == ["ana1", "bo1", "cy1", "di1", "ana2", "bo2", "cy2", "di2"], key
    # Each waiting session was told its place, down to 1st before it started.
    for name, evs in events.items():
        for key in tiny_pool.workers:
            mine = [e for e in evs if e.model_key == key]
            places = [e.position for e in mine if e.kind == "queued" and e.position is not None]
            assert places and places[-1] == 1, (name, key, places)
            # A newcomer's first request may go ahead of someone's second (turns); once all
            # eight are in line, places only count down.
            after_arrivals = places[places.index(max(places)) :]
            assert after_arrivals == sorted(after_arrivals, reverse=True)
            assert [e.kind for e in mine][-1] == "result"
    last = [e for e in events["di2"] if e.kind == "queued" and e.eta_s is not None]
    assert last, "once a generation was timed, waiting sessions get an estimate"
    # Nothing lost: every answer ok, every run logged under the person who sent it.
    for live in lives.values():
        assert all(r.status == "ok" for r in live.comparison.results.values())
        assert live.wait_logged(30) and live.run_id is not None
    runs = store.list_runs().runs
    assert len(runs) == 8
    by_user = {u: sorted(r.prompt for r in runs if r.user == u) for u in USERS}
    for user in USERS:
        name = user.split("@")[0]
        assert by_user[user] == [f"Session {name}{t}: count to five." for t in (1, 2)]
    assert all(w.waiting() == 0 for w in tiny_pool.workers.values())


def test_the_cap_refuses_one_persons_extra_requests_and_no_one_elses(
    tiny_pool: ModelPool,
) -> None:
    cap = tiny_pool.queue_cap
    mine = [
        tiny_pool.compare(request_for(f"Mine {i}.", 32), person="greedy@team.example")
        for i in range(cap)
    ]
    with pytest.raises(QueueFull, match=f"You already have {cap} requests waiting or running"):
        tiny_pool.compare(request_for("One too many."), person="greedy@team.example")
    other = tiny_pool.compare(request_for("Someone else."), person="other@team.example")
    results = other.wait(120)
    assert all(r.status == "ok" for r in results.values())
    # Someone else was served before the greedy person's third request finished (turns).
    assert not mine[-1].done
    for c in mine:
        c.wait(120)
    assert tiny_pool.active("greedy@team.example") == 0
    again = tiny_pool.compare(request_for("Now there is room."), person="greedy@team.example")
    assert all(r.status == "ok" for r in again.wait(120).values())


def test_a_request_cancelled_while_waiting_leaves_the_line_at_once(
    tiny_pool: ModelPool,
) -> None:
    running = tiny_pool.compare(request_for("Keep going.", 64), person="one@team.example")
    waiting = tiny_pool.compare(request_for("Never mind."), person="two@team.example")
    behind = tiny_pool.compare(request_for("After that."), person="three@team.example")
    deadline = time.monotonic() + 30
    seen: list[Any] = []
    while not any(e.kind == "queued" and e.position for e in seen):
        assert time.monotonic() < deadline
        seen += waiting.poll(0.05)
    waiting.cancel()
    results = waiting.wait(5)
    assert waiting.done or results
    assert {r.status for r in results.values()} == {"cancelled"}
    assert all("cancelled before it started" in (r.error or "") for r in results.values())
    assert all(r.status == "ok" for r in running.wait(120).values())
    assert all(r.status == "ok" for r in behind.wait(120).values())


def test_a_waiting_column_shows_its_place_and_a_countdown() -> None:
    column = session.ColumnState("m")
    column.apply(Event("m", "queued"))  # sent straight to a free worker: no place in line
    assert column.state == "queued" and column.place_in_line() is None
    column.apply(Event("m", "queued", position=2, eta_s=40.0))
    assert column.place_in_line(now=column.eta_at) == "2nd in line, about 40 s"
    assert column.place_in_line(now=column.eta_at + 15) == "2nd in line, about 25 s"
    assert column.place_in_line(now=column.eta_at + 99) == "2nd in line, any moment now"
    column.apply(Event("m", "started"))
    assert column.place_in_line() is None
