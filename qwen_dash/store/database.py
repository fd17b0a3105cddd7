"""Where the database is, how to connect to it, and bringing it up to date.

Default: SQLite at ``db/qwen_dash.sqlite3`` in the repository (created on first use), in WAL mode
with synchronous=NORMAL (``QWEN_DASH_SQLITE_SYNCHRONOUS=FULL`` for power-loss durability), with a
busy timeout, and with write transactions that begin immediately (``BEGIN IMMEDIATE``), so
that concurrent writers queue on the lock instead of failing half-way. Any SQLAlchemy URL through
``QWEN_DASH_DB_URL``; PostgreSQL (``postgresql+psycopg://...``) runs the same code.

Opening a database migrates it to the newest schema (Alembic, ``db/``) under a lock, so that the app
and the CLI opening the same old file at once migrate it once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from qwen_dash.core.metrics import percentile

REPO_DIR = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = REPO_DIR / "db"
DEFAULT_DB_PATH = MIGRATIONS_DIR / "qwen_dash.sqlite3"
ENV_URL = "QWEN_DASH_DB_URL"
SQLITE_BUSY_TIMEOUT_MS = 60_000  # how long a write waits for another writer's lock
ENV_SQLITE_BUSY = "QWEN_DASH_SQLITE_BUSY_MS"


def sqlite_busy_ms() -> int:
    """``$QWEN_DASH_SQLITE_BUSY_MS``, else SQLITE_BUSY_TIMEOUT_MS."""
    raw = os.environ.get(ENV_SQLITE_BUSY, "")
    return int(raw) if raw.isascii() and raw.isdigit() else SQLITE_BUSY_TIMEOUT_MS


# SQLite's synchronous setting. NORMAL (the default, SQLite's recommendation for WAL): every
# commit is atomic and consistent and survives an app crash; on power loss or an OS crash the last
# few commits may be lost (never corrupted). FULL (opt-in): a saved run also survives power loss,
# at the price of one fsync per save (most of a save's time on a slow disk).
ENV_SQLITE_SYNC = "QWEN_DASH_SQLITE_SYNCHRONOUS"
DEFAULT_SQLITE_SYNC = "NORMAL"
# Execution option that marks an engine whose transactions write (BEGIN IMMEDIATE on SQLite).
WRITE_OPTION = "qwen_dash_write"
_PG_MIGRATION_LOCK = 0x5157454E  # pg_advisory_xact_lock key: "QWEN"


class StoreError(RuntimeError):
    """The database cannot be used; the message says why and what to do, for a person."""


def resolve_url(url: str | URL | None = None) -> URL:
    """The URL given, else ``$QWEN_DASH_DB_URL``, else the default SQLite file."""
    raw = url if url is not None else os.environ.get(ENV_URL) or None
    if raw is None:
        return URL.create("sqlite", database=str(DEFAULT_DB_PATH))
    try:
        return make_url(raw)
    except (ArgumentError, ValueError):
        # Not echoed: a URL that cannot be parsed may still hold a password.
        where = f"${ENV_URL}" if url is None else "The database URL given"
        raise StoreError(
            f"{where} cannot be read as a database URL (it is not shown here, as it may hold a "
            "password). Use e.g. sqlite:///path/to/file.sqlite3 or "
            "postgresql+psycopg://user:password@host/dbname."
        ) from None


# Query parameters that carry secrets in some driver's URLs (psycopg's password, sslpassword,
# cloud tokens, ...): their values are never shown.
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|auth|credential", re.IGNORECASE)
HIDDEN = "***"


def describe(url: URL) -> str:
    """The URL as it is safe to show a user: the password and every query parameter that may
    hold a secret hidden."""
    marker = "qwendashhidden"
    query = {k: (marker if _SECRET_PARAM.search(k) else v) for k, v in url.query.items()}
    return url.set(query=query).render_as_string(hide_password=True).replace(marker, HIDDEN)


def redact(message: str, url: URL) -> str:
    """A message with every secret of ``url`` taken out, wherever a driver quoted it."""
    secrets = [url.password] if url.password else []
    for key, value in url.query.items():
        if _SECRET_PARAM.search(key):
            secrets += [value] if isinstance(value, str) else list(value)
    for secret in secrets:
        if secret:
            message = message.replace(str(secret), HIDDEN)
    return message


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; None for in-memory SQLite and for other databases."""
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database or ""
    if db in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    return Path(db.removeprefix("file:")).expanduser()


