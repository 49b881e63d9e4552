"""Alembic environment: one migration history for SQLite and PostgreSQL.

The URL comes from the caller (``meterpay migrate`` passes the configured
database) or from ``-x url=...`` when Alembic runs by hand.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from meterpay.db.schema import metadata

config = context.config
url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    context.configure(
        connection=conn,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,  # SQLite needs table rebuilds for most ALTERs
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    if not url:
        raise SystemExit("no database URL: pass -x url=... or run `meterpay migrate`")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
