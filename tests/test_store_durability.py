"""Durability: concurrent writers lose nothing; unusable databases fail clearly at open."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qwen_dash.store import RunFilters, Store, StoreError, open_store
from tests.conftest_db import make_comparison

REPO = Path(__file__).resolve().parent.parent
WRITERS_EACH = 4  # threads, and as many processes
RUNS_EACH = 250

WRITER = """
import sys
from qwen_dash.store import open_store
from tests.conftest_db import make_comparison
url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_store(url)
for i in range(n):
    request, results = make_comparison(f"{who} run {i}")
    store.save_comparison(request, results, kind="suite", user=who, tags=[who])
store.close()
"""


def _write_in_thread(url: str, who: str) -> int:
    store = open_store(url)
    try:
        for i in range(RUNS_EACH):
            request, results = make_comparison(f"{who} run {i}")
            store.save_comparison(request, results, kind="suite", user=who, tags=[who])
    finally:
        store.close()
    return RUNS_EACH


def test_concurrent_threads_and_processes_lose_no_run(db_url: str) -> None:
    open_store(db_url).close()  # created and migrated, as the app does at start
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db_url, f"proc{i}", str(RUNS_EACH)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WRITERS_EACH)
    ]
    with ThreadPoolExecutor(WRITERS_EACH) as pool:
        futures = [pool.submit(_write_in_thread, db_url, f"thread{i}") for i in range(4)]
        written = [f.result() for f in futures]  # re-raises any error, "locked" included
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        if p.returncode != 0:
            errors.append(err)
    assert not errors, errors[0]
    assert written == [RUNS_EACH] * WRITERS_EACH

    store = open_store(db_url)
    try:
        total = 2 * WRITERS_EACH * RUNS_EACH
        assert store.count_runs() == total
        for who in [f"proc{i}" for i in range(4)] + [f"thread{i}" for i in range(4)]:
            assert store.count_runs(RunFilters(user=who, tag=who)) == RUNS_EACH
        with store.reading() as session:
            from sqlalchemy import func, select

            from qwen_dash.store.schema import Generation

            assert session.scalar(select(func.count()).select_from(Generation)) == 2 * total
    finally:
        store.close()


def test_a_folder_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StoreError, match="Cannot create the database folder"):
        open_store(f"sqlite:///{blocker / 'db' / 'qwen_dash.sqlite3'}")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder another user can enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="qwen-dash-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


OTHER_USER = """
import os, sys
import sqlalchemy.dialects.sqlite
from qwen_dash.store import StoreError, open_store
if os.geteuid() == 0:  # root may write anywhere: become nobody, after the imports
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
try:
    open_store(sys.argv[1])
except StoreError as e:
    print(e)
    sys.exit(3)
"""


def _open_as_other_user(url: str) -> subprocess.CompletedProcess[str]:
    """open_store in a process of a user without write access to ``url``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", OTHER_USER, url]
    return subprocess.run(cmd, env=env, cwd="/", capture_output=True, text=True)


def test_a_read_only_database_file_is_a_clear_error_at_open(shared_tmp: Path) -> None:
    path = shared_tmp / "qwen_dash.sqlite3"
    url = f"sqlite:///{path}"
    store = open_store(url)
    request, results = make_comparison("kept")
    store.save_comparison(request, results)
    store.close()
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)

    out = _open_as_other_user(url)
    assert out.returncode == 3, out.stderr
    assert "read-only" in out.stdout and str(path) in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_a_folder_without_write_access_is_a_clear_error_at_open(shared_tmp: Path) -> None:
    folder = shared_tmp / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    out = _open_as_other_user(f"sqlite:///{folder / 'new.sqlite3'}")
    assert out.returncode == 3, out.stderr
    assert "not writable" in out.stdout and str(folder) in out.stdout


def test_an_unreachable_server_is_a_clear_error_at_open() -> None:
    with pytest.raises(StoreError, match="Is the server running") as info:
        open_store("postgresql+psycopg://someone:secret@127.0.0.1:1/nowhere")
    assert "secret" not in str(info.value)


def test_a_bad_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWEN_DASH_DB_URL", "not a url")
    with pytest.raises(StoreError, match="QWEN_DASH_DB_URL"):
        open_store()


def test_store_is_usable_from_many_threads_at_once(store: Store) -> None:
    """Reads while writing, as several browser sessions do."""

    def work(i: int) -> int:
        request, results = make_comparison(f"mixed {i}")
        run_id = store.save_comparison(request, results)
        assert store.get_run(run_id) is not None
        return len(store.list_runs().runs)

    with ThreadPoolExecutor(8) as pool:
        assert all(n >= 1 for n in pool.map(work, range(64)))
    assert store.count_runs() == 64


@pytest.mark.parametrize(("setting", "expected"), [(None, 1), ("NORMAL", 1), ("full", 2)])
def test_sqlite_syncs_normal_unless_full_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None, expected: int
) -> None:
    """WAL with synchronous=NORMAL (1) by default; QWEN_DASH_SQLITE_SYNCHRONOUS=FULL gives 2."""
    if setting is None:
        monkeypatch.delenv("QWEN_DASH_SQLITE_SYNCHRONOUS", raising=False)
    else:
        monkeypatch.setenv("QWEN_DASH_SQLITE_SYNCHRONOUS", setting)
    store = open_store(f"sqlite:///{tmp_path / 'sync.sqlite3'}")
    try:
        with store.reading() as session:
            assert session.connection().exec_driver_sql("PRAGMA synchronous").scalar() == expected
            mode = session.connection().exec_driver_sql("PRAGMA journal_mode").scalar()
            assert mode == "wal"
    finally:
        store.close()


def test_an_unknown_synchronous_setting_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWEN_DASH_SQLITE_SYNCHRONOUS", "OFF")
    with pytest.raises(StoreError, match="FULL or NORMAL"):
        open_store(f"sqlite:///{tmp_path / 'sync.sqlite3'}")
