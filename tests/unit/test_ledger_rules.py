"""The double-entry ledger: transfers, balances, posting and the invariant checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.kernel.errors import DomainError
from meterpay.kernel.money import Money
from meterpay.ledger.model import (
    InvalidTransfer,
    LedgerAccountKind,
    LedgerAccountState,
    Transfer,
    TransferKind,
    Violation,
)
from meterpay.ledger.rules import (
    InvariantRule,
    balance_of,
    check_invariants,
    check_ledger_balances,
    post,
    reversal_of,
)

CASH, CLEARING, WALLET, OTHER_WALLET, REVENUE, FEES, EQUITY = 1, 2, 10, 11, 20, 30, 40
ACCOUNTS = {
    account.id: account
    for account in (
        LedgerAccountState(CASH, "cash", LedgerAccountKind.ASSET),
        LedgerAccountState(CLEARING, "clearing:wechat", LedgerAccountKind.ASSET),
        LedgerAccountState(WALLET, "wallet:101", LedgerAccountKind.LIABILITY),
        LedgerAccountState(OTHER_WALLET, "wallet:102", LedgerAccountKind.LIABILITY),
        LedgerAccountState(REVENUE, "revenue:1:electricity", LedgerAccountKind.REVENUE),
        LedgerAccountState(FEES, "expense:provider-fees", LedgerAccountKind.EXPENSE),
        LedgerAccountState(EQUITY, "equity", LedgerAccountKind.EQUITY),
    )
}


def top_up(key: str, fen: int, wallet: int = WALLET) -> Transfer:
    return Transfer(key, CLEARING, wallet, fen, TransferKind.TOP_UP)


def charge(key: str, fen: int, wallet: int = WALLET) -> Transfer:
    return Transfer(key, wallet, REVENUE, fen, TransferKind.CHARGE)


def posted(transfers: Iterable[Transfer]) -> dict[int, LedgerAccountState]:
    states = dict(ACCOUNTS)
    for transfer in transfers:
        states = post(states, transfer)
    return states


def rules_broken(accounts: Iterable[LedgerAccountState], transfers: list[Transfer]) -> set[str]:
    return {violation.rule for violation in check_invariants(accounts, transfers)}


def corrupted(transfer: Transfer, **fields: object) -> Transfer:
    """A stored transfer damaged behind the constructor's back, as a bad row would be."""
    damaged = replace(transfer)
    for name, value in fields.items():
        object.__setattr__(damaged, name, value)
    return damaged


# --- balances ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "balance"),
    [
        (LedgerAccountKind.ASSET, 70),
        (LedgerAccountKind.EXPENSE, 70),
        (LedgerAccountKind.LIABILITY, -70),
        (LedgerAccountKind.REVENUE, -70),
        (LedgerAccountKind.EQUITY, -70),
    ],
)
def test_balance_is_taken_on_the_kinds_normal_side(kind: LedgerAccountKind, balance: int) -> None:
    assert balance_of(kind, debits=100, credits=30) == balance


def test_a_top_up_then_a_charge_leaves_the_wallet_with_the_difference() -> None:
    states = posted([top_up("pay:wx:4200001", 10_000), charge("reading:77", 1_406)])
    wallet = states[WALLET]
    assert balance_of(wallet.kind, wallet.debits_posted, wallet.credits_posted) == 8_594
    revenue = states[REVENUE]
    assert balance_of(revenue.kind, revenue.debits_posted, revenue.credits_posted) == 1_406
    clearing = states[CLEARING]
    assert balance_of(clearing.kind, clearing.debits_posted, clearing.credits_posted) == 10_000


# --- transfers ---------------------------------------------------------------------------------


def test_transfer_amount_reads_as_money() -> None:
    assert top_up("k", 1234).amount == Money(1234)


def test_transfer_kind_given_as_text_becomes_the_enum() -> None:
    transfer = Transfer("k", CLEARING, WALLET, 1, "top_up")  # type: ignore[arg-type]
    assert transfer.kind is TransferKind.TOP_UP


