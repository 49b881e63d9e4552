"""The ``meterpay`` command as an operator uses it, on a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from meterpay.cli import main


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("MP_DATABASE_URL", url)
    return url


def test_migrate_creates_the_schema_and_says_so(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`meterpay migrate` brings an empty database to the latest schema."""
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out
    engine = create_engine(database)
    with engine.connect() as conn:
        tables = set(conn.execute(text("SELECT name FROM sqlite_master")).scalars())
    engine.dispose()
    assert {"sites", "accounts", "meters", "readings", "transfers", "audit_log"} <= tables


def test_demo_seeds_a_compound_whose_ledger_verifies_clean(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo seeds ~200 units in more than one supply state (one protected), bills a
    simulated round, and the ledger is sound."""
    assert main(["demo", "--no-serve"]) == 0
    engine = create_engine(database)
    with engine.connect() as conn:
        units = conn.execute(text("SELECT count(*) FROM units WHERE kind != 'common'")).scalar()
        meters = conn.execute(text("SELECT count(*) FROM meters")).scalar()
        charged = conn.execute(text("SELECT count(*) FROM charges WHERE amount_fen > 0")).scalar()
        states = set(conn.execute(text("SELECT DISTINCT supply_state FROM accounts")).scalars())
        protected = conn.execute(
            text("SELECT count(*) FROM accounts WHERE protected_reason IS NOT NULL")
        ).scalar()
    engine.dispose()
    assert units == 204
    assert meters == 2 * 204 + 2
    assert charged
    assert len(states) > 1, states  # the console has a story to show from the start
    assert protected == 1
    assert main(["ledger", "verify"]) == 0
    assert "clean" in capsys.readouterr().out


def test_demo_run_twice_does_not_seed_twice(database: str) -> None:
    """Restarting the demo reuses the seeded site instead of failing or duplicating it."""
    assert main(["demo", "--no-serve"]) == 0
    assert main(["demo", "--no-serve"]) == 0
    engine = create_engine(database)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sites")).scalar() == 1
    engine.dispose()


def test_ledger_verify_exits_non_zero_on_a_tampered_balance(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A posted total that no longer matches its transfers is reported and fails the command."""
    assert main(["demo", "--no-serve"]) == 0
    engine = create_engine(database)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE ledger_accounts SET credits_posted = credits_posted + 1 "
                "WHERE id = (SELECT min(id) FROM ledger_accounts "
                "WHERE code LIKE 'wallet:%')"
            )
        )
    engine.dispose()
    assert main(["ledger", "verify"]) == 1
    assert "VIOLATION" in capsys.readouterr().out


def test_transfers_are_append_only_in_the_database(database: str) -> None:
    """Editing or deleting a transfer is refused by the database itself."""
    assert main(["demo", "--no-serve"]) == 0
    engine = create_engine(database)
    for statement in ("UPDATE transfers SET amount_fen = 1", "DELETE FROM transfers"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    engine.dispose()
