"""Shared fixtures: a migrated database per test, on SQLite and on PostgreSQL.

PostgreSQL tests create their own database under a unique name and drop it
afterwards. They skip with a reason when no server is reachable — except
under CI (``CI=true``), where an unreachable server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from meterpay.config import Settings
from meterpay.db.engine import Database
from meterpay.db.migrate import upgrade
from meterpay.kernel.clock import FixedClock
from meterpay.runtime import Runtime

PG_ADMIN_URL = os.environ.get(
    "MP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "not reachable"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def pg_available() -> None:
    problem = _pg_reachable()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but PostgreSQL at {PG_ADMIN_URL} is unreachable: {problem}")
    pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({problem}); set MP_TEST_PG_URL")


def make_pg_database() -> tuple[str, str]:
    name = f"mp_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _runtime(url: str) -> Runtime:
    clock = FixedClock(START)
    settings = Settings(database_url=url)
    rt = Runtime(db=Database(url), clock=clock, settings=settings)
    upgrade(rt.db, clock)
    return rt


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """A migrated, empty database with a fixed clock, on each backend."""
    if request.param == "sqlite":
        runtime = _runtime(f"sqlite:///{tmp_path / 'meterpay.db'}")
        yield runtime
        runtime.db.dispose()
        return
    request.getfixturevalue("pg_available")
    name, url = make_pg_database()
    runtime = _runtime(url)
    try:
        yield runtime
    finally:
        runtime.db.dispose()
        drop_pg_database(name)


@pytest.fixture
def pg_rt(pg_available: None) -> Iterator[Runtime]:
    """A migrated PostgreSQL database only (concurrency tests)."""
    name, url = make_pg_database()
    runtime = _runtime(url)
    try:
        yield runtime
    finally:
        runtime.db.dispose()
        drop_pg_database(name)
