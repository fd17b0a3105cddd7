"""Suite runs: one row per run of a prompt suite, one verdict row per (case, model).

Each case's answers are ordinary runs of kind 'suite' (already allowed by 0001's check); a
verdict links its run (``run_id``, set to null if that run is deleted) and its suite run.

Revision ID: 0005
Revises: 0003
Create Date: 2025-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "suite_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.Column("suite", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("suite_text", sa.Text(), nullable=False),
        sa.Column("suite_sha256", sa.String(64), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("repeat", sa.Integer(), nullable=False),
        sa.Column("total_cases", sa.Integer(), nullable=False),
        sa.Column("done_cases", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user", sa.String(128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'stopped', 'failed')", name=op.f("ck_suite_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suite_runs")),
    )
    op.create_index(op.f("ix_suite_runs_created_at"), "suite_runs", ["created_at"])
    op.create_index("ix_suite_runs_suite_created_at", "suite_runs", ["suite", "created_at"])
    op.create_table(
        "suite_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("suite_run_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("case_name", sa.Text(), nullable=False),
        sa.Column("repeat_index", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(128), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("e2e_ms", sa.Float(), nullable=True),
        sa.Column("assertions", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pass', 'fail', 'error')", name=op.f("ck_suite_results_status")
        ),
        sa.ForeignKeyConstraint(
            ["suite_run_id"],
            ["suite_runs.id"],
            name=op.f("fk_suite_results_suite_run_id_suite_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_suite_results_run_id_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suite_results")),
    )
    op.create_index(op.f("ix_suite_results_run_id"), "suite_results", ["run_id"])
    op.create_index(
        "ix_suite_results_suite_run_id_position", "suite_results", ["suite_run_id", "position"]
    )


def downgrade() -> None:
    op.drop_index("ix_suite_results_suite_run_id_position", table_name="suite_results")
    op.drop_index(op.f("ix_suite_results_run_id"), table_name="suite_results")
    op.drop_table("suite_results")
    op.drop_index("ix_suite_runs_suite_created_at", table_name="suite_runs")
    op.drop_index(op.f("ix_suite_runs_created_at"), table_name="suite_runs")
    op.drop_table("suite_runs")
