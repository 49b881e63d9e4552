"""One migration history that runs forwards and backwards on both databases."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from meterpay.db.migrate import MIGRATIONS_DIR
from meterpay.db.schema import metadata
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


def test_the_migrations_build_exactly_the_tables_and_columns_the_code_declares(
    rt: Runtime,
) -> None:
    """``db/schema.py`` (what the code queries) and the migrations (what a database
    has) name the same tables, columns and nullability; a column added to one and
    forgotten in the other fails here, not in production."""
    inspector = inspect(rt.db.engine)
    declared = {name for name in metadata.tables}
    assert _tables(rt) - {"alembic_version"} == declared
    for table in metadata.sorted_tables:
        # Key columns' nullability is left out: SQLite reports it by how the key was declared.
        built = {
            c["name"]: c["nullable"] or c["name"] in table.primary_key.columns
            for c in inspector.get_columns(table.name)
        }
        wanted = {c.name: c.nullable or c.primary_key for c in table.columns}
        assert built == wanted, table.name
