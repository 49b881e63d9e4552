"""NB-IoT platforms push here (CTWing, OneNET): read the request, call one service, answer.

Two routers:
- ``router``: what the platforms call. It has no bearer-token dependency — a platform cannot
  send our API tokens — so it is mounted on the app itself (``web/app.py``), not under the
  API router. Each platform proves itself its own way: the gateway's token in the URL for
  CTWing (which signs nothing), OneNET's signature. A platform retries until it gets a 200:
  a bad signature answers 401 and a malformed body 400 (nothing changes), an unknown gateway
  404; every accepted push 200, unknown devices included (they are logged, not billed).
- ``config_router``: a push gateway's settings, under ``/api/v1`` with the API token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import Field
from starlette.exceptions import HTTPException

from meterpay.auth.model import Permission as P
from meterpay.kernel.errors import DomainError
from meterpay.kernel.money import Money
from meterpay.metering import push_service as push
from meterpay.metering.push_formats import (
    AddressBy,
    BadPushSignature,
    MalformedPush,
    Platform,
)
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Actor, Rt, runtime
from meterpay.web.guard import allow, public

T = TypeVar("T")
router = APIRouter(prefix="/push", tags=["nb-iot push"])
SIGNED_BY_PLATFORM = public("the platform signs its pushes with the gateway's token")
config_router = APIRouter(tags=["nb-iot push"])
FieldName = Annotated[str, Field(min_length=1, max_length=64)]


async def raw_body(request: Request) -> bytes:
    """The body as sent: OneNET signs the exact characters, so nothing may re-encode them."""
    limit = runtime(request).settings.push_max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"a push body may have at most {limit} bytes")
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, f"a push body may have at most {limit} bytes")
    return body


Body = Annotated[bytes, Depends(raw_body)]


class PushOut(s.Out):
    messages: int = Field(description="device messages in the push")
    readings: int = Field(description="new readings stored")
    duplicates: int = Field(description="readings already stored before (a repeated push)")
    charged: str = Field(description="money charged for the new readings, yuan")
    unknown_devices: list[str] = Field(description="devices that are no meter of the gateway")


def _out(outcome: push.PushOutcome) -> PushOut:
    return PushOut(
        messages=outcome.messages,
        readings=outcome.readings,
        duplicates=outcome.duplicates,
        charged=str(Money(outcome.charged_fen)),
        unknown_devices=list(outcome.unknown_devices),
    )


def _answer(call: Callable[[], T]) -> T | JSONResponse:
    """Run a push use case; its refusals answer 400/401 in the API's error shape.

    Plain 401 here, without ``WWW-Authenticate: Bearer``: platforms sign, they never
    send bearer tokens.
    """
    try:
        return call()
    except MalformedPush as exc:
        return _refused(400, exc)
    except BadPushSignature as exc:
        return _refused(401, exc)


def _refused(status: int, exc: DomainError) -> JSONResponse:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details:
        error["details"] = exc.details
    return JSONResponse(status_code=status, content={"error": error})


@router.post("/ctwing/{gateway_code}", dependencies=[SIGNED_BY_PLATFORM], response_model=PushOut)
def ctwing_push(
    gateway_code: str,
    body: Body,
    rt: Rt,
    token: str | None = None,
    x_push_token: Annotated[str | None, Header()] = None,
) -> Any:
    """CTWing (天翼物联网 AEP) subscription push. The gateway's token comes as ``?token=``
    in the subscription URL, or as an ``X-Push-Token`` header from a proxy in front."""
    answer = _answer(
        lambda: push.receive_ctwing(rt, gateway_code, body, token=token or x_push_token)
    )
    return _out(answer) if isinstance(answer, push.PushOutcome) else answer


@router.get(
    "/onenet/{gateway_code}", dependencies=[SIGNED_BY_PLATFORM], response_class=PlainTextResponse
)
def onenet_url_check(gateway_code: str, rt: Rt, msg: str, nonce: str, signature: str) -> Any:
    """OneNET's URL verification: answers ``msg`` itself, as plain text, when it verifies."""
    answer = _answer(
        lambda: push.check_onenet_url(rt, gateway_code, msg=msg, nonce=nonce, signature=signature)
    )
    return PlainTextResponse(answer) if isinstance(answer, str) else answer


@router.post("/onenet/{gateway_code}", dependencies=[SIGNED_BY_PLATFORM], response_model=PushOut)
def onenet_push(gateway_code: str, body: Body, rt: Rt) -> Any:
    """OneNET data push (数据推送), plaintext mode: old NB-IoT suite and OneNET Studio."""
    answer = _answer(lambda: push.receive_onenet(rt, gateway_code, body))
    return _out(answer) if isinstance(answer, push.PushOutcome) else answer


# --- settings (API token) -------------------------------------------------------------------


class FieldMappingIn(s.In):
    total: FieldName = Field(default="total", description="the cumulative register's field")
    scale: Annotated[Decimal, Field(gt=0, max_digits=16), s.AsText] = Field(
        default=Decimal(1), description="multiplies the field into kWh or m³ (litres: 0.001)"
    )
    valve: FieldName | None = Field(default=None, description="valve or relay state field")
    valve_closed: list[str] | None = Field(
        default=None, description="values of the valve field that mean closed/off"
    )
    battery: FieldName | None = Field(default=None, description="battery level or flag field")
    battery_low_below: Annotated[Decimal, Field(gt=0), s.AsText] | None = Field(
        default=None, description="battery low below this value; unset: the field is a flag"
    )


class PushSettingsIn(s.In):
    platform: Platform
    token: Annotated[str, Field(min_length=push.MIN_TOKEN_LENGTH, max_length=128)] = Field(
        description="CTWing: the secret you put in the push URL; OneNET: the push token"
    )
    address_by: AddressBy = Field(
        default=AddressBy.IMEI, description="meters are addressed by IMEI or by device id"
    )
    fields: FieldMappingIn = Field(default_factory=FieldMappingIn)


class PushSettingsOut(s.Out):
    gateway_id: int
    gateway_code: str
    platform: Platform
    address_by: AddressBy
    fields: dict[str, Any]
    push_path: str = Field(description="the URL path to give the platform (add ?token= for CTWing)")
    updated_at: datetime


def _settings_out(found: push.PushSettings) -> PushSettingsOut:
    return PushSettingsOut(
        gateway_id=found.gateway_id,
        gateway_code=found.gateway_code,
        platform=found.platform,
        address_by=found.address_by,
        fields=found.mapping.to_json(),
        push_path=f"/api/v1/push/{found.platform.value}/{found.gateway_code}",
        updated_at=found.updated_at,
    )


@config_router.put(
    "/gateways/{gateway_id}/push",
    dependencies=[allow(P.METER_WRITE)],
    response_model=PushSettingsOut,
)
def set_push_settings(gateway_id: int, body: PushSettingsIn, rt: Rt, actor: Actor) -> Any:
    """Make an ``http`` gateway take one platform product's pushes (replaces earlier ones)."""
    found = push.configure_push(
        rt,
        gateway_id,
        platform=body.platform,
        token=body.token,
        address_by=body.address_by,
        fields=body.fields.model_dump(exclude_none=True),
        actor=actor,
    )
    return _settings_out(found)


@config_router.get(
    "/gateways/{gateway_id}/push",
    dependencies=[allow(P.METER_WRITE)],
    response_model=PushSettingsOut,
)
def get_push_settings(gateway_id: int, rt: Rt) -> Any:
    """A push gateway's settings; the token is never shown again."""
    return _settings_out(push.push_settings(rt, gateway_id))
