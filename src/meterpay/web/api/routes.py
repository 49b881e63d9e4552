"""Routes under /api/v1: parse, call one service, render. No queries here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from meterpay.auth.model import Permission as P
from meterpay.kernel.money import Money
from meterpay.ledger import service as ledger
from meterpay.metering import service as metering
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn
from meterpay.sites import service as sites
from meterpay.sites.model import Account
from meterpay.web.api import billing_routes, link_routes, push_routes, tariff_routes
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.guard import Caller, allow

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=500)]


def _page(items: list[Any], out: type[s.Out], limit: int) -> dict[str, Any]:
    return {
        "items": [out.model_validate(i) for i in items],
        "next_after_id": items[-1].id if len(items) == limit else None,
    }


# --- places ---------------------------------------------------------------------------------


@router.post(
    "/sites",
    dependencies=[allow(P.SITE_WRITE, everywhere=True)],
    status_code=201,
    response_model=s.SiteOut,
    tags=["places"],
)
def create_site(body: s.SiteIn, rt: Rt, actor: Actor) -> Any:
    return sites.create_site(rt, **body.model_dump(), actor=actor)


@router.get(
    "/sites",
    dependencies=[allow(P.SITE_READ, own_filter=True)],
    response_model=s.Page[s.SiteOut],
    tags=["places"],
)
def list_sites(rt: Rt, me: Caller, after_id: int | None = None, limit: Limit = 100) -> Any:
    """The sites the caller works on (every site for an all-sites role or token)."""
    mine = me.sites_with(P.SITE_READ)
    found = sites.page(rt, "sites", after_id=after_id, limit=limit, only_ids=mine)
    return _page(found, s.SiteOut, limit)


@router.get(
    "/sites/{site_id}", dependencies=[allow(P.SITE_READ)], response_model=s.SiteOut, tags=["places"]
)
def get_site(site_id: int, rt: Rt) -> Any:
    return sites.get(rt, "sites", site_id)


@router.patch(
    "/sites/{site_id}",
    dependencies=[allow(P.SITE_WRITE)],
    response_model=s.SiteOut,
    tags=["places"],
)
def patch_site(site_id: int, body: s.SitePatch, rt: Rt, actor: Actor) -> Any:
    return sites.update_site(rt, site_id, actor=actor, **body.model_dump(exclude_unset=True))


@router.post(
    "/buildings",
    dependencies=[allow(P.SITE_WRITE)],
    status_code=201,
    response_model=s.BuildingOut,
    tags=["places"],
)
def create_building(body: s.BuildingIn, rt: Rt, actor: Actor) -> Any:
    return sites.create_building(rt, **body.model_dump(), actor=actor)


@router.get(
    "/buildings",
    dependencies=[allow(P.SITE_READ)],
    response_model=s.Page[s.BuildingOut],
    tags=["places"],
)
def list_buildings(
    rt: Rt, site_id: int | None = None, after_id: int | None = None, limit: Limit = 100
) -> Any:
    found = sites.page(rt, "buildings", after_id=after_id, limit=limit, site_id=site_id)
    return _page(found, s.BuildingOut, limit)


@router.get(
    "/buildings/{building_id}",
    dependencies=[allow(P.SITE_READ)],
    response_model=s.BuildingOut,
    tags=["places"],
)
def get_building(building_id: int, rt: Rt) -> Any:
    return sites.get(rt, "buildings", building_id)


@router.patch(
    "/buildings/{building_id}",
    dependencies=[allow(P.SITE_WRITE)],
    response_model=s.BuildingOut,
    tags=["places"],
)
def patch_building(building_id: int, body: s.BuildingPatch, rt: Rt, actor: Actor) -> Any:
    return sites.update_place(
        rt, "buildings", building_id, actor=actor, **body.model_dump(exclude_unset=True)
    )


@router.delete(
    "/buildings/{building_id}", dependencies=[allow(P.SITE_WRITE)], status_code=204, tags=["places"]
)
def delete_building(building_id: int, rt: Rt, actor: Actor) -> None:
    sites.delete_place(rt, "buildings", building_id, actor=actor)


@router.post(
    "/floors",
    dependencies=[allow(P.SITE_WRITE)],
    status_code=201,
    response_model=s.FloorOut,
    tags=["places"],
)
def create_floor(body: s.FloorIn, rt: Rt, actor: Actor) -> Any:
    return sites.create_floor(rt, **body.model_dump(), actor=actor)


@router.get(
    "/floors", dependencies=[allow(P.SITE_READ)], response_model=s.Page[s.FloorOut], tags=["places"]
)
def list_floors(
    rt: Rt, building_id: int | None = None, after_id: int | None = None, limit: Limit = 100
) -> Any:
    found = sites.page(rt, "floors", after_id=after_id, limit=limit, building_id=building_id)
    return _page(found, s.FloorOut, limit)


@router.get(
    "/floors/{floor_id}",
    dependencies=[allow(P.SITE_READ)],
    response_model=s.FloorOut,
    tags=["places"],
)
def get_floor(floor_id: int, rt: Rt) -> Any:
    return sites.get(rt, "floors", floor_id)


@router.delete(
    "/floors/{floor_id}", dependencies=[allow(P.SITE_WRITE)], status_code=204, tags=["places"]
)
def delete_floor(floor_id: int, rt: Rt, actor: Actor) -> None:
    sites.delete_place(rt, "floors", floor_id, actor=actor)


@router.post(
    "/units",
    dependencies=[allow(P.SITE_WRITE)],
    status_code=201,
    response_model=s.UnitOut,
    tags=["places"],
)
def create_unit(body: s.UnitIn, rt: Rt, actor: Actor) -> Any:
    return sites.create_unit(rt, **body.model_dump(), actor=actor)


@router.get(
    "/units", dependencies=[allow(P.SITE_READ)], response_model=s.Page[s.UnitOut], tags=["places"]
)
def list_units(
    rt: Rt,
    site_id: int | None = None,
    floor_id: int | None = None,
    after_id: int | None = None,
    limit: Limit = 100,
) -> Any:
    found = sites.page(
        rt, "units", after_id=after_id, limit=limit, site_id=site_id, floor_id=floor_id
    )
    return _page(found, s.UnitOut, limit)


@router.get(
    "/units/{unit_id}", dependencies=[allow(P.SITE_READ)], response_model=s.UnitOut, tags=["places"]
)
def get_unit(unit_id: int, rt: Rt) -> Any:
    return sites.get(rt, "units", unit_id)


@router.patch(
    "/units/{unit_id}",
    dependencies=[allow(P.SITE_WRITE)],
    response_model=s.UnitOut,
    tags=["places"],
)
def patch_unit(unit_id: int, body: s.UnitPatch, rt: Rt, actor: Actor) -> Any:
    return sites.update_place(
        rt, "units", unit_id, actor=actor, **body.model_dump(exclude_unset=True)
    )


@router.delete(
    "/units/{unit_id}", dependencies=[allow(P.SITE_WRITE)], status_code=204, tags=["places"]
)
def delete_unit(unit_id: int, rt: Rt, actor: Actor) -> None:
    sites.delete_place(rt, "units", unit_id, actor=actor)


# --- customers and accounts -----------------------------------------------------------------


@router.post(
    "/customers",
    dependencies=[allow(P.SITE_WRITE)],
    status_code=201,
    response_model=s.CustomerOut,
    tags=["accounts"],
)
def create_customer(body: s.CustomerIn, rt: Rt, actor: Actor) -> Any:
    return sites.create_customer(rt, **body.model_dump(), actor=actor)


@router.get(
    "/customers",
    dependencies=[allow(P.SITE_READ)],
    response_model=s.Page[s.CustomerOut],
    tags=["accounts"],
)
def list_customers(
    rt: Rt,
    site_id: int | None = None,
    phone: str | None = None,
    after_id: int | None = None,
    limit: Limit = 100,
) -> Any:
    found = sites.page(
        rt, "customers", after_id=after_id, limit=limit, site_id=site_id, phone=phone
    )
    return _page(found, s.CustomerOut, limit)


@router.get(
    "/customers/{customer_id}",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_model=s.CustomerOut,
    tags=["accounts"],
)
def get_customer(customer_id: int, rt: Rt) -> Any:
    return sites.get(rt, "customers", customer_id)


@router.patch(
    "/customers/{customer_id}",
    dependencies=[allow(P.SITE_WRITE)],
    response_model=s.CustomerOut,
    tags=["accounts"],
)
def patch_customer(customer_id: int, body: s.CustomerPatch, rt: Rt, actor: Actor) -> Any:
    return sites.update_customer(
        rt, customer_id, actor=actor, **body.model_dump(exclude_unset=True)
    )


@router.delete(
    "/customers/{customer_id}",
    dependencies=[allow(P.SITE_WRITE)],
    status_code=204,
    tags=["accounts"],
)
def delete_customer(customer_id: int, rt: Rt, actor: Actor) -> None:
    sites.delete_place(rt, "customers", customer_id, actor=actor)


_THRESHOLDS = ("warning1", "warning2", "credit_limit", "disconnect", "reconnect")


def _threshold_fen(body: s.Thresholds) -> dict[str, int | None]:
    given = body.model_dump(exclude_unset=True)
    return {
        f"{name}_fen": (Money.from_yuan(given[name]).fen if given[name] is not None else None)
        for name in _THRESHOLDS
        if name in given
    }


def _account_out(rt: Rt, account: Account) -> s.AccountOut:
    return s.AccountOut(
        id=account.id,
        site_id=account.site_id,
        unit_id=account.unit_id,
        customer_id=account.customer_id,
        number=account.number,
        utility=account.utility,
        tariff_id=account.tariff_id,
        status=account.status.value,
        supply_state=account.supply_state,
        opened_at=account.opened_at,
        balance=ledger.account_balance(rt, account.id).yuan,
        thresholds={
            name: (str(Money(v)) if (v := getattr(account, f"{name}_fen")) is not None else None)
            for name in _THRESHOLDS
        },
    )


@router.post(
    "/accounts",
    dependencies=[allow(P.SITE_WRITE)],
    status_code=201,
    response_model=s.AccountOut,
    tags=["accounts"],
)
def open_account(body: s.AccountIn, rt: Rt, actor: Actor) -> Any:
    account = sites.open_account(
        rt,
        unit_id=body.unit_id,
        utility=body.utility,
        tariff_id=body.tariff_id,
        customer_id=body.customer_id,
        number=body.number,
        actor=actor,
        **_threshold_fen(body),
    )
    return _account_out(rt, account)


@router.get(
    "/accounts",
    dependencies=[allow(P.SITE_READ)],
    response_model=s.Page[s.AccountOut],
    tags=["accounts"],
)
def list_accounts(
    rt: Rt,
    site_id: int | None = None,
    unit_id: int | None = None,
    customer_id: int | None = None,
    after_id: int | None = None,
    limit: Limit = 100,
) -> Any:
    found = sites.page(
        rt,
        "accounts",
        after_id=after_id,
        limit=limit,
        site_id=site_id,
        unit_id=unit_id,
        customer_id=customer_id,
    )
    return {
        "items": [_account_out(rt, a) for a in found],
        "next_after_id": found[-1].id if len(found) == limit else None,
    }


@router.get(
    "/accounts/{account_id}",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_model=s.AccountOut,
    tags=["accounts"],
)
def get_account(account_id: int, rt: Rt) -> Any:
    return _account_out(rt, sites.get(rt, "accounts", account_id))


@router.patch(
    "/accounts/{account_id}",
    dependencies=[allow(P.SITE_WRITE)],
    response_model=s.AccountOut,
    tags=["accounts"],
)
def patch_account(account_id: int, body: s.AccountPatch, rt: Rt, actor: Actor) -> Any:
    changes: dict[str, Any] = {
        k: v
        for k, v in body.model_dump(exclude_unset=True).items()
        if k in ("customer_id", "tariff_id")
    }
    account = sites.update_account(
        rt, account_id, actor=actor, reason=body.reason, **changes, **_threshold_fen(body)
    )
    return _account_out(rt, account)


@router.get(
    "/accounts/{account_id}/ledger",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_model=s.LedgerPage,
    tags=["money"],
)
def account_ledger(account_id: int, rt: Rt, before_id: int | None = None, limit: Limit = 50) -> Any:
    """The account's money movements, newest first; page with ``before_id``."""
    account = sites.get(rt, "accounts", account_id)
    records = ledger.account_history(rt, account_id, before_id=before_id, limit=limit)
    items = [
        s.LedgerEntryOut(
            id=r.id,
            at=r.created_at,
            kind=r.kind.value,
            memo=r.memo,
            actor=r.actor,
            key=r.idempotency_key,
            amount=str(
                Money(r.amount_fen if r.credit_account_id == account.wallet_id else -r.amount_fen)
            ),
        )
        for r in records
    ]
    return {"items": items, "next_before_id": records[-1].id if len(records) == limit else None}


