"""Search: runs.search_text (the folded prompt and outputs) and an index that finds substrings.

SQLite: an FTS5 table with the trigram tokenizer over runs.search_text (external content, kept in
sync by triggers). PostgreSQL: a pg_trgm GIN index, which serves ``LIKE '%...%'``. Both only narrow
the candidates; the store checks the exact substring. Existing runs are backfilled.

Note for later migrations: a batch migration that recreates ``runs`` on SQLite drops the FTS
triggers with it; such a migration must recreate them (``create_sqlite_fts`` below).

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-29
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")
SEPARATOR = "\x1e"  # qwen_dash.schema.SEARCH_FIELD_SEPARATOR at the time of this migration

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE runs_fts USING fts5("
    "search_text, content='runs', content_rowid='id', tokenize='trigram case_sensitive 1')",
    "CREATE TRIGGER runs_fts_insert AFTER INSERT ON runs BEGIN "
    "INSERT INTO runs_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER runs_fts_delete AFTER DELETE ON runs BEGIN "
    "INSERT INTO runs_fts(runs_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER runs_fts_update AFTER UPDATE OF search_text ON runs BEGIN "
    "INSERT INTO runs_fts(runs_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO runs_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "INSERT INTO runs_fts(runs_fts) VALUES ('rebuild')",
]


def create_sqlite_fts() -> None:
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            for statement in SQLITE_FTS:
                bind.exec_driver_sql(statement)
    except sa.exc.OperationalError as exc:  # SQLite built without FTS5 or older than 3.34
        log.warning("No FTS5 trigram index (%s); text search will scan every run.", exc)


def create_pg_trigram() -> None:
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            bind.exec_driver_sql(
                "CREATE INDEX ix_runs_search_trgm ON runs USING gin (search_text gin_trgm_ops)"
            )
    except sa.exc.DBAPIError as exc:  # extension not installed or not allowed
        log.warning("No pg_trgm index (%s); text search will scan every run.", exc)


def backfill() -> None:
    bind = op.get_bind()
    runs = sa.table(
        "runs",
        sa.column("id", sa.Integer),
        sa.column("prompt", sa.Text),
        sa.column("system_prompt", sa.Text),
        sa.column("search_text", sa.Text),
    )
    gens = sa.table(
        "generations",
        sa.column("run_id", sa.Integer),
        sa.column("position", sa.Integer),
        sa.column("text", sa.Text),
        sa.column("reasoning", sa.Text),
        sa.column("error", sa.Text),
    )
    parts: dict[int, list[str | None]] = {}
    for run_id, prompt, system in bind.execute(
        sa.select(runs.c.id, runs.c.prompt, runs.c.system_prompt)
    ):
        parts[run_id] = [prompt, system]
    gen_rows = sa.select(gens.c.run_id, gens.c.text, gens.c.reasoning, gens.c.error).order_by(
        gens.c.run_id, gens.c.position
    )
    for run_id, text, reasoning, error in bind.execute(gen_rows):
        parts[run_id] += [text, reasoning, error]
    update = sa.update(runs).where(runs.c.id == sa.bindparam("rid"))
    update = update.values(search_text=sa.bindparam("st"))
    rows = [
        {"rid": rid, "st": SEPARATOR.join(p.casefold() for p in fields if p)}
        for rid, fields in parts.items()
    ]
    if rows:
        bind.execute(update, rows)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    backfill()
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        create_sqlite_fts()
    elif dialect == "postgresql":
        create_pg_trigram()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("runs_fts_insert", "runs_fts_delete", "runs_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS runs_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_runs_search_trgm")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("search_text")
