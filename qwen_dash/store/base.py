"""What every part of the store shares: the engine, sessions, and the dialect's SQL helpers; and,
for SQLite, the guard that never writes into a database file that was deleted or replaced."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from qwen_dash.store.aggregates import SqlDialect
from qwen_dash.store.database import (
    WRITE_OPTION,
    StoreError,
    check_sqlite_location,
    describe,
    make_engine,
    migrate_if_needed,
    sqlite_path,
)
from qwen_dash.store.filters import Conditions
from qwen_dash.store.rollups import TrendRollups
from qwen_dash.store.runs import utcnow
from qwen_dash.store.schema import AuditEvent, Run

FileId = tuple[int, int]  # (device, inode)


def _file_id(path: Path) -> FileId | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


class StoreBase:
    """A database connection pool, read and write sessions, and per-dialect SQL builders."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self.conditions = Conditions(self.dialect, self._has_fts())
        self.sql = SqlDialect(self.dialect)
        # Trend rollups on the dialects with an upsert; others compute trends directly.
        self.rollups = TrendRollups(self.sql) if self.dialect in ("sqlite", "postgresql") else None
        self.path = sqlite_path(url)
        self._file = _file_id(self.path) if self.path is not None else None
        self._wal: FileId | None = None  # our own write-ahead log, as of our last write
        self._file_lock = threading.Lock()
        self.notice: str | None = None  # what happened to the database that a user should know

    def _has_fts(self) -> bool:
        return self.dialect == "sqlite" and inspect(self.engine).has_table("runs_fts")

    def __repr__(self) -> str:
        return f"Store({describe(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    # ---- the SQLite file's identity --------------------------------------------------------

    def _same_file(self) -> bool:
        return self.path is None or _file_id(self.path) == self._file

    def ensure_file(self) -> None:
        """SQLite: if the database file was deleted or replaced since it was opened, say so and
        open the file now at that path (creating and migrating it), so that nothing is written
        into a file no one will read again. Other databases: nothing to do."""
        if self._same_file():
            return
        with self._file_lock:
            if self._same_file():
                return
            assert self.path is not None
            gone = "deleted" if _file_id(self.path) is None else "replaced"
            self.engine.dispose()  # the pooled connections hold the old file open
            self._drop_stale_wal()
            check_sqlite_location(self.path)
            migrate_if_needed(self.engine)
            self.conditions = Conditions(self.dialect, self._has_fts())
            self._file = _file_id(self.path)
            when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            self.notice = (
                f"The database file {self.path} was {gone} while the app ran ({when}). It was "
                "created again; runs logged before then are not in it."
            )

    def _wal_paths(self) -> tuple[Path, Path]:
        assert self.path is not None
        return Path(f"{self.path}-wal"), Path(f"{self.path}-shm")

    def _note_wal(self) -> None:
        if self.path is not None:
            self._wal = _file_id(self._wal_paths()[0])

    def _drop_stale_wal(self) -> None:
        """SQLite keeps the old file's write-ahead log when the file is unlinked under it; the
        next file opened at that path would replay it. Remove it if it is still ours (the log
        we last wrote through), never another process's log of the new file."""
        wal, shm = self._wal_paths()
        if self._wal is not None and _file_id(wal) == self._wal:
            wal.unlink(missing_ok=True)
            shm.unlink(missing_ok=True)
        self._wal = None

    # ---- sessions --------------------------------------------------------------------------

    def add_run(self, session: Session, run: Run) -> int:
        """Add ``run`` in the caller's write transaction (``writing()``); returns its id."""
        session.add(run)
        session.flush()
        if self.rollups is not None:
            self.rollups.mark_run(session, run)
        self._audit(session, run.user, "run.save", run.id, {"kind": run.kind})
        return run.id

    @staticmethod
    def _audit(
        session: Session, actor: str | None, action: str, run_id: int | None, detail: Any
    ) -> None:
        """Record one change, in the transaction that makes it."""
        session.add(
            AuditEvent(at=utcnow(), actor=actor, action=action, run_id=run_id, detail=detail)
        )

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in one write transaction: committed on success, rolled back on error.

        SQLite: the file is checked before the write and again after the commit; a write that
        went into a file deleted or replaced meanwhile raises StoreError (the caller keeps the
        run and tries again, into the file that is there now)."""
        self.ensure_file()
        with self._write.begin() as session:
            yield session
        self._note_wal()
        if not self._same_file():
            raise StoreError(
                "The database file was deleted or replaced while saving; the save did not land."
            )

    @contextmanager
    def reading(self) -> Iterator[Session]:
        self.ensure_file()
        with self._read() as session:
            yield session
