"""Posting transfers and checking the ledger's invariants.

The invariants, each checked by its own function returning a list of
violations (empty when it holds):
- the ledger balances: over all accounts, posted debits equal posted credits;
- each account's posted debits and credits equal the sums of the transfers
  that debit and credit it;
- idempotency keys are unique;
- every transfer refers to known accounts and moves a positive amount;
- a reversal refers to an existing transfer, mirrors it (sides swapped, same
  amount), and no transfer is reversed twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from enum import StrEnum

from meterpay.ledger.model import (
    InvalidTransfer,
    LedgerAccountKind,
    LedgerAccountState,
    Transfer,
    TransferKind,
    Violation,
)


class InvariantRule(StrEnum):
    LEDGER_BALANCES = "ledger_balances"
    ACCOUNT_MATCHES_ENTRIES = "account_matches_entries"
    UNIQUE_IDEMPOTENCY_KEY = "unique_idempotency_key"
    KNOWN_ACCOUNTS = "known_accounts"
    POSITIVE_AMOUNT = "positive_amount"
    REVERSAL_OF_EXISTING = "reversal_of_existing"
    REVERSED_AT_MOST_ONCE = "reversed_at_most_once"
    REVERSAL_MIRRORS_ORIGINAL = "reversal_mirrors_original"


def balance_of(kind: LedgerAccountKind, debits: int, credits: int) -> int:
    """The balance in fen on the kind's normal side (credit-normal: credits - debits)."""
    return debits - credits if kind.debit_normal else credits - debits


def reversal_of(transfer: Transfer, key: str) -> Transfer:
    """The transfer that undoes ``transfer``: same amount, sides swapped."""
    return Transfer(
        idempotency_key=key,
        debit_account_id=transfer.credit_account_id,
        credit_account_id=transfer.debit_account_id,
        amount_fen=transfer.amount_fen,
        kind=TransferKind.REVERSAL,
        reverses_key=transfer.idempotency_key,
    )


def post(
    states: Mapping[int, LedgerAccountState], transfer: Transfer
) -> dict[int, LedgerAccountState]:
    """The account states after posting ``transfer``; ``states`` is left as it was."""
    for account_id in (transfer.debit_account_id, transfer.credit_account_id):
        if account_id not in states:
            raise InvalidTransfer(
                f"transfer {transfer.idempotency_key!r} refers to unknown account {account_id}",
                account_id=account_id,
            )
    posted = dict(states)
    debited = posted[transfer.debit_account_id]
    credited = posted[transfer.credit_account_id]
    posted[debited.id] = replace(debited, debits_posted=debited.debits_posted + transfer.amount_fen)
    posted[credited.id] = replace(
        credited, credits_posted=credited.credits_posted + transfer.amount_fen
    )
    return posted


def check_invariants(
    accounts: Iterable[LedgerAccountState], transfers: Iterable[Transfer]
) -> list[Violation]:
    """Every violation of the ledger's invariants; an empty list means a sound ledger."""
    account_list, transfer_list = list(accounts), list(transfers)
    transfer_checks: Sequence[Callable[[list[Transfer]], list[Violation]]] = (
        check_unique_keys,
        check_positive_amounts,
        check_reversals_refer_to_existing,
        check_reversed_at_most_once,
        check_reversals_mirror_originals,
    )
    violations = check_ledger_balances(account_list)
    violations += check_accounts_match_entries(account_list, transfer_list)
    violations += check_known_accounts(account_list, transfer_list)
    for check in transfer_checks:
        violations += check(transfer_list)
    return violations


def check_ledger_balances(accounts: Iterable[LedgerAccountState]) -> list[Violation]:
    """Posted debits equal posted credits over the whole ledger (needs no transfers)."""
    account_list = list(accounts)
    debits = sum(account.debits_posted for account in account_list)
    credits = sum(account.credits_posted for account in account_list)
    if debits == credits:
        return []
    detail = f"accounts post {debits} fen of debits but {credits} fen of credits"
    return [Violation(InvariantRule.LEDGER_BALANCES, detail)]


