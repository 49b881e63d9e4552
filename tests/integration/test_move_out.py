"""Move-out settlement (退费) in the database, on SQLite and PostgreSQL: final readings
billed once, the balance paid out in cash or transferred to the next occupant, arrears
left as the leaver's debt, meters handed over at their last reading, the account closed,
one settlement record; over HTTP, and printed for the owner.

The fixed clock starts on Sunday 2026-11-01 08:00 in Shanghai (00:00 UTC); the tariff is
1 元/kWh, so kWh and 元 read the same.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from meterpay.control import outbox
from meterpay.control import service as control
from meterpay.control.commands import CommandEvent, CommandKind, CommandState
from meterpay.control.model import SupplyState
from meterpay.control.review import review_due
from meterpay.db.schema import audit_log, readings, transfers
from meterpay.kernel.clock import FixedClock
from meterpay.kernel.errors import IdempotencyConflict, InvalidInput, NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import repository as ledger_repo
from meterpay.ledger import service as ledger
from meterpay.ledger import settlement
from meterpay.ledger.model import TransferKind
from meterpay.ledger.settlement_model import AlreadySettled, Payout, Settlement
from meterpay.metering import service as metering
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.notify import service as notify
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import AccountStatus
from meterpay.tariffs import service as tariffs
from tests.integration.builders import ACTOR, Home, a_home

CLERK = "赵物业"


def _home(rt: Runtime, code: str = "HOME") -> Home:
    home = a_home(rt, price="1.0000", code=code)
    owner = sites.create_customer(rt, site_id=home.site.id, name="张三", actor=ACTOR)
    home.account = sites.update_account(rt, home.account.id, customer_id=owner.id, actor=ACTOR)
    return home


def _next_occupant(rt: Runtime, home: Home) -> int:
    """李四's account on the same unit and utility, opened before the move-out."""
    newcomer = sites.create_customer(rt, site_id=home.site.id, name="李四", actor=ACTOR)
    account = sites.open_account(
        rt,
        unit_id=home.account.unit_id,
        utility=home.account.utility,
        tariff_id=home.tariff_id,
        customer_id=newcomer.id,
        number="E-1-0101-2",
        actor=ACTOR,
    )
    return account.id


def _top_up(rt: Runtime, account_id: int, yuan: str, key: str) -> None:
    ledger.cash_top_up(
        rt,
        account_id=account_id,
        amount=Money.from_yuan(yuan),
        idempotency_key=key,
        cashier="cashier",
    )


def _hours(rt: Runtime, hours: int) -> datetime:
    """A moment ``hours`` after the start, the clock moved on to it."""
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    start = datetime.fromisoformat("2026-11-01T00:00:00+00:00")
    moment = start + timedelta(hours=hours)
    if clock.now() < moment:
        clock.advance(moment - clock.now())
    return moment


def _reading(home: Home, total: str, at: datetime) -> ReadingIn:
    return ReadingIn(home.meter.id, at, Decimal(total), ReadingSource.MANUAL)


def _read(rt: Runtime, home: Home, total: str, hours: int) -> None:
    ingest_readings(rt, [_reading(home, total, _hours(rt, hours))], actor=ACTOR)


def _settle(rt: Runtime, home: Home, **changes: Any) -> Settlement:
    request: dict[str, Any] = {
        "account_id": home.account.id,
        "final_readings": [],
        "payout": Payout.CASH,
        "to_account_id": None,
        "reason": "业主搬离",
        "by": CLERK,
        "idempotency_key": "MO-1",
    }
    return settlement.settle_move_out(rt, **(request | changes))


def _cash_balance(rt: Runtime, site_code: str = "HOME") -> Money:
    with rt.db.read() as conn:
        return Money(
            ledger_repo.balance_fen(conn, ledger_repo.ledger_account_id(conn, f"cash:{site_code}"))
        )


def _count(rt: Runtime, table: Any) -> int:
    with rt.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _history(rt: Runtime, account_id: int) -> list[tuple[str, int]]:
    return [(t.kind.value, t.amount_fen) for t in ledger.account_history(rt, account_id)][::-1]


