"""Migrations: empty to head matches the models; old databases open, migrate and keep rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from qwen_dash.store import RunFilters, open_store
from qwen_dash.store.database import (
    DEFAULT_DB_PATH,
    ENV_URL,
    current_revision,
    head_revision,
    resolve_url,
    upgrade,
)
from qwen_dash.store.schema import (
    Base,
    decode_token_times,
    encode_token_times,
    include_in_autogenerate,
)
from tests.conftest_db import MODEL_A, make_comparison

REPO = Path(__file__).resolve().parent.parent


def test_migrations_from_empty_to_head_match_the_models(db_url: str) -> None:
    upgrade(resolve_url(db_url))
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            ctx = MigrationContext.configure(
                conn, opts={"include_name": include_in_autogenerate, "compare_type": True}
            )
            assert compare_metadata(ctx, Base.metadata) == []
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert {"runs", "generations", "run_tags", "votes", "alembic_version"} <= tables


def test_constraint_names_follow_the_convention(db_url: str) -> None:
    upgrade(resolve_url(db_url))
    engine = create_engine(db_url)
    try:
        insp = inspect(engine)
        fks = {fk["name"] for fk in insp.get_foreign_keys("generations")}
        indexes = {ix["name"] for ix in insp.get_indexes("generations")}
    finally:
        engine.dispose()
    assert fks == {"fk_generations_run_id_runs"}
    assert {"ix_generations_model_key_created_at", "ix_generations_source_created_at"} <= indexes


def _insert_at_0001(db_url: str) -> None:
    """Rows as version 0001 of the app wrote them (no search_text column then)."""
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, created_at, kind, mode, thinking, prompt, messages, "
                "settings, meta, turn) VALUES (7, :t, 'ui', 'concurrent', false, "
                "'Old Prompt about Llamas', '[]', '{}', '{}', 0)"
            ),
            {
                "t": "2025-01-02 03:04:05.000000"
                if db_url.startswith("sqlite")
                else "2025-01-02T03:04:05+00:00"
            },
        )
        conn.execute(
            text(
                "INSERT INTO generations (run_id, position, created_at, model_key, hf_id, "
                "source, status, mode, text, settings, environment, ttft_ms) VALUES "
                "(7, 0, :t, :m, 'Qwen/x', 'hub', 'ok', 'concurrent', 'An Old Answer', '{}', "
                "'{}', 12.5)"
            ),
            {
                "t": "2025-01-02 03:04:05.000000"
                if db_url.startswith("sqlite")
                else "2025-01-02T03:04:05+00:00",
                "m": MODEL_A,
            },
        )
        conn.execute(text("INSERT INTO run_tags (run_id, tag) VALUES (7, 'legacy')"))
    engine.dispose()


def test_an_older_database_is_migrated_on_open_and_keeps_its_rows(db_url: str) -> None:
    upgrade(resolve_url(db_url), "0001")
    _insert_at_0001(db_url)

    store = open_store(db_url)
    try:
        run = store.get_run(7)
        assert run is not None
        assert run.prompt == "Old Prompt about Llamas"
        assert run.tags == ["legacy"]
        assert run.generations[0].text == "An Old Answer"
        assert run.generations[0].ttft_ms == 12.5
        assert run.created_at.isoformat() == "2025-01-02T03:04:05+00:00"
        # Old rows are searchable: 0002 backfilled their search text.
        assert [r.id for r in store.list_runs(RunFilters(text="llamas")).runs] == [7]
        assert [r.id for r in store.list_runs(RunFilters(text="old answer")).runs] == [7]
        # New runs are saved next to the old ones.
        new_id = store.save_comparison(*make_comparison("A new prompt"))
        assert store.count_runs() == 2 and new_id != 7
    finally:
        store.close()
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    engine.dispose()


def test_open_store_works_from_another_working_directory(tmp_path: Path) -> None:
    code = (
        "from qwen_dash.store import open_store\n"
        "s = open_store('sqlite:///relative.sqlite3')\n"
        "print(s.count_runs())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(ENV_URL, None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"
    assert (tmp_path / "relative.sqlite3").is_file()


def test_url_comes_from_the_environment_else_the_default_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)
    assert resolve_url().database == str(DEFAULT_DB_PATH)
    assert DEFAULT_DB_PATH == REPO / "db" / "qwen_dash.sqlite3"
    monkeypatch.setenv(ENV_URL, f"sqlite:///{tmp_path / 'env.sqlite3'}")
    assert resolve_url().database == str(tmp_path / "env.sqlite3")
    assert resolve_url("postgresql+psycopg://u@h/d").get_backend_name() == "postgresql"


def test_token_times_round_trip_in_four_bytes_each() -> None:
    times = [31.25, 64.5, 97.75, 1234.5]
    blob = encode_token_times(times)
    assert blob is not None and len(blob) == 4 * len(times)
    assert decode_token_times(blob) == times
    assert encode_token_times([]) is None and decode_token_times(None) == []
