"""What every part of the store shares: the engine, sessions, and the dialect's SQL helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import inspect
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from qwen_dash.store.aggregates import SqlDialect
from qwen_dash.store.database import WRITE_OPTION, describe, make_engine
from qwen_dash.store.filters import Conditions
from qwen_dash.store.rollups import TrendRollups
from qwen_dash.store.schema import Run


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
        has_fts = self.dialect == "sqlite" and inspect(self.engine).has_table("runs_fts")
        self.conditions = Conditions(self.dialect, has_fts)
        self.sql = SqlDialect(self.dialect)
        # Trend rollups on the dialects with an upsert; others compute trends directly.
        self.rollups = TrendRollups(self.sql) if self.dialect in ("sqlite", "postgresql") else None

    def __repr__(self) -> str:
        return f"Store({describe(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def add_run(self, session: Session, run: Run) -> int:
        """Add ``run`` in the caller's write transaction (``writing()``); returns its id."""
        session.add(run)
        session.flush()
        if self.rollups is not None:
            self.rollups.mark_run(session, run)
        return run.id

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in one write transaction: committed on success, rolled back on error."""
        with self._write.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session
