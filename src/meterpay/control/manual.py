"""Manual and group supply control: a person cuts or restores one meter, a floor, a
building or a whole site, with a reason (emergency shut-off, maintenance, a restore).

Invariants:
- every request names a reason and is written to the audit log with who asked, and so
  is every approval or rejection, with the action before and after;
- a group cut (floor, building, site) waits for a second person: the requester can
  never approve it, and it is carried out at most once (a decided action is final);
- a group cut always skips protected accounts (保电); a cut of one protected meter
  needs an explicit override, which the audit log records;
- a restore is never skipped for protection and never waits for approval;
- the meters are worked out again when a cut is approved: protection and meters may
  have changed since the preview the approver saw;
- one command per meter per action, under ``manual:{action}:{meter}``: nothing is
  queued twice, whatever is retried;
- a meter without a remote switch gets no command (it could only fail); removed
  meters are not in scope.

This module does not move accounts' supply states: a command's read-back does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Connection, Select, select, update

from meterpay.audit import repository as audit
from meterpay.control import outbox
from meterpay.control.commands import CommandKind
from meterpay.db.rows import fetch, insert_row, to_model
from meterpay.db.schema import (
    accounts,
    buildings,
    commands,
    control_actions,
    floors,
    meters,
    sites,
    units,
)
from meterpay.kernel.errors import Conflict, InvalidInput, NotFound
from meterpay.runtime import Runtime

# --- the decisions (pure) ------------------------------------------------------------------


class Scope(StrEnum):
    METER = "meter"
    FLOOR = "floor"
    BUILDING = "building"
    SITE = "site"


class ControlKind(StrEnum):
    CUT = "cut"
    RESTORE = "restore"


class ActionState(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    REJECTED = "rejected"
    EXECUTED = "executed"


class ActionEvent(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


TRANSITIONS: Final[dict[tuple[ActionState, ActionEvent], ActionState]] = {
    (ActionState.AWAITING_APPROVAL, ActionEvent.APPROVED): ActionState.EXECUTED,
    (ActionState.AWAITING_APPROVAL, ActionEvent.REJECTED): ActionState.REJECTED,
}


class NotAwaitingApproval(Conflict):
    """The action was decided already (approved or rejected) or never needed approval."""

    code = "not_awaiting_approval"


class SelfApproval(Conflict):
    """The person who asked for a group cut tried to approve it themselves."""

    code = "self_approval"


class ProtectedAccount(Conflict):
    """A cut of a protected account's meter (保电) without an explicit override."""

    code = "protected_account"


class NoRemoteSwitch(Conflict):
    """The meter has no relay or valve meterpay can switch."""

    code = "no_remote_switch"


@dataclass(frozen=True, slots=True)
class AffectedMeter:
    """One meter in scope, with what an operator needs to recognise it."""

    meter_id: int
    address: str
    serial: str | None
    utility: str
    has_switch: bool
    unit_id: int
    unit_code: str
    account_id: int | None
    account_number: str | None
    supply_state: str | None
    protected_reason: str | None = None
    protected_by: str | None = None
    protected_since: datetime | None = None

    @property
    def protected(self) -> bool:
        return bool(self.protected_reason and self.protected_reason.strip())

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        since = self.protected_since
        values["protected_since"] = since.isoformat() if since is not None else None
        return values


@dataclass(frozen=True, slots=True)
class Preview:
    """Who an action would affect: the meters to command, and those left out and why."""

    scope: Scope
    scope_id: int
    site_id: int
    kind: ControlKind
    meters: tuple[AffectedMeter, ...]
    protected_skipped: tuple[AffectedMeter, ...]
    without_switch: tuple[AffectedMeter, ...]
    override_protection: bool = False

    @property
    def needs_approval(self) -> bool:
        return needs_approval(self.scope, self.kind)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "meters": len(self.meters),
            "protected_skipped": len(self.protected_skipped),
            "without_switch": len(self.without_switch),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "meters": [m.to_json() for m in self.meters],
            "protected_skipped": [m.to_json() for m in self.protected_skipped],
            "without_switch": [m.to_json() for m in self.without_switch],
            "counts": self.counts,
            "override_protection": self.override_protection,
        }


def needs_approval(scope: Scope, kind: ControlKind) -> bool:
    """Only a group cut waits for a second person; a restore is always welcome."""
    return kind is ControlKind.CUT and scope is not Scope.METER


