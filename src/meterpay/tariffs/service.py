"""Use cases for tariffs: define, version, revise (only while unused), quote.

Invariants:
- a version that has priced consumption is never edited: a new version with
  a later effective date is added instead (re-rating by edit is impossible);
- every surcharge has its own revenue ledger account, created with the
  tariff version that introduces it;
- a quote touches no account and no ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, select

from meterpay.audit import repository as audit
from meterpay.billing.rules import pieces_by_version
from meterpay.db.rows import fetch_page, insert_row, update_row
from meterpay.db.schema import charges, tariff_versions, tariffs
from meterpay.kernel.clock import require_aware
from meterpay.kernel.errors import Conflict, InvalidInput, NotFound
from meterpay.kernel.money import parse_unit_price
from meterpay.kernel.quantity import Utility
from meterpay.ledger import repository as ledger
from meterpay.ledger.model import LedgerAccountKind
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites
from meterpay.sites.model import Site, revenue_code
from meterpay.tariffs import repository as repo
from meterpay.tariffs.components import EnergyPrice, TariffComponents
from meterpay.tariffs.holidays import china_day_type
from meterpay.tariffs.model import Tariff
from meterpay.tariffs.rules import Quote, TierState, Usage, quote_pieces


def flat(unit_price: Decimal | str) -> TariffComponents:
    return TariffComponents(EnergyPrice(parse_unit_price(unit_price)))


def create_tariff(
    rt: Runtime,
    *,
    site_id: int,
    code: str,
    name: str,
    utility: Utility,
    components: TariffComponents,
    effective_from: datetime,
    actor: str,
) -> Tariff:
    return create_tariff_with_versions(
        rt,
        site_id=site_id,
        code=code,
        name=name,
        utility=utility,
        versions=[(effective_from, components)],
        actor=actor,
    )


def create_tariff_with_versions(
    rt: Runtime,
    *,
    site_id: int,
    code: str,
    name: str,
    utility: Utility,
    versions: Sequence[tuple[datetime, TariffComponents]],
    actor: str,
) -> Tariff:
    """A tariff and all its versions (e.g. from a tariff file) in one transaction."""
    if not versions:
        raise InvalidInput("a tariff needs at least one version", field="versions")
    now = rt.clock.now()
    with rt.db.write() as conn:
        site = sites.site(conn, site_id)
        tariff_id = insert_row(
            conn,
            tariffs,
            {
                "site_id": site_id,
                "code": code,
                "name": name,
                "utility": Utility(utility).value,
                "created_at": now,
            },
        )
        for effective_from, components in versions:
            _insert_version(conn, tariff_id, components, effective_from, now)
            _ensure_revenue_accounts(conn, site, Utility(utility), components, now)
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="tariff.create",
            object_type="tariff",
            object_id=tariff_id,
            site_id=site_id,
            after={
                "code": code,
                "versions": str([(when.isoformat(), c.to_dict()) for when, c in versions]),
            },
        )
        return repo.tariff(conn, tariff_id)


def create_flat_tariff(
    rt: Runtime,
    *,
    site_id: int,
    code: str,
    name: str,
    utility: Utility,
    unit_price: Decimal | str,
    effective_from: datetime,
    actor: str,
) -> Tariff:
    return create_tariff(
        rt,
        site_id=site_id,
        code=code,
        name=name,
        utility=utility,
        components=flat(unit_price),
        effective_from=effective_from,
        actor=actor,
    )


def add_version(
    rt: Runtime,
    tariff_id: int,
    *,
    effective_from: datetime,
    actor: str,
    components: TariffComponents | None = None,
    unit_price: Decimal | str | None = None,
    reason: str = "",
) -> Tariff:
    """New prices from a date on; consumption before it keeps its old price."""
    components = components or flat(unit_price if unit_price is not None else "")
    now = rt.clock.now()
    with rt.db.write() as conn:
        current = repo.tariff(conn, tariff_id)
        site = sites.site(conn, current.site_id)
        _insert_version(conn, tariff_id, components, effective_from, now)
        _ensure_revenue_accounts(conn, site, current.utility, components, now)
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="tariff.version",
            object_type="tariff",
            object_id=tariff_id,
            site_id=current.site_id,
            reason=reason,
            after={"effective_from": effective_from, "components": str(components.to_dict())},
        )
        return repo.tariff(conn, tariff_id)


def revise_version(
    rt: Runtime,
    tariff_id: int,
    version_id: int,
    *,
    components: TariffComponents,
    actor: str,
    reason: str,
) -> Tariff:
    """Correct a version that has not priced anything yet; otherwise refuse."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        current = repo.tariff(conn, tariff_id)
        version = next((v for v in current.versions if v.id == version_id), None)
        if version is None:
            raise NotFound(f"tariff {tariff_id} has no version {version_id}")
        if repo.has_priced_since(conn, tariff_id, version.effective_from):
            raise Conflict(
                f"version {version_id} has already priced consumption; add a new version "
                "with a later effective date instead (已计费的版本不能修改)",
                version_id=version_id,
            )
        site = sites.site(conn, current.site_id)
        update_row(
            conn,
            tariff_versions,
            version_id,
            {"components": components.to_dict(), "unit_price": components.energy.unit_price},
        )
        _ensure_revenue_accounts(conn, site, current.utility, components, now)
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="tariff.revise",
            object_type="tariff",
            object_id=tariff_id,
            site_id=current.site_id,
            reason=reason,
            before={
                "components": str(version.components.to_dict() if version.components else None)
            },
            after={"components": str(components.to_dict())},
        )
        return repo.tariff(conn, tariff_id)


