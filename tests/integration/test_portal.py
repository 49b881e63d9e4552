"""The owners' portal (业主端) over HTTP: an owner signs in and sees their own accounts'
balance and days of use left, usage by day and month, a month's bill split by
component, their messages, and their own warning levels — never another owner's
account; a top-up through the sandbox leads to its pay page."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import httpx

from meterpay.control import service as control
from meterpay.control.model import ThresholdOverrides
from meterpay.kernel.clock import FixedClock
from meterpay.kernel.money import Money
from meterpay.ledger import service as ledger
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.notify import service as notify
from meterpay.notify.model import Topic
from meterpay.reports import owner
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from tests.integration.builders import Home, a_home
from tests.integration.portal_people import owner_browser, owner_of
from tests.integration.signed import PASSWORD
from tests.integration.test_sandbox_pay import Live, live  # noqa: F401  the live server

PHONE = "13900004444"
ACTOR = "test"


def _home(rt: Runtime, code: str = "HOME", phone: str = PHONE, top_up: str = "100.00") -> Home:
    home = a_home(rt, code=code, price="1.0000")
    owner_of(rt, home.account.id, home.site.id, phone)
    ledger.cash_top_up(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan(top_up),
        idempotency_key=f"{code}-opening",
        cashier="cashier",
    )
    return home


def owner_customer(rt: Runtime, home: Home) -> int:
    found = sites.get(rt, "accounts", home.account.id).customer_id
    assert found is not None
    return int(found)


def _use_daily(rt: Runtime, home: Home, per_day: list[str]) -> None:
    """One reading a day (1 元 per kWh), the clock moving on with them."""
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    total = Decimal(0)
    for used in per_day:
        clock.advance(timedelta(days=1))
        total += Decimal(used)
        ingest_readings(
            rt, [ReadingIn(home.meter.id, clock.now(), total, ReadingSource.MANUAL)], actor=ACTOR
        )


def test_an_owner_sees_balance_and_days_left_of_their_own_accounts_only(rt: Runtime) -> None:
    home = _home(rt)
    other = _home(rt, code="EAST", phone="13900005555")
    with owner_browser(rt, PHONE) as phone:
        page = phone.get("/portal")
        assert page.status_code == 200
        assert "¥100.00" in page.text and "1-0101" in page.text
        assert "—" in page.text  # no use yet: no estimate of days left
        assert f"/portal/accounts/{other.account.id}" not in page.text
        _use_daily(rt, home, ["4", "6"])  # 10 元 over two days: 5 元 a day, 90 元 left
        shown = phone.get(f"/portal/accounts/{home.account.id}")
        assert re.search(r'id="balance">¥90.00<', shown.text)
        assert re.search(r'id="days-left"><span class="days">18</span>', shown.text), shown.text
        for path in ("", "/usage", "/bills", "/messages", "/settings", "/tickets"):
            refused = phone.get(f"/portal/accounts/{other.account.id}{path}")
            assert refused.status_code == 404, path
        assert (
            phone.post(
                f"/portal/accounts/{other.account.id}/top-up", data={"amount": "50"}
            ).status_code
            == 404
        )


def test_usage_by_day_and_month_and_the_months_bill_add_up(rt: Runtime) -> None:
    home = _home(rt)
    _use_daily(rt, home, ["1.5", "2", "0", "3"])
    found = owner.usage(rt, home.account.id)
    assert len(found.daily) == 30 and len(found.monthly) == 12
    assert sum((p.cost for p in found.daily), Money(0)) == Money.from_yuan("6.50")
    assert found.monthly[-1].quantity == Decimal("6.5")
    with owner_browser(rt, PHONE) as phone:
        page = phone.get(f"/portal/accounts/{home.account.id}/usage")
        data = json.loads(re.search(r'id="usage-data">(.*?)</script>', page.text).group(1))  # type: ignore[union-attr]
        assert data["unit"] == "kWh"
        assert data["daily"][-1] == ["2026-11-05", "3.0000", "3.00"]
        assert data["monthly"][-1][0] == "2026-11" and data["monthly"][-1][2] == "6.50"
        assert "/console/static/vendor/echarts.min.js" in page.text
        bills = phone.get(f"/portal/accounts/{home.account.id}/bills?month=2026-11")
        assert re.search(r'id="bill-total">¥6.50<', bills.text)
        assert 'data-component="energy"' in bills.text


def test_a_bill_splits_a_charge_by_component_to_the_fen() -> None:
    lines = [
        {"component": "energy", "exact_amount": "1.2345"},
        {"component": "surcharge:sewage", "exact_amount": "0.3333"},
        {"streams": {"energy": "1.24", "surcharge:sewage": "0.33"}},
    ]
    assert owner.charge_breakdown("reading", 157, lines) == {
        "energy": 124,
        "surcharge:sewage": 33,
    }
    fee = [{"component": "fee:service", "name": "服务费", "amount": "5.00"}]
    assert owner.charge_breakdown("fee", 500, fee) == {"fee:service": 500}
    assert owner.days_left(Money(1000), None) is None
    assert owner.days_left(Money(-5), Money(100)) == 0


def test_an_owner_reads_their_messages_and_marks_one_read(rt: Runtime) -> None:
    home = _home(rt)
    notify.queue(
        rt,
        site_id=home.site.id,
        topic=Topic.WARNING1,
        dedupe_key="portal-test",
        account_id=home.account.id,
        customer_id=home.account.customer_id or (owner.owned_account(rt, home.account.id) and None),
        params={"balance": "9.00"},
    )
    (message,) = [
        m for m in notify.inbox(rt, account_id=home.account.id) if m.dedupe_key == "portal-test"
    ]
    with owner_browser(rt, PHONE) as phone:
        page = phone.get(f"/portal/accounts/{home.account.id}/messages")
        assert f'id="message-{message.id}"' in page.text and "unread" in page.text
        read = phone.post(
            f"/portal/accounts/{home.account.id}/messages/{message.id}/read",
            headers={"HX-Request": "true"},
        )
        assert read.status_code == 204
    read_now = {m.id: m.read_at for m in notify.inbox(rt, account_id=home.account.id)}
    assert read_now[message.id] is not None


def test_an_owner_changes_their_own_warnings_but_never_the_credit_limit_or_cutoff(
    rt: Runtime,
) -> None:
    home = _home(rt)
    control.set_account_thresholds(
        rt,
        home.account.id,
        ThresholdOverrides(credit_limit=Money.from_yuan("20.00")),
        by=ACTOR,
        reason="the office allows 20 元",
    )
    path = f"/portal/accounts/{home.account.id}/settings"
    with owner_browser(rt, PHONE) as phone:
        csrf = phone.headers["X-CSRF-Token"]
        saved = phone.post(
            path,
            data={
                "csrf_token": csrf,
                "warning1_kind": "amount",
                "warning1": "60",
                "warning2_kind": "days",
                "warning2": "3",
                "email": "owner@example.com",
                "language": "en",
                "credit_limit": "9999",  # not a field of this form: ignored
                "cutoff_point": "-500",
            },
            follow_redirects=False,
        )
        assert saved.status_code == 303, saved.text
        refused = phone.post(
            path,
            data={"csrf_token": csrf, "warning1_kind": "amount", "warning1": "-100"},
        )
        assert refused.status_code == 422
        page = phone.get(path + "?saved=1")
        assert "owner@example.com" in page.text and 'value="60.00"' in page.text
    view = control.supply_view(rt, home.account.id)
    assert view.thresholds.warning1.amount == Money.from_yuan("60.00")
    assert view.thresholds.warning2.days == 3
    assert view.thresholds.credit_limit == Money.from_yuan("20.00")
    assert view.account.overrides is not None
    assert view.account.overrides.cutoff_point is None


def test_a_sandbox_top_up_from_the_portal_leads_to_the_pay_page(
    live: Live,  # noqa: F811  the fixture
) -> None:
    home = _home(live.rt)
    with httpx.Client(base_url=live.url, timeout=10) as phone:
        page = phone.get("/portal/sign-in")
        pre = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert pre
        phone.post(
            "/portal/sign-in",
            data={"csrf_token": pre.group(1), "phone": PHONE, "password": PASSWORD},
        )
        account = phone.get(f"/portal/accounts/{home.account.id}")
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', account.text)
        assert csrf and 'value="sandbox"' in account.text
        paid = phone.post(
            f"/portal/accounts/{home.account.id}/top-up",
            data={"csrf_token": csrf.group(1), "amount": "100", "provider": "sandbox"},
        )
        assert paid.status_code == 303, paid.text
        where = paid.headers["location"]
        assert "/sandbox-pay/pay/" in where and "back=/portal/accounts/" in where
        assert phone.get(where).status_code == 200