def test_a_positive_balance_is_paid_out_in_cash_and_the_account_closed(rt: Runtime) -> None:
    """The final reading is charged, the rest leaves the wallet for the cash drawer, the
    meter is left without an account at its final reading; the ledger stays sound."""
    home = _home(rt)
    _top_up(rt, home.account.id, "100.00", "T-1")
    _read(rt, home, "20", 1)
    final = _reading(home, "30.5", _hours(rt, 2))
    done = _settle(rt, home, final_readings=[final])

    assert (done.charges, done.balance) == (Money.from_yuan("10.50"), Money.from_yuan("69.50"))
    assert (done.payout, done.payout_amount, done.debt) == (
        Payout.CASH,
        Money.from_yuan("69.50"),
        Money(0),
    )
    (reading,) = done.final_readings
    assert (reading.meter_id, reading.read_at, reading.total) == (
        home.meter.id,
        final.read_at,
        Decimal("30.5"),
    )
    assert reading.charge == Money.from_yuan("10.50") and reading.entered
    assert [(m.meter_id, m.to_account_id) for m in done.meters] == [(home.meter.id, None)]
    assert done.transfer_key == f"payout:move-out:{home.account.id}"
    assert not done.duplicate and done.settled_by == CLERK and done.reason == "业主搬离"

    assert ledger.account_balance(rt, home.account.id) == Money(0)
    assert _cash_balance(rt) == Money.from_yuan("30.50")  # 100 in, 69.50 back out
    assert _history(rt, home.account.id)[-1] == (TransferKind.PAYOUT.value, 6950)
    assert ledger.verify_ledger(rt) == []
    closed = sites.get(rt, "accounts", home.account.id)
    assert closed.status is AccountStatus.CLOSED and closed.closed_at == rt.clock.now()
    meter = metering.get_meter(rt, home.meter.id)
    assert meter.account_id is None and meter.last_total == Decimal("30.5")
    with rt.db.read() as conn:
        audited = (
            conn.execute(select(audit_log).where(audit_log.c.action == "account.move_out"))
            .mappings()
            .one()
        )
    assert audited["actor"] == CLERK and audited["after"]["settlement_id"] == done.id

    _read(rt, home, "40", 3)  # the empty flat's meter: stored, billed to nobody
    assert ledger.account_balance(rt, home.account.id) == Money(0)
    assert settlement.get_settlement(rt, done.id) == done
    assert settlement.settlements_of(rt, home.account.id) == [done]


def test_a_transfer_credits_the_next_occupant_who_then_pays_only_their_own_use(
    rt: Runtime,
) -> None:
    """Read already: no final reading needed. The balance moves to the next occupant's
    wallet (their supply settled like a top-up), the meter bills them from the handover
    reading — only the new use, nothing twice, no gap."""
    home = _home(rt)
    nxt = _next_occupant(rt, home)
    _top_up(rt, home.account.id, "50.00", "T-1")
    _top_up(rt, nxt, "5.00", "T-2")
    _read(rt, home, "20", 1)  # 30 元 left
    done = _settle(rt, home, payout=Payout.TRANSFER, to_account_id=nxt)

    assert (done.charges, done.balance, done.payout_amount) == (
        Money(0),
        Money.from_yuan("30.00"),
        Money.from_yuan("30.00"),
    )
    (reading,) = done.final_readings
    assert (reading.total, reading.charge, reading.entered) == (Decimal(20), Money(0), False)
    assert [(m.meter_id, m.to_account_id) for m in done.meters] == [(home.meter.id, nxt)]
    assert ledger.account_balance(rt, nxt) == Money.from_yuan("35.00")  # 5 + 30 exactly
    assert ledger.account_balance(rt, home.account.id) == Money(0)
    assert _cash_balance(rt) == Money.from_yuan("55.00")  # no cash left the drawer
    view = control.supply_view(rt, nxt)
    assert view.account.state is SupplyState.LOW  # 35 元 is below warning 1 (50 元)
    assert view.events[0]["cause"] == done.transfer_key
    topics = [m.topic.value for m in notify.notifications(rt, account_id=nxt)]
    assert topics.count("top_up_receipt") == 2
    assert ledger.verify_ledger(rt) == []

    _read(rt, home, "15", 2)  # before the handover: late, billed to nobody again
    _read(rt, home, "20", 1)  # the handover reading itself again: a duplicate
    _read(rt, home, "26", 3)  # 6 kWh of the next occupant's own use
    assert ledger.account_balance(rt, nxt) == Money.from_yuan("29.00")
    assert _history(rt, nxt)[-1] == (TransferKind.CHARGE.value, 600)
    assert ledger.account_balance(rt, home.account.id) == Money(0)
    assert metering.get_meter(rt, home.meter.id).account_id == nxt
    assert settlement.settlements_of(rt, nxt) == [done]
    assert ledger.verify_ledger(rt) == []


