"""Nothing a user did is lost: a deleted or replaced SQLite file is detected and recreated, never
written into an unlinked file; a save the database refuses is kept and retried until it lands;
and "Logged" is only said of a run the database committed."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from qwen_dash.core.request import RequestError, Settings, validate_settings
from qwen_dash.core.specs import load_specs
from qwen_dash.store import Store, StoreError, open_store
from qwen_dash.store.database import describe, redact, resolve_url
from qwen_dash.store.outbox import Outbox, StoreOpener
from tests.conftest_db import make_comparison


def _count_in_file(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


def test_a_deleted_database_folder_is_recreated_and_the_run_lands_in_it(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    path = folder / "runs.sqlite3"
    store = open_store(f"sqlite:///{path}")
    try:
        store.save_comparison(*make_comparison("before"))
        shutil.rmtree(folder)  # mid-session: the pool still holds the old file open
        run_id = store.save_comparison(*make_comparison("after"))
        assert store.notice is not None and "deleted" in store.notice
        # The run is in the file the app will open next time, not in the unlinked one.
        assert path.exists() and _count_in_file(path) == 1
        reopened = open_store(f"sqlite:///{path}")
        run = reopened.get_run(run_id)
        assert run is not None and run.prompt == "after"
        reopened.close()
    finally:
        store.close()


def test_a_replaced_database_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = open_store(f"sqlite:///{path}")
    try:
        store.save_comparison(*make_comparison("in the old file"))
        other = open_store(f"sqlite:///{tmp_path / 'other.sqlite3'}")
        other.save_comparison(*make_comparison("from the other file"))
        other.close()
        (tmp_path / "other.sqlite3").replace(path)  # someone restores another file over it
        assert [r.prompt for r in store.list_runs().runs] == ["from the other file"]
        assert store.notice is not None and "replaced" in store.notice
    finally:
        store.close()


def test_a_save_the_database_refuses_is_kept_retried_and_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWEN_DASH_SQLITE_BUSY_MS", "100")
    path = tmp_path / "runs.sqlite3"
    store = open_store(f"sqlite:///{path}")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another program holds the database: writes are refused
    outbox = Outbox(StoreOpener(lambda: store), retry_s=0.2)
    try:
        pending = outbox.submit(*make_comparison("kept while locked"), kind="ui", user="ana")
        assert pending.settled.wait(10)
        assert not pending.saved and pending.run_id is None
        assert pending.error is not None and "locked" in pending.error
        time.sleep(0.6)
        assert pending.attempts >= 2 and outbox.waiting() == [pending]  # still kept, retried
        blocker.execute("ROLLBACK")  # the database takes writes again
        assert outbox.wait_idle(10)
        assert pending.saved and pending.run_id is not None
        run = store.get_run(pending.run_id)
        assert run is not None and run.prompt == "kept while locked" and run.user == "ana"
    finally:
        blocker.close()
        store.close()


def test_a_database_that_cannot_be_opened_yet_is_retried(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'later' / 'runs.sqlite3'}"
    ready = {"now": False}

    def opener() -> Store:
        if not ready["now"]:
            raise StoreError("the database server is not up yet")
        return open_store(url)

    outbox = Outbox(StoreOpener(opener), retry_s=0.1)
    pending = outbox.submit(*make_comparison("waits for the database"))
    assert pending.settled.wait(10) and not pending.saved
    assert pending.error == "the database server is not up yet"
    ready["now"] = True
    assert outbox.wait_idle(10) and pending.saved


def test_no_secret_of_a_database_url_is_shown() -> None:
    url = resolve_url(
        "postgresql+psycopg://ana:s3cret@db.internal/runs?password=q-s3cret&sslpassword=k3y"
        "&sslmode=require&application_name=dash"
    )
    shown = describe(url)
    for secret in ("s3cret", "q-s3cret", "k3y"):
        assert secret not in shown
    assert "sslmode=require" in shown and "application_name=dash" in shown
    assert redact("auth failed for ana with s3cret and k3y", url) == (
        "auth failed for ana with *** and ***"
    )


@pytest.mark.parametrize(
    "bad",
    ["postgresql://ana:s3cret@host:notaport/db", "::not a url s3cret::"],
)
def test_a_url_that_cannot_be_parsed_is_not_echoed(bad: str) -> None:
    with pytest.raises(StoreError) as raised:
        resolve_url(bad)
    assert "s3cret" not in str(raised.value) and "cannot be read" in str(raised.value)


@pytest.mark.parametrize(
    ("field", "value", "wanted"),
    [
        ("top_k", 2.5, "whole number"),
        ("seed", 1.5, "whole number"),
        ("max_new_tokens", 8.0, "whole number"),
        ("max_new_tokens", None, "whole number"),
        ("top_k", True, "whole number"),
        ("temperature", float("nan"), "must be a number"),
        ("temperature", "0.7", "must be a number"),
        ("temperature", 1000.0, "between 0 and 2"),
    ],
)
def test_settings_of_the_wrong_kind_are_refused_not_replaced(
    field: str, value: object, wanted: str
) -> None:
    spec = load_specs()["qwen3-0.6b"]
    settings = Settings(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(RequestError) as raised:
        validate_settings(settings, spec)
    assert wanted in str(raised.value)
