"""Tariff routes under /api/v1: define, version, revise while unused, quote. Parse, call, render.

A version's prices arrive as ``components`` (the ``TariffComponents.to_dict()``
form) or as ``unit_price`` alone, the shorthand for a flat tariff. A refused
component is a 422 ``tariff_invalid`` whose details name the request field
(``components.tiers.steps[1].up_to``) and the rule. Every tariff comes back
with ``warnings``: the top-up fee warning (物业管理条例 第四十四条) while a
version sets one, and, when the request gives ``catalog_price``, what resale
model 1 forbids in the prices just written.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query

from meterpay.auth.model import Permission as P
from meterpay.kernel.money import FEN_QUANTUM
from meterpay.tariffs import service as tariffs
from meterpay.tariffs.components import TariffComponents, topup_fee_warnings
from meterpay.tariffs.fields import field_scope
from meterpay.tariffs.model import Tariff
from meterpay.tariffs.resale import resale_warnings
from meterpay.tariffs.rules import Quote, TierState, Usage
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.guard import allow

router = APIRouter(tags=["tariffs"])
Limit = Annotated[int, Query(ge=1, le=500)]


@router.post(
    "/tariffs", dependencies=[allow(P.TARIFF_WRITE)], status_code=201, response_model=s.TariffOut
)
def create_tariff(body: s.TariffIn, rt: Rt, actor: Actor) -> Any:
    components = _components(body)
    tariff = tariffs.create_tariff(
        rt,
        site_id=body.site_id,
        code=body.code,
        name=body.name,
        utility=body.utility,
        components=components,
        effective_from=body.effective_from,
        actor=actor,
    )
    return _tariff_out(tariff, _warnings(components, body.catalog_price))


@router.get("/tariffs", dependencies=[allow(P.SITE_READ)], response_model=s.Page[s.TariffOut])
def list_tariffs(
    rt: Rt, site_id: int | None = None, after_id: int | None = None, limit: Limit = 100
) -> Any:
    found = tariffs.list_tariffs(rt, site_id=site_id, after_id=after_id, limit=limit)
    return {
        "items": [_tariff_out(t) for t in found],
        "next_after_id": found[-1].id if len(found) == limit else None,
    }


@router.get("/tariffs/{tariff_id}", dependencies=[allow(P.SITE_READ)], response_model=s.TariffOut)
def get_tariff(tariff_id: int, rt: Rt) -> Any:
    return _tariff_out(tariffs.get_tariff(rt, tariff_id))


@router.post(
    "/tariffs/{tariff_id}/versions",
    dependencies=[allow(P.TARIFF_WRITE)],
    status_code=201,
    response_model=s.TariffOut,
)
def add_tariff_version(tariff_id: int, body: s.TariffVersionIn, rt: Rt, actor: Actor) -> Any:
    """New prices from ``effective_from`` on; consumption before it keeps its old price."""
    components = _components(body)
    tariff = tariffs.add_version(
        rt,
        tariff_id,
        effective_from=body.effective_from,
        components=components,
        reason=body.reason,
        actor=actor,
    )
    return _tariff_out(tariff, _warnings(components, body.catalog_price))


@router.put(
    "/tariffs/{tariff_id}/versions/{version_id}",
    dependencies=[allow(P.TARIFF_WRITE)],
    response_model=s.TariffOut,
)
def revise_tariff_version(
    tariff_id: int, version_id: int, body: s.TariffRevisionIn, rt: Rt, actor: Actor
) -> Any:
    """Correct a version that has priced nothing yet; once it has, 409: add a new version."""
    components = _components(body)
    tariff = tariffs.revise_version(
        rt, tariff_id, version_id, components=components, actor=actor, reason=body.reason
    )
    return _tariff_out(tariff, _warnings(components, body.catalog_price))


@router.post(
    "/tariffs/{tariff_id}/quote", dependencies=[allow(P.SITE_READ)], response_model=s.QuoteOut
)
def quote_tariff(tariff_id: int, body: s.QuoteIn, rt: Rt) -> Any:
    """Price a consumption profile with the versions in force; touches no account."""
    profile = [
        Usage(u.quantity, u.start, u.end, registers=u.registers, time_zone=u.time_zone)
        for u in body.profile
    ]
    state = TierState(body.state.cycle_start, body.state.consumed) if body.state else None
    return quote_out(tariffs.quote_tariff(rt, tariff_id, profile, state=state))


# --- parsing and rendering --------------------------------------------------------------------


def _components(body: s.PricesIn) -> TariffComponents:
    if body.components is None:
        return tariffs.flat(body.unit_price or Decimal(0))  # the schema requires one of them
    with field_scope("components"):
        return TariffComponents.from_dict(body.components)


def _warnings(components: TariffComponents, catalog_price: s.CatalogPrice | None) -> list[str]:
    """Resale warnings against the catalog price when given (they include the top-up fee's)."""
    if catalog_price is None:
        return topup_fee_warnings(components.topup_fee)
    return resale_warnings(components, catalog_price)


def _tariff_out(tariff: Tariff, warnings: Iterable[str] = ()) -> s.TariffOut:
    """The tariff with the given warnings and the top-up fee warning of any version."""
    standing = [
        warning
        for version in tariff.versions
        if version.components is not None
        for warning in topup_fee_warnings(version.components.topup_fee)
    ]
    out = s.TariffOut.model_validate(tariff)
    out.warnings = list(dict.fromkeys([*warnings, *standing]))
    return out


def quote_out(quote: Quote) -> s.QuoteOut:
    state = quote.state
    return s.QuoteOut(
        lines=[
            s.QuoteLineOut(
                component=line.component,
                tier=line.tier,
                period=line.period,
                quantity=str(line.quantity),
                unit_price=str(line.unit_price),
                amount=exact_text(line.exact_amount),
            )
            for line in quote.lines
        ],
        totals={component: str(money) for component, money in quote.totals.items()},
        total=str(quote.total),
        exact_total=exact_text(quote.exact_total),
        state=s.TierStateOut(cycle_start=state.cycle_start, consumed=str(state.consumed))
        if state is not None
        else None,
    )


def exact_text(amount: Decimal) -> str:
    """An exact amount in 元 without trailing zeros, but with at least 2 decimals."""
    exponent = amount.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) else 0
    return format(amount.normalize() if places > 2 else amount.quantize(FEN_QUANTUM), "f")