@router.post(
    "/accounts/{account_id}/top-ups",
    dependencies=[allow(P.COUNTER)],
    response_model=s.TopUpOut,
    tags=["money"],
)
def cash_top_up(account_id: int, body: s.TopUpIn, rt: Rt, actor: Actor) -> Any:
    """Cash or POS top-up at the counter; repeating the same idempotency key is harmless."""
    result = ledger.cash_top_up(
        rt,
        account_id=account_id,
        amount=Money.from_yuan(body.amount),
        idempotency_key=body.idempotency_key,
        cashier=actor,
        note=body.note,
    )
    return s.TopUpOut(
        transfer_id=result.transfer.id,
        amount=str(Money(result.transfer.amount_fen)),
        balance=str(result.balance),
        duplicate=result.duplicate,
    )


# --- tariffs: definitions, versions, quotes (web/api/tariff_routes.py) ----------------------

router.include_router(tariff_routes.router)
router.include_router(billing_routes.router)
router.include_router(link_routes.router)
router.include_router(push_routes.config_router)  # platforms' own endpoints: web/app.py


# --- meters and readings --------------------------------------------------------------------


@router.post(
    "/meters",
    dependencies=[allow(P.METER_WRITE)],
    status_code=201,
    response_model=s.MeterOut,
    tags=["meters"],
)
def register_meter(body: s.MeterIn, rt: Rt, actor: Actor) -> Any:
    return metering.register_meter(rt, **body.model_dump(), actor=actor)


