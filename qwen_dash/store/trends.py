"""Trend queries: per-bucket percentiles (from the rollups when they answer exactly), the
per-generation figures charts need, and paired differences between two models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import aliased

from qwen_dash.core.metrics import TREND_METRICS
from qwen_dash.store.aggregates import Bucket, TrendRow
from qwen_dash.store.base import StoreBase
from qwen_dash.store.database import StoreError
from qwen_dash.store.filters import RunFilters
from qwen_dash.store.rollups import RollupQuery, plan
from qwen_dash.store.schema import Generation, Run

TREND_KEYS = ("model_key", "source", "mode", "thinking", "kind")
DEFAULT_TREND_KEYS = ("model_key", "source", "mode")
# The columns charts read per generation.
FIGURE_COLUMNS = (
    "model_key",
    "source",
    "mode",
    "status",
    "ttft_ms",
    "e2e_ms",
    "decode_tps",
    "n_in",
    "n_out",
    "peak_memory_bytes",
)


@dataclass(frozen=True)
class PairedDifference:
    """One run where both models answered (status ok): model A's metric minus model B's, for
    each of TREND_METRICS (in ``values``)."""

    run_id: int
    created_at: datetime
    mode: str
    thinking: bool
    source_a: str
    source_b: str
    values: dict[str, float | None]

    def __getattr__(self, name: str) -> float | None:
        if name in TREND_METRICS:
            return self.values[name]
        raise AttributeError(name)


class TrendQueries(StoreBase):
    """What Trends and Models read."""

    def _runs_query(self, filters: RunFilters) -> Select[Run]:
        return (
            select(Run)
            .where(*self.conditions.runs(filters))
            .order_by(Run.created_at.desc(), Run.id.desc())
        )

    def trends(
        self,
        filters: RunFilters | None = None,
        bucket: Bucket = "day",
        keys: Sequence[str] = DEFAULT_TREND_KEYS,
    ) -> list[TrendRow]:
        """Per bucket (hour or day, UTC) and group key: count and p50/p95/mean of TREND_METRICS.

        Only generations with status ok count. ``keys`` is any of TREND_KEYS; keep source and
        mode in it (or filter on them) so twins and real weights, concurrent and isolated runs,
        never share a series.

        Answered from the trend rollups when they can answer exactly (see
        ``qwen_dash.store.rollups.plan``: the Trends page's queries), after recomputing the
        buckets that saves and deletes marked dirty; otherwise by :meth:`trends_direct`. Both
        give the same rows.
        """
        filters = filters or RunFilters()
        self._check_trend_args(bucket, keys)
        query = plan(filters, bucket, keys) if self.rollups is not None else None
        if query is None:
            return self.trends_direct(filters, bucket, keys)
        return [TrendRow(*row) for row in self._rollup_trends(query)]

    def _check_trend_args(self, bucket: str, keys: Sequence[str]) -> None:
        unknown = set(keys) - set(TREND_KEYS)
        if unknown:
            raise StoreError(f"Unknown trend keys {sorted(unknown)}; choose from {TREND_KEYS}.")
        self.sql.bucket(Generation.created_at, bucket)  # validates bucket

    def _rollup_trends(
        self, query: RollupQuery
    ) -> list[tuple[datetime, dict[str, Any], int, dict[str, float | None]]]:
        """Rollup rows for ``query``: read at once when none is dirty, else refresh then read."""
        assert self.rollups is not None
        with self.reading() as session:
            if not self.rollups.has_dirty(session, query.bucket_kind):
                return self.rollups.read(session, query)
        with self.writing() as session:
            self.rollups.refresh(session, query.bucket_kind)
            return self.rollups.read(session, query)

    def trends_direct(
        self,
        filters: RunFilters | None = None,
        bucket: Bucket = "day",
        keys: Sequence[str] = DEFAULT_TREND_KEYS,
    ) -> list[TrendRow]:
        """:meth:`trends` computed over the generations themselves, never from the rollups."""
        f = filters or RunFilters()
        self._check_trend_args(bucket, keys)
        g = Generation
        key_cols = {
            "model_key": g.model_key,
            "source": g.source,
            "mode": g.mode,
            "thinking": Run.thinking,
            "kind": Run.kind,
        }
        base = select(
            self.sql.bucket(g.created_at, bucket).label("bucket"),
            *(key_cols[k].label(k) for k in keys),
            *(getattr(g, m).label(m) for m in TREND_METRICS),
        ).where(g.status == "ok", *self.conditions.generations(f, g))
        if f.needs_run(keys):
            base = base.join(Run, Run.id == g.run_id)
        with self.reading() as session:
            return self.sql.aggregate(session, base.subquery("base"), ["bucket", *keys])

    def generation_figures(
        self,
        filters: RunFilters | None = None,
        max_runs: int = 2000,
        columns: Sequence[str] = FIGURE_COLUMNS,
    ) -> list[dict[str, Any]]:
        """The metric columns of every generation of the newest ``max_runs`` matching runs, as
        plain rows, newest first: for charts that need each value (distributions, scatter plots).
        As in trends, model/source/mode filters keep only those generations. Each row also has
        its run's id, time, thinking switch and kind; ``columns`` names the generation columns
        (default: what the charts read)."""
        f = filters or RunFilters()
        newest = self._runs_query(f).with_only_columns(Run.id).limit(max_runs)
        unknown = [name for name in columns if name not in Generation.__table__.columns]
        if unknown:
            raise StoreError(f"Unknown generation column(s): {', '.join(unknown)}.")
        selected = [getattr(Generation, name) for name in columns]
        stmt = (
            select(Generation.run_id, Run.created_at, Run.thinking, Run.kind, *selected)
            .join(Run, Run.id == Generation.run_id)
            .where(Generation.run_id.in_(newest), *self.conditions.generations(f, Generation))
            .order_by(Run.created_at.desc(), Run.id.desc(), Generation.position)
        )
        with self.reading() as session:
            return [dict(row._mapping) for row in session.execute(stmt)]

    def paired_differences(
        self,
        model_a: str,
        model_b: str,
        filters: RunFilters | None = None,
        limit: int | None = None,
    ) -> list[PairedDifference]:
        """Per run where both answered with status ok: A minus B, newest first."""
        f = filters or RunFilters()
        a = aliased(Generation, name="ga")
        b = aliased(Generation, name="gb")
        diffs = [(getattr(a, m) - getattr(b, m)).label(m) for m in TREND_METRICS]
        stmt = (
            select(
                Run.id.label("run_id"),
                Run.created_at,
                Run.mode,
                Run.thinking,
                a.source.label("source_a"),
                b.source.label("source_b"),
                *diffs,
            )
            .join(a, and_(a.run_id == Run.id, a.model_key == model_a, a.status == "ok"))
            .join(b, and_(b.run_id == Run.id, b.model_key == model_b, b.status == "ok"))
            .where(*self.conditions.common(f, Run.created_at), *self.conditions.run_deleted(f))
        )
        if f.sources:
            stmt = stmt.where(a.source.in_(f.sources), b.source.in_(f.sources))
        if f.mode:
            stmt = stmt.where(Run.mode == f.mode)
        stmt = stmt.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
        with self.reading() as session:
            rows = session.execute(stmt).mappings().all()
        return [_paired(row) for row in rows]


def _paired(row: Any) -> PairedDifference:
    values = {m: row[m] for m in TREND_METRICS}
    fixed = {
        k: row[k] for k in ("run_id", "created_at", "mode", "thinking", "source_a", "source_b")
    }
    return PairedDifference(**fixed, values=values)
