"""Move-out settlement (退费): what closing an account at move-out decides. Plain Python.

Invariants:
- the balance left after the final charges is either paid out (positive: in cash, or
  transferred to the next occupant's wallet) or left as a debt (negative), never both:
  ``balance = payout - debt``; a debt stays on the closed account — it is the person's,
  not the unit's (民法典), so the next occupant never inherits it;
- the next occupant's account is another open account of the same unit, site and
  utility: electricity money never pays for water;
- each final reading is for a meter of the account, at most one per meter, and must
  bill (or be the reading already stored): a suspect or late one refuses the whole
  settlement, so it can be entered again with the right value;
- a settlement is made once per account and once per idempotency key; the same key
  with another request (account, payout, target or readings) is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final

from meterpay.kernel.errors import Conflict, InvalidInput
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.metering.meters import ReadingIn
from meterpay.sites.model import Account, AccountStatus

MAX_REASON: Final = 500
MAX_KEY: Final = 120
ACCEPTED_QUALITIES: Final = frozenset({"valid", "baseline"})
"""Final readings that bill (or start a meter's count); a duplicate is accepted too."""


class Payout(StrEnum):
    CASH = "cash"
    """现金退费: paid out at the counter, from the site's cash account."""
    TRANSFER = "transfer"
    """转入下一住户: into the next occupant's wallet of the same unit and utility."""


class AlreadySettled(Conflict):
    """The account was closed before: it is settled once."""

    code = "already_settled"


@dataclass(frozen=True, slots=True)
class Closing:
    """How the balance after the final charges leaves the account."""

    payout_fen: int
    debt_fen: int


def closing(balance_fen: int) -> Closing:
    """A positive balance is paid out whole; a negative one is a debt left behind."""
    return Closing(payout_fen=max(balance_fen, 0), debt_fen=max(-balance_fen, 0))


@dataclass(frozen=True, slots=True)
class FinalReading:
    """The reading a meter of the account is settled at (and handed over at)."""

    meter_id: int
    address: str
    read_at: datetime
    total: Decimal
    charge: Money
    """What this settlement's final reading charged (0 if it was read before)."""
    entered: bool
    """Entered with the settlement; else the meter's last accepted reading before it."""


@dataclass(frozen=True, slots=True)
class HandedOver:
    meter_id: int
    address: str
    to_account_id: int | None
    """The next occupant's account; None: the meter is left without an account."""


@dataclass(frozen=True, slots=True)
class Settlement:
    id: int
    idempotency_key: str
    site_id: int
    account_id: int
    final_readings: tuple[FinalReading, ...]
    charges: Money
    """What the final readings charged."""
    balance: Money
    """The wallet's balance after the final charges, before the payout."""
    payout: Payout
    payout_amount: Money
    to_account_id: int | None
    transfer_key: str | None
    """The ledger transfer that paid the balance out (none when nothing was paid)."""
    debt: Money
    meters: tuple[HandedOver, ...]
    settled_by: str
    at: datetime
    reason: str
    duplicate: bool = False
    """True when the idempotency key was used before: this is that settlement."""


@dataclass(frozen=True, slots=True)
class Party:
    """An account on the printed settlement: its number and holder."""

    account_id: int
    number: str
    holder: str | None


@dataclass(frozen=True, slots=True)
class SettlementView:
    """A settlement with what its printed form shows about the place and the people."""

    settlement: Settlement
    site_name: str
    timezone: str
    unit_code: str
    unit_name: str
    utility: Utility
    account: Party
    next_occupant: Party | None


def payout_key(account_id: int) -> str:
    """The payout transfer's key: one per account, whatever the request's key."""
    return f"payout:move-out:{account_id}"


def restore_cause(account_id: int, meter_id: int) -> str:
    """The cause of a restore queued for a meter handed over from a cut-off account."""
    return f"move-in:{account_id}:{meter_id}"


def check_request(
    *,
    account_id: int,
    payout: Payout | str,
    to_account_id: int | None,
    reason: str,
    idempotency_key: str,
) -> tuple[Payout, str]:
    """The payout method and the stripped reason; a request that can never be right is
    refused before anything is read."""
    try:
        method = Payout(payout)
    except ValueError:
        raise InvalidInput(
            f"payout is 'cash' or 'transfer', not {payout!r}", field="payout"
        ) from None
    if method is Payout.TRANSFER and to_account_id is None:
        raise InvalidInput("a transfer needs the next occupant's account", field="to_account_id")
    if to_account_id is not None and to_account_id == account_id:
        raise InvalidInput("an account cannot be settled into itself", field="to_account_id")
    key = idempotency_key.strip()
    if not key or len(key) > MAX_KEY:
        raise InvalidInput(
            f"an idempotency key of 1 to {MAX_KEY} characters is required",
            field="idempotency_key",
        )
    return method, _reason(reason)


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise InvalidInput("a move-out settlement needs a reason", field="reason")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"a reason is at most {MAX_REASON} characters", field="reason")
    return text


def check_final_readings(readings: Sequence[ReadingIn], meter_ids: Collection[int]) -> None:
    """Each final reading is for one of the account's meters, at most one per meter."""
    strangers = sorted({r.meter_id for r in readings} - set(meter_ids))
    if strangers:
        raise InvalidInput(
            f"meters {strangers} are not meters of this account", field="final_readings"
        )
    twice = sorted(m for m, n in Counter(r.meter_id for r in readings).items() if n > 1)
    if twice:
        raise InvalidInput(
            f"one final reading per meter: meters {twice} have more", field="final_readings"
        )


def check_next_occupant(account: Account, nxt: Account) -> None:
    """The next occupant's account: open, in the same site, of the same utility and unit."""
    if nxt.site_id != account.site_id:
        raise InvalidInput(
            f"account {nxt.number} is in another site", field="to_account_id", site_id=nxt.site_id
        )
    if nxt.utility is not account.utility:
        raise InvalidInput(
            f"account {nxt.number} is for {nxt.utility.value}, not {account.utility.value}",
            field="to_account_id",
        )
    if nxt.unit_id != account.unit_id:
        raise InvalidInput(
            f"account {nxt.number} is for another unit: the next occupant's account is "
            "of the same unit",
            field="to_account_id",
        )
    if nxt.status is not AccountStatus.OPEN:
        raise InvalidInput(f"account {nxt.number} is closed", field="to_account_id")


def refused_reading(quality: str, flags: Iterable[str]) -> bool:
    """Whether a final reading's outcome refuses the settlement: it neither bills nor is
    the very reading already stored (a duplicate with another total is refused too)."""
    if quality == "duplicate":
        return "conflict" in flags
    return quality not in ACCEPTED_QUALITIES


def request_digest(
    *,
    account_id: int,
    payout: Payout,
    to_account_id: int | None,
    readings: Sequence[ReadingIn],
) -> str:
    """A digest of what the request asks for, to tell a repeat from another request
    under the same key (12.5 and 12.50 are the same total; times compare in UTC)."""
    body = {
        "account_id": account_id,
        "payout": payout.value,
        "to_account_id": to_account_id,
        "readings": sorted(
            (r.meter_id, r.read_at.astimezone(UTC).isoformat(), _number(r.total)) for r in readings
        ),
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")
