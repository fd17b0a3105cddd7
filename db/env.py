"""Alembic environment. ``qwen_dash.store.database.upgrade`` passes a connection that already
holds the migration lock; the ``alembic`` command line (``alembic -c db/alembic.ini ...``)
connects itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from qwen_dash.store.database import migration_connection, resolve_url
from qwen_dash.store.schema import Base, include_in_autogenerate

config = context.config
target_metadata = Base.metadata


def configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=include_in_autogenerate,
        compare_type=True,
    )


def run_offline() -> None:
    context.configure(
        url=str(resolve_url(config.get_main_option("sqlalchemy.url") or None)),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = resolve_url(config.get_main_option("sqlalchemy.url") or None)
    with migration_connection(url) as connection:
        configure(connection)
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