def test_arrears_stay_on_the_closed_account_and_the_next_occupant_inherits_nothing(
    rt: Runtime,
) -> None:
    home = _home(rt)
    nxt = _next_occupant(rt, home)
    _top_up(rt, home.account.id, "10.00", "T-1")
    _read(rt, home, "12", 1)  # -2 元: in arrears
    final = _reading(home, "18", _hours(rt, 2))  # -8 元
    done = _settle(rt, home, final_readings=[final], payout=Payout.TRANSFER, to_account_id=nxt)

    assert (done.charges, done.balance, done.debt) == (
        Money.from_yuan("6.00"),
        Money.from_yuan("-8.00"),
        Money.from_yuan("8.00"),
    )
    assert done.payout_amount == Money(0) and done.transfer_key is None
    assert ledger.account_balance(rt, home.account.id) == Money.from_yuan("-8.00")
    assert ledger.account_balance(rt, nxt) == Money(0)
    assert _history(rt, nxt) == []
    assert control.supply_view(rt, nxt).account.state is SupplyState.NORMAL
    assert sites.get(rt, "accounts", home.account.id).status is AccountStatus.CLOSED
    assert metering.get_meter(rt, home.meter.id).account_id == nxt
    assert ledger.verify_ledger(rt) == []
    _read(rt, home, "20", 3)  # the next occupant's 2 kWh, not a fen of the debt
    assert ledger.account_balance(rt, nxt) == Money.from_yuan("-2.00")
    assert ledger.account_balance(rt, home.account.id) == Money.from_yuan("-8.00")


def test_a_meter_cut_for_the_leavers_arrears_is_restored_for_the_next_occupant(
    rt: Runtime,
) -> None:
    """The leaver's debt cut the supply; the next occupant owes nothing, so the meter is
    switched on again for them, and no arrears decision of the old account remains."""
    home = _home(rt)
    control.set_policy(
        rt,
        home.site.id,
        Utility.ELECTRICITY,
        {"notice_period_minutes": 30, "friendly_hours": None, "no_cutoff_on_rest_days": False},
        by="admin",
        reason="test site: cut at any time",
    )
    _read(rt, home, "5", 1)  # -5 元
    for _ in range(3):  # the final notice, then the cut, 30 minutes apart
        rt.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
        review_due(rt)
    (claimed,) = outbox.claim(rt)
    outbox.record(rt, claimed.id, CommandEvent.ACCEPTED)
    outbox.record(rt, claimed.id, CommandEvent.CONFIRMED)
    assert control.supply_view(rt, home.account.id).account.state is SupplyState.CUT_OFF
    nxt = _next_occupant(rt, home)
    done = _settle(rt, home, to_account_id=nxt)

    assert done.debt == Money.from_yuan("5.00") and done.payout_amount == Money(0)
    (restore,) = outbox.find(rt, account_id=nxt)
    assert (restore.kind, restore.state, restore.meter_id) == (
        CommandKind.RESTORE,
        CommandState.PENDING,
        home.meter.id,
    )
    assert restore.cause_key == f"move-in:{home.account.id}:{home.meter.id}"
    assert control.supply_view(rt, home.account.id).account.next_decision_at is None