@router.get(
    "/meters", dependencies=[allow(P.SITE_READ)], response_model=s.Page[s.MeterOut], tags=["meters"]
)
def list_meters(
    rt: Rt,
    site_id: int | None = None,
    unit_id: int | None = None,
    account_id: int | None = None,
    after_id: int | None = None,
    limit: Limit = 100,
) -> Any:
    found = metering.list_meters(
        rt, site_id=site_id, unit_id=unit_id, account_id=account_id, after_id=after_id, limit=limit
    )
    return _page(found, s.MeterOut, limit)


@router.get(
    "/meters/{meter_id}",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_model=s.MeterOut,
    tags=["meters"],
)
def get_meter(meter_id: int, rt: Rt) -> Any:
    return metering.get_meter(rt, meter_id)


@router.patch(
    "/meters/{meter_id}",
    dependencies=[allow(P.METER_WRITE)],
    response_model=s.MeterOut,
    tags=["meters"],
)
def patch_meter(meter_id: int, body: s.MeterPatch, rt: Rt, actor: Actor) -> Any:
    changes = body.model_dump(exclude_unset=True)
    reason = changes.pop("reason", "")
    return metering.update_meter(rt, meter_id, actor=actor, reason=reason, **changes)


@router.post(
    "/meters/{meter_id}/replace",
    dependencies=[allow(P.METER_WRITE)],
    status_code=201,
    response_model=s.MeterOut,
    tags=["meters"],
)
def replace_meter(meter_id: int, body: s.MeterReplaceIn, rt: Rt, actor: Actor) -> Any:
    """换表: final reading of the old meter, initial reading of the new one."""
    return metering.replace_meter(rt, meter_id, **body.model_dump(), actor=actor)


@router.post(
    "/readings",
    dependencies=[allow(P.READING_WRITE)],
    response_model=s.ReadingsOut,
    tags=["meters"],
)
def post_readings(body: s.ReadingsIn, rt: Rt, actor: Actor) -> Any:
    """A batch of cumulative readings (HTTP-push gateways, manual entry).

    Idempotent by (meter, read_at): posting the same batch again changes nothing.
    """
    batch = [ReadingIn(**item.model_dump()) for item in body.readings]
    result = ingest_readings(rt, batch, actor=actor)
    return s.ReadingsOut(
        counts=result.counts,
        charged=str(Money(result.charged_fen)),
        results=[
            s.ReadingResult(
                meter_id=o.meter_id,
                read_at=o.read_at,
                reading_id=o.reading_id,
                stored=o.stored,
                quality=o.quality,
                flags=list(o.flags),
                consumption=o.consumption,
                charge=str(Money(o.charge_fen)),
            )
            for o in result.outcomes
        ],
    )
