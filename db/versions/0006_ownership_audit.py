"""Ownership and audit: soft delete of runs (who and when) and the audit log of changes.

Existing runs stay as they were (not deleted); the audit log starts empty.

Revision ID: 0006
Revises: 0003
Create Date: 2025-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
# qwen_dash.store.schema.AUDIT_ACTIONS at the time of this migration.
ACTIONS = "('run.save', 'run.delete', 'run.restore', 'run.tags', 'run.notes', 'vote.add')"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("deleted_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("deleted_by", sa.String(255), nullable=True))
        batch.create_index(batch.f("ix_runs_deleted_at"), ["deleted_at"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.CheckConstraint(f"action IN {ACTIONS}", name=op.f("ck_audit_events_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events") as batch:
        batch.create_index("ix_audit_events_at_id", ["at", "id"])
        batch.create_index(batch.f("ix_audit_events_run_id"), ["run_id"])


def downgrade() -> None:
    op.drop_table("audit_events")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index(batch.f("ix_runs_deleted_at"))
        batch.drop_column("deleted_by")
        batch.drop_column("deleted_at")