def test_the_same_key_hands_back_the_same_settlement_and_moves_nothing_twice(
    rt: Runtime,
) -> None:
    home = _home(rt)
    _top_up(rt, home.account.id, "100.00", "T-1")
    final = _reading(home, "20", _hours(rt, 1))
    first = _settle(rt, home, final_readings=[final])
    moved, read = _count(rt, transfers), _count(rt, readings)
    again = _settle(rt, home, final_readings=[final])
    assert again == replace(first, duplicate=True) and not first.duplicate
    assert again.payout_amount == first.payout_amount == Money.from_yuan("80.00")
    assert (_count(rt, transfers), _count(rt, readings)) == (moved, read)
    assert _cash_balance(rt) == Money.from_yuan("20.00")

    with pytest.raises(IdempotencyConflict):
        _settle(rt, home, final_readings=[_reading(home, "21", final.read_at)])
    with pytest.raises(AlreadySettled):
        _settle(rt, home, idempotency_key="MO-2")
    assert ledger.verify_ledger(rt) == []


@pytest.mark.parametrize("elsewhere", ["site", "utility"])
def test_a_transfer_to_another_sites_or_utilitys_account_is_refused_and_changes_nothing(
    rt: Runtime, elsewhere: str
) -> None:
    home = _home(rt)
    if elsewhere == "site":
        target = _home(rt, code="EAST").account.id
    else:
        water = tariffs.create_flat_tariff(
            rt,
            site_id=home.site.id,
            code="water-flat",
            name="水价",
            utility=Utility.WATER,
            unit_price="5.0000",
            effective_from=rt.clock.now() - timedelta(days=365),
            actor=ACTOR,
        )
        target = sites.open_account(
            rt,
            unit_id=home.account.unit_id,
            utility=Utility.WATER,
            tariff_id=water.id,
            actor=ACTOR,
        ).id
    _top_up(rt, home.account.id, "100.00", "T-1")
    moved, read = _count(rt, transfers), _count(rt, readings)
    with pytest.raises(InvalidInput) as refused:
        _settle(
            rt,
            home,
            final_readings=[_reading(home, "20", _hours(rt, 1))],
            payout=Payout.TRANSFER,
            to_account_id=target,
        )
    assert refused.value.details["field"] == "to_account_id"
    assert (_count(rt, transfers), _count(rt, readings)) == (moved, read)
    assert sites.get(rt, "accounts", home.account.id).status is AccountStatus.OPEN
    assert ledger.account_balance(rt, home.account.id) == Money.from_yuan("100.00")
    assert ledger.account_balance(rt, target) == Money(0)
    meter = metering.get_meter(rt, home.meter.id)
    assert meter.account_id == home.account.id and meter.last_total == Decimal(0)
    assert settlement.settlements_of(rt, home.account.id) == []


def test_a_final_reading_that_would_not_bill_refuses_the_whole_settlement(rt: Runtime) -> None:
    """A reading that goes backwards is suspect: nothing is stored, paid or closed, so
    the settlement can be entered again with the right value."""
    home = _home(rt)
    _top_up(rt, home.account.id, "100.00", "T-1")
    _read(rt, home, "20", 1)
    moved, read = _count(rt, transfers), _count(rt, readings)
    with pytest.raises(InvalidInput, match="suspect"):
        _settle(rt, home, final_readings=[_reading(home, "19", _hours(rt, 2))])
    assert (_count(rt, transfers), _count(rt, readings)) == (moved, read)
    assert sites.get(rt, "accounts", home.account.id).status is AccountStatus.OPEN
    done = _settle(rt, home, final_readings=[_reading(home, "21", _hours(rt, 2))])
    assert done.payout_amount == Money.from_yuan("79.00")
    with pytest.raises(NotFound):
        settlement.get_settlement(rt, done.id + 1)


def test_the_same_move_out_sent_twice_at_once_is_settled_once(pg_rt: Runtime) -> None:
    home = _home(pg_rt)
    _top_up(pg_rt, home.account.id, "100.00", "T-1")
    final = _reading(home, "20", _hours(pg_rt, 1))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: _settle(pg_rt, home, final_readings=[final]), range(2)))
    assert results[0].id == results[1].id
    assert sorted(r.duplicate for r in results) == [False, True]
    assert _cash_balance(pg_rt) == Money.from_yuan("20.00")
    assert ledger.verify_ledger(pg_rt) == []


# --- over HTTP, and printed -----------------------------------------------------------------

HTML = {"Accept": "text/html"}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _body(**changes: Any) -> dict[str, Any]:
    return {
        "final_readings": [],
        "payout": "cash",
        "reason": "业主搬离",
        "idempotency_key": "MO-1",
    } | changes