def decide(
    scope: Scope,
    scope_id: int,
    site_id: int,
    kind: ControlKind,
    in_scope: Iterable[AffectedMeter],
    *,
    override_protection: bool = False,
) -> Preview:
    """Split the meters in scope into those to command and those left out (no switch;
    protected, for a cut without an override)."""
    if override_protection and scope is not Scope.METER:
        raise InvalidInput(
            "override_protection is for one meter: group cuts always skip protected accounts",
            field="override_protection",
        )
    chosen: list[AffectedMeter] = []
    protected: list[AffectedMeter] = []
    no_switch: list[AffectedMeter] = []
    for meter in in_scope:
        if not meter.has_switch:
            no_switch.append(meter)
        elif kind is ControlKind.CUT and meter.protected and not override_protection:
            protected.append(meter)
        else:
            chosen.append(meter)
    override = override_protection and kind is ControlKind.CUT
    return Preview(
        scope, scope_id, site_id, kind, (*chosen,), (*protected,), (*no_switch,), override
    )


def require_single_target(preview: Preview) -> None:
    """A single-meter action must command its meter, or say clearly why it cannot."""
    if preview.scope is not Scope.METER or preview.meters:
        return
    if preview.protected_skipped:
        who = preview.protected_skipped[0]
        raise ProtectedAccount(
            f"meter {preview.scope_id} serves protected account {who.account_number} "
            f"({who.protected_reason}, set by {who.protected_by}): cut it only with "
            "override_protection and a reason",
            meter_id=preview.scope_id,
        )
    if preview.without_switch:
        raise NoRemoteSwitch(f"meter {preview.scope_id} has no remote switch")
    raise Conflict(f"meter {preview.scope_id} is removed: there is nothing to command")


def require_reason(reason: str, field_name: str = "reason") -> str:
    if not reason or not reason.strip():
        raise InvalidInput(f"{field_name} is required: say why", field=field_name)
    return reason.strip()


def next_state(action_id: int, state: ActionState, event: ActionEvent) -> ActionState:
    found = TRANSITIONS.get((state, event))
    if found is None:
        raise NotAwaitingApproval(
            f"control action {action_id} is {state.value}, not awaiting approval",
            id=action_id,
            state=state.value,
        )
    return found


def check_approver(action_id: int, requested_by: str, approver: str) -> None:
    if approver == requested_by:
        raise SelfApproval(
            f"control action {action_id} was requested by {approver}: a second person "
            "must approve it",
            id=action_id,
        )


# --- the use cases -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlAction:
    id: int
    site_id: int
    scope: Scope
    scope_id: int
    kind: ControlKind
    reason: str
    state: ActionState
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    preview: dict[str, Any]
    """``requested``: who it would affect when asked; ``executed``: who got a command."""
    commands_queued: int
    command_states: dict[str, int] = field(default_factory=dict)
    """For an executed action: how many of its commands are in each state now."""


def preview(rt: Runtime, *, scope: Scope, scope_id: int, kind: ControlKind) -> Preview:
    """Who an action would affect now; nothing is written."""
    with rt.db.read() as conn:
        return _preview(conn, Scope(scope), scope_id, ControlKind(kind))


def request(
    rt: Runtime,
    *,
    scope: Scope,
    scope_id: int,
    kind: ControlKind,
    reason: str,
    requested_by: str,
    override_protection: bool = False,
) -> ControlAction:
    """Ask for a cut or restore: carried out at once, or kept for approval (a group cut)."""
    reason = require_reason(reason)
    scope, kind = Scope(scope), ControlKind(kind)
    now = rt.clock.now()
    with rt.db.write() as conn:
        plan = _preview(conn, scope, scope_id, kind, override_protection=override_protection)
        require_single_target(plan)
        action_id = _insert_action(conn, plan, reason=reason, requested_by=requested_by, now=now)
        if not plan.needs_approval:
            _queue_commands(
                conn, action_id, plan, reason=reason, requested_by=requested_by, now=now
            )
        action = _action(conn, action_id)
        _audit(conn, action, "control_action.request", actor=requested_by, at=now, reason=reason)
        if plan.override_protection:
            _audit_overrides(conn, action, plan, now)
        return _with_command_states(conn, [action])[0]


