"""Arena votes: one vote per (run, voter) with a history of changes, the battles each vote stands
for, the side order the voter saw, and imported FastChat battles (no local run).

Existing vote rows are kept. Where one voter voted on one run more than once (0003 allowed it),
the newest row stays the vote and the older ones become its change history (in time order), so
nothing they said is lost and the rule "one vote per person per run" holds from now on. Each
vote gets its one battle (model_a, model_b, winner). Battle idempotency keys are left empty here:
the store fills them before the first import (they hash the exported record, which is the app's
definition, not this migration's).

Revision ID: 0004
Revises: 0003
Create Date: 2025-12-10
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
# qwen_dash.core.arena at the time of this migration.
VOTE_WINNERS = "('a', 'b', 'c', 'd', 'tie', 'both_bad')"
BATTLE_WINNERS = "('a', 'b', 'tie', 'both_bad')"
OLD_WINNERS = "('a', 'b', 'tie', 'both_bad')"
ORIGINS = "('local', 'import')"

votes = sa.table(
    "votes",
    sa.column("id", sa.Integer()),
    sa.column("run_id", sa.Integer()),
    sa.column("created_at", UTC_TIME),
    sa.column("updated_at", UTC_TIME),
    sa.column("tstamp", sa.Float()),
    sa.column("model_a", sa.String()),
    sa.column("model_b", sa.String()),
    sa.column("sides", sa.JSON()),
    sa.column("winner", sa.String()),
    sa.column("voter", sa.String()),
    sa.column("origin", sa.String()),
)
vote_changes = sa.table(
    "vote_changes",
    sa.column("vote_id", sa.Integer()),
    sa.column("changed_at", UTC_TIME),
    sa.column("old_winner", sa.String()),
    sa.column("new_winner", sa.String()),
    sa.column("old_sides", sa.JSON()),
    sa.column("new_sides", sa.JSON()),
)


def _aware(value: Any) -> datetime:
    """A stored time as aware UTC (SQLite gives back the UTC wall time, naive or as text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _bind_time(value: datetime, dialect: str) -> datetime:
    """What the column stores: naive UTC wall time on SQLite, aware elsewhere."""
    return value.replace(tzinfo=None) if dialect == "sqlite" else value


def create_tables() -> None:
    op.create_table(
        "vote_battles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vote_id", sa.Integer(), nullable=False),
        sa.Column("model_a", sa.String(128), nullable=False),
        sa.Column("model_b", sa.String(128), nullable=False),
        sa.Column("winner", sa.String(16), nullable=False),
        sa.Column("battle_key", sa.String(32), nullable=True),
        sa.CheckConstraint(f"winner IN {BATTLE_WINNERS}", name=op.f("ck_vote_battles_winner")),
        sa.ForeignKeyConstraint(
            ["vote_id"], ["votes.id"], name=op.f("fk_vote_battles_vote_id_votes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vote_battles")),
        sa.UniqueConstraint("battle_key", name=op.f("uq_vote_battles_battle_key")),
    )  # fmt: skip
    op.create_index(op.f("ix_vote_battles_vote_id"), "vote_battles", ["vote_id"])
    op.create_table(
        "vote_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vote_id", sa.Integer(), nullable=False),
        sa.Column("changed_at", UTC_TIME, nullable=False),
        sa.Column("old_winner", sa.String(16), nullable=False),
        sa.Column("new_winner", sa.String(16), nullable=False),
        sa.Column("old_sides", sa.JSON(), nullable=False),
        sa.Column("new_sides", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vote_id"], ["votes.id"], name=op.f("fk_vote_changes_vote_id_votes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vote_changes")),
    )  # fmt: skip
    op.create_index(op.f("ix_vote_changes_vote_id"), "vote_changes", ["vote_id"])