@pytest.mark.parametrize("fen", [0, -1, True, 1.0])
def test_transfer_of_a_non_positive_or_non_integer_amount_is_refused(fen: object) -> None:
    with pytest.raises(InvalidTransfer):
        Transfer("k", CLEARING, WALLET, fen, TransferKind.TOP_UP)  # type: ignore[arg-type]


def test_transfer_between_an_account_and_itself_is_refused() -> None:
    with pytest.raises(InvalidTransfer, match="same account"):
        Transfer("k", WALLET, WALLET, 1, TransferKind.ADJUSTMENT)


@pytest.mark.parametrize("key", ["", "   ", "x" * 201])
def test_transfer_with_an_empty_or_overlong_key_is_refused(key: str) -> None:
    with pytest.raises(InvalidTransfer):
        top_up(key, 1)


def test_a_key_of_exactly_two_hundred_characters_is_accepted() -> None:
    assert top_up("x" * 200, 1).idempotency_key == "x" * 200


def test_only_reversals_name_a_reversed_key() -> None:
    with pytest.raises(InvalidTransfer):
        Transfer("k", WALLET, REVENUE, 1, TransferKind.REVERSAL)
    with pytest.raises(InvalidTransfer):
        Transfer("k", WALLET, REVENUE, 1, TransferKind.CHARGE, reverses_key="other")
    with pytest.raises(InvalidTransfer, match="reverses itself"):
        Transfer("k", WALLET, REVENUE, 1, TransferKind.REVERSAL, reverses_key="k")


def test_invalid_transfer_is_a_domain_error_with_a_stable_code() -> None:
    with pytest.raises(DomainError) as raised:
        top_up("k", 0)
    assert raised.value.code == "invalid_transfer"


def test_reversal_swaps_the_sides_and_names_the_original() -> None:
    original = charge("reading:77", 1_406)
    assert reversal_of(original, "reading:77:void") == Transfer(
        "reading:77:void", REVENUE, WALLET, 1_406, TransferKind.REVERSAL, "reading:77"
    )


def test_a_charge_and_its_reversal_leave_every_balance_where_it_was() -> None:
    original = charge("reading:77", 1_406)
    states = posted([top_up("pay:1", 5_000), original, reversal_of(original, "void:77")])
    expected = posted([top_up("pay:1", 5_000)])
    for account_id, state in states.items():
        before = expected[account_id]
        assert balance_of(state.kind, state.debits_posted, state.credits_posted) == balance_of(
            before.kind, before.debits_posted, before.credits_posted
        )


# --- posting -----------------------------------------------------------------------------------


def test_posting_adds_the_amount_to_both_sides_and_leaves_the_input_alone() -> None:
    before = dict(ACCOUNTS)
    after = post(before, charge("reading:1", 250))
    assert after[WALLET].debits_posted == 250
    assert after[REVENUE].credits_posted == 250
    assert before == ACCOUNTS


def test_posting_to_an_unknown_account_is_refused() -> None:
    with pytest.raises(InvalidTransfer, match="unknown account 99"):
        post(ACCOUNTS, Transfer("k", 99, WALLET, 1, TransferKind.ADJUSTMENT))


# --- invariants: a sound ledger ----------------------------------------------------------------


def test_a_ledger_of_top_ups_charges_and_a_reversal_checks_clean() -> None:
    first = charge("reading:1", 300)
    transfers = [
        top_up("pay:1", 10_000),
        first,
        charge("reading:2", 120),
        reversal_of(first, "void:reading:1"),
        Transfer("fee:1", FEES, CLEARING, 6, TransferKind.ADJUSTMENT),
        Transfer("cash:1", CASH, OTHER_WALLET, 2_000, TransferKind.TOP_UP),
    ]
    assert check_invariants(posted(transfers).values(), transfers) == []


def test_an_empty_ledger_checks_clean() -> None:
    assert check_invariants(ACCOUNTS.values(), []) == []


