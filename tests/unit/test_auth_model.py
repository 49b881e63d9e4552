"""Who may do what, where (``auth.model.decide``) and the sign-in rules: a site a caller
does not work on is invisible, an owner sees only their own accounts, a token never
more than its scopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.auth import rules
from meterpay.auth.model import (
    ROLE_PERMISSIONS,
    Decision,
    Grant,
    Permission,
    Principal,
    PrincipalKind,
    Role,
    Target,
    decide,
    grants_of,
)
from meterpay.kernel.errors import InvalidInput

A, B = 1, 2


def staff(*roles: tuple[Role, int | None]) -> Principal:
    return Principal(PrincipalKind.STAFF, 1, "user:x", grants_of(roles), roles=roles)


def owner(*customers: int) -> Principal:
    return Principal(PrincipalKind.OWNER, 9, "owner:9", customer_ids=frozenset(customers))


def test_a_cashier_takes_money_on_their_site_and_nothing_else() -> None:
    cashier = staff((Role.CASHIER, A))
    assert decide(cashier, Permission.COUNTER, [Target(A)]) is Decision.ALLOW
    assert decide(cashier, Permission.TARIFF_WRITE, [Target(A)]) is Decision.FORBID
    assert decide(cashier, Permission.COUNTER, [Target(B)]) is Decision.HIDE
    assert decide(cashier, Permission.COUNTER, [Target(A), Target(B)]) is Decision.HIDE


def test_a_role_without_a_site_holds_everywhere() -> None:
    admin = staff((Role.ADMIN, None))
    for site in (A, B, 99):
        assert decide(admin, Permission.USER_MANAGE, [Target(site)]) is Decision.ALLOW
    assert admin.sites_with(Permission.USER_MANAGE) is None


def test_an_owner_reaches_their_own_accounts_through_owner_routes_only() -> None:
    me = owner(7)
    mine, theirs = Target(A, customer_id=7), Target(A, customer_id=8)
    assert decide(me, Permission.SITE_READ, [mine], owners=True) is Decision.ALLOW
    assert decide(me, Permission.SITE_READ, [theirs], owners=True) is Decision.HIDE
    assert decide(me, Permission.SITE_READ, [mine]) is Decision.HIDE
    assert decide(me, Permission.SITE_READ, [], owners=True) is Decision.FORBID
    assert decide(me, None, [], owners=True) is Decision.ALLOW  # a page for owners only


def test_a_staff_member_cannot_use_an_owners_only_route() -> None:
    assert decide(staff((Role.ADMIN, None)), None, [], owners=True) is Decision.FORBID


def test_a_token_holds_its_scopes_on_its_sites() -> None:
    token = Principal(
        PrincipalKind.TOKEN, 3, "token:erp", (Grant(frozenset({Permission.READING_WRITE}), A),)
    )
    assert decide(token, Permission.READING_WRITE, [Target(A)]) is Decision.ALLOW
    assert decide(token, Permission.SITE_WRITE, [Target(A)]) is Decision.FORBID
    assert decide(token, Permission.READING_WRITE, [Target(B)]) is Decision.HIDE


roles = st.lists(
    st.tuples(st.sampled_from([r for r in Role if r is not Role.OWNER]), st.sampled_from([A, B])),
    max_size=4,
)


@given(roles, st.sampled_from(list(Permission)), st.integers(min_value=1, max_value=4))
def test_nothing_is_ever_allowed_on_a_site_the_caller_holds_no_role_on(
    held: list[tuple[Role, int]], permission: Permission, site: int
) -> None:
    caller = staff(*held)
    allowed = decide(caller, permission, [Target(site)]) is Decision.ALLOW
    if allowed:
        assert any(s == site and permission in ROLE_PERMISSIONS[r] for r, s in held)


def test_mobile_numbers_are_read_as_eleven_digits() -> None:
    assert rules.mobile_number("+86 138-0013-8000") == "13800138000"
    assert rules.mobile_number("008613800138000") == "13800138000"
    for bad in ("12800138000", "1380013800", "phone", ""):
        with pytest.raises(InvalidInput):
            rules.mobile_number(bad)
    assert rules.masked("13800138000") == "138****8000"


@pytest.mark.parametrize("password", ["short", "12345678901234", "password123", "alice-is-great-1"])
def test_easy_passwords_are_refused(password: str) -> None:
    with pytest.raises(InvalidInput):
        rules.check_password(password, username="alice")


def test_a_session_ends_at_its_idle_time_or_its_whole_life_whichever_first() -> None:
    created = datetime(2026, 11, 1, tzinfo=UTC)
    life = rules.STAFF_SESSION
    assert rules.session_expires(life, created, created) == created + life.idle
    late = created + life.absolute - timedelta(minutes=5)
    assert rules.session_expires(life, created, late) == created + life.absolute


def test_the_fifth_failure_in_a_row_locks() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    assert rules.locked_until(rules.MAX_FAILURES - 1, now) is None
    assert rules.locked_until(rules.MAX_FAILURES, now) == now + rules.LOCK_FOR
