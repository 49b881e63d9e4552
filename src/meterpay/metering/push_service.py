"""Receive NB-IoT platform pushes (CTWing, OneNET): authenticate, bill, log — safe to repeat.

A push gateway (transport ``http``) stands for one platform product or subscription. Its
``push_endpoints`` row holds the platform, the shared token, how pushed devices are found
among the gateway's meters (by IMEI or by the platform's device id) and the field mapping.
A push is handled in this order, so a refused push changes nothing:
1. find the gateway's push settings (none, or another platform's: ``NotFound``);
2. authenticate (``BadPushSignature``), then parse and map the whole body (``MalformedPush``);
3. store and bill the readings through ``ingest_readings``, idempotent on (meter, read_at):
   a push the platform repeats bills once;
4. mark meters heard, online or offline, the gateway seen, and log every message in the
   frame log — small writes of their own, as the other links do. A device that is no meter
   of the gateway is acknowledged (or the platform retries forever) and logged with the
   whole body and a note, for a technician to register it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from meterpay.audit import repository as audit
from meterpay.db.rows import fetch
from meterpay.db.schema import gateways, push_endpoints
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.metering import link_service as links
from meterpay.metering.gateways import Direction, FrameRecord, Gateway, Transport
from meterpay.metering.ingest import IngestResult, ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.metering.push_formats import (
    AddressBy,
    BadPushSignature,
    DeviceMessage,
    FieldMapping,
    MappedReading,
    MessageKind,
    Platform,
    map_reading,
    onenet_messages,
    onenet_url_check_passes,
    parse_ctwing,
    parse_onenet,
    token_matches,
    verify_onenet,
)
from meterpay.runtime import Runtime

MIN_TOKEN_LENGTH = 8


@dataclass(frozen=True, slots=True)
class PushSettings:
    """How one push gateway's platform authenticates and what its messages mean."""

    gateway_id: int
    gateway_code: str
    platform: Platform
    token: str
    address_by: AddressBy
    mapping: FieldMapping
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """What a push did; the platform only needs the 200, people read the rest."""

    messages: int
    readings: int
    duplicates: int
    charged_fen: int
    unknown_devices: tuple[str, ...]


# --- settings -----------------------------------------------------------------------------


def configure_push(
    rt: Runtime,
    gateway_id: int,
    *,
    platform: Platform,
    token: str,
    address_by: AddressBy,
    fields: Mapping[str, Any],
    actor: str,
) -> PushSettings:
    """Set (or replace) a push gateway's platform, token, addressing and field mapping."""
    token = token.strip()
    if not MIN_TOKEN_LENGTH <= len(token) <= 128:
        raise InvalidInput(f"the token needs {MIN_TOKEN_LENGTH}-128 characters", field="token")
    mapping = FieldMapping.from_json(fields)
    now = rt.clock.now()
    values = {
        "platform": Platform(platform).value,
        "token": token,
        "address_by": AddressBy(address_by).value,
        "fields": mapping.to_json(),
        "updated_at": now,
    }
    with rt.db.write() as conn:
        gateway = fetch(conn, gateways, Gateway, gateway_id)
        if gateway.transport is not Transport.HTTP:
            raise InvalidInput("only an http gateway takes pushes", field="gateway_id")
        before = _settings_row(conn, push_endpoints.c.gateway_id == gateway_id)
        if before is None:
            conn.execute(insert(push_endpoints).values(gateway_id=gateway_id, **values))
        else:
            where = push_endpoints.c.gateway_id == gateway_id
            conn.execute(update(push_endpoints).where(where).values(**values))
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="gateway.push",
            object_type="gateway",
            object_id=gateway_id,
            site_id=gateway.site_id,
            before=_audited(before) if before else None,
            after=_audited({**values, "gateway_code": gateway.code}),
        )
    return PushSettings(
        gateway_id, gateway.code, Platform(platform), token, AddressBy(address_by), mapping, now
    )


def push_settings(rt: Runtime, gateway_id: int) -> PushSettings:
    with rt.db.read() as conn:
        row = _settings_row(conn, push_endpoints.c.gateway_id == gateway_id)
    if row is None:
        raise NotFound(f"gateway {gateway_id} has no push settings", gateway_id=gateway_id)
    return _settings(row)


def _settings_row(conn: Connection, where: Any) -> RowMapping | None:
    query = (
        select(push_endpoints, gateways.c.code.label("gateway_code"), gateways.c.transport)
        .join(gateways, gateways.c.id == push_endpoints.c.gateway_id)
        .where(where)
    )
    return conn.execute(query).mappings().first()


def _settings(row: RowMapping) -> PushSettings:
    return PushSettings(
        gateway_id=row["gateway_id"],
        gateway_code=row["gateway_code"],
        platform=Platform(row["platform"]),
        token=row["token"],
        address_by=AddressBy(row["address_by"]),
        mapping=FieldMapping.from_json(row["fields"]),
        updated_at=row["updated_at"],
    )


def _audited(values: Mapping[Any, Any]) -> dict[str, Any]:
    """The settings as the audit log keeps them: the token only as a fingerprint."""
    token = str(values["token"])
    shown = {k: v for k, v in values.items() if k not in ("token", "updated_at", "transport")}
    return {**shown, "token_sha256": hashlib.sha256(token.encode()).hexdigest()[:12]}


