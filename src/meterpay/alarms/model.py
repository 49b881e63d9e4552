"""Alarm kinds, severities and the alarm lifecycle (plain data).

Invariants:
- one alarm per ``dedupe_key``: raising it again counts another occurrence
  instead of opening a second alarm, and reopens it if it was closed;
- open -> acknowledged -> closed, or open -> closed; closed is final until the
  same cause is raised again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from meterpay.kernel.errors import Conflict


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlarmState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class AlarmKind(StrEnum):
    CUTOFF_NEEDS_PERSON = "cutoff_needs_person"
    """Arrears that no automatic cut-off will end (protected, water, no allowed moment)."""
    ARREARS_GROWING = "arrears_growing"
    CUTOFF_DEFERRED_TOO_LONG = "cutoff_deferred_too_long"
    COMMAND_FAILED = "command_failed"
    """A cut or restore failed or expired: the meter is not where we want it."""
    RELAY_MISMATCH = "relay_mismatch"
    """The meter reports its relay or valve other than the account's state requires."""
    BYPASS = "bypass"
    """Consumption while the supply is cut off (旁路/窃电)."""
    PAYMENT_MISMATCH = "payment_mismatch"
    """A provider reports a payment that does not match our order: nothing credited."""
    RECONCILIATION = "reconciliation"
    """The day's provider statement and our ledger disagree."""
    RESTORE_HELD = "restore_held"
    """Paid up, but an operator's manual cut of the meter stands: a person lifts it."""


SEVERITY: Final = {
    AlarmKind.CUTOFF_NEEDS_PERSON: Severity.WARNING,
    AlarmKind.ARREARS_GROWING: Severity.WARNING,
    AlarmKind.CUTOFF_DEFERRED_TOO_LONG: Severity.INFO,
    AlarmKind.COMMAND_FAILED: Severity.CRITICAL,
    AlarmKind.RELAY_MISMATCH: Severity.CRITICAL,
    AlarmKind.BYPASS: Severity.CRITICAL,
    AlarmKind.RESTORE_HELD: Severity.WARNING,
    AlarmKind.PAYMENT_MISMATCH: Severity.CRITICAL,
    AlarmKind.RECONCILIATION: Severity.CRITICAL,
}

MOVES: Final = {
    (AlarmState.OPEN, AlarmState.ACKNOWLEDGED),
    (AlarmState.OPEN, AlarmState.CLOSED),
    (AlarmState.ACKNOWLEDGED, AlarmState.CLOSED),
}


class IllegalAlarmMove(Conflict):
    code = "illegal_alarm_move"


def check_move(state: AlarmState, to: AlarmState) -> None:
    if (state, to) not in MOVES:
        raise IllegalAlarmMove(f"an {state} alarm cannot become {to}", state=state, to=to)


@dataclass(frozen=True, slots=True)
class Alarm:
    id: int
    site_id: int | None
    kind: AlarmKind
    severity: Severity
    object_type: str
    object_id: str
    dedupe_key: str
    message: str
    details: dict[str, Any] | None
    state: AlarmState
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    closed_at: datetime | None = None
    closed_by: str | None = None
