"""Manual and group supply control under /api/v1/control-actions: parse, call one
service, render. The acting person is the API caller (``deps.caller``): a group cut
needs a second caller to approve it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from meterpay.auth.model import Permission as P
from meterpay.control import manual
from meterpay.web.api import control_schemas as cs
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.guard import allow

router = APIRouter(tags=["control"])


@router.post(
    "/control-actions/preview", dependencies=[allow(P.CONTROL_WRITE)], response_model=cs.PreviewOut
)
def preview_control_action(body: cs.ControlTarget, rt: Rt) -> Any:
    """Who a cut or restore would affect, and which protected accounts a cut skips."""
    found = manual.preview(rt, scope=body.scope, scope_id=body.scope_id, kind=body.kind)
    return cs.PreviewOut.model_validate(found)  # its counts are properties: not in asdict


@router.post(
    "/control-actions",
    dependencies=[allow(P.CONTROL_WRITE)],
    status_code=201,
    response_model=cs.ControlActionOut,
)
def request_control_action(body: cs.ControlActionIn, rt: Rt, actor: Actor) -> Any:
    """Cut or restore now, or (a group cut) wait for a second person's approval."""
    return manual.request(rt, **body.model_dump(), requested_by=actor)


@router.get(
    "/control-actions", dependencies=[allow(P.SITE_READ)], response_model=cs.ControlActionList
)
def list_control_actions(
    rt: Rt,
    site_id: int | None = None,
    state: manual.ActionState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """The newest actions first."""
    return {"items": manual.list_actions(rt, site_id=site_id, state=state, limit=limit)}


@router.get(
    "/control-actions/{action_id}",
    dependencies=[allow(P.SITE_READ)],
    response_model=cs.ControlActionOut,
)
def get_control_action(action_id: int, rt: Rt) -> Any:
    return manual.get(rt, action_id)


@router.post(
    "/control-actions/{action_id}/approve",
    dependencies=[allow(P.CONTROL_APPROVE)],
    response_model=cs.ControlActionOut,
)
def approve_control_action(action_id: int, body: cs.ApproveIn, rt: Rt, actor: Actor) -> Any:
    """A second person approves a group cut; the requester cannot (409)."""
    return manual.approve(rt, action_id, approver=actor, reason=body.reason)


@router.post(
    "/control-actions/{action_id}/reject",
    dependencies=[allow(P.CONTROL_APPROVE)],
    response_model=cs.ControlActionOut,
)
def reject_control_action(action_id: int, body: cs.RejectIn, rt: Rt, actor: Actor) -> Any:
    return manual.reject(rt, action_id, by=actor, reason=body.reason)
