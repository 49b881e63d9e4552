"""Background jobs: an import's check and import, and exports, run beside the web
server with their progress; a job is claimed by one runner, survives its runner's loss,
and is seen only by those who may; the console starts them, polls them and serves their
files."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import openpyxl  # type: ignore[import-untyped]
import pytest
from fastapi.testclient import TestClient

from meterpay.auth.model import ROLE_PERMISSIONS, Grant, Permission, Principal, PrincipalKind, Role
from meterpay.jobs import repository as repo
from meterpay.jobs import service as jobs
from meterpay.jobs.model import STALE_AFTER, JobKind, JobLost, JobState, Progress
from meterpay.jobs.service import File, Outcome, Reporter
from meterpay.kernel.clock import FixedClock
from meterpay.kernel.errors import Forbidden, NotFound
from meterpay.runtime import Runtime
from meterpay.sites import import_jobs
from meterpay.sites import service as sites
from meterpay.web.app import create_app
from meterpay.web.console.job_pages import job_handlers
from tests.integration.builders import a_home
from tests.integration.signed import sign_in, staff_user

RUNNER = "test-runner"
GOOD = "房号,类型,业主姓名\nA-101,住宅,张三\nA-102,商铺,李四\n".encode()
BAD = "房号,类型,业主姓名\nA-101,住宅,张三\nA-102,城堡,李四\n".encode()


def _staff(role: Role, site_id: int | None, user_id: int = 7) -> Principal:
    return Principal(
        PrincipalKind.STAFF,
        user_id,
        f"user:{role.value}{user_id}",
        grants=(Grant(ROLE_PERMISSIONS[role], site_id),),
        roles=((role, site_id),),
    )


def _units(rt: Runtime, site_id: int) -> list[str]:
    found = sites.page(rt, "units", site_id=site_id, after_id=None, limit=1000)
    return sorted(u.code for u in found)


def _check(rt: Runtime, home: Any, sheet: bytes, by: Principal) -> Any:
    """Start the dry run of ``sheet`` (a CSV) on the home's site."""
    file = File("units.csv", "text/csv", sheet)
    return import_jobs.start_check(
        rt, site_id=home.site.id, site_code=home.site.code, sheet=file, by=by
    )


def _run_all(rt: Runtime) -> int:
    ran = 0
    while jobs.run_next(rt, job_handlers(), runner=RUNNER):
        ran += 1
    return ran


# --- the service ------------------------------------------------------------------------


def test_a_checked_sheet_is_imported_from_the_very_file_that_was_checked(rt: Runtime) -> None:
    home = a_home(rt)
    admin = _staff(Role.ADMIN, home.site.id)
    before = _units(rt, home.site.id)
    check = _check(rt, home, GOOD, admin)
    assert check.state is JobState.QUEUED
    assert _run_all(rt) == 1
    checked = jobs.job_for(rt, check.id, admin)
    report = import_jobs.report_of(checked)
    assert checked.state is JobState.DONE and report and report.ok and report.dry_run
    assert report.count("units") == 2 and _units(rt, home.site.id) == before
    applied = import_jobs.start_apply(rt, check.id, by=admin)
    assert _run_all(rt) == 1
    done = jobs.job_for(rt, applied.id, admin)
    assert done.state is JobState.DONE and done.params["digest"] == check.params["digest"]
    assert _units(rt, home.site.id) == sorted([*before, "A-101", "A-102"])


def test_a_sheet_with_errors_fails_its_job_with_every_error_and_cannot_be_imported(
    rt: Runtime,
) -> None:
    home = a_home(rt)
    admin = _staff(Role.ADMIN, home.site.id)
    check = _check(rt, home, BAD, admin)
    _run_all(rt)
    failed = jobs.job_for(rt, check.id, admin)
    report = import_jobs.report_of(failed)
    assert failed.state is JobState.FAILED and "1 errors" in failed.error
    assert report and [e.row for e in report.errors] == [3]
    with pytest.raises(Exception, match="no error"):
        import_jobs.start_apply(rt, check.id, by=admin)


