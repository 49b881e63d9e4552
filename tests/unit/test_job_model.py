"""Background jobs as plain data: their moves, their progress, who may see them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.auth.model import ROLE_PERMISSIONS, Grant, Principal, PrincipalKind, Role
from meterpay.jobs.model import (
    FINAL,
    MAX_ATTEMPTS,
    TRANSITIONS,
    IllegalJobMove,
    Job,
    JobKind,
    JobState,
    Progress,
    after_loss,
    may_see,
    move,
)

AT = datetime(2026, 11, 27, tzinfo=UTC)


def _job(kind: JobKind = JobKind.IMPORT_CHECK, site_id: int | None = 1, by: int = 5) -> Job:
    return Job(
        id=1,
        kind=kind,
        state=JobState.DONE,
        site_id=site_id,
        params={},
        started_by="user:x",
        started_by_user=by,
        progress=Progress(),
        result=None,
        output_name="",
        has_output=False,
        error="",
        attempts=1,
        created_at=AT,
        started_at=AT,
        finished_at=AT,
    )


def _staff(role: Role, site_id: int | None, user_id: int = 9) -> Principal:
    grants = (Grant(ROLE_PERMISSIONS[role], site_id),)
    return Principal(PrincipalKind.STAFF, user_id, f"user:{user_id}", grants=grants)


@pytest.mark.parametrize("state", list(JobState))
def test_every_move_outside_the_table_raises(state: JobState) -> None:
    for to in JobState:
        if to in TRANSITIONS[state]:
            assert move(state, to) is to
        else:
            with pytest.raises(IllegalJobMove):
                move(state, to)


def test_done_and_failed_are_final() -> None:
    assert {JobState.DONE, JobState.FAILED} == FINAL


@given(st.integers(-5, 10**9), st.integers(-5, 10**9))
def test_a_percentage_is_between_0_and_100_or_unknown(done: int, total: int) -> None:
    percent = Progress("write", done, total).percent
    assert percent is None if total <= 0 else 0 <= percent <= 100


def test_a_lost_job_runs_again_until_its_last_attempt() -> None:
    assert [after_loss(n) for n in range(1, MAX_ATTEMPTS + 1)] == [
        *([JobState.QUEUED] * (MAX_ATTEMPTS - 1)),
        JobState.FAILED,
    ]


def test_who_may_see_a_job() -> None:
    job = _job()
    assert may_see(_staff(Role.OPERATOR, 1), job)  # site.write on its site
    assert not may_see(_staff(Role.CASHIER, 1), job)  # an import is not a cashier's
    assert not may_see(_staff(Role.ADMIN, 2), job)  # another site
    assert may_see(_staff(Role.ADMIN, None), job)  # every site
    assert not may_see(_staff(Role.OPERATOR, 2, user_id=5), job)  # its starter, moved on
    audit = replace(_job(JobKind.EXPORT_AUDIT, site_id=None), params={"visible_sites": [1, 2]})
    assert may_see(_staff(Role.ADMIN, None), audit)  # several sites: every-site holders
    assert not may_see(_staff(Role.ADMIN, 1), audit)
    two_sites = Principal(
        PrincipalKind.STAFF,
        5,
        "user:5",
        grants=tuple(Grant(ROLE_PERMISSIONS[Role.ADMIN], s) for s in (1, 2)),
    )
    assert may_see(two_sites, audit)  # its starter, still on both
    assert not may_see(replace(two_sites, id=6), audit)  # someone else on both
    owner = Principal(PrincipalKind.OWNER, 5, "owner:5", customer_ids=frozenset({5}))
    assert not may_see(owner, _job(JobKind.EXPORT_LEDGER))
