"""Resale by a property company (转供电 / 转供水): the two lawful models.

Model 1: each end user pays the catalog price x their own sub-meter; the
tariff may charge nothing above the catalog price and add no fee to the
utility price (电力法 第四十四条, 物业管理条例 第四十四条). ``resale_warnings``
lists what breaks that.

Model 2: the supplier's bill is shared by sub-meter consumption
(``share_bill``).

Invariants of ``share_bill``:
- everyone's share, the landlord's own use included, is computed over the
  whole consumption, so the landlord's use is never passed on to others: its
  part stays with the landlord (``bill - sum(result)``) and excluded keys get
  no share in the result;
- the shares of all keys, excluded ones included, add up exactly to the bill
  (largest remainders to the fen), and each is within 1 fen of its exact
  pro-rata value;
- zero total consumption has no proportions to share by and is refused.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Set
from decimal import Decimal
from typing import TypeVar

from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.quantity import InvalidQuantity, parse_quantity
from meterpay.tariffs.apportion import largest_remainders
from meterpay.tariffs.components import PricePoint, TariffComponents, topup_fee_warnings
from meterpay.tariffs.fields import as_price
from meterpay.tariffs.tou import Period

K = TypeVar("K", bound=Hashable)

CatalogPrice = Decimal | Mapping[Period, Decimal]


class NothingToShare(InvalidInput):
    """A bill cannot be shared by consumption when nobody consumed anything."""

    code = "nothing_to_share"


def share_bill(
    bill_fen: int, consumptions: Mapping[K, Decimal], excluded: Set[K] = frozenset()
) -> dict[K, int]:
    """Each non-excluded key's share of ``bill_fen`` by consumption, in fen."""
    if isinstance(bill_fen, bool) or not isinstance(bill_fen, int) or bill_fen < 0:
        raise InvalidInput(f"bill_fen must be a whole number of fen >= 0, got {bill_fen!r}")
    checked = {key: _consumption(key, value) for key, value in consumptions.items()}
    strangers = [key for key in excluded if key not in checked]
    if strangers:
        raise InvalidInput(f"excluded {strangers!r} have no consumption", excluded=repr(strangers))
    if not any(checked.values()):
        raise NothingToShare("total consumption is 0: there is nothing to share the bill by")
    shares = largest_remainders(bill_fen, checked)
    return {key: fen for key, fen in shares.items() if key not in excluded}


def _consumption(key: object, value: Decimal) -> Decimal:
    try:
        quantity = parse_quantity(value)
    except InvalidQuantity as exc:
        raise InvalidInput(f"consumption of {key!r}: {exc}", key=repr(key)) from exc
    if quantity < 0:
        raise InvalidInput(f"consumption of {key!r} is negative ({value})", key=repr(key))
    return quantity


def resale_warnings(components: TariffComponents, catalog_price: CatalogPrice) -> list[str]:
    """What model 1 forbids in ``components``, in Chinese with English; empty when lawful.

    ``catalog_price`` is the all-in catalog unit price the site pays, or one
    per time-of-use period (a price without a period is checked against
    ``flat``). A tariff price is compared with it together with the tariff's
    government levies, which the catalog price includes.
    """
    levies = sum((s.unit_price for s in components.surcharges if s.government_levy), Decimal(0))
    several = len(components.period_prices) > 1
    warnings: list[str] = []
    missing: set[Period] = set()
    for point in components.price_points():
        catalog = _catalog_for(catalog_price, point.period)
        if catalog is None:
            missing.add(point.period or Period.FLAT)
        elif point.unit_price + levies > catalog:
            warnings.append(_above_catalog(point, point.unit_price + levies, catalog, several))
    warnings.extend(
        f"没有{period.label}时段的目录价，无法核对 / no catalog price for the {period} period"
        for period in Period
        if period in missing
    )
    warnings.extend(
        f"附加费「{s.name}」（{s.code}）不是政府性收费：转供不得在目录价之外加收费用"
        f"（电力法 第四十四条、物业管理条例 第四十四条） / surcharge {s.code} is not a"
        " government levy: resale may not add any fee to the utility price"
        for s in components.surcharges
        if not s.government_levy
    )
    warnings.extend(
        f"固定费用「{fee.name}」（{fee.code}）加在水电费上：公区和损耗应通过租金或物业费回收"
        f" / fixed fee {fee.code} is added to the utility charge: common areas and losses"
        " are recovered through rent or the property fee, not the utility price"
        for fee in components.fixed_fees
    )
    warnings.extend(topup_fee_warnings(components.topup_fee))
    return warnings


def _catalog_for(catalog_price: CatalogPrice, period: Period | None) -> Decimal | None:
    if isinstance(catalog_price, Mapping):
        found = catalog_price.get(period or Period.FLAT)
        return None if found is None else as_price(found, f"catalog_price.{period}")
    return as_price(catalog_price, "catalog_price")


def _above_catalog(point: PricePoint, price: Decimal, catalog: Decimal, several: bool) -> str:
    zh, en = [], []
    if point.tier is not None:
        zh.append(f"第{point.tier}档")
        en.append(f"tier {point.tier}")
    if point.period is not None:
        zh.append(f"{point.period.label}时段")
        en.append(f"{point.period} period")
    if several and point.schedule is not None:
        zh.append(f"（时段表 {point.schedule}）")
        en.append(f"(schedule {point.schedule})")
    what_zh = "".join(zh) or "电价/水价"
    what_en = " ".join(en) or "the unit price"
    return (
        f"{what_zh}单价 {price} 元高于目录价 {catalog} 元：模式一转供时终端用户只按目录价付费"
        f" / {what_en}: {price} 元 is above the catalog price {catalog} 元;"
        " under resale model 1 end users pay the catalog price"
    )