def quote_tariff(
    rt: Runtime, tariff_id: int, profile: Iterable[Usage], *, state: TierState | None = None
) -> Quote:
    """Price a consumption profile with the versions in force, touching nothing."""
    with rt.db.read() as conn:
        schedule = repo.price_schedules(conn, [tariff_id]).get(tariff_id)
    if not schedule:
        raise NotFound(f"tariff {tariff_id} does not exist")
    pieces: list[tuple[TariffComponents, Usage]] = []
    for usage in profile:
        parts = pieces_by_version(usage.quantity, usage.start, usage.end, schedule)
        for version, quantity, start, end in parts:
            registers = usage.registers if len(parts) == 1 else None
            share = Usage(quantity, start, end, registers=registers, time_zone=usage.time_zone)
            pieces.append((version.components or flat(version.unit_price), share))
    return quote_pieces(pieces, state, day_type=china_day_type)


def get_tariff(rt: Runtime, tariff_id: int) -> Tariff:
    with rt.db.read() as conn:
        return repo.tariff(conn, tariff_id)


def list_tariffs(
    rt: Runtime, *, site_id: int | None, after_id: int | None, limit: int
) -> list[Tariff]:
    where = [tariffs.c.site_id == site_id] if site_id is not None else []
    with rt.db.read() as conn:
        found = fetch_page(conn, tariffs, Tariff, where=where, after_id=after_id, limit=limit)
        all_versions = repo.versions(conn, [t.id for t in found])
        return [
            Tariff(
                t.id,
                t.site_id,
                t.code,
                t.name,
                t.utility,
                t.created_at,
                tuple(all_versions.get(t.id, [])),
            )
            for t in found
        ]


def _insert_version(
    conn: Connection,
    tariff_id: int,
    components: TariffComponents,
    effective_from: datetime,
    now: datetime,
) -> None:
    insert_row(
        conn,
        tariff_versions,
        {
            "tariff_id": tariff_id,
            "effective_from": require_aware(effective_from),
            "unit_price": components.energy.unit_price,
            "components": components.to_dict(),
            "created_at": now,
        },
    )


def surcharge_revenue_code(site_code: str, utility: Utility, surcharge_code: str) -> str:
    return f"{revenue_code(site_code, utility)}:{surcharge_code}"


def _ensure_revenue_accounts(
    conn: Connection, site: Site, utility: Utility, components: TariffComponents, now: datetime
) -> None:
    for surcharge in components.surcharges:
        code = surcharge_revenue_code(site.code, utility, surcharge.code)
        ledger.ensure_ledger_account(conn, code, LedgerAccountKind.REVENUE, site.id, now)


def quote_account(
    rt: Runtime,
    account_id: int,
    components: TariffComponents,
    *,
    start: datetime,
    end: datetime,
) -> Quote:
    """What the account would have paid for its metered use in ``[start, end)``
    under ``components`` (e.g. a draft tariff). Touches nothing; the tier cycle
    starts afresh at ``start``."""
    with rt.db.read() as conn:
        account = sites.account(conn, account_id)
        site = sites.site(conn, account.site_id)
        rows = conn.execute(
            select(charges.c.quantity, charges.c.period_start, charges.c.period_end)
            .where(
                charges.c.account_id == account_id,
                charges.c.kind == "reading",
                charges.c.period_end > require_aware(start),
                charges.c.period_end <= require_aware(end),
            )
            .order_by(charges.c.period_end, charges.c.id)
        ).all()
    profile = [Usage(q, a, b, time_zone=site.timezone) for q, a, b in rows]
    return quote_pieces([(components, usage) for usage in profile], day_type=china_day_type)