def test_a_job_is_seen_only_by_holders_of_its_kinds_permission_on_its_site(
    rt: Runtime,
) -> None:
    home = a_home(rt)
    other = sites.create_site(rt, code="OTHER", name="别处", actor="test")
    admin = _staff(Role.ADMIN, home.site.id, user_id=1)
    check = _check(rt, home, GOOD, admin)
    assert jobs.job_for(rt, check.id, _staff(Role.OPERATOR, home.site.id, 2)).id == check.id
    for stranger in (
        _staff(Role.ADMIN, other.id, 3),  # another site's admin
        _staff(Role.CASHIER, home.site.id, 4),  # no site.write: an import is not theirs
        Principal(PrincipalKind.OWNER, 1, "owner:1", customer_ids=frozenset({1})),
    ):
        with pytest.raises(NotFound):
            jobs.job_for(rt, check.id, stranger)
    with pytest.raises(Forbidden):
        _check(rt, home, GOOD, _staff(Role.CASHIER, home.site.id, 4))
    assert jobs.recent_for(rt, admin)[0].id == check.id
    assert jobs.recent_for(rt, _staff(Role.ADMIN, None, 9)) == []  # not theirs to list


def test_a_job_lost_with_its_runner_is_queued_again_then_failed_after_three_runs(
    rt: Runtime,
) -> None:
    home = a_home(rt)
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    admin = _staff(Role.ADMIN, home.site.id)
    job = jobs.submit(
        rt, JobKind.EXPORT_SITE, by=admin, site_id=home.site.id, params={"site_id": home.site.id}
    )
    for attempt in (1, 2, 3):
        with rt.db.write() as conn:
            claimed = repo.claim_next(conn, runner=f"dead-{attempt}", now=clock.now())
        assert claimed is not None and claimed.attempts == attempt
        clock.advance(STALE_AFTER + timedelta(seconds=1))
        assert jobs.recover_lost(rt, runner=RUNNER, at_start=True) == 1
    lost = jobs.job_for(rt, job.id, admin)
    assert lost.state is JobState.FAILED and "three times" in lost.error


def test_a_runner_taken_for_lost_cannot_record_its_import(rt: Runtime) -> None:
    """The import and its job's "done" commit together: a runner whose job was taken
    from it meanwhile writes neither."""
    home = a_home(rt)
    admin = _staff(Role.ADMIN, home.site.id)
    before = _units(rt, home.site.id)
    check = _check(rt, home, GOOD, admin)
    _run_all(rt)
    apply = import_jobs.start_apply(rt, check.id, by=admin)

    def taken_meanwhile(rt: Runtime, job: Any, reporter: Reporter) -> Outcome:
        with rt.db.write() as conn:  # another runner's recovery took the job back
            repo.set_state(conn, job.id, JobState.QUEUED, now=rt.clock.now())
        return import_jobs.run_apply(rt, job, reporter)

    with pytest.raises(JobLost):
        jobs.run_next(rt, {JobKind.IMPORT_APPLY: taken_meanwhile}, runner=RUNNER)
    assert _units(rt, home.site.id) == before
    assert jobs.job_for(rt, apply.id, admin).state is JobState.QUEUED
    _run_all(rt)  # the next run does the import, once
    assert _units(rt, home.site.id) == sorted([*before, "A-101", "A-102"])


