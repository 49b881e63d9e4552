"""Gateways and raw frames under /api/v1: what the links see, for the console.

Parse, call one service, render.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from meterpay.auth.model import Permission as P
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import GatewayStatus, Transport
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.guard import allow

router = APIRouter(tags=["meter links"])
Limit = Annotated[int, Query(ge=1, le=500)]


class GatewayIn(s.In):
    site_id: int
    code: Annotated[
        str,
        Field(min_length=1, max_length=64, description="registration id: IMEI, ICCID, string"),
    ]
    name: Annotated[str, Field(max_length=200)] = ""
    transport: Transport = Transport.DTU


class GatewayOut(s.Out):
    id: int
    site_id: int
    code: str
    name: str
    transport: Transport
    status: GatewayStatus
    last_seen_at: datetime | None
    remote_addr: str | None
    connected_at: datetime | None


class FrameOut(s.Out):
    id: int
    at: datetime
    gateway_code: str
    meter_id: int | None
    direction: str = Field(description="rx: from the meter; tx: to the meter")
    protocol: str
    hex: str
    note: str


class FramesOut(s.Out):
    items: list[FrameOut]
    next_before_id: int | None = Field(description="pass as before_id for older frames")


def _frames(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    return {
        "items": items,
        "next_before_id": items[-1]["id"] if len(items) == limit else None,
    }


@router.post(
    "/gateways", dependencies=[allow(P.METER_WRITE)], status_code=201, response_model=GatewayOut
)
def create_gateway(body: GatewayIn, rt: Rt, actor: Actor) -> Any:
    return links.create_gateway(rt, **body.model_dump(), actor=actor)


@router.get("/gateways", dependencies=[allow(P.SITE_READ)], response_model=s.Page[GatewayOut])
def list_gateways(
    rt: Rt, site_id: int | None = None, after_id: int | None = None, limit: Limit = 100
) -> Any:
    found = links.list_gateways(rt, site_id=site_id, after_id=after_id, limit=limit)
    return {
        "items": [GatewayOut.model_validate(g) for g in found],
        "next_after_id": found[-1].id if len(found) == limit else None,
    }


@router.get("/gateways/{gateway_id}", dependencies=[allow(P.SITE_READ)], response_model=GatewayOut)
def get_gateway(gateway_id: int, rt: Rt) -> Any:
    return links.get_gateway(rt, gateway_id)


@router.get(
    "/gateways/{gateway_id}/frames", dependencies=[allow(P.SITE_READ)], response_model=FramesOut
)
def gateway_frames(
    gateway_id: int, rt: Rt, before_id: int | None = None, limit: Limit = 100
) -> Any:
    """Raw frames to and from the gateway's meters, newest first (hex, direction, time)."""
    code = links.get_gateway(rt, gateway_id).code
    found = links.recent_frames(rt, gateway_code=code, before_id=before_id, limit=limit)
    return _frames(found, limit)


@router.get(
    "/meters/{meter_id}/frames", dependencies=[allow(P.SITE_READ)], response_model=FramesOut
)
def meter_frames(meter_id: int, rt: Rt, before_id: int | None = None, limit: Limit = 100) -> Any:
    """Raw frames to and from one meter, newest first."""
    metering.get_meter(rt, meter_id)
    found = links.recent_frames(rt, meter_id=meter_id, before_id=before_id, limit=limit)
    return _frames(found, limit)
