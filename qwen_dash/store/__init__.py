"""The store: every run, its generations, tags and votes, and the audit log of who changed what,
in SQLite or PostgreSQL.

This is its public front; pages, the CLI and the benches import from here, not from the modules
behind it (docs/architecture.md, "The store"). Open with :func:`open_store` (it migrates first).
"""

from __future__ import annotations

from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from qwen_dash.core.metrics import TREND_METRICS
from qwen_dash.store.aggregates import Bucket, TrendRow
from qwen_dash.store.database import (
    StoreError,
    check_sqlite_location,
    describe,
    explain,
    make_engine,
    migrate_if_needed,
    resolve_url,
    sqlite_path,
)
from qwen_dash.store.export import FORMATS as EXPORT_FORMATS
from qwen_dash.store.export import run_to_dict
from qwen_dash.store.filters import RunFilters
from qwen_dash.store.repository import PAGE_SIZE, RunPage, Store
from qwen_dash.store.runs import build_run
from qwen_dash.store.schema import AuditEvent
from qwen_dash.store.suites import (
    SuiteCaseRef,
    SuitePassPoint,
    SuiteResultRow,
    SuiteRunInfo,
    SuiteVerdict,
)
from qwen_dash.store.trends import TREND_KEYS, PairedDifference
from qwen_dash.store.votes import (
    BATTLE_COLUMNS,
    RECORD_FIELDS,
    CastVote,
    ImportResult,
    VoteCounts,
    VoteFilters,
)

__all__ = [
    "BATTLE_COLUMNS",
    "EXPORT_FORMATS",
    "PAGE_SIZE",
    "RECORD_FIELDS",
    "TREND_KEYS",
    "TREND_METRICS",
    "AuditEvent",
    "Bucket",
    "CastVote",
    "ImportResult",
    "PairedDifference",
    "RunFilters",
    "RunPage",
    "Store",
    "StoreError",
    "SuiteCaseRef",
    "SuitePassPoint",
    "SuiteResultRow",
    "SuiteRunInfo",
    "SuiteVerdict",
    "TrendRow",
    "VoteCounts",
    "VoteFilters",
    "build_run",
    "describe",
    "open_store",
    "resolve_url",
    "run_to_dict",
]


def open_store(url: str | URL | None = None) -> Store:
    """Open (and create or migrate) the database: ``url``, else ``$QWEN_DASH_DB_URL``, else
    ``db/qwen_dash.sqlite3``. Raises StoreError with a readable message when it cannot.
    """
    resolved = resolve_url(url)
    path = sqlite_path(resolved)
    if path is not None:
        check_sqlite_location(path)
    try:
        engine = make_engine(resolved)
        try:
            migrate_if_needed(engine)
        finally:
            engine.dispose()
        return Store(resolved)
    except SQLAlchemyError as exc:
        raise explain(exc, resolved) from exc
