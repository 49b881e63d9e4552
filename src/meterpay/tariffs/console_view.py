"""What the console's tariff pages need beyond ``tariffs.service``: the version in
force at a moment, a quote preview from a simple form (a quantity over a period, and
for tiers what was used earlier in the cycle), and a version's prices as YAML text for
the editor. Touches no account and no ledger.

Invariants:
- a preview prices exactly as billing does (``tariffs.service.quote_tariff``: the
  versions in force over the period, split at their effective dates);
- the tier cycle of a preview is the one the period starts in, on the site's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import yaml

from meterpay.kernel.errors import InvalidInput
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites
from meterpay.sites.model import Site
from meterpay.tariffs import service as tariffs
from meterpay.tariffs.components import TariffComponents
from meterpay.tariffs.fields import field_scope
from meterpay.tariffs.files import FileFormat, parse_text
from meterpay.tariffs.model import Tariff, TariffVersion
from meterpay.tariffs.rules import Quote
from meterpay.tariffs.usage import TierState, Usage


@dataclass(frozen=True, slots=True)
class TariffPage:
    tariff: Tariff
    site: Site
    in_force: TariffVersion | None
    """The version pricing consumption now (None before the first effective date)."""


def tariff_page(rt: Runtime, tariff_id: int) -> TariffPage:
    tariff = tariffs.get_tariff(rt, tariff_id)
    with rt.db.read() as conn:
        site = sites.site(conn, tariff.site_id)
    return TariffPage(tariff, site, in_force_at(tariff, rt.clock.now()))


def in_force_at(tariff: Tariff, moment: datetime) -> TariffVersion | None:
    started = [v for v in tariff.versions if v.effective_from <= moment]
    return max(started, key=lambda v: v.effective_from) if started else None


def components_of(version: TariffVersion) -> TariffComponents:
    return version.components or tariffs.flat(version.unit_price)


def components_text(version: TariffVersion | None) -> str:
    """A version's prices as YAML (the ``TariffComponents.to_dict`` form), for editing."""
    if version is None:
        return ""
    data = {k: v for k, v in components_of(version).to_dict().items() if v not in (None, [])}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def components_from_text(text: str) -> TariffComponents:
    """YAML or JSON text in the ``to_dict`` form; a refusal names the field."""
    with field_scope("components"):
        return TariffComponents.from_dict(parse_text(text, FileFormat.YAML))


def quote_preview(
    rt: Runtime,
    tariff_id: int,
    *,
    quantity: Decimal,
    start: datetime,
    end: datetime,
    consumed_before: Decimal = Decimal(0),
) -> Quote:
    """The price of ``quantity`` used evenly over ``[start, end)``; with tiers, after
    ``consumed_before`` already used in the cycle ``start`` falls in."""
    page = tariff_page(rt, tariff_id)
    if end <= start:
        raise InvalidInput("the end must be after the start", field="end")
    zone = page.site.timezone
    usage = Usage(quantity, start, end, time_zone=zone)
    version = in_force_at(page.tariff, start)
    state = None
    if version is not None and (tiers := components_of(version).tiers) is not None:
        cycle_start = tiers.cycle_start_on(start.astimezone(ZoneInfo(zone)).date())
        state = TierState(cycle_start, consumed_before)
    return tariffs.quote_tariff(rt, tariff_id, [usage], state=state)