def check_sqlite_location(path: Path) -> None:
    """Fail early and clearly when the SQLite file or its folder cannot be written."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the database folder {folder}: {exc.strerror or exc}. "
            f"Choose a writable location with {ENV_URL}=sqlite:////some/writable/dir/qwen_dash.sqlite3."
        ) from exc
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(
            f"The database file {path} is read-only for this user. Make it writable "
            f"(chmod u+w), or point {ENV_URL} at another database."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"The database folder {folder} is not writable for this user; SQLite needs to create "
            f"its journal files there. Make it writable, or point {ENV_URL} elsewhere."
        )


def sqlite_synchronous() -> str:
    """The synchronous pragma for new SQLite connections: ``$QWEN_DASH_SQLITE_SYNCHRONOUS``
    (FULL or NORMAL), else NORMAL."""
    value = (os.environ.get(ENV_SQLITE_SYNC) or DEFAULT_SQLITE_SYNC).strip().upper()
    if value not in ("FULL", "NORMAL"):
        raise StoreError(f"{ENV_SQLITE_SYNC} must be FULL or NORMAL, got '{value}'.")
    return value


class SQLiteQuantiles:
    """SQLite aggregate ``qd_quantiles(v1, v2, ...)``: per argument, p50 and p95 of its non-null
    values (linear interpolation, as PostgreSQL's percentile_cont), as JSON ``[[p50, p95], ...]``.

    SQLite has no percentile aggregate; a sort of every row per metric in window functions is
    ~50x slower here. One aggregate for all metrics keeps it to one call per row.
    """

    QUANTILES = (50, 95)

    def __init__(self) -> None:
        self.columns: list[list[float]] = []

    def step(self, *values: float | None) -> None:
        if not self.columns:
            self.columns = [[] for _ in values]
        for column, value in zip(self.columns, values, strict=True):
            if value is not None:
                column.append(value)

    def finalize(self) -> str:
        return json.dumps([[percentile(c, q) for q in self.QUANTILES] for c in self.columns])


def _sqlite_on_connect(dbapi_connection: Any, _record: Any, *, foreign_keys: bool) -> None:
    # SQLAlchemy, not the sqlite3 module, emits BEGIN (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    dbapi_connection.create_aggregate("qd_quantiles", -1, SQLiteQuantiles)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {sqlite_busy_ms()}")
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {sqlite_synchronous()}")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def make_engine(url: URL, *, foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite connections get WAL, busy timeout and explicit BEGIN."""
    if url.get_backend_name() == "sqlite":
        connect_args = {"timeout": sqlite_busy_ms() / 1000}
        engine = create_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, record: Any) -> None:
            _sqlite_on_connect(dbapi_connection, record, foreign_keys=foreign_keys)

        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config, built here so migrations work from any working directory."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: URL, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``, under a lock: one migrator at a time.

    SQLite takes the write lock with BEGIN IMMEDIATE and runs every migration in that one
    transaction (SQLite's DDL is transactional), with foreign keys off as batch mode requires.
    PostgreSQL takes an advisory transaction lock.
    """
    with migration_connection(url) as connection:
        command.upgrade(alembic_config(connection), revision)


@contextmanager
def migration_connection(url: URL) -> Iterator[Connection]:
    """A connection in a transaction that holds the migration lock; commits on success."""
    engine = make_engine(url, foreign_keys=False).execution_options(**{WRITE_OPTION: True})
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                lock = text("SELECT pg_advisory_xact_lock(:k)")
                connection.execute(lock, {"k": _PG_MIGRATION_LOCK})
            yield connection
    finally:
        engine.dispose()


def migrate_if_needed(engine: Engine) -> None:
    """Upgrade to head unless the database is there already (the common, cheap case)."""
    with engine.connect() as connection:
        at = current_revision(connection)
    if at != head_revision():
        upgrade(engine.url)


def explain(exc: SQLAlchemyError, url: URL) -> StoreError:
    """A database error at open time, as a message for a person."""
    orig = getattr(exc, "orig", None) or exc
    reason = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    reason = redact(reason, url)
    where = describe(url)
    if url.get_backend_name() == "sqlite":
        if "readonly" in reason or "read-only" in reason:
            return StoreError(f"The database {where} is read-only: {reason}. Make it writable.")
        return StoreError(f"Cannot open the SQLite database {where}: {reason}.")
    return StoreError(
        f"Cannot use the database {where}: {reason}. Is the server running and the URL in "
        f"{ENV_URL} right?"
    )
