"""The pure decisions of a move-out settlement (退费): payout or debt, the shape of a
request, the next occupant's account, final readings, and telling a repeat from
another request under the same key."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.quantity import Utility
from meterpay.ledger.settlement_model import (
    Closing,
    Payout,
    check_final_readings,
    check_next_occupant,
    check_request,
    closing,
    refused_reading,
    request_digest,
)
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.sites.model import Account, AccountStatus

AT = datetime(2026, 11, 1, tzinfo=UTC)
LEAVING = Account(
    id=1,
    site_id=1,
    unit_id=10,
    customer_id=None,
    number="E-1-0101",
    utility=Utility.ELECTRICITY,
    tariff_id=1,
    wallet_id=5,
    status=AccountStatus.OPEN,
    supply_state="normal",
    opened_at=AT,
    closed_at=None,
)
ARRIVING = replace(LEAVING, id=2, number="E-1-0101-B", wallet_id=6)


def _reading(meter_id: int, total: str, at: datetime = AT) -> ReadingIn:
    return ReadingIn(meter_id, at, Decimal(total), ReadingSource.MANUAL)


@pytest.mark.parametrize(
    ("balance", "expected"),
    [(12_345, Closing(12_345, 0)), (0, Closing(0, 0)), (-801, Closing(0, 801))],
)
def test_a_positive_balance_is_paid_out_and_a_negative_one_left_as_a_debt(
    balance: int, expected: Closing
) -> None:
    found = closing(balance)
    assert found == expected
    assert found.payout_fen - found.debt_fen == balance


def test_a_request_names_its_payout_and_a_transfer_its_next_occupant() -> None:
    assert check_request(
        account_id=1, payout="cash", to_account_id=None, reason=" 搬走 ", idempotency_key="k"
    ) == (Payout.CASH, "搬走")
    for payout, to_account_id, field in (
        ("cheque", None, "payout"),
        (Payout.TRANSFER, None, "to_account_id"),
        (Payout.TRANSFER, 1, "to_account_id"),
    ):
        with pytest.raises(InvalidInput) as refused:
            check_request(
                account_id=1,
                payout=payout,
                to_account_id=to_account_id,
                reason="搬走",
                idempotency_key="k",
            )
        assert refused.value.details["field"] == field


@pytest.mark.parametrize(
    ("reason", "key", "field"),
    [(" ", "k", "reason"), ("x" * 501, "k", "reason"), ("搬走", " ", "idempotency_key")],
)
def test_a_request_without_a_reason_or_a_key_is_refused(reason: str, key: str, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_request(
            account_id=1, payout=Payout.CASH, to_account_id=None, reason=reason, idempotency_key=key
        )
    assert refused.value.details["field"] == field


def test_the_next_occupant_is_an_open_account_of_the_same_unit_site_and_utility() -> None:
    check_next_occupant(LEAVING, ARRIVING)
    for other in (
        replace(ARRIVING, site_id=2),
        replace(ARRIVING, utility=Utility.WATER),
        replace(ARRIVING, unit_id=11),
        replace(ARRIVING, status=AccountStatus.CLOSED),
    ):
        with pytest.raises(InvalidInput):
            check_next_occupant(LEAVING, other)


def test_final_readings_are_one_per_meter_of_the_account() -> None:
    check_final_readings([_reading(7, "10"), _reading(8, "3")], {7, 8, 9})
    check_final_readings([], {7})
    with pytest.raises(InvalidInput, match=r"\[99\]"):
        check_final_readings([_reading(99, "10")], {7})
    with pytest.raises(InvalidInput, match="one final reading per meter"):
        check_final_readings([_reading(7, "10"), _reading(7, "11", AT + timedelta(hours=1))], {7})


@pytest.mark.parametrize(
    ("quality", "flags", "refused"),
    [
        ("valid", (), False),
        ("baseline", ("first_reading",), False),
        ("duplicate", (), False),
        ("duplicate", ("conflict",), True),
        ("suspect", ("backwards",), True),
        ("late", ("late",), True),
    ],
)
def test_a_final_reading_that_would_not_bill_refuses_the_settlement(
    quality: str, flags: tuple[str, ...], refused: bool
) -> None:
    assert refused_reading(quality, flags) is refused


def test_the_same_request_has_the_same_digest_and_another_one_another() -> None:
    beijing = timezone(timedelta(hours=8))
    digest = request_digest(
        account_id=1, payout=Payout.CASH, to_account_id=None, readings=[_reading(7, "12.5")]
    )
    same = request_digest(
        account_id=1,
        payout=Payout.CASH,
        to_account_id=None,
        readings=[_reading(7, "12.50", AT.astimezone(beijing))],
    )
    assert same == digest
    for other in (
        {"account_id": 2, "payout": Payout.CASH, "to_account_id": None},
        {"account_id": 1, "payout": Payout.TRANSFER, "to_account_id": 2},
        {"account_id": 1, "payout": Payout.CASH, "to_account_id": 2},
    ):
        assert request_digest(readings=[_reading(7, "12.5")], **other) != digest  # type: ignore[arg-type]
    assert (
        request_digest(
            account_id=1, payout=Payout.CASH, to_account_id=None, readings=[_reading(7, "12.6")]
        )
        != digest
    )