# --- invariants: each rule broken on its own ---------------------------------------------------


def test_accounts_whose_debits_and_credits_differ_break_the_zero_sum_rule() -> None:
    states = posted([top_up("pay:1", 500)])
    states[WALLET] = replace(states[WALLET], credits_posted=400)
    assert check_ledger_balances(states.values()) == [
        Violation(
            InvariantRule.LEDGER_BALANCES, "accounts post 500 fen of debits but 400 fen of credits"
        )
    ]


def test_a_zero_sum_break_also_shows_as_an_account_that_does_not_match_its_entries() -> None:
    """With the transfers at hand, an unbalanced ledger always has an account to blame."""
    transfers = [top_up("pay:1", 500)]
    states = posted(transfers)
    states[WALLET] = replace(states[WALLET], credits_posted=400)
    violations = check_invariants(states.values(), transfers)
    assert {violation.rule for violation in violations} == {
        InvariantRule.LEDGER_BALANCES,
        InvariantRule.ACCOUNT_MATCHES_ENTRIES,
    }
    assert "wallet:101" in next(v.detail for v in violations if v.rule != "ledger_balances")


def test_an_account_edited_in_place_breaks_only_the_entries_rule() -> None:
    """A balanced edit on two accounts keeps the zero sum but no longer matches the entries."""
    transfers = [top_up("pay:1", 500), charge("reading:1", 100)]
    states = posted(transfers)
    states[WALLET] = replace(states[WALLET], debits_posted=150)
    states[REVENUE] = replace(states[REVENUE], credits_posted=150)
    violations = check_invariants(states.values(), transfers)
    assert [violation.rule for violation in violations] == [
        InvariantRule.ACCOUNT_MATCHES_ENTRIES,
        InvariantRule.ACCOUNT_MATCHES_ENTRIES,
    ]


def test_a_key_used_twice_breaks_only_the_uniqueness_rule() -> None:
    transfers = [top_up("pay:1", 500), top_up("pay:1", 500)]
    assert check_invariants(posted(transfers).values(), transfers) == [
        Violation(InvariantRule.UNIQUE_IDEMPOTENCY_KEY, "key 'pay:1' is used 2 times")
    ]


def test_a_transfer_between_unknown_accounts_breaks_only_the_known_accounts_rule() -> None:
    stray = Transfer("stray:1", 98, 99, 70, TransferKind.ADJUSTMENT)
    assert check_invariants(ACCOUNTS.values(), [stray]) == [
        Violation(InvariantRule.KNOWN_ACCOUNTS, "transfer 'stray:1' refers to unknown account 98"),
        Violation(InvariantRule.KNOWN_ACCOUNTS, "transfer 'stray:1' refers to unknown account 99"),
    ]


def test_a_transfer_with_one_unknown_side_also_unbalances_the_known_accounts() -> None:
    stray = Transfer("stray:1", WALLET, 99, 70, TransferKind.ADJUSTMENT)
    states = dict(ACCOUNTS)
    states[WALLET] = replace(states[WALLET], debits_posted=70)
    assert rules_broken(states.values(), [stray]) == {
        InvariantRule.KNOWN_ACCOUNTS,
        InvariantRule.LEDGER_BALANCES,
    }


@pytest.mark.parametrize("fen", [0, -25])
def test_a_non_positive_amount_breaks_only_the_positive_amount_rule(fen: int) -> None:
    damaged = corrupted(top_up("pay:1", 1), amount_fen=fen)
    states = dict(ACCOUNTS)
    states[CLEARING] = replace(states[CLEARING], debits_posted=fen)
    states[WALLET] = replace(states[WALLET], credits_posted=fen)
    assert rules_broken(states.values(), [damaged]) == {InvariantRule.POSITIVE_AMOUNT}


def test_a_reversal_of_an_unknown_key_breaks_only_the_existing_key_rule() -> None:
    orphan = reversal_of(charge("reading:404", 90), "void:404")
    assert check_invariants(posted([orphan]).values(), [orphan]) == [
        Violation(
            InvariantRule.REVERSAL_OF_EXISTING,
            "reversal 'void:404' reverses unknown key 'reading:404'",
        )
    ]