def _push_gateway(rt: Runtime, code: str, platform: Platform) -> PushSettings:
    """The push settings behind a URL's gateway code; anything else is not found."""
    with rt.db.read() as conn:
        row = _settings_row(conn, gateways.c.code == code)
    if row is None or row["platform"] != platform.value or row["transport"] != Transport.HTTP:
        raise NotFound(f"no {platform.value} push gateway has the code {code!r}", code=code)
    return _settings(row)


# --- receiving ----------------------------------------------------------------------------


def receive_ctwing(
    rt: Runtime, gateway_code: str, body: bytes, *, token: str | None
) -> PushOutcome:
    """A CTWing subscription push. CTWing signs nothing, so the URL carries our token."""
    settings = _push_gateway(rt, gateway_code, Platform.CTWING)
    if not token_matches(token, settings.token):
        raise BadPushSignature("a CTWing push needs the gateway's token (?token=… in the URL)")
    return _deliver(rt, settings, [parse_ctwing(body)], body)


def check_onenet_url(
    rt: Runtime, gateway_code: str, *, msg: str, nonce: str, signature: str
) -> str:
    """OneNET's URL verification: the ``msg`` to echo when the signature verifies."""
    settings = _push_gateway(rt, gateway_code, Platform.ONENET)
    if not onenet_url_check_passes(settings.token, msg, nonce, signature):
        raise BadPushSignature("the verification signature does not match the OneNET token")
    note = "OneNET URL verification answered"
    frame = FrameRecord.of(rt.clock.now(), gateway_code, Direction.RX, "onenet", b"", note=note)
    links.log_frames(rt, [frame])
    return msg


def receive_onenet(rt: Runtime, gateway_code: str, body: bytes) -> PushOutcome:
    """A OneNET data push (old NB-IoT suite or OneNET Studio, plaintext mode)."""
    settings = _push_gateway(rt, gateway_code, Platform.ONENET)
    push = parse_onenet(body)
    verify_onenet(push, settings.token)
    return _deliver(rt, settings, onenet_messages(push), body)


def _deliver(
    rt: Runtime, settings: PushSettings, messages: Sequence[DeviceMessage], body: bytes
) -> PushOutcome:
    # Map every message before the first write: a malformed field refuses the whole push.
    planned = [(m, map_reading(m, settings.mapping)) for m in messages]
    by, code = settings.address_by, settings.gateway_code
    wanted = {a for m, _ in planned if (a := m.address(by))}
    meter_ids = links.meter_ids_by_address(rt, code, wanted)
    known = [(m, r, meter_ids[a]) for m, r in planned if (a := m.address(by)) in meter_ids]
    batch = [
        ReadingIn(meter_id, r.read_at, r.total, ReadingSource.HTTP, status_word=r.status_word)
        for _, r, meter_id in known
        if r is not None
    ]
    result = ingest_readings(rt, batch, actor=f"push:{code}") if batch else IngestResult()
    links.gateway_seen(rt, code)
    # Command responses and events may come from the platform itself: only a device's own
    # data or online report proves it is there.
    links.mark_meters(
        rt,
        heard=[i for m, _, i in known if m.kind in (MessageKind.DATA, MessageKind.ONLINE)],
        silent=[i for m, _, i in known if m.kind is MessageKind.OFFLINE],
    )
    unknown = sorted({_who(m, by) for m, _ in planned if m.address(by) not in meter_ids})
    links.log_frames(
        rt, _frames(rt, settings, known=known, unknown=unknown, body=body, result=result)
    )
    stored = sum(1 for o in result.outcomes if o.stored)
    return PushOutcome(
        messages=len(messages),
        readings=stored,
        duplicates=len(result.outcomes) - stored,
        charged_fen=result.charged_fen,
        unknown_devices=tuple(unknown),
    )


def _who(message: DeviceMessage, by: AddressBy) -> str:
    address = message.address(by)
    return f"{by.value} {address}" if address else f"no {by.value}, device id {message.device_id}"


def _frames(
    rt: Runtime,
    settings: PushSettings,
    *,
    known: Sequence[tuple[DeviceMessage, MappedReading | None, int]],
    unknown: Sequence[str],
    body: bytes,
    result: IngestResult,
) -> list[FrameRecord]:
    """One frame per message of a known meter; the whole body once per unknown device."""
    now, code, protocol = rt.clock.now(), settings.gateway_code, settings.platform.value
    quality = {(o.meter_id, o.read_at): o.quality for o in result.outcomes}
    frames = []
    for message, reading, meter_id in known:
        found = quality.get((meter_id, reading.read_at)) if reading else None
        note = _note(message, reading, found, settings.mapping)
        frames.append(
            FrameRecord.of(
                now, code, Direction.RX, protocol, message.raw, meter_id=meter_id, note=note
            )
        )
    frames.extend(
        FrameRecord.of(now, code, Direction.RX, protocol, body, note=f"unknown device: {who}")
        for who in unknown
    )
    return frames


def _note(
    message: DeviceMessage,
    reading: MappedReading | None,
    quality: str | None,
    mapping: FieldMapping,
) -> str:
    if message.kind is not MessageKind.DATA:
        return f"{message.label} ({message.kind.value})"
    if reading is None:
        why = f"no {mapping.total!r} field" if message.values else "transparent payload, no decoder"
        return f"{message.label}: {why}, not billed"
    return f"{message.label}: total {reading.total} ({quality or 'not stored'})"
