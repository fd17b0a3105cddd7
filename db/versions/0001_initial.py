"""Initial schema: runs, their tags and generations, votes.

Revision ID: 0001
Revises:
Create Date: 2025-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
BIG = sa.BigInteger()


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("thinking", sa.Boolean(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("user", sa.String(128), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("conversation_id", sa.String(64), nullable=True),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('ui', 'cli', 'suite', 'benchmark')", name=op.f("ck_runs_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs") as batch:
        batch.create_index("ix_runs_created_at_id", ["created_at", "id"])
        batch.create_index(batch.f("ix_runs_conversation_id"), ["conversation_id"])
        batch.create_index("ix_runs_kind_created_at", ["kind", "created_at"])

    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_tags_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "tag", name=op.f("pk_run_tags")),
    )
    op.create_index(op.f("ix_run_tags_tag"), "run_tags", ["tag"])

    op.create_table(
        "generations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("model_key", sa.String(128), nullable=False),
        sa.Column("hf_id", sa.String(256), nullable=False),
        sa.Column("revision", sa.String(128), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("device", sa.String(128), nullable=True),
        sa.Column("dtype", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finish_reason", sa.String(16), nullable=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("overlapped", sa.Boolean(), nullable=True),
        sa.Column("started_at", UTC_TIME, nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=True),
        *(
            sa.Column(name, sa.Float(), nullable=True)
            for name in (
                "queue_ms",
                "tokenize_ms",
                "ttft_ms",
                "e2e_ms",
                "decode_tps",
                "gen_tps",
                "total_tps",
                "itl_p50_ms",
                "itl_p95_ms",
            )
        ),
        *(
            sa.Column(name, sa.Integer(), nullable=True)
            for name in ("n_in", "n_out", "n_think", "n_answer")
        ),
        sa.Column("ttfa_ms", sa.Float(), nullable=True),
        *(
            sa.Column(name, BIG, nullable=True)
            for name in (
                "weights_bytes",
                "cuda_peak_alloc_bytes",
                "cuda_peak_reserved_bytes",
                "nvml_process_bytes",
                "nvml_device_used_bytes",
                "rss_peak_bytes",
                "peak_memory_bytes",
            )
        ),
        sa.Column("token_times", sa.LargeBinary(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("environment", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_generations_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
    )
    op.create_index(op.f("ix_generations_run_id"), "generations", ["run_id"])
    op.create_index(
        "ix_generations_model_key_created_at", "generations", ["model_key", "created_at"]
    )
    op.create_index("ix_generations_source_created_at", "generations", ["source", "created_at"])

    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("model_a", sa.String(128), nullable=False),
        sa.Column("model_b", sa.String(128), nullable=False),
        sa.Column("winner", sa.String(16), nullable=False),
        sa.Column("voter", sa.String(128), nullable=True),
        sa.Column("blind", sa.Boolean(), nullable=False),
        sa.CheckConstraint("winner IN ('a', 'b', 'tie', 'both_bad')", name=op.f("ck_votes_winner")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_votes_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_votes")),
    )
    op.create_index(op.f("ix_votes_run_id"), "votes", ["run_id"])
    op.create_index(op.f("ix_votes_created_at"), "votes", ["created_at"])


def downgrade() -> None:
    op.drop_table("votes")
    op.drop_table("generations")
    op.drop_table("run_tags")
    op.drop_table("runs")
