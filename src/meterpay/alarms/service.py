"""Use cases on alarms: list, acknowledge, close (each audited)."""

from __future__ import annotations

from meterpay.alarms import repository as repo
from meterpay.alarms.model import Alarm, AlarmKind, AlarmState, check_move
from meterpay.audit import repository as audit
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.runtime import Runtime


def list_alarms(
    rt: Runtime,
    *,
    state: AlarmState | None = None,
    site_id: int | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    kind: AlarmKind | None = None,
    limit: int = 100,
) -> list[Alarm]:
    with rt.db.read() as conn:
        return repo.find(
            conn,
            state=state,
            site_id=site_id,
            object_type=object_type,
            object_id=object_id,
            kind=kind,
            limit=limit,
        )


def acknowledge(rt: Runtime, alarm_id: int, *, by: str, reason: str = "") -> Alarm:
    return _move(rt, alarm_id, AlarmState.ACKNOWLEDGED, by=by, reason=reason)


def close(rt: Runtime, alarm_id: int, *, by: str, reason: str) -> Alarm:
    if not reason.strip():
        raise InvalidInput("closing an alarm needs a reason", field="reason")
    return _move(rt, alarm_id, AlarmState.CLOSED, by=by, reason=reason)


def _move(rt: Runtime, alarm_id: int, to: AlarmState, *, by: str, reason: str) -> Alarm:
    now = rt.clock.now()
    with rt.db.write() as conn:
        alarm = repo.get(conn, alarm_id, lock=True)
        if alarm is None:
            raise NotFound(f"alarm {alarm_id} does not exist", alarm_id=alarm_id)
        check_move(alarm.state, to)
        repo.move(conn, alarm_id, to, by=by, now=now)
        audit.record(
            conn,
            at=now,
            actor=by,
            action=f"alarm.{to.value}",
            object_type="alarm",
            object_id=alarm_id,
            site_id=alarm.site_id,
            before={"state": alarm.state.value},
            after={"state": to.value},
            reason=reason,
        )
        moved = repo.get(conn, alarm_id)
        assert moved is not None  # noqa: S101  locked above
        return moved
