"""Run the Alembic migration history against the configured database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from meterpay.db.engine import Database
from meterpay.db.partitions import PartitionKeeper, months_ahead
from meterpay.kernel.clock import Clock

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


def upgrade(db: Database, clock: Clock, *, partitions_ahead: int = 3) -> None:
    """Bring the schema to the latest revision and create reading partitions ahead."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()
    with db.write() as conn:
        PartitionKeeper().ensure(conn, months_ahead(clock.now(), partitions_ahead))