def test_progress_shows_while_a_job_runs_and_an_unexpected_error_fails_it(rt: Runtime) -> None:
    home = a_home(rt)
    admin = _staff(Role.ADMIN, home.site.id)
    job = jobs.submit(
        rt, JobKind.EXPORT_SITE, by=admin, site_id=home.site.id, params={"site_id": home.site.id}
    )
    halfway, go_on = threading.Event(), threading.Event()

    def slow(rt: Runtime, job: Any, reporter: Reporter) -> Outcome:
        reporter("write", 5, 10)
        halfway.set()
        go_on.wait(10)
        raise RuntimeError("a bug")

    runner = threading.Thread(
        target=jobs.run_next, args=(rt, {JobKind.EXPORT_SITE: slow}), kwargs={"runner": RUNNER}
    )
    runner.start()
    try:
        assert halfway.wait(10)
        seen = jobs.job_for(rt, job.id, admin)
        assert seen.state is JobState.RUNNING and seen.progress == Progress("write", 5, 10)
        assert seen.progress.percent == 50
    finally:
        go_on.set()
        runner.join(10)
    failed = jobs.job_for(rt, job.id, admin)
    assert failed.state is JobState.FAILED and "internal error" in failed.error


@pytest.mark.postgres
def test_two_runners_at_once_run_each_job_exactly_once(pg_rt: Runtime) -> None:
    home = a_home(pg_rt)
    admin = _staff(Role.ADMIN, home.site.id)
    queued = [
        jobs.submit(pg_rt, JobKind.EXPORT_SITE, by=admin, site_id=home.site.id, params={})
        for _ in range(20)
    ]
    ran: list[int] = []
    lock = threading.Lock()

    def count(rt: Runtime, job: Any, reporter: Reporter) -> Outcome:
        with lock:
            ran.append(job.id)
        return Outcome(result={"rows": 0})

    def drain(name: str) -> None:
        while jobs.run_next(pg_rt, {JobKind.EXPORT_SITE: count}, runner=name):
            pass

    threads = [threading.Thread(target=drain, args=(f"r{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(ran) == sorted(j.id for j in queued)
    assert all(jobs.job_for(pg_rt, j.id, admin).state is JobState.DONE for j in queued)


# --- the console ------------------------------------------------------------------------


@pytest.fixture
def web(rt: Runtime) -> Iterator[TestClient]:
    home = a_home(rt)
    staff_user(rt, "operator1", Role.ADMIN, home.site.id)
    with TestClient(create_app(rt)) as client:
        client.csrf = sign_in(client, "operator1")  # type: ignore[attr-defined]
        client.site_id = home.site.id  # type: ignore[attr-defined]
        client.account_id = home.account.id  # type: ignore[attr-defined]
        yield client


def _job_url(response: Any) -> str:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/console/jobs/\d+(\?lang=en)?", location)
    return str(location)


def test_an_upload_is_checked_then_imported_by_jobs_that_can_be_left_and_revisited(
    rt: Runtime, web: Any
) -> None:
    started = web.post(
        "/console/import",
        data={"csrf_token": web.csrf, "site_id": str(web.site_id)},
        files={"file": ("units.csv", GOOD, "text/csv")},
        follow_redirects=False,
    )
    url = _job_url(started)
    waiting = web.get(url)
    assert waiting.status_code == 200 and 'hx-trigger="every 1s"' in waiting.text
    assert 'data-state="queued"' in waiting.text
    _run_all(rt)
    part = web.get(url, params={"partial": "1"}, headers={"HX-Request": "true"})
    assert "<html" not in part.text and 'data-state="done"' in part.text
    assert "hx-trigger" not in part.text  # a finished job is not polled any more
    assert 'id="created-units">2<' in part.text
    action = re.search(r'action="(/console/jobs/\d+/import)"', part.text)
    assert action
    imported = web.post(action.group(1), data={"csrf_token": web.csrf}, follow_redirects=False)
    done_url = _job_url(imported)
    _run_all(rt)
    assert "导入完成" in web.get(done_url).text
    listed = web.get("/console/jobs")
    assert listed.status_code == 200
    assert done_url in listed.text and url in listed.text  # both, to come back to
    assert "A-102" in str(_units(rt, web.site_id))


@pytest.mark.parametrize(
    ("fields", "files", "problem"),
    [
        ({"site_id": "SITE"}, {}, "choose a file"),
        ({"site_id": "SITE"}, {"file": ("units.txt", GOOD, "text/plain")}, ".xlsx or .csv"),
        ({"site_id": "SITE"}, {"file": ("units.csv", b"", "text/csv")}, "choose a file"),
        (
            {"site_id": "SITE"},
            {"file": ("units.csv", b"x" * (4 * 1024 * 1024 + 1), "text/csv")},
            "larger than 4 MB",
        ),
    ],
)
def test_a_bad_upload_is_refused_clearly_and_starts_no_job(
    rt: Runtime, web: Any, fields: dict[str, str], files: dict[str, Any], problem: str
) -> None:
    data = {"csrf_token": web.csrf, **{k: str(web.site_id) for k in fields}}
    refused = web.post("/console/import", data=data, files=files or None)
    assert refused.status_code == 422 and problem in refused.text
    assert jobs.recent_for(rt, _staff(Role.ADMIN, None, 1)) == []
    assert "<td" not in web.get("/console/jobs").text


def test_the_site_table_and_a_ledger_export_to_excel_through_jobs(rt: Runtime, web: Any) -> None:
    started = web.post(
        f"/console/sites/{web.site_id}/export",
        data={"csrf_token": web.csrf, "sort": "-balance", "lang": "en"},
        follow_redirects=False,
    )
    url = _job_url(started)
    not_yet = web.get(f"{url.split('?')[0]}/file")
    assert not_yet.status_code == 409
    _run_all(rt)
    page = web.get(url)
    assert 'id="job-download"' in page.text
    sheet = web.get(f"{url.split('?')[0]}/file")
    assert sheet.headers["content-type"].startswith("application/vnd.openxml")
    book = openpyxl.load_workbook(io.BytesIO(sheet.content))
    rows = list(book.active.iter_rows(values_only=True))
    assert "Unit" in str(rows[0]) and len(rows) >= 2
    ledger = web.post(
        f"/console/accounts/{web.account_id}/export",
        data={"csrf_token": web.csrf},
        follow_redirects=False,
    )
    ledger_url = _job_url(ledger)
    _run_all(rt)
    got = web.get(f"{ledger_url}/file")
    assert got.status_code == 200 and got.content[:2] == b"PK"


def test_another_sites_job_is_not_found_in_the_console(rt: Runtime, web: Any) -> None:
    other = sites.create_site(rt, code="ELSE", name="别处", actor="test")
    theirs = jobs.submit(
        rt,
        JobKind.EXPORT_SITE,
        by=_staff(Role.ADMIN, other.id, 99),
        site_id=other.id,
        params={"site_id": other.id},
    )
    _run_all(rt)
    for path in (f"/console/jobs/{theirs.id}", f"/console/jobs/{theirs.id}/file"):
        assert web.get(path).status_code == 404
    refused = web.post(f"/console/jobs/{theirs.id}/import", data={"csrf_token": web.csrf})
    assert refused.status_code == 404
    assert Permission.SITE_READ in ROLE_PERMISSIONS[Role.CASHIER]


def test_an_audit_export_holds_only_the_starters_sites(rt: Runtime) -> None:
    home = a_home(rt)
    other = sites.create_site(rt, code="ELSE", name="别处", actor="test")
    sites.create_building(rt, site_id=other.id, code="X", name="别处的楼", actor="test")
    sites.create_building(rt, site_id=home.site.id, code="Y", name="这里的楼", actor="test")
    staff_user(rt, "auditor1", Role.ADMIN, home.site.id)
    with TestClient(create_app(rt)) as client:
        token = sign_in(client, "auditor1")
        started = client.post(
            "/console/audit/export", data={"csrf_token": token}, follow_redirects=False
        )
        url = _job_url(started)
        _run_all(rt)
        got = client.get(f"{url}/file")
    rows = list(openpyxl.load_workbook(io.BytesIO(got.content)).active.values)[1:]
    assert rows and {r[7] for r in rows} == {home.site.id}
