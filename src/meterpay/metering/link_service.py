"""Use cases for meter links: gateways, meter lookup, online state, raw frames.

Links (``meterpay.links``) call these and nothing below them. Marking online
state and logging frames are small writes of their own; they never share a
transaction with billing, so a slow console query or a logging hiccup cannot
hold a reading back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select, update

from meterpay.audit import repository as audit
from meterpay.db.rows import fetch, fetch_page, insert_row, to_model
from meterpay.db.schema import frame_log, gateways, meters
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.metering.gateways import (
    FrameRecord,
    Gateway,
    GatewayStatus,
    LinkedMeter,
    LinkStatus,
    Transport,
)
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites


def create_gateway(
    rt: Runtime, *, site_id: int, code: str, name: str, transport: Transport, actor: str
) -> Gateway:
    code = code.strip()
    if not code:
        raise InvalidInput("a gateway needs a code (its registration id)", field="code")
    with rt.db.write() as conn:
        sites.site(conn, site_id)
        gateway_id = insert_row(
            conn,
            gateways,
            {
                "site_id": site_id,
                "code": code,
                "name": name or code,
                "transport": Transport(transport).value,
                "status": GatewayStatus.OFFLINE.value,
            },
        )
        audit.record(
            conn,
            at=rt.clock.now(),
            actor=actor,
            action="gateway.create",
            object_type="gateway",
            object_id=gateway_id,
            site_id=site_id,
            after={"code": code, "transport": Transport(transport).value},
        )
        return fetch(conn, gateways, Gateway, gateway_id)


def get_gateway(rt: Runtime, gateway_id: int) -> Gateway:
    with rt.db.read() as conn:
        return fetch(conn, gateways, Gateway, gateway_id)


def list_gateways(
    rt: Runtime, *, site_id: int | None = None, after_id: int | None = None, limit: int = 100
) -> list[Gateway]:
    where = [gateways.c.site_id == site_id] if site_id is not None else []
    with rt.db.read() as conn:
        return fetch_page(conn, gateways, Gateway, where=where, after_id=after_id, limit=limit)


def gateway_by_code(rt: Runtime, code: str) -> Gateway:
    with rt.db.read() as conn:
        row = conn.execute(select(gateways).where(gateways.c.code == code)).mappings().first()
    if row is None:
        raise NotFound(f"no gateway has the code {code!r}", table="gateways", code=code)
    return to_model(Gateway, row)


def meters_on(rt: Runtime, gateway_code: str) -> list[LinkedMeter]:
    """The active meters behind a gateway, in address order (the poll plan's input)."""
    query = (
        select(
            meters.c.id,
            meters.c.address,
            meters.c.protocol,
            meters.c.model,
            meters.c.utility,
            meters.c.has_switch,
            meters.c.link_status,
        )
        .join(gateways, gateways.c.id == meters.c.gateway_id)
        .where(gateways.c.code == gateway_code, meters.c.status != "removed")
        .order_by(meters.c.address)
    )
    with rt.db.read() as conn:
        return [to_model(LinkedMeter, row) for row in conn.execute(query).mappings()]


def meter_ids_by_address(
    rt: Runtime, gateway_code: str, addresses: Iterable[str]
) -> dict[str, int]:
    """Active meters behind a gateway by bus address; unknown addresses are left out."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    query = (
        select(meters.c.address, meters.c.id)
        .join(gateways, gateways.c.id == meters.c.gateway_id)
        .where(
            gateways.c.code == gateway_code,
            meters.c.status != "removed",
            meters.c.address.in_(wanted),
        )
    )
    with rt.db.read() as conn:
        return {address: meter_id for address, meter_id in conn.execute(query).all()}


def gateway_connected(rt: Runtime, code: str, *, remote_addr: str | None) -> Gateway:
    """A gateway said hello: online from now on. Unknown codes raise ``NotFound``."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        done = conn.execute(
            update(gateways)
            .where(gateways.c.code == code)
            .values(
                status=GatewayStatus.ONLINE.value,
                last_seen_at=now,
                connected_at=now,
                remote_addr=remote_addr,
            )
            .returning(gateways.c.id)
        ).scalar()
        if done is None:
            raise NotFound(f"no gateway has the code {code!r}", table="gateways", code=code)
        return fetch(conn, gateways, Gateway, done)


def gateway_seen(rt: Runtime, code: str) -> None:
    """Traffic (a heartbeat, a reply) from a gateway: it is still there."""
    with rt.db.write() as conn:
        conn.execute(
            update(gateways)
            .where(gateways.c.code == code)
            .values(status=GatewayStatus.ONLINE.value, last_seen_at=rt.clock.now())
        )


def gateway_disconnected(rt: Runtime, code: str, *, connected_at: datetime | None) -> None:
    """The link dropped. A newer connection of the same gateway keeps it online."""
    query = update(gateways).where(gateways.c.code == code)
    if connected_at is not None:
        query = query.where(gateways.c.connected_at == connected_at)
    with rt.db.write() as conn:
        conn.execute(query.values(status=GatewayStatus.OFFLINE.value))


def mark_meters(rt: Runtime, *, heard: Sequence[int] = (), silent: Sequence[int] = ()) -> None:
    """Meters that answered are online (heard now); meters that stopped answering are not."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        if heard:
            conn.execute(
                update(meters)
                .where(meters.c.id.in_(sorted(set(heard))))
                .values(link_status=LinkStatus.ONLINE.value, last_heard_at=now)
            )
        if silent:
            conn.execute(
                update(meters)
                .where(meters.c.id.in_(sorted(set(silent))))
                .values(link_status=LinkStatus.OFFLINE.value)
            )


def log_frames(rt: Runtime, records: Sequence[FrameRecord]) -> None:
    """Append raw frames to the log in one statement."""
    if not records:
        return
    rows = [
        {
            "at": r.at,
            "gateway_code": r.gateway_code,
            "meter_id": r.meter_id,
            "direction": r.direction.value,
            "protocol": r.protocol,
            "hex": r.hex,
            "note": r.note,
        }
        for r in records
    ]
    with rt.db.write() as conn:
        conn.execute(frame_log.insert(), rows)


def recent_frames(
    rt: Runtime,
    *,
    gateway_code: str | None = None,
    meter_id: int | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, object]]:
    """Newest first; page backwards with ``before_id``."""
    query = select(frame_log).order_by(frame_log.c.id.desc()).limit(limit)
    if gateway_code is not None:
        query = query.where(frame_log.c.gateway_code == gateway_code)
    if meter_id is not None:
        query = query.where(frame_log.c.meter_id == meter_id)
    if before_id is not None:
        query = query.where(frame_log.c.id < before_id)
    with rt.db.read() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]
