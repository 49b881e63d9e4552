"""Console pages: tariffs: a site's tariffs, one tariff's versions, the form for a new
version and the quote preview. Parse, call one service, render.

A new version's prices come from one of three forms: a flat price, up to three tier
steps (阶梯), or the full prices as YAML (the ``TariffComponents.to_dict`` form: time of
use, surcharges, fixed fees), prefilled with the version in force. Versions are never
edited here: a version that has priced nothing can be revised through the API.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.auth.model import Principal
from meterpay.kernel.errors import DomainError, Forbidden, InvalidInput, NotFound
from meterpay.sites.site_choice import pick, sites_in_reach
from meterpay.tariffs import console_view as view
from meterpay.tariffs import service as tariffs
from meterpay.tariffs.components import EnergyPrice, TariffComponents
from meterpay.tariffs.tiers import Cycle, Tiers, TierStep
from meterpay.web.api.deps import Rt
from meterpay.web.console.admin_forms import (
    answer,
    decimal,
    form_of,
    is_htmx,
    local_input,
    local_moment,
    page_of,
    text,
)
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)
MODES: Final = ("flat", "tiered", "yaml")
MAX_STEPS: Final = 3


@router.get(
    "/tariffs", dependencies=[allow(P.SITE_READ, own_filter=True)], response_class=HTMLResponse
)
def tariffs_page(
    request: Request, rt: Rt, me: Caller, site_id: int | None = None, lang: str | None = None
) -> Response:
    """电价水价: the tariffs of one of the caller's sites, with the price in force."""
    sites = sites_in_reach(rt, me.sites_with(P.SITE_READ))
    site = pick(sites, site_id)
    page = page_of(request, rt.clock.now(), site, lang)
    found = tariffs.list_tariffs(rt, site_id=site.id, after_id=None, limit=500) if site else []
    now = rt.clock.now()
    rows = [(t, view.in_force_at(t, now)) for t in found]
    return answer(request, "tariffs.html", page.context(sites=sites, site=site, rows=rows))


def _tariff_context(rt: Rt, me: Principal, tariff_id: int, **more: Any) -> dict[str, Any]:
    shown = view.tariff_page(rt, tariff_id)
    zone = shown.site.timezone
    now = rt.clock.now()
    return {
        "t": shown.tariff,
        "site": shown.site,
        "in_force": shown.in_force,
        "components_of": view.components_of,
        "may_write": me.can(P.TARIFF_WRITE, shown.site.id),
        "problem": "",
        "added": False,
        "v": {
            "mode": "flat",
            "effective_from": local_input(now, zone)[:10] + "T00:00",
            "unit_price": str(shown.in_force.unit_price) if shown.in_force else "",
            "yaml": view.components_text(shown.in_force),
            "cycle": "monthly",
            "reason": "",
        },
        "q": {
            "quantity": "100",
            "start": local_input(now, zone)[:8] + "01T00:00",
            "end": "",
            "consumed": "0",
        },
        "quote": None,
        "quote_problem": "",
        "modes": MODES,
        "cycles": tuple(Cycle),
        "steps": range(1, MAX_STEPS + 1),
    } | more


@router.get("/tariffs/{tariff_id}", dependencies=[allow(P.SITE_READ)], response_class=HTMLResponse)
def tariff_page(
    request: Request, rt: Rt, me: Caller, tariff_id: int, *, added: int = 0, lang: str | None = None
) -> Response:
    """One tariff: its versions with their effective dates and prices."""
    context = _tariff_context(rt, me, tariff_id, added=bool(added))
    page = page_of(request, rt.clock.now(), context["site"], lang)
    return answer(request, "tariff.html", page.context(**context))