def test_reversing_a_transfer_twice_breaks_only_the_reversed_once_rule() -> None:
    original = charge("reading:1", 90)
    transfers = [
        top_up("pay:1", 500),
        original,
        reversal_of(original, "void:1"),
        reversal_of(original, "void:1:again"),
    ]
    assert check_invariants(posted(transfers).values(), transfers) == [
        Violation(InvariantRule.REVERSED_AT_MOST_ONCE, "key 'reading:1' is reversed 2 times")
    ]


def test_a_reversal_that_does_not_mirror_its_original_breaks_only_the_mirror_rule() -> None:
    original = charge("reading:1", 90)
    partial = Transfer("void:1", REVENUE, WALLET, 40, TransferKind.REVERSAL, "reading:1")
    transfers = [top_up("pay:1", 500), original, partial]
    assert check_invariants(posted(transfers).values(), transfers) == [
        Violation(
            InvariantRule.REVERSAL_MIRRORS_ORIGINAL, "reversal 'void:1' does not mirror 'reading:1'"
        )
    ]


def test_every_rule_has_a_stable_name() -> None:
    assert {rule.value for rule in InvariantRule} == {
        "ledger_balances",
        "account_matches_entries",
        "unique_idempotency_key",
        "known_accounts",
        "positive_amount",
        "reversal_of_existing",
        "reversed_at_most_once",
        "reversal_mirrors_original",
    }


# --- invariants: random valid postings ---------------------------------------------------------

account_ids = st.sampled_from(sorted(ACCOUNTS))
plain_kinds = st.sampled_from([TransferKind.CHARGE, TransferKind.TOP_UP, TransferKind.ADJUSTMENT])


@st.composite
def valid_histories(draw: st.DrawFn) -> list[Transfer]:
    """Transfers between known accounts, with some earlier ones reversed once each."""
    transfers: list[Transfer] = []
    reversible: list[Transfer] = []
    for index in range(draw(st.integers(0, 40))):
        if reversible and draw(st.booleans()):
            original = reversible.pop(draw(st.integers(0, len(reversible) - 1)))
            transfers.append(reversal_of(original, f"void:{index}"))
            continue
        debit = draw(account_ids)
        credit = draw(account_ids.filter(lambda account_id, d=debit: account_id != d))
        amount = draw(st.integers(1, 10**12))
        transfer = Transfer(f"t:{index}", debit, credit, amount, draw(plain_kinds))
        transfers.append(transfer)
        reversible.append(transfer)
    return transfers


@given(valid_histories())
def test_random_valid_postings_always_check_clean_and_sum_to_zero(
    transfers: list[Transfer],
) -> None:
    states = posted(transfers)
    assert check_invariants(states.values(), transfers) == []
    accounts = states.values()
    assert sum(a.debits_posted for a in accounts) == sum(a.credits_posted for a in accounts)
    debit_side = sum(
        balance_of(a.kind, a.debits_posted, a.credits_posted)
        for a in accounts
        if a.kind.debit_normal
    )
    credit_side = sum(
        balance_of(a.kind, a.debits_posted, a.credits_posted)
        for a in accounts
        if not a.kind.debit_normal
    )
    assert debit_side == credit_side
    assert sum(a.debits_posted - a.credits_posted for a in accounts) == 0


@given(valid_histories(), st.data())
def test_dropping_any_posted_transfer_from_the_record_is_detected(
    transfers: list[Transfer], data: st.DataObject
) -> None:
    """An account total with a missing entry behind it never checks clean."""
    if not transfers:
        return
    states = posted(transfers)
    missing = data.draw(st.integers(0, len(transfers) - 1))
    kept = transfers[:missing] + transfers[missing + 1 :]
    assert InvariantRule.ACCOUNT_MATCHES_ENTRIES in rules_broken(states.values(), kept)
