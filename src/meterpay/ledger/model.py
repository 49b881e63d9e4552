"""Ledger accounts, transfers and balances, in integer fen.

Invariants:
- a transfer moves a positive whole number of fen from one ledger account
  (debited) to a different one (credited), under a non-empty idempotency key
  of at most 200 characters;
- a transfer is never edited: a mistake is undone by a ``reversal`` transfer
  that names the key it reverses, and only a reversal names one;
- an account keeps only its posted debits and credits; its balance is derived
  from them, on the account kind's normal side (``rules.balance_of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from meterpay.kernel.errors import DomainError
from meterpay.kernel.money import Money

MAX_KEY_LENGTH: Final = 200


class LedgerAccountKind(StrEnum):
    ASSET = "asset"
    """Money we have or are owed: cash, payment-provider clearing."""
    LIABILITY = "liability"
    """Money we hold for others: customer prepaid wallets."""
    REVENUE = "revenue"
    """Earned: per site and utility."""
    EXPENSE = "expense"
    EQUITY = "equity"

    @property
    def debit_normal(self) -> bool:
        """Whether a debit increases the balance (assets and expenses)."""
        return self in (LedgerAccountKind.ASSET, LedgerAccountKind.EXPENSE)


class TransferKind(StrEnum):
    CHARGE = "charge"
    TOP_UP = "top_up"
    REVERSAL = "reversal"
    ADJUSTMENT = "adjustment"
    REFUND = "refund"
    """Money back to the payer through the provider it came from (a top-up refunded)."""
    PAYOUT = "payout"
    """A closing wallet's balance paid out at move-out (退费): in cash from the site's
    cash account, or onward into the next occupant's wallet (``ledger.settlement``)."""


class InvalidTransfer(DomainError):
    """A transfer that can never be posted as it stands."""

    code = "invalid_transfer"


@dataclass(frozen=True, slots=True)
class Transfer:
    """One double-entry movement of ``amount_fen`` from the debit to the credit account."""

    idempotency_key: str
    debit_account_id: int
    credit_account_id: int
    amount_fen: int
    kind: TransferKind
    reverses_key: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", TransferKind(self.kind))
        _check_key(self.idempotency_key, "idempotency key")
        _check_amount(self.amount_fen)
        if self.debit_account_id == self.credit_account_id:
            raise InvalidTransfer(
                f"transfer {self.idempotency_key!r} debits and credits the same account",
                account_id=self.debit_account_id,
            )
        self._check_reversal_link()

    def _check_reversal_link(self) -> None:
        if (self.kind is TransferKind.REVERSAL) != (self.reverses_key is not None):
            raise InvalidTransfer(
                f"transfer {self.idempotency_key!r}: exactly the reversals name a reversed key"
            )
        if self.reverses_key is not None:
            _check_key(self.reverses_key, "reversed key")
            if self.reverses_key == self.idempotency_key:
                raise InvalidTransfer(f"transfer {self.idempotency_key!r} reverses itself")

    @property
    def amount(self) -> Money:
        return Money(self.amount_fen)


def _check_key(key: str, what: str) -> None:
    if not isinstance(key, str) or not key.strip():
        raise InvalidTransfer(f"{what} must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidTransfer(f"{what} is longer than {MAX_KEY_LENGTH} characters")


def _check_amount(amount_fen: int) -> None:
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise InvalidTransfer(f"amount must be an int number of fen, got {amount_fen!r}")
    if amount_fen <= 0:
        raise InvalidTransfer(f"amount must be positive, got {amount_fen} fen")


@dataclass(frozen=True, slots=True)
class LedgerAccountState:
    """A ledger account's posted totals, as stored; not validated, so checks can see damage."""

    id: int
    code: str
    kind: LedgerAccountKind
    debits_posted: int = 0
    credits_posted: int = 0


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken ledger invariant: which rule, and where."""

    rule: str
    detail: str