@router.post(
    "/tariffs/{tariff_id}/versions",
    dependencies=[allow(P.TARIFF_WRITE)],
    response_class=HTMLResponse,
)
async def add_version(request: Request, rt: Rt, me: Caller, tariff_id: int) -> Response:
    """New prices from a date on; consumption before it keeps its old price."""
    form = await form_of(request)
    shown = view.tariff_page(rt, tariff_id)
    page = page_of(request, rt.clock.now(), shown.site, text(form, "lang"))
    try:
        raw_from = text(form, "effective_from", 32)
        if not raw_from:
            raise InvalidInput("effective_from is required", field="effective_from")
        tariffs.add_version(
            rt,
            tariff_id,
            effective_from=local_moment(raw_from, page.zone, "effective_from"),
            components=_components(form),
            reason=text(form, "reason", 500),
            actor=me.name,
        )
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise
        typed = {
            k: text(form, k, 20_000)
            for k in ("mode", "effective_from", "unit_price", "cycle", "reason")
        }
        typed |= {"yaml": text(form, "yaml", 20_000)}
        typed |= {f"up_to{n}": text(form, f"up_to{n}") for n in range(1, MAX_STEPS + 1)}
        typed |= {f"price{n}": text(form, f"price{n}") for n in range(1, MAX_STEPS + 1)}
        context = _tariff_context(rt, me, tariff_id, problem=exc.message, v=typed)
        return answer(request, "tariff.html", page.context(**context), 422)
    lang = "&lang=en" if page.lang.value == "en" else ""
    return RedirectResponse(f"/console/tariffs/{tariff_id}?added=1{lang}", status_code=303)


def _components(form: FormData) -> TariffComponents:
    mode = text(form, "mode", 10) or "flat"
    if mode == "yaml":
        return view.components_from_text(text(form, "yaml", 20_000))
    price = decimal(form, "unit_price")
    assert price is not None  # noqa: S101  required above
    if mode == "flat":
        return tariffs.flat(price)
    if mode != "tiered":
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}", field="mode")
    return TariffComponents(EnergyPrice(price), tiers=_tiers(form))


def _tiers(form: FormData) -> Tiers:
    """Steps 1.. with a limit each, then the first step without one is the last."""
    steps: list[TierStep] = []
    for n in range(1, MAX_STEPS + 1):
        step_price = decimal(form, f"price{n}", required=False)
        if step_price is None:
            break
        up_to = decimal(form, f"up_to{n}", required=False)
        steps.append(TierStep(up_to, price=step_price))
        if up_to is None:
            break
    cycle = text(form, "cycle", 10) or Cycle.MONTHLY.value
    return Tiers(Cycle(cycle) if cycle in set(Cycle) else Cycle.MONTHLY, tuple(steps))


@router.post(
    "/tariffs/{tariff_id}/quote", dependencies=[allow(P.SITE_READ)], response_class=HTMLResponse
)
async def quote_preview(request: Request, rt: Rt, me: Caller, tariff_id: int) -> Response:
    """The price of a quantity used over a period, with the versions in force (a fragment
    for htmx; the whole page without JavaScript)."""
    form = await form_of(request)
    shown = view.tariff_page(rt, tariff_id)
    page = page_of(request, rt.clock.now(), shown.site, text(form, "lang"))
    typed = {k: text(form, k, 40) for k in ("quantity", "start", "end", "consumed")}
    found, problem = None, ""
    try:
        found = view.quote_preview(
            rt,
            tariff_id,
            quantity=decimal(form, "quantity") or Decimal(0),
            start=local_moment(typed["start"], page.zone, "start"),
            end=local_moment(typed["end"], page.zone, "end"),
            consumed_before=decimal(form, "consumed", required=False) or Decimal(0),
        )
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise
        problem = exc.message
    status = 200 if found else 422
    if is_htmx(request):
        context = page.context(quote=found, quote_problem=problem)
        return answer(request, "_fragment_quote.html", context, 200)
    context = _tariff_context(rt, me, tariff_id, q=typed, quote=found, quote_problem=problem)
    return answer(request, "tariff.html", page.context(**context), status)
