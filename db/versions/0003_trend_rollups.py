"""Trend rollups: per bucket and series, count and exact p50/p95/mean, recomputed when dirty.

Existing runs are not aggregated here: every (bucket, model, source, mode) unit that has answers
is marked dirty, and the store computes those rollups on the first trend query that needs them.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# qwen_dash.schema.TREND_METRICS and ROLLUP_ANY at the time of this migration.
METRICS = ("ttft_ms", "e2e_ms", "decode_tps", "n_out", "peak_memory_bytes")
ANY = "*"
UTC_TIME = sa.DateTime(timezone=True)


def _bucket_sql(dialect: str, bucket_kind: str) -> str:
    """The bucket start of generations.created_at, as the column stores a time."""
    if dialect == "sqlite":  # UTC wall time text 'YYYY-MM-DD HH:MM:SS.ffffff'
        if bucket_kind == "hour":
            return "substr(created_at, 1, 13) || ':00:00.000000'"
        return "substr(created_at, 1, 10) || ' 00:00:00.000000'"
    return f"timezone('UTC', date_trunc('{bucket_kind}', timezone('UTC', created_at)))"


def mark_existing_dirty() -> None:
    bind = op.get_bind()
    for bucket_kind in ("hour", "day"):
        bucket = _bucket_sql(bind.dialect.name, bucket_kind)
        bind.execute(
            sa.text(
                "INSERT INTO trend_rollups (bucket_kind, thinking, kind, bucket, model_key, "
                "source, mode, dirty, count) "
                f"SELECT DISTINCT :bk, :any, :any, {bucket}, model_key, source, mode, :yes, 0 "
                "FROM generations WHERE status = 'ok'"
            ),
            {"bk": bucket_kind, "any": ANY, "yes": True},
        )


def upgrade() -> None:
    op.create_table(
        "trend_rollups",
        sa.Column("bucket_kind", sa.String(8), nullable=False),
        sa.Column("thinking", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("bucket", UTC_TIME, nullable=False),
        sa.Column("model_key", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        *(
            sa.Column(f"{metric}_{stat}", sa.Float(), nullable=True)
            for metric in METRICS
            for stat in ("p50", "p95", "mean")
        ),
        sa.CheckConstraint(
            "bucket_kind IN ('hour', 'day')", name=op.f("ck_trend_rollups_bucket_kind")
        ),
        sa.PrimaryKeyConstraint(
            "bucket_kind",
            "thinking",
            "kind",
            "bucket",
            "model_key",
            "source",
            "mode",
            name=op.f("pk_trend_rollups"),
        ),
    )
    with op.batch_alter_table("trend_rollups") as batch:
        batch.create_index("ix_trend_rollups_dirty_bucket_kind", ["dirty", "bucket_kind"])
    mark_existing_dirty()


def downgrade() -> None:
    with op.batch_alter_table("trend_rollups") as batch:
        batch.drop_index("ix_trend_rollups_dirty_bucket_kind")
    op.drop_table("trend_rollups")