def approve(rt: Runtime, action_id: int, *, approver: str, reason: str = "") -> ControlAction:
    """A second person approves a group cut: the meters are worked out again now and
    each gets one command."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        before = _action(conn, action_id, lock=True)
        state = next_state(action_id, before.state, ActionEvent.APPROVED)
        check_approver(action_id, before.requested_by, approver)
        plan = _preview(conn, before.scope, before.scope_id, before.kind)
        queued = _queue_commands(
            conn, action_id, plan, reason=before.reason, requested_by=before.requested_by, now=now
        )
        _decide(
            conn,
            action_id,
            state,
            approver,
            now,
            commands_queued=queued,
            preview={**before.preview, "executed": plan.to_json()},
        )
        after = _action(conn, action_id)
        _audit(
            conn,
            after,
            "control_action.approve",
            actor=approver,
            at=now,
            before=before,
            reason=reason,
        )
        return _with_command_states(conn, [after])[0]


def reject(rt: Runtime, action_id: int, *, by: str, reason: str) -> ControlAction:
    """Turn a group cut down (the requester may withdraw it too); nothing is queued."""
    reason = require_reason(reason)
    now = rt.clock.now()
    with rt.db.write() as conn:
        before = _action(conn, action_id, lock=True)
        state = next_state(action_id, before.state, ActionEvent.REJECTED)
        _decide(conn, action_id, state, by, now)
        after = _action(conn, action_id)
        _audit(conn, after, "control_action.reject", actor=by, at=now, before=before, reason=reason)
        return after


def get(rt: Runtime, action_id: int) -> ControlAction:
    with rt.db.read() as conn:
        return _with_command_states(conn, [_action(conn, action_id)])[0]


def list_actions(
    rt: Runtime, *, site_id: int | None = None, state: ActionState | None = None, limit: int = 50
) -> list[ControlAction]:
    """The newest actions first, with their commands' current states."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1", field="limit")
    query = select(control_actions).order_by(control_actions.c.id.desc()).limit(limit)
    if site_id is not None:
        query = query.where(control_actions.c.site_id == site_id)
    if state is not None:
        query = query.where(control_actions.c.state == ActionState(state).value)
    with rt.db.read() as conn:
        found = [to_model(ControlAction, row) for row in conn.execute(query).mappings()]
        return _with_command_states(conn, found)


# --- storage -------------------------------------------------------------------------------

_NOT_REMOVED = (meters.c.status != "removed", meters.c.removed_at.is_(None))
_IN_SCOPE: Final = {
    Scope.METER: meters.c.id,
    Scope.FLOOR: units.c.floor_id,
    Scope.BUILDING: floors.c.building_id,
    Scope.SITE: meters.c.site_id,
}
_CHUNK: Final = 500  # cause keys per IN (...): well under every driver's parameter limit


def _preview(
    conn: Connection,
    scope: Scope,
    scope_id: int,
    kind: ControlKind,
    *,
    override_protection: bool = False,
) -> Preview:
    site_id = _site_of(conn, scope, scope_id)
    found = _meters_in(conn, scope, scope_id)
    return decide(scope, scope_id, site_id, kind, found, override_protection=override_protection)


def _site_of(conn: Connection, scope: Scope, scope_id: int) -> int:
    queries: dict[Scope, Select[Any]] = {
        Scope.METER: select(meters.c.site_id).where(meters.c.id == scope_id),
        Scope.FLOOR: select(buildings.c.site_id)
        .join(floors, floors.c.building_id == buildings.c.id)
        .where(floors.c.id == scope_id),
        Scope.BUILDING: select(buildings.c.site_id).where(buildings.c.id == scope_id),
        Scope.SITE: select(sites.c.id).where(sites.c.id == scope_id),
    }
    found = conn.execute(queries[scope]).scalar_one_or_none()
    if found is None:
        raise NotFound(f"{scope.value} {scope_id} does not exist", scope=scope.value, id=scope_id)
    return int(found)


def _meters_in(conn: Connection, scope: Scope, scope_id: int) -> list[AffectedMeter]:
    query = (
        select(
            meters.c.id.label("meter_id"),
            meters.c.address,
            meters.c.serial,
            meters.c.utility,
            meters.c.has_switch,
            meters.c.unit_id,
            units.c.code.label("unit_code"),
            meters.c.account_id,
            accounts.c.number.label("account_number"),
            accounts.c.supply_state,
            accounts.c.protected_reason,
            accounts.c.protected_by,
            accounts.c.protected_since,
        )
        .join(units, units.c.id == meters.c.unit_id)
        .outerjoin(floors, floors.c.id == units.c.floor_id)
        .outerjoin(accounts, accounts.c.id == meters.c.account_id)
        .where(_IN_SCOPE[scope] == scope_id, *_NOT_REMOVED)
        .order_by(units.c.code, meters.c.id)
    )
    return [to_model(AffectedMeter, row) for row in conn.execute(query).mappings()]