def check_accounts_match_entries(
    accounts: Iterable[LedgerAccountState], transfers: Iterable[Transfer]
) -> list[Violation]:
    """Each account's posted totals are the sums of its transfers."""
    debited: Counter[int] = Counter()
    credited: Counter[int] = Counter()
    for transfer in transfers:
        debited[transfer.debit_account_id] += transfer.amount_fen
        credited[transfer.credit_account_id] += transfer.amount_fen
    return [
        Violation(
            InvariantRule.ACCOUNT_MATCHES_ENTRIES,
            f"account {account.id} ({account.code}) posts {account.debits_posted} debit and "
            f"{account.credits_posted} credit fen, its transfers "
            f"{debited[account.id]} and {credited[account.id]}",
        )
        for account in accounts
        if (account.debits_posted, account.credits_posted)
        != (debited[account.id], credited[account.id])
    ]


def check_unique_keys(transfers: Iterable[Transfer]) -> list[Violation]:
    counts = Counter(transfer.idempotency_key for transfer in transfers)
    return [
        Violation(InvariantRule.UNIQUE_IDEMPOTENCY_KEY, f"key {key!r} is used {count} times")
        for key, count in counts.items()
        if count > 1
    ]


def check_known_accounts(
    accounts: Iterable[LedgerAccountState], transfers: Iterable[Transfer]
) -> list[Violation]:
    known = {account.id for account in accounts}
    return [
        Violation(
            InvariantRule.KNOWN_ACCOUNTS,
            f"transfer {transfer.idempotency_key!r} refers to unknown account {account_id}",
        )
        for transfer in transfers
        for account_id in (transfer.debit_account_id, transfer.credit_account_id)
        if account_id not in known
    ]


def check_positive_amounts(transfers: Iterable[Transfer]) -> list[Violation]:
    return [
        Violation(
            InvariantRule.POSITIVE_AMOUNT,
            f"transfer {transfer.idempotency_key!r} moves {transfer.amount_fen} fen",
        )
        for transfer in transfers
        if transfer.amount_fen <= 0
    ]


def check_reversals_refer_to_existing(transfers: Iterable[Transfer]) -> list[Violation]:
    transfer_list = list(transfers)
    keys = {transfer.idempotency_key for transfer in transfer_list}
    return [
        Violation(
            InvariantRule.REVERSAL_OF_EXISTING,
            f"reversal {reversal.idempotency_key!r} reverses unknown key {reversal.reverses_key!r}",
        )
        for reversal in _reversals(transfer_list)
        if reversal.reverses_key not in keys
    ]


def check_reversed_at_most_once(transfers: Iterable[Transfer]) -> list[Violation]:
    counts = Counter(reversal.reverses_key for reversal in _reversals(transfers))
    return [
        Violation(InvariantRule.REVERSED_AT_MOST_ONCE, f"key {key!r} is reversed {count} times")
        for key, count in counts.items()
        if count > 1
    ]


def check_reversals_mirror_originals(transfers: Iterable[Transfer]) -> list[Violation]:
    """A reversal swaps the original's sides and moves the same amount."""
    transfer_list = list(transfers)
    by_key: dict[str, Transfer] = {}
    for transfer in transfer_list:
        by_key.setdefault(transfer.idempotency_key, transfer)
    return [
        Violation(
            InvariantRule.REVERSAL_MIRRORS_ORIGINAL,
            f"reversal {reversal.idempotency_key!r} does not mirror {reversal.reverses_key!r}",
        )
        for reversal in _reversals(transfer_list)
        if reversal.reverses_key in by_key and not _mirrors(reversal, by_key[reversal.reverses_key])
    ]


def _reversals(transfers: Iterable[Transfer]) -> list[Transfer]:
    return [transfer for transfer in transfers if transfer.reverses_key is not None]


def _mirrors(reversal: Transfer, original: Transfer) -> bool:
    return (
        reversal.debit_account_id == original.credit_account_id
        and reversal.credit_account_id == original.debit_account_id
        and reversal.amount_fen == original.amount_fen
    )
