"""转供电 model 2: the supplier's bill shared by sub-meter consumption, exactly and once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from meterpay.billing.resale import ResaleModel, set_supply, share_supplier_bill
from meterpay.kernel.errors import Conflict
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import service as ledger
from meterpay.metering import service as metering
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import Protocol, ReadingIn, ReadingSource
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.tariffs import service as tariffs

ACTOR = "test"
NOVEMBER = date(2026, 11, 1)


def _site_with_shops(rt: Runtime, used: list[str]) -> list[int]:
    """A model-2 site whose per-reading price is zero; each shop used the given kWh in Nov."""
    site = sites.create_site(rt, code="MALL", name="商场", actor=ACTOR)
    set_supply(
        rt,
        site_id=site.id,
        utility=Utility.ELECTRICITY,
        model=ResaleModel.SHARED,
        catalog_price="0.8000",
        actor=ACTOR,
    )
    tariff = tariffs.create_flat_tariff(
        rt,
        site_id=site.id,
        code="shared",
        name="分摊",
        utility=Utility.ELECTRICITY,
        unit_price="0",
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        actor=ACTOR,
    )
    installed = datetime(2026, 10, 31, 16, tzinfo=UTC)  # 2026-11-01 00:00 Shanghai
    rt.clock.advance(timedelta(days=30))  # type: ignore[attr-defined]  # now it is December
    account_ids = []
    for n, kwh in enumerate(used):
        unit = sites.create_unit(
            rt, site_id=site.id, code=f"S{n}", name=f"商铺{n}", kind=UnitKind.SHOP, actor=ACTOR
        )
        account = sites.open_account(
            rt, unit_id=unit.id, utility=Utility.ELECTRICITY, tariff_id=tariff.id, actor=ACTOR
        )
        meter = metering.register_meter(
            rt,
            unit_id=unit.id,
            utility=Utility.ELECTRICITY,
            protocol=Protocol.DLT645_2007,
            address=f"{n:012d}",
            account_id=account.id,
            installed_at=installed,
            actor=ACTOR,
        )
        ingest_readings(
            rt,
            [ReadingIn(meter.id, installed + timedelta(days=20), Decimal(kwh), ReadingSource.HTTP)],
            actor=ACTOR,
        )
        account_ids.append(account.id)
    return account_ids


def test_a_supplier_bill_is_shared_exactly_and_never_onto_the_landlord(rt: Runtime) -> None:
    """100.00 元 over 1 / 1 / 1 kWh: tenants pay two thirds to the fen, the landlord its own."""
    shop_a, shop_b, landlord = _site_with_shops(rt, ["1", "1", "1"])
    site_id = sites.get(rt, "accounts", shop_a).site_id
    run = share_supplier_bill(
        rt,
        site_id=site_id,
        utility=Utility.ELECTRICITY,
        month=NOVEMBER,
        amount=Money.from_yuan("100.00"),
        evidence="国网电费单 2026-11",
        landlord_account_ids={landlord},
        actor=ACTOR,
    )
    assert sum(run.shares.values()) + run.landlord_fen == 10000
    assert landlord not in run.shares
    assert sorted(run.shares.values()) == [3333, 3334]
    assert ledger.account_balance(rt, shop_a) + ledger.account_balance(rt, shop_b) == -Money(6667)
    assert ledger.account_balance(rt, landlord) == Money(0)
    assert ledger.verify_ledger(rt) == []


def test_sharing_the_same_bill_again_changes_nothing_and_a_different_one_is_refused(
    rt: Runtime,
) -> None:
    """A repeated run charges nothing twice; another amount for the month is a conflict."""
    shop_a, shop_b = _site_with_shops(rt, ["30", "70"])
    site_id = sites.get(rt, "accounts", shop_a).site_id
    args = {
        "site_id": site_id,
        "utility": Utility.ELECTRICITY,
        "month": NOVEMBER,
        "evidence": "bill 11",
        "landlord_account_ids": set(),
        "actor": ACTOR,
    }
    share_supplier_bill(rt, amount=Money.from_yuan("80.00"), **args)  # type: ignore[arg-type]
    share_supplier_bill(rt, amount=Money.from_yuan("80.00"), **args)  # type: ignore[arg-type]
    assert ledger.account_balance(rt, shop_a) == -Money.from_yuan("24.00")
    assert ledger.account_balance(rt, shop_b) == -Money.from_yuan("56.00")
    with pytest.raises(Conflict):
        share_supplier_bill(rt, amount=Money.from_yuan("81.00"), **args)  # type: ignore[arg-type]
