"""One migration history that runs forwards and backwards on both databases."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from meterpay.db.migrate import MIGRATIONS_DIR
from meterpay.runtime import Runtime


def _alembic(rt: Runtime, *steps: tuple[str, str]) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with rt.db.engine.connect() as conn:
        config.attributes["connection"] = conn
        for verb, target in steps:
            getattr(command, verb)(config, target)
        conn.commit()


def _tables(rt: Runtime) -> set[str]:
    """Tables, without the monthly reading partitions (made by ``upgrade``, not Alembic)."""
    return {t for t in inspect(rt.db.engine).get_table_names() if not t.startswith("readings_")}


def test_the_schema_goes_down_to_nothing_and_back_up_again(rt: Runtime) -> None:
    """Downgrading to base drops every table; upgrading to head rebuilds them all."""
    tables_at_head = _tables(rt)
    _alembic(rt, ("downgrade", "base"))
    assert set(inspect(rt.db.engine).get_table_names()) <= {"alembic_version"}
    _alembic(rt, ("upgrade", "head"))
    assert _tables(rt) == tables_at_head
    assert {"frame_log", "readings", "transfers"} <= tables_at_head
