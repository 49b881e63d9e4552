"""Use cases for meters: register (install), replace (换表), read back."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from meterpay.audit import repository as audit
from meterpay.db.partitions import month_of
from meterpay.db.rows import fetch_page, insert_row, update_row
from meterpay.db.schema import meter_installations, meters, readings
from meterpay.kernel.clock import require_aware
from meterpay.kernel.errors import Conflict, InvalidInput
from meterpay.kernel.quantity import Utility, parse_quantity
from meterpay.metering import repository as repo
from meterpay.metering.ingest import IngestResult, ingest_in, ingest_readings
from meterpay.metering.meters import Meter, MeterStatus, Protocol, ReadingIn, ReadingSource
from meterpay.metering.model import MeterProfile
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites


def register_meter(
    rt: Runtime,
    *,
    unit_id: int,
    utility: Utility,
    protocol: Protocol,
    address: str,
    initial_total: Decimal = Decimal(0),
    account_id: int | None = None,
    multiplier: int = 1,
    register_capacity: Decimal | None = None,
    max_rate_per_hour: Decimal | None = None,
    has_switch: bool = False,
    gateway_id: int | None = None,
    serial: str | None = None,
    model: str | None = None,
    installed_at: datetime | None = None,
    actor: str,
) -> Meter:
    """Install a meter in a unit; its initial register value is the billing baseline."""
    with rt.db.write() as conn:
        return register_meter_in(
            rt,
            conn,
            unit_id=unit_id,
            utility=utility,
            protocol=protocol,
            address=address,
            initial_total=initial_total,
            account_id=account_id,
            multiplier=multiplier,
            register_capacity=register_capacity,
            max_rate_per_hour=max_rate_per_hour,
            has_switch=has_switch,
            gateway_id=gateway_id,
            serial=serial,
            model=model,
            installed_at=installed_at or rt.clock.now(),
            actor=actor,
        )


def register_meter_in(
    rt: Runtime,
    conn: Connection,
    *,
    unit_id: int,
    utility: Utility,
    protocol: Protocol,
    address: str,
    initial_total: Decimal,
    account_id: int | None,
    multiplier: int,
    register_capacity: Decimal | None,
    max_rate_per_hour: Decimal | None,
    has_switch: bool,
    gateway_id: int | None,
    serial: str | None,
    model: str | None,
    installed_at: datetime,
    actor: str,
) -> Meter:
    MeterProfile(multiplier, register_capacity, max_rate_per_hour)  # validates the profile
    initial = parse_quantity(initial_total)
    unit = sites.unit(conn, unit_id)
    if account_id is not None:
        _check_account(conn, account_id, unit_id, Utility(utility))
    at = require_aware(installed_at)
    meter_id = insert_row(
        conn,
        meters,
        {
            "site_id": unit.site_id,
            "unit_id": unit_id,
            "account_id": account_id,
            "gateway_id": gateway_id,
            "utility": Utility(utility).value,
            "protocol": Protocol(protocol).value,
            "address": address,
            "serial": serial,
            "model": model,
            "multiplier": multiplier,
            "register_capacity": register_capacity,
            "max_rate_per_hour": max_rate_per_hour,
            "has_switch": has_switch,
            "status": MeterStatus.ACTIVE.value,
            "installed_at": at,
            "last_read_at": at,
            "last_total": initial,
        },
    )
    insert_row(
        conn,
        meter_installations,
        {
            "meter_id": meter_id,
            "unit_id": unit_id,
            "account_id": account_id,
            "installed_at": at,
            "initial_total": initial,
            "reason": "install",
        },
    )
    _baseline(rt, conn, meter_id, at, initial)
    audit.record(
        conn,
        at=rt.clock.now(),
        actor=actor,
        action="meter.install",
        object_type="meter",
        object_id=meter_id,
        site_id=unit.site_id,
        after={"address": address, "initial_total": initial, "account_id": account_id},
    )
    return repo.meter(conn, meter_id)


def replace_meter(
    rt: Runtime,
    old_meter_id: int,
    *,
    final_total: Decimal,
    replaced_at: datetime,
    new_address: str,
    new_initial_total: Decimal,
    reason: str,
    actor: str,
    new_serial: str | None = None,
    new_multiplier: int | None = None,
) -> Meter:
    """换表, all or nothing: bill the old meter up to its final reading, remove it,
    and start the new one at its initial reading on the same unit and account.

    A final reading that would not bill (backwards, spike …) refuses the whole
    replacement and stores nothing, so it can be retried with the right value.
    """
    at = require_aware(replaced_at)
    final = parse_quantity(final_total)
    with rt.db.write() as conn:
        old = repo.meter(conn, old_meter_id, lock=True)
        if old.status is MeterStatus.REMOVED:
            raise Conflict(f"meter {old_meter_id} was already removed")
        outcome = ingest_in(
            rt, conn, [ReadingIn(old.id, at, final, ReadingSource.MANUAL)], actor=actor
        )[0]
        if outcome.quality not in ("valid", "baseline"):
            raise InvalidInput(
                f"final reading {final} of meter {old.id} at {at.isoformat()} is "
                f"{outcome.quality} ({', '.join(outcome.flags) or 'already stored'}); "
                "nothing was changed",
                field="final_total",
            )
        update_row(conn, meters, old.id, {"status": MeterStatus.REMOVED.value, "removed_at": at})
        new = register_meter_in(
            rt,
            conn,
            unit_id=old.unit_id,
            utility=old.utility,
            protocol=old.protocol,
            address=new_address,
            initial_total=new_initial_total,
            account_id=old.account_id,
            multiplier=new_multiplier or old.multiplier,
            register_capacity=old.register_capacity,
            max_rate_per_hour=old.max_rate_per_hour,
            has_switch=old.has_switch,
            gateway_id=old.gateway_id,
            serial=new_serial,
            model=old.model,
            installed_at=at,
            actor=actor,
        )
        conn.execute(
            meter_installations.update()
            .where(
                meter_installations.c.meter_id == old.id, meter_installations.c.removed_at.is_(None)
            )
            .values(removed_at=at, final_total=final, replaced_by_meter_id=new.id, reason=reason)
        )
        audit.record(
            conn,
            at=rt.clock.now(),
            actor=actor,
            action="meter.replace",
            object_type="meter",
            object_id=old.id,
            site_id=old.site_id,
            reason=reason,
            after={"final_total": final, "new_meter_id": new.id},
        )
        return new


def _check_account(conn: Connection, account_id: int, unit_id: int, utility: Utility) -> None:
    account = sites.account(conn, account_id)
    if account.unit_id != unit_id or account.utility is not utility:
        raise InvalidInput(
            f"account {account_id} is not the {utility} account of unit {unit_id}",
            field="account_id",
        )


def _baseline(rt: Runtime, conn: Connection, meter_id: int, at: datetime, total: Decimal) -> None:
    rt.partitions.ensure(conn, [month_of(at)])
    repo.insert_readings(
        conn,
        [
            {
                "meter_id": meter_id,
                "read_at": at,
                "received_at": rt.clock.now(),
                "total": total,
                "source": ReadingSource.INSTALL.value,
                "quality": "baseline",
                "flags": "install",
                "consumption": Decimal(0),
            }
        ],
    )


def get_meter(rt: Runtime, meter_id: int) -> Meter:
    with rt.db.read() as conn:
        return repo.meter(conn, meter_id)


def list_meters(
    rt: Runtime,
    *,
    site_id: int | None = None,
    unit_id: int | None = None,
    account_id: int | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[Meter]:
    filters = {"site_id": site_id, "unit_id": unit_id, "account_id": account_id}
    where = [meters.c[k] == v for k, v in filters.items() if v is not None]
    with rt.db.read() as conn:
        return fetch_page(conn, meters, Meter, where=where, after_id=after_id, limit=limit)


def update_meter(
    rt: Runtime, meter_id: int, *, actor: str, reason: str = "", **changes: Any
) -> Meter:
    with rt.db.write() as conn:
        before = repo.meter(conn, meter_id, lock=True)
        if changes.get("account_id") is not None:
            _check_account(conn, changes["account_id"], before.unit_id, before.utility)
        update_row(conn, meters, meter_id, changes)
        audit.record(
            conn,
            at=rt.clock.now(),
            actor=actor,
            action="meter.update",
            object_type="meter",
            object_id=meter_id,
            site_id=before.site_id,
            before={k: getattr(before, k) for k in changes},
            after=dict(changes),
            reason=reason,
        )
        return repo.meter(conn, meter_id)


def recent_readings(rt: Runtime, meter_id: int, *, limit: int = 100) -> list[dict[str, object]]:
    with rt.db.read() as conn:
        repo.meter(conn, meter_id)
        query = (
            select(readings)
            .where(readings.c.meter_id == meter_id)
            .order_by(readings.c.read_at.desc())
            .limit(limit)
        )
        return [dict(r) for r in conn.execute(query).mappings()]


__all__ = ["IngestResult", "ingest_readings"]