def test_the_api_settles_reads_and_lists_and_says_clearly_what_it_refuses(
    rt: Runtime, api: TestClient
) -> None:
    home = _home(rt)
    nxt = _next_occupant(rt, home)
    _top_up(rt, home.account.id, "100.00", "T-1")
    at = _hours(rt, 1).isoformat()
    url = f"/api/v1/accounts/{home.account.id}/move-out"
    missing = api.post(url, json=_body(payout="transfer"))
    assert missing.status_code == 422 and missing.json()["error"]["details"]["field"] == (
        "to_account_id"
    )
    assert api.post("/api/v1/accounts/999/move-out", json=_body()).status_code == 404
    assert api.post(url, json=_body(payout="cheque")).status_code == 422
    body = _body(
        final_readings=[{"meter_id": home.meter.id, "read_at": at, "total": "12.5"}],
        payout="transfer",
        to_account_id=nxt,
    )
    created = api.post(url, json=body)
    assert created.status_code == 201, created.text
    settled = created.json()
    assert (settled["charges"], settled["balance"], settled["payout_amount"]) == (
        "12.50",
        "87.50",
        "87.50",
    )
    assert settled["final_readings"][0]["total"] == "12.5000"
    assert settled["meters"] == [
        {"meter_id": home.meter.id, "address": "000000000101", "to_account_id": nxt}
    ]
    assert settled["print_url"] == f"/console/settlements/{settled['id']}"
    repeated = api.post(url, json=body)
    assert repeated.status_code == 200 and repeated.json()["id"] == settled["id"]
    assert repeated.json()["duplicate"] is True
    other = api.post(url, json=body | {"to_account_id": None, "payout": "cash"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    again = api.post(url, json=_body(idempotency_key="MO-2"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_settled"
    fetched = api.get(f"/api/v1/settlements/{settled['id']}").json()
    assert fetched | {"duplicate": False} == settled
    assert [s["id"] for s in api.get(f"/api/v1/accounts/{nxt}/settlements").json()] == [
        settled["id"]
    ]
    assert api.get("/api/v1/settlements/999").status_code == 404
    assert api.get("/api/v1/accounts/999/settlements").status_code == 404


def test_the_printed_settlement_tells_the_owner_everything_and_escapes_names(
    rt: Runtime, api: TestClient
) -> None:
    home = _home(rt)
    script = '<script>alert("owner")</script>'
    sites.update_customer(rt, home.account.customer_id or 0, name=script, actor=ACTOR)
    nxt = _next_occupant(rt, home)
    _top_up(rt, home.account.id, "100.00", "T-1")
    final = _reading(home, "12.5", _hours(rt, 1))
    done = _settle(rt, home, final_readings=[final], to_account_id=nxt)
    response = api.get(f"/console/settlements/{done.id}", headers=HTML)
    assert response.status_code == 200
    html = response.text
    text = _text(html)
    for shown in (
        "退费结算单",
        "测试小区",
        "1-0101 1栋101",
        home.account.number,
        "E-1-0101-2 李四",
        "000000000101",
        "2026年11月1日 09:00:00",
        "12.5",
        "¥12.50",
        "¥87.50",
        "捌拾柒元伍角",
        "现金退费",
        "表计移交",
        CLERK,
        "业主搬离",
        "迁出住户签字",
        "下一住户签字",
        "经办人签字",
    ):
        assert shown in text, shown
    assert script not in html and "&lt;script&gt;" in html
    assert "size: A6 portrait" in html
    english = _text(api.get(f"/console/settlements/{done.id}?lang=en&paper=80mm").text)
    assert "Move-out settlement" in english and "paid out in cash" in english
    assert api.get("/console/settlements/999").status_code == 404


def test_the_printed_settlement_of_arrears_names_the_debt_and_who_owes_it(
    rt: Runtime, api: TestClient
) -> None:
    home = _home(rt)
    _read(rt, home, "3", 1)
    done = _settle(rt, home)
    text = _text(api.get(f"/console/settlements/{done.id}").text)
    assert "欠费" in text and "¥3.00" in text and "叁元整" in text
    assert "不转给下一住户" in text and "无余额可退" in text and "空置，无账户" in text
