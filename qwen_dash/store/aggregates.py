"""Aggregates in SQL, per dialect: time buckets, and count/p50/p95/mean per group.

PostgreSQL has ``percentile_cont``. SQLite has no percentile aggregate, so each connection
registers ``qd_quantiles`` (``qwen_dash.store.database``), same interpolation. Other databases get
portable window functions (row_number, count): exact, but sort-heavy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Float, Select, case, cast, func, select
from sqlalchemy.orm import Session

from qwen_dash.core.metrics import TREND_METRICS
from qwen_dash.store.database import StoreError

Bucket = Literal["hour", "day"]
QUANTILES = (50, 95)
_QUANTILES_COLUMN = "quantiles__"


@dataclass(frozen=True)
class TrendRow:
    """One series point: generations with status ok in one bucket, for one group key.

    ``key`` holds the group columns asked for (default model_key, source, mode). ``stats`` maps
    ``<metric>_p50``, ``<metric>_p95`` and ``<metric>_mean`` for each of TREND_METRICS to a float
    (None when nothing in the bucket measured it).
    """

    bucket: datetime
    key: dict[str, Any]
    count: int
    stats: dict[str, float | None] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        if name in self.key:
            return self.key[name]
        return self.stats[name]


@dataclass
class SqlDialect:
    """The dialect-specific SQL of the aggregates."""

    name: str

    def bucket(self, column: Any, bucket: str) -> Any:
        """The start of ``column``'s hour or day (UTC), as the dialect gives it."""
        if bucket not in ("hour", "day"):
            raise StoreError(f"Bucket must be hour or day, got '{bucket}'.")
        if self.name == "sqlite":
            # UTCDateTime stores 'YYYY-MM-DD HH:MM:SS.ffffff' text: a prefix is the bucket, and
            # substr is several times cheaper than strftime over every row.
            return func.substr(column, 1, 13 if bucket == "hour" else 10)
        if self.name == "postgresql":
            return func.date_trunc(bucket, func.timezone("UTC", column))
        return func.date_trunc(bucket, column)

    def percentiles(self, base: Any, keys: Sequence[str], metrics: Sequence[str]) -> Select[Any]:
        """count, p50, p95 and mean of each metric per group of ``keys``, one GROUP BY."""
        if self.name == "postgresql":
            return percentiles_ordered_set(base, keys, metrics)
        if self.name == "sqlite":
            return percentiles_sqlite(base, keys, metrics)
        return percentiles_window(base, keys, metrics)

    def aggregate(self, session: Session, base: Any, keys: Sequence[str]) -> list[TrendRow]:
        """Trend rows of ``base`` (a subquery with a ``bucket`` column) grouped by ``keys``
        (the first is ``bucket``)."""
        stmt = self.percentiles(base, keys, TREND_METRICS)
        return [trend_row(row, keys[1:]) for row in session.execute(stmt).mappings()]


def percentiles_sqlite(base: Any, keys: Sequence[str], metrics: Sequence[str]) -> Select[Any]:
    groups = [base.c[k] for k in keys]
    quantiles = func.qd_quantiles(*(base.c[m] for m in metrics)).label(_QUANTILES_COLUMN)
    means = [func.avg(base.c[m]).label(f"{m}_mean") for m in metrics]
    out = [*groups, func.count().label("count"), quantiles, *means]
    return select(*out).group_by(*groups).order_by(*groups)


def percentiles_ordered_set(
    base: Any, keys: Sequence[str], metrics: Sequence[str], quantiles: Sequence[int] = QUANTILES
) -> Select[Any]:
    groups = [base.c[k] for k in keys]
    out: list[Any] = [*groups, func.count().label("count")]
    for m in metrics:
        v = base.c[m]
        out += [func.percentile_cont(q / 100).within_group(v).label(f"{m}_p{q}") for q in quantiles]
        out.append(func.avg(v).label(f"{m}_mean"))
    return select(*out).group_by(*groups).order_by(*groups)


def percentiles_window(
    base: Any, keys: Sequence[str], metrics: Sequence[str], quantiles: Sequence[int] = QUANTILES
) -> Select[Any]:
    """count, p<q> and mean of each metric per group of ``keys``, with window functions only."""
    part = [base.c[k] for k in keys]
    cols: list[Any] = list(part)
    for m in metrics:
        v = base.c[m]
        nulls_last = case((v.is_(None), 1), else_=0)
        # One window per metric: row_number ignores the frame, count needs all of it.
        order = (nulls_last, v)
        everything = (None, None)
        cols += [
            v,
            (func.row_number().over(partition_by=part, order_by=order, rows=everything) - 1).label(
                f"{m}__i"
            ),
            func.count(v).over(partition_by=part, order_by=order, rows=everything).label(f"{m}__n"),
        ]
    ranked = select(*cols).subquery("ranked")
    groups = [ranked.c[k] for k in keys]
    out: list[Any] = [*groups, func.count().label("count")]
    for m in metrics:
        out += [_percentile(ranked, m, q).label(f"{m}_p{q}") for q in quantiles]
        out.append(func.avg(ranked.c[m]).label(f"{m}_mean"))
    return select(*out).group_by(*groups).order_by(*groups)


def _percentile(ranked: Any, metric: str, q: int) -> ColumnElement[Any]:
    """Linear-interpolated percentile (numpy's default) from row numbers, portable SQL.

    With n non-null values sorted, position (n-1)q/100 = lo + frac: v[lo] + (v[lo+1]-v[lo])*frac.
    """
    v, i, n = ranked.c[metric], ranked.c[f"{metric}__i"], ranked.c[f"{metric}__n"]
    pos = (n - 1) * q
    lo = pos // 100
    frac = func.max(cast(pos % 100, Float)) / 100.0
    v_lo = func.max(case((i == lo, v)))
    v_hi = func.coalesce(func.max(case((i == lo + 1, v))), v_lo)
    return v_lo + (v_hi - v_lo) * frac


def as_utc(value: Any) -> datetime:
    """A bucket from SQL ('YYYY-MM-DD[ HH]' text on SQLite, a timestamp elsewhere), aware UTC."""
    if isinstance(value, str):
        value = value + ":00" if len(value) == 13 else value
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def trend_row(row: Any, keys: Sequence[str]) -> TrendRow:
    skip = {"bucket", "count", _QUANTILES_COLUMN, *keys}
    stats = {k: (None if v is None else float(v)) for k, v in row.items() if k not in skip}
    if _QUANTILES_COLUMN in row:  # SQLite: [[p50, p95], ...] in TREND_METRICS order
        quantiles = json.loads(row[_QUANTILES_COLUMN])
        for metric, (p50, p95) in zip(TREND_METRICS, quantiles, strict=True):
            stats |= {f"{metric}_p50": p50, f"{metric}_p95": p95}
    return TrendRow(as_utc(row["bucket"]), {k: row[k] for k in keys}, row["count"], stats)
