"""Ownership and audit in the store: every change records who made it; a delete is soft (who and
when), hides the run from lists, filters, trends and exports unless asked, and can be undone."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from qwen_dash.store import RunFilters, Store, StoreError
from tests.conftest_db import MODEL_A, MODEL_B, make_comparison

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def save(store: Store, prompt: str, user: str, at: datetime = T0, **kw: object) -> int:
    request, results = make_comparison(prompt)
    return store.save_comparison(request, results, user=user, created_at=at, **kw)  # type: ignore[arg-type]


def ids(store: Store, filters: RunFilters | None = None) -> list[int]:
    return [r.id for r in store.list_runs(filters).runs]


def test_every_change_records_who_made_it(store: Store) -> None:
    run_id = save(store, "owned", "ana@example.com", tags=["first"])
    store.set_tags(run_id, ["first", "second"], actor="bo@example.com")
    store.set_tags(run_id, ["first", "second"], actor="bo@example.com")  # no change, no record
    store.set_notes(run_id, "looks off", actor="cy@example.com")
    store.add_vote(run_id, "a", model_a=MODEL_A, model_b=MODEL_B, voter="di@example.com")
    store.delete_run(run_id, actor="admin@example.com")
    store.restore_run(run_id, actor="admin@example.com")

    log = store.audit_log(run_id=run_id)
    got = [(e.action, e.actor) for e in reversed(log)]
    assert got == [
        ("run.save", "ana@example.com"),
        ("run.tags", "bo@example.com"),
        ("run.notes", "cy@example.com"),
        ("vote.add", "di@example.com"),
        ("run.delete", "admin@example.com"),
        ("run.restore", "admin@example.com"),
    ]
    by_action = {e.action: e for e in log}
    assert by_action["run.tags"].detail == {"before": ["first"], "after": ["first", "second"]}
    assert by_action["run.notes"].detail == {"before": None, "after": "looks off"}
    assert by_action["vote.add"].detail["winner"] == "a"
    assert by_action["run.delete"].detail == {"owner": "ana@example.com"}
    assert by_action["run.restore"].detail["deleted_by"] == "admin@example.com"
    assert all(e.at.tzinfo is not None for e in log)
    assert [e.action for e in store.audit_log(actor="bo@example.com")] == ["run.tags"]
    assert len(store.audit_log(action="run.save")) == 1


def test_a_soft_delete_hides_the_run_everywhere_until_restored(store: Store) -> None:
    gone = save(store, "secret plan alpha", "ana@example.com", tags=["plan"])
    kept = save(store, "public beta", "bo@example.com", at=T0 + timedelta(minutes=1))
    store.trends()  # rollups computed before the delete must not keep counting it
    assert store.delete_run(gone, actor="ana@example.com") is True

    assert ids(store) == [kept] and store.count_runs() == 1
    assert ids(store, RunFilters(text="alpha")) == []
    assert ids(store, RunFilters(tag="plan")) == []
    assert store.filter_options()["tags"] == []
    assert store.get_run(gone) is None
    deleted = store.get_run(gone, include_deleted=True)
    assert deleted is not None and deleted.deleted and deleted.deleted_by == "ana@example.com"
    assert ids(store, RunFilters(deleted=True)) == [gone]
    assert sorted(ids(store, RunFilters(deleted=None))) == sorted([gone, kept])
    assert sum(row.count for row in store.trends()) == 2  # one run, two models
    assert sum(row.count for row in store.trends_direct()) == 2
    assert len(store.generation_figures()) == 2
    assert len(store.paired_differences(MODEL_A, MODEL_B)) == 1
    out = io.StringIO()
    assert store.export("jsonl", None, out) == 1
    assert json.loads(out.getvalue())["id"] == kept
    out = io.StringIO()
    assert store.export("jsonl", RunFilters(deleted=None), out) == 2
    with pytest.raises(StoreError, match="no run"):  # a deleted run cannot be edited
        store.set_notes(gone, "x", actor="ana@example.com")

    assert store.restore_run(gone, actor="root@example.com") is True
    assert store.restore_run(gone, actor="root@example.com") is False
    assert sorted(ids(store)) == sorted([gone, kept])
    assert sum(row.count for row in store.trends()) == 4
    run = store.get_run(gone)
    assert run is not None and run.deleted_at is None and run.deleted_by is None
