"""Trend rollups: ``Store.trends`` from the rollup rows equals the direct computation, always."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from qwen_dash.bench.store import fill
from qwen_dash.store import RunFilters, Store, TrendRow, build_run, open_store
from qwen_dash.store.database import resolve_url, upgrade
from qwen_dash.store.rollups import plan
from qwen_dash.store.schema import TrendRollup
from tests.conftest_db import MODEL_A, MODEL_B, make_comparison

T0 = datetime(2025, 3, 1, 22, 30, tzinfo=UTC)
DAY0 = datetime(2025, 3, 1, tzinfo=UTC)
DEFAULT_KEYS = ("model_key", "source", "mode")

# (filters, bucket, keys) that the rollup answers: the Trends page's queries and their kin.
ROLLUP_QUERIES: list[tuple[RunFilters, str, tuple[str, ...]]] = [
    (RunFilters(), "day", DEFAULT_KEYS),
    (RunFilters(), "hour", DEFAULT_KEYS),
    (RunFilters(thinking=True), "day", DEFAULT_KEYS),
    (RunFilters(thinking=False, kind="suite"), "hour", DEFAULT_KEYS),
    (RunFilters(models=(MODEL_A,)), "day", DEFAULT_KEYS),
    (RunFilters(sources=("hub",), mode="isolated"), "hour", DEFAULT_KEYS),
    (RunFilters(since=DAY0 + timedelta(days=1)), "day", DEFAULT_KEYS),
    (RunFilters(since=T0.replace(minute=0), until=DAY0 + timedelta(days=2)), "hour", DEFAULT_KEYS),
    (RunFilters(), "day", (*DEFAULT_KEYS, "thinking", "kind")),
    (RunFilters(kind="ui"), "hour", ("mode", "thinking", "source", "model_key")),
    (RunFilters(models=(MODEL_B,), sources=("twin",), mode="concurrent"), "day", ("thinking",)),
    (RunFilters(models=(MODEL_A,), sources=("hub", "twin")), "day", ("source", "mode")),
]
# Queries it must leave to the direct computation.
DIRECT_QUERIES: list[tuple[RunFilters, str, tuple[str, ...]]] = [
    (RunFilters(text="prompt"), "day", DEFAULT_KEYS),
    (RunFilters(tag="t"), "day", DEFAULT_KEYS),
    (RunFilters(user="ann"), "hour", DEFAULT_KEYS),
    (RunFilters(since=T0), "hour", DEFAULT_KEYS),  # not on an hour boundary
    (RunFilters(until=T0.replace(minute=0)), "day", DEFAULT_KEYS),  # not on a day boundary
    (RunFilters(), "day", ("model_key",)),  # sources and modes would share a series
    (RunFilters(models=(MODEL_A, MODEL_B)), "day", ("source", "mode")),
]


def save(store: Store, i: int, at: datetime, **kw: Any) -> int:
    """A run whose metrics vary with ``i``; kw: mode, thinking, kind, source, status_b, user."""
    mode, thinking = kw.get("mode", "concurrent"), kw.get("thinking", False)
    source = kw.get("source", "twin")
    a = {"source": source, "ttft_ms": 10.0 + (i * 7) % 23, "n_out": 5 + i % 9}
    b = {"source": source, "ttft_ms": 30.0 + (i * 5) % 17, "status": kw.get("status_b", "ok")}
    if i % 4 == 0:
        b["decode_tps"] = None  # a metric some answers lack
    request, results = make_comparison(f"prompt {i}", mode=mode, thinking=thinking, a=a, b=b)
    return store.save_comparison(
        request, results, created_at=at, kind=kw.get("kind", "ui"), user=kw.get("user"), tags=["t"]
    )


def save_mix(store: Store, n: int, start: int = 0) -> list[int]:
    """``n`` runs over two days and several hours, both sources and modes, both thinking."""
    out = []
    for i in range(start, start + n):
        out.append(
            save(
                store,
                i,
                T0 + timedelta(minutes=41 * i),
                mode="isolated" if i % 3 == 0 else "concurrent",
                thinking=i % 2 == 0,
                kind="suite" if i % 5 == 0 else "ui",
                source="hub" if i % 4 == 1 else "twin",
                status_b="error" if i % 7 == 3 else "ok",
            )
        )
    return out


def assert_same(got: Sequence[TrendRow], want: Sequence[TrendRow]) -> None:
    assert [(r.bucket, r.key, r.count) for r in got] == [(r.bucket, r.key, r.count) for r in want]
    for g, w in zip(got, want, strict=True):
        assert g.stats.keys() == w.stats.keys()
        for name, value in w.stats.items():
            if value is None:
                assert g.stats[name] is None, name
            else:
                assert g.stats[name] == pytest.approx(value, rel=1e-9), name


def assert_rollup_equals_direct(store: Store) -> None:
    for filters, bucket, keys in ROLLUP_QUERIES:
        assert plan(filters, bucket, keys) is not None, (filters, bucket, keys)
        got = store.trends(filters, bucket, keys)  # type: ignore[arg-type]
        assert_same(got, store.trends_direct(filters, bucket, keys))  # type: ignore[arg-type]
    assert store.trends()  # not trivially equal: there is something to compare


def dirty_rows(store: Store) -> int:
    with store.reading() as session:
        stmt = select(func.count()).select_from(TrendRollup).where(TrendRollup.dirty.is_(True))
        return session.scalar(stmt) or 0


def test_rollup_equals_direct_after_saves_and_deletes(store: Store) -> None:
    ids = save_mix(store, 40)
    assert dirty_rows(store) > 0
    assert_rollup_equals_direct(store)
    assert dirty_rows(store) == 0

    # Deletes, some emptying a whole series (all isolated hub runs), then more saves.
    for run_id, i in zip(ids, range(40), strict=True):
        if i % 6 == 0 or (i % 3 == 0 and i % 4 == 1):
            assert store.delete_run(run_id)
    assert dirty_rows(store) > 0
    assert_rollup_equals_direct(store)
    save_mix(store, 10, start=100)
    assert_rollup_equals_direct(store)


def test_a_run_saved_after_a_trend_query_shows_in_the_next(store: Store) -> None:
    save(store, 1, T0)
    (before,) = store.trends(RunFilters(models=(MODEL_A,)))
    save(store, 2, T0 + timedelta(minutes=5))
    (after,) = store.trends(RunFilters(models=(MODEL_A,)))
    assert (before.count, after.count) == (1, 2)
    assert after["ttft_ms_p50"] == pytest.approx((10.0 + 7 + 10.0 + 14) / 2)
    store.delete_run(1)
    (last,) = store.trends(RunFilters(models=(MODEL_A,)))
    assert last.count == 1 and last["ttft_ms_p50"] == pytest.approx(24.0)
    store.delete_run(2)
    assert store.trends() == []


def test_the_rollup_answers_what_it_can_and_leaves_the_rest_direct(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_mix(store, 12)
    expected = {i: store.trends_direct(*q) for i, q in enumerate(DIRECT_QUERIES)}  # type: ignore[arg-type]

    def no_direct(*_: object) -> list[TrendRow]:
        raise AssertionError("computed directly")

    monkeypatch.setattr(store, "trends_direct", no_direct)
    for filters, bucket, keys in ROLLUP_QUERIES:
        store.trends(filters, bucket, keys)  # type: ignore[arg-type]
    monkeypatch.undo()
    for i, (filters, bucket, keys) in enumerate(DIRECT_QUERIES):
        assert plan(filters, bucket, keys) is None
        assert_same(store.trends(filters, bucket, keys), expected[i])  # type: ignore[arg-type]


def test_concurrent_saves_and_trend_queries_agree_with_direct(store: Store) -> None:
    save_mix(store, 8)
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(w: int) -> None:
        try:
            for i in range(12):
                n = 1000 + 100 * w + i
                save(store, n, T0 + timedelta(minutes=17 * i + w), thinking=i % 2 == 0)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    def reader() -> None:
        try:
            while not done.is_set():
                store.trends(bucket="hour")
                store.trends(RunFilters(thinking=True))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert not errors, errors[0]
    assert store.count_runs() == 8 + 4 * 12
    assert sum(r.count for r in store.trends(RunFilters(models=(MODEL_A,)))) == 8 + 4 * 12
    assert_rollup_equals_direct(store)


def test_rows_written_around_the_store_are_marked_by_the_bench_fill(store: Store) -> None:
    fill(store, 300)
    assert dirty_rows(store) > 0
    assert_same(store.trends(), store.trends_direct(RunFilters(), "day", DEFAULT_KEYS))
    hourly = store.trends(bucket="hour", keys=(*DEFAULT_KEYS, "thinking"))
    direct = store.trends_direct(RunFilters(), "hour", (*DEFAULT_KEYS, "thinking"))
    assert_same(hourly, direct)
    assert sum(r.count for r in hourly) > 500


def _insert_at_0002(db_url: str) -> None:
    """Runs and generations as version 0002 of the app wrote them, in three hours of two days."""
    sqlite = db_url.startswith("sqlite")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        for i, hour in enumerate((3, 3, 14, 27)):
            when = datetime(2025, 1, 2, tzinfo=UTC) + timedelta(hours=hour, minutes=i)
            stamp = when.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else when.isoformat()
            params = {"id": i + 1, "t": stamp, "think": i % 2 == 1}
            conn.execute(
                text(
                    "INSERT INTO runs (id, created_at, kind, mode, thinking, prompt, messages, "
                    "settings, meta, turn, search_text) VALUES (:id, :t, 'ui', 'concurrent', "
                    ":think, 'old', '[]', '{}', '{}', 0, 'old')"
                ),
                params,
            )
            for pos, model in enumerate((MODEL_A, MODEL_B)):
                conn.execute(
                    text(
                        "INSERT INTO generations (run_id, position, created_at, model_key, "
                        "hf_id, source, status, mode, text, settings, environment, ttft_ms, "
                        "n_out) VALUES (:id, :pos, :t, :m, 'Qwen/x', 'hub', :status, "
                        "'concurrent', 'old', '{}', '{}', :ttft, :n)"
                    ),
                    params
                    | {
                        "pos": pos,
                        "m": model,
                        "status": "error" if (i, pos) == (1, 1) else "ok",
                        "ttft": 10.0 * (i + 1) + pos,
                        "n": 3 + i,
                    },
                )
    engine.dispose()


def test_a_database_at_0002_gets_its_rollups_built(db_url: str) -> None:
    upgrade(resolve_url(db_url), "0002")
    _insert_at_0002(db_url)
    store = open_store(db_url)  # migrates to 0003, which marks every unit dirty
    try:
        assert dirty_rows(store) == 2 * (3 + 2)  # per model: 3 hour units, 2 day units
        day = store.trends(RunFilters(models=(MODEL_A,)))
        assert [(r.bucket.day, r.count) for r in day] == [(2, 3), (3, 1)]
        assert day[0]["ttft_ms_p50"] == pytest.approx(20.0)
        assert dirty_rows(store) == 2 * 3  # the hour rollups are built when asked for
        assert_rollup_equals_direct(store)
        assert dirty_rows(store) == 0
    finally:
        store.close()


def test_a_save_in_flight_during_a_refresh_is_not_lost(store: Store) -> None:
    """A refresh that starts while a save of the same bucket is uncommitted must not clear
    that save's mark (PostgreSQL: the rollup lock; SQLite: the write lock)."""
    save(store, 1, T0)
    store.trends()
    save(store, 2, T0 + timedelta(minutes=1))  # committed: the unit is dirty
    result: list[list[TrendRow]] = []
    with store.writing() as session:  # a save in flight, same unit
        request, results = make_comparison("in flight", a={"ttft_ms": 500.0})
        run = build_run(request, results, created_at=T0 + timedelta(minutes=2))
        store.add_run(session, run)
        refresher = threading.Thread(target=lambda: result.append(store.trends()))
        refresher.start()
        time.sleep(0.5)  # the refresh is waiting on this transaction now
    refresher.join()
    assert_same(store.trends(), store.trends_direct(RunFilters(), "day", DEFAULT_KEYS))
    assert store.trends(RunFilters(models=(MODEL_A,)))[0].count == 3
