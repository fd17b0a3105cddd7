"""Trend rollups (``trend_rollups``): what makes ``Store.trends`` fast over a long history.

A row holds, for one bucket (hour or day, UTC) and one series (model, source, mode) and one split
(thinking and kind, each a value or ROLLUP_ANY), the count and the exact p50/p95/mean of every
TREND_METRICS metric. Exact: percentiles of parts cannot be combined, so a row is only ever
computed from the generations themselves, with the store's own SQL (``SqlDialect.aggregate``).

Writes stay cheap: saving or deleting a run upserts one ``dirty`` mark per (bucket kind, bucket,
model, source, mode) unit it touches, in the same transaction. A trend query first recomputes
the dirty units of its bucket kind (one write transaction; PostgreSQL adds an advisory lock that
saves take shared, so no save's mark lands between the recompute's read and its write), then
reads the rows. Queries the rows cannot answer exactly (text, tag, user or conversation filters,
dates not on bucket boundaries, a group key left out while several values of it are asked for)
are not planned here; the store computes those directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from qwen_dash.core.metrics import TREND_METRICS
from qwen_dash.store.aggregates import SqlDialect
from qwen_dash.store.filters import Conditions, RunFilters
from qwen_dash.store.schema import ROLLUP_ANY, ROLLUP_STATS, Generation, Run, TrendRollup

# The rollup's series key (each row is one of these) and its splits.
SERIES_KEYS = ("model_key", "source", "mode")
ROLLUP_KEYS = (*SERIES_KEYS, "thinking", "kind")
PRIMARY_KEY = ("bucket_kind", "thinking", "kind", "bucket", *SERIES_KEYS)
BUCKET_SPAN = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# More dirty units than this are recomputed as one time range instead of one term each.
MAX_LISTED_UNITS = 100
_PG_ROLLUP_LOCK = 0x51445452  # pg_advisory_xact_lock key: "QDTR"

# (bucket start, model_key, source, mode)
Unit = tuple[datetime, str, str, str]


@dataclass(frozen=True)
class RollupQuery:
    """A trend query that the rollup rows answer exactly."""

    bucket_kind: str
    keys: tuple[str, ...]
    filters: RunFilters


def bucket_start(when: datetime, bucket_kind: str) -> datetime:
    start = when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start.replace(hour=0) if bucket_kind == "day" else start


def _aligned(when: datetime | None, bucket_kind: str) -> bool:
    return when is None or bucket_start(when, bucket_kind) == when


_LIVE = RunFilters()  # rollups count the runs that are not deleted


def plan(filters: RunFilters, bucket_kind: str, keys: Sequence[str]) -> RollupQuery | None:
    """The rollup query for these trend arguments, or None when only the direct one is exact."""
    f = filters
    if f.deleted is not False:  # rollups count the runs that are not deleted
        return None
    if f.text or f.tag or f.user or f.conversation_id or len(set(keys)) != len(keys):
        return None
    if not (_aligned(f.since, bucket_kind) and _aligned(f.until, bucket_kind)):
        return None
    pinned = {"model_key": f.models, "source": f.sources, "mode": (f.mode,) if f.mode else ()}
    if any(key not in keys and len(set(values)) != 1 for key, values in pinned.items()):
        return None
    return RollupQuery(bucket_kind, tuple(keys), f)


def _text(value: str) -> Any:
    """A string constant with a type PostgreSQL knows in DISTINCT and UNION."""
    return cast(literal(value), String(16))


def _thinking_label(value: bool) -> str:
    return "true" if value else "false"


class TrendRollups:
    """Marks, recomputes and reads ``trend_rollups`` for one store (SQLite or PostgreSQL)."""

    def __init__(self, sql: SqlDialect) -> None:
        self.sql = sql
        self.dialect = sql.name

    # ---- marking (inside the writer's transaction) ---------------------------------------

    def _upsert(self) -> Any:
        """INSERT ... ON CONFLICT (key) DO UPDATE SET dirty = true; rows as parameters, so that
        the statement is compiled once."""
        module = postgresql if self.dialect == "postgresql" else sqlite
        stmt = module.insert(TrendRollup)
        return stmt.on_conflict_do_update(index_elements=list(PRIMARY_KEY), set_={"dirty": True})

    def _lock(self, session: Session, *, shared: bool) -> None:
        if self.dialect == "postgresql":
            name = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            session.execute(select(getattr(func, name)(_PG_ROLLUP_LOCK)))

    def mark(self, session: Session, units: Iterable[Unit]) -> None:
        """Mark the hour and day buckets of these (time, model, source, mode) units dirty."""
        keys = sorted(
            {
                (bucket_kind, bucket_start(when, bucket_kind), model, source, mode)
                for when, model, source, mode in units
                for bucket_kind in BUCKET_SPAN
            }
        )
        if not keys:
            return
        rows = [
            dict(zip(("bucket_kind", "bucket", *SERIES_KEYS), key, strict=True))
            | {"thinking": ROLLUP_ANY, "kind": ROLLUP_ANY, "dirty": True, "count": 0}
            for key in keys
        ]
        self._lock(session, shared=True)
        session.connection().execute(self._upsert(), rows)

    def mark_run(self, session: Session, run: Run) -> None:
        """Mark what a run being saved changes (its generations are in ``run.generations``)."""
        self.mark(
            session,
            ((run.created_at, g.model_key, g.source, g.mode) for g in run.generations
             if g.status == "ok"),
        )  # fmt: skip

    def mark_run_id(self, session: Session, run_id: int) -> None:
        """Mark what deleting the saved run ``run_id`` changes (call before the delete)."""
        g = Generation
        stmt = select(g.created_at, g.model_key, g.source, g.mode).where(
            g.run_id == run_id, g.status == "ok"
        )
        self.mark(session, ((r[0], r[1], r[2], r[3]) for r in session.execute(stmt)))

    def mark_all(self, session: Session) -> None:
        """Mark every unit that has answers (after rows were written around the store)."""
        g = Generation
        for bucket_kind in BUCKET_SPAN:
            bucket = self._bucket_as_stored(g.created_at, bucket_kind)
            rows = (
                select(
                    _text(bucket_kind),
                    _text(ROLLUP_ANY),
                    _text(ROLLUP_ANY),
                    bucket,
                    g.model_key,
                    g.source,
                    g.mode,
                    cast(literal(True), Boolean),
                    cast(literal(0), Integer),
                )
                .where(g.status == "ok")
                .distinct()
            )
            columns = [*PRIMARY_KEY, "dirty", "count"]
            module = postgresql if self.dialect == "postgresql" else sqlite
            stmt = module.insert(TrendRollup).from_select(columns, rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=list(PRIMARY_KEY), set_={"dirty": True}
            )
            self._lock(session, shared=True)
            session.execute(stmt)

    def _bucket_as_stored(self, column: Any, bucket_kind: str) -> Any:
        """The bucket start as the ``bucket`` column stores it (SQL, for INSERT ... SELECT)."""
        if self.dialect == "sqlite":  # UTCDateTime's text: 'YYYY-MM-DD HH:MM:SS.ffffff'
            if bucket_kind == "hour":
                return func.substr(column, 1, 13).concat(":00:00.000000")
            return func.substr(column, 1, 10).concat(" 00:00:00.000000")
        return func.timezone("UTC", self.sql.bucket(column, bucket_kind))

    # ---- recomputing ---------------------------------------------------------------------

    def has_dirty(self, session: Session, bucket_kind: str) -> bool:
        r = TrendRollup
        stmt = select(r.bucket).where(r.dirty.is_(True), r.bucket_kind == bucket_kind).limit(1)
        return session.execute(stmt).first() is not None

    def refresh(self, session: Session, bucket_kind: str) -> int:
        """Recompute every row of the dirty units of ``bucket_kind``; returns how many units.

        Call in a write transaction: on PostgreSQL it takes the rollup lock exclusively.
        """
        self._lock(session, shared=False)
        r = TrendRollup
        stmt = select(r.bucket, *(r.__table__.c[k] for k in SERIES_KEYS)).where(
            r.dirty.is_(True), r.bucket_kind == bucket_kind
        )
        units: set[Unit] = {(r[0], r[1], r[2], r[3]) for r in session.execute(stmt.distinct())}
        if not units:
            return 0
        gen_scope, rollup_scope = self._scopes(units, bucket_kind)
        rows = self._compute(session, bucket_kind, gen_scope)
        session.execute(delete(r).where(r.bucket_kind == bucket_kind, rollup_scope))
        if rows:
            session.execute(insert(TrendRollup), rows)
        return len(units)

    def _scopes(
        self, units: set[Unit], bucket_kind: str
    ) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        """Conditions on generations and on rollup rows that cover the same units exactly."""
        g, r, span = Generation, TrendRollup, BUCKET_SPAN[bucket_kind]
        if len(units) > MAX_LISTED_UNITS:  # one time range, every series of these models
            lo, hi = min(u[0] for u in units), max(u[0] for u in units) + span
            models = sorted({u[1] for u in units})
            return (
                and_(g.created_at >= lo, g.created_at < hi, g.model_key.in_(models)),
                and_(r.bucket >= lo, r.bucket < hi, r.model_key.in_(models)),
            )
        gen_terms, rollup_terms = [], []
        for start, model, source, mode in sorted(units):
            series = (model, source, mode)
            gen_terms.append(
                and_(
                    *(c == v for c, v in zip((g.model_key, g.source, g.mode), series, strict=True)),
                    g.created_at >= start,
                    g.created_at < start + span,
                )
            )
            rollup_terms.append(
                and_(
                    *(c == v for c, v in zip((r.model_key, r.source, r.mode), series, strict=True)),
                    r.bucket == start,
                )
            )
        return or_(*gen_terms), or_(*rollup_terms)

    def _compute(
        self, session: Session, bucket_kind: str, scope: ColumnElement[bool]
    ) -> list[dict[str, Any]]:
        """Rollup rows of every split, computed from the generations in ``scope``."""
        thinking = cast(case((Run.thinking, "true"), else_="false"), String(16))
        splits = [
            (_text(ROLLUP_ANY), _text(ROLLUP_ANY)),
            (thinking, _text(ROLLUP_ANY)),
            (_text(ROLLUP_ANY), Run.kind),
            (thinking, Run.kind),
        ]
        parts = [
            self._split_rows(bucket_kind, scope, split_thinking, kind, needs_run=i > 0)
            for i, (split_thinking, kind) in enumerate(splits)
        ]
        base = union_all(*parts).subquery("base")
        return [
            {"bucket_kind": bucket_kind, "bucket": row.bucket, "dirty": False, "count": row.count}
            | row.key
            | {name: row.stats[name] for name in ROLLUP_STATS}
            for row in self.sql.aggregate(session, base, ["bucket", *ROLLUP_KEYS])
        ]

    def _split_rows(
        self, bucket_kind: str, scope: Any, thinking: Any, kind: Any, *, needs_run: bool
    ) -> Any:
        """The answers in ``scope`` labelled with one split (the join only where it needs runs)."""
        g = Generation
        stmt = select(
            self.sql.bucket(g.created_at, bucket_kind).label("bucket"),
            g.model_key,
            g.source,
            g.mode,
            thinking.label("thinking"),
            kind.label("kind"),
            *(getattr(g, m).label(m) for m in TREND_METRICS),
        ).where(g.status == "ok", scope, *Conditions.generation_deleted(_LIVE, g))
        return stmt.join(Run, Run.id == g.run_id) if needs_run else stmt

    # ---- reading -------------------------------------------------------------------------

    def read(
        self, session: Session, q: RollupQuery
    ) -> list[tuple[datetime, dict[str, Any], int, dict[str, float | None]]]:
        """(bucket, key, count, stats) per bucket and group, ordered as the direct query."""
        r, f = TrendRollup, q.filters
        conditions: list[Any] = [r.bucket_kind == q.bucket_kind, r.count > 0]
        conditions += self._split_conditions(r.thinking, "thinking" in q.keys, f.thinking)
        conditions += self._split_conditions(r.kind, "kind" in q.keys, f.kind or None)
        if f.models:
            conditions.append(r.model_key.in_(f.models))
        if f.sources:
            conditions.append(r.source.in_(f.sources))
        if f.mode:
            conditions.append(r.mode == f.mode)
        if f.since is not None:
            conditions.append(r.bucket >= f.since)
        if f.until is not None:
            conditions.append(r.bucket < f.until)
        columns = r.__table__.c
        stmt = select(columns.bucket, columns.count, *(columns[k] for k in ROLLUP_KEYS))
        stmt = stmt.add_columns(*(columns[name] for name in ROLLUP_STATS)).where(*conditions)
        stmt = stmt.order_by(columns.bucket, *(columns[k] for k in q.keys))
        return [_as_trend(row, q.keys) for row in session.execute(stmt)]

    @staticmethod
    def _split_conditions(column: Any, in_keys: bool, value: bool | str | None) -> list[Any]:
        label = _thinking_label(value) if isinstance(value, bool) else value
        if label is not None:
            return [column == label]
        return [column != ROLLUP_ANY] if in_keys else [column == ROLLUP_ANY]


def _as_trend(
    row: Any, keys: Sequence[str]
) -> tuple[datetime, dict[str, Any], int, dict[str, float | None]]:
    values = row._mapping
    key = {k: values[k] for k in keys}
    if "thinking" in key:
        key["thinking"] = key["thinking"] == "true"
    return values["bucket"], key, values["count"], {name: values[name] for name in ROLLUP_STATS}
