"""Bodies for manual and group supply control (/control-actions): who would be affected,
the request with its reason, and a second person's decision."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from meterpay.control.manual import ActionState, ControlKind, Scope
from meterpay.web.api.schemas import In, Out

Reason = Annotated[str, Field(min_length=1, max_length=500, description="why, for the audit log")]


class ControlTarget(In):
    scope: Scope = Field(description="meter, floor, building or site")
    scope_id: int = Field(ge=1, description="the id of that meter, floor, building or site")
    kind: ControlKind = Field(description="cut or restore")


class ControlActionIn(ControlTarget):
    reason: Reason
    override_protection: bool = Field(
        default=False,
        description="cut one protected account's meter (保电) anyway; never for a group",
    )


class ApproveIn(In):
    reason: str = Field(default="", max_length=500)


class RejectIn(In):
    reason: Reason


class AffectedMeterOut(Out):
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
    protected_reason: str | None
    protected_by: str | None
    protected_since: datetime | None


class PreviewOut(Out):
    scope: Scope
    scope_id: int
    site_id: int
    kind: ControlKind
    needs_approval: bool = Field(description="a group cut waits for a second person")
    counts: dict[str, int]
    meters: list[AffectedMeterOut] = Field(description="the meters that would get a command")
    protected_skipped: list[AffectedMeterOut] = Field(description="protected accounts (保电)")
    without_switch: list[AffectedMeterOut] = Field(description="no remote switch: no command")


class ControlActionOut(Out):
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
    commands_queued: int
    command_states: dict[str, int] = Field(description="the commands' current states, counted")
    preview: dict[str, Any] = Field(
        description="requested: who it would affect when asked; executed: who got a command"
    )


class ControlActionList(BaseModel):
    items: list[ControlActionOut]