def add_columns() -> None:
    with op.batch_alter_table("votes") as batch:
        batch.add_column(sa.Column("updated_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("tstamp", sa.Float(), nullable=True))
        batch.add_column(sa.Column("sides", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("origin", sa.String(8), nullable=True))
        batch.add_column(sa.Column("question_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("turn", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("source_run_id", sa.Integer(), nullable=True))


def fill_and_merge() -> None:
    """Fill the new columns of every old vote; fold repeated votes into change histories."""
    bind = op.get_bind()
    dialect = bind.dialect.name
    rows = bind.execute(
        sa.select(
            votes.c.id, votes.c.run_id, votes.c.voter, votes.c.created_at,
            votes.c.model_a, votes.c.model_b, votes.c.winner,
        ).order_by(votes.c.run_id, votes.c.voter, votes.c.created_at, votes.c.id)
    ).all()  # fmt: skip
    groups: dict[tuple[Any, Any], list[Any]] = {}
    for row in rows:
        # Anonymous (NULL voter) rows are not one person: each stays its own vote.
        key = (row.run_id, row.voter) if row.voter is not None else (row.run_id, ("id", row.id))
        groups.setdefault(key, []).append(row)
    for group in groups.values():
        _keep_newest(bind, dialect, group)


def _keep_newest(bind: Any, dialect: str, group: list[Any]) -> None:
    first, kept = group[0], group[-1]
    created = _aware(first.created_at)
    updated = _aware(kept.created_at)
    bind.execute(
        votes.update()
        .where(votes.c.id == kept.id)
        .values(
            created_at=_bind_time(created, dialect),
            updated_at=_bind_time(updated, dialect),
            tstamp=updated.timestamp(),
            sides=[kept.model_a, kept.model_b],
            origin="local",
        )
    )
    for before, after in itertools.pairwise(group):
        bind.execute(
            vote_changes.insert().values(
                vote_id=kept.id,
                changed_at=_bind_time(_aware(after.created_at), dialect),
                old_winner=before.winner,
                new_winner=after.winner,
                old_sides=[before.model_a, before.model_b],
                new_sides=[after.model_a, after.model_b],
            )
        )
    older = [row.id for row in group[:-1]]
    if older:
        bind.execute(votes.delete().where(votes.c.id.in_(older)))


def tighten() -> None:
    with op.batch_alter_table("votes") as batch:
        batch.alter_column("updated_at", existing_type=UTC_TIME, nullable=False)
        batch.alter_column("tstamp", existing_type=sa.Float(), nullable=False)
        batch.alter_column("sides", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("origin", existing_type=sa.String(8), nullable=False)
        batch.alter_column("run_id", existing_type=sa.Integer(), nullable=True)
        batch.drop_constraint(op.f("ck_votes_winner"), type_="check")
        batch.create_check_constraint(op.f("ck_votes_winner"), f"winner IN {VOTE_WINNERS}")
        batch.create_check_constraint(op.f("ck_votes_origin"), f"origin IN {ORIGINS}")
        batch.create_unique_constraint(op.f("uq_votes_run_id"), ["run_id", "voter"])


def add_battles() -> None:
    op.execute(
        "INSERT INTO vote_battles (vote_id, model_a, model_b, winner) "
        "SELECT id, model_a, model_b, winner FROM votes ORDER BY id"
    )


def upgrade() -> None:
    create_tables()
    add_columns()
    fill_and_merge()
    tighten()
    add_battles()


def downgrade() -> None:
    """Back to one row per vote on a run; imported battles (no run) and histories are dropped."""
    op.execute("DELETE FROM votes WHERE run_id IS NULL OR winner NOT IN " + OLD_WINNERS)
    op.drop_table("vote_changes")
    op.drop_table("vote_battles")
    with op.batch_alter_table("votes") as batch:
        batch.drop_constraint(op.f("uq_votes_run_id"), type_="unique")
        batch.drop_constraint(op.f("ck_votes_origin"), type_="check")
        batch.drop_constraint(op.f("ck_votes_winner"), type_="check")
        batch.create_check_constraint(op.f("ck_votes_winner"), f"winner IN {OLD_WINNERS}")
        batch.alter_column("run_id", existing_type=sa.Integer(), nullable=False)
        for name in ("source_run_id", "turn", "question_id", "origin", "sides", "tstamp"):
            batch.drop_column(name)
        batch.drop_column("updated_at")