def _queue_commands(
    conn: Connection,
    action_id: int,
    plan: Preview,
    *,
    reason: str,
    requested_by: str,
    now: datetime,
) -> int:
    if plan.kind is ControlKind.RESTORE:  # a cut still retrying must not land after it
        outbox.withdraw_in(
            conn,
            kind=CommandKind.CUT,
            meter_ids=[m.meter_id for m in plan.meters],
            cause_prefix="manual:",
            now=now,
            reason=f"restored by control action {action_id}",
        )
    for meter in plan.meters:
        outbox.queue_in(
            conn,
            meter_id=meter.meter_id,
            kind=CommandKind(plan.kind.value),
            cause_key=_cause_key(action_id, meter.meter_id),
            requested_by=requested_by,
            now=now,
            account_id=meter.account_id,
            reason=reason,
        )
    return len(plan.meters)


def _insert_action(
    conn: Connection, plan: Preview, *, reason: str, requested_by: str, now: datetime
) -> int:
    waiting = plan.needs_approval
    state = ActionState.AWAITING_APPROVAL if waiting else ActionState.EXECUTED
    shown = plan.to_json()
    return insert_row(
        conn,
        control_actions,
        {
            "site_id": plan.site_id,
            "scope": plan.scope.value,
            "scope_id": plan.scope_id,
            "kind": plan.kind.value,
            "reason": reason[:500],
            "state": state.value,
            "requested_by": requested_by,
            "requested_at": now,
            "decided_at": None if waiting else now,
            "preview": {"requested": shown, "executed": None if waiting else shown},
            "commands_queued": 0 if waiting else len(plan.meters),
        },
    )


def _decide(
    conn: Connection,
    action_id: int,
    state: ActionState,
    by: str,
    now: datetime,
    **values: Any,
) -> None:
    changes = {"state": state.value, "decided_by": by, "decided_at": now, **values}
    conn.execute(update(control_actions).where(control_actions.c.id == action_id).values(**changes))


def _cause_key(action_id: int, meter_id: int) -> str:
    return f"manual:{action_id}:{meter_id}"


def _action(conn: Connection, action_id: int, *, lock: bool = False) -> ControlAction:
    return fetch(conn, control_actions, ControlAction, action_id, lock=lock)


def _with_command_states(conn: Connection, actions: Sequence[ControlAction]) -> list[ControlAction]:
    owner = {
        _cause_key(action.id, meter["meter_id"]): action.id
        for action in actions
        for meter in (action.preview.get("executed") or {}).get("meters", ())
    }
    counts: dict[int, Counter[str]] = {action.id: Counter() for action in actions}
    keys = sorted(owner)
    for start in range(0, len(keys), _CHUNK):
        query = select(commands.c.cause_key, commands.c.state).where(
            commands.c.cause_key.in_(keys[start : start + _CHUNK])
        )
        for key, state in conn.execute(query):
            counts[owner[key]][state] += 1
    return [replace(a, command_states=dict(sorted(counts[a.id].items()))) for a in actions]


def _audit(
    conn: Connection,
    action: ControlAction,
    verb: str,
    *,
    actor: str,
    at: datetime,
    reason: str,
    before: ControlAction | None = None,
) -> None:
    audit.record(
        conn,
        at=at,
        actor=actor,
        action=verb,
        object_type="control_action",
        object_id=action.id,
        site_id=action.site_id,
        before=_summary(before) if before is not None else None,
        after=_summary(action),
        reason=reason or action.reason,
    )


def _audit_overrides(conn: Connection, action: ControlAction, plan: Preview, now: datetime) -> None:
    """A person cut a protected account's meter: said on the account itself as well."""
    for meter in plan.meters:
        if meter.protected and meter.account_id is not None:
            audit.record(
                conn,
                at=now,
                actor=action.requested_by,
                action="account.protection_overridden",
                object_type="account",
                object_id=meter.account_id,
                site_id=action.site_id,
                before={"protected_reason": meter.protected_reason, "by": meter.protected_by},
                after={"control_action": action.id, "meter_id": meter.meter_id, "kind": "cut"},
                reason=action.reason,
            )


def _summary(action: ControlAction) -> Mapping[str, Any]:
    shown = action.preview.get("executed") or action.preview["requested"]
    return {
        "scope": action.scope.value,
        "scope_id": action.scope_id,
        "kind": action.kind.value,
        "state": action.state.value,
        "requested_by": action.requested_by,
        "decided_by": action.decided_by,
        "commands_queued": action.commands_queued,
        "protected_skipped": len(shown["protected_skipped"]),
        "override_protection": bool(shown.get("override_protection")),
    }
