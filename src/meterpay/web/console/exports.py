"""Excel exports (导出 Excel) of the console's tables, made as background jobs.

A page's "export" button queues a job with the page's own filters (``start_*``); the job
runner calls the kind's handler (``HANDLERS``), which reads the rows through the same
read model the page uses, writes the workbook (``reports.sheets``: money as numbers,
times on the site's clock, no formulas) reporting its progress, and keeps the file with
the job for its download. The words of a sheet are the page's words, in both languages
(a sheet travels between people).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

from meterpay.audit import service as audit
from meterpay.audit.repository import AuditEntry
from meterpay.auth.model import Principal
from meterpay.control.model import SupplyState
from meterpay.jobs import service as jobs
from meterpay.jobs.model import KIND_PERMISSION, Job, JobKind
from meterpay.jobs.service import File, Outcome, Reporter
from meterpay.kernel.errors import InvalidInput
from meterpay.reports import account_view, places
from meterpay.reports.sheets import XLSX, Column, workbook
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.web.console.admin_forms import DEFAULT_ZONE
from meterpay.web.console.labels import Lang, Words

T = TypeVar("T")
AUDIT_ROWS: Final = 20_000
"""At most this many audit entries in one workbook (the newest)."""
EVERY: Final = 100
"""Progress is told every this many rows."""


def _counted(rows: Sequence[T], reporter: Reporter) -> Iterator[T]:
    total = len(rows)
    reporter("write", 0, total)
    for n, row in enumerate(rows, 1):
        yield row
        if n % EVERY == 0 or n == total:
            reporter("write", n, total)


def _title(w: Words, key: str) -> str:
    zh, en = w.pair(key)
    return f"{zh} {en}"


# --- a site's table -----------------------------------------------------------------------


def start_site_export(
    rt: Runtime,
    site_id: int,
    *,
    where: places.PlaceFilter,
    sort: str | None,
    lang: Lang,
    by: Principal,
) -> Job:
    params = {
        "state": where.state.value if where.state else None,
        "building_id": where.building_id,
        "floor_id": where.floor_id,
        "words": where.words,
        "sort": sort,
        "lang": lang.value,
    }
    return jobs.submit(rt, JobKind.EXPORT_SITE, by=by, site_id=site_id, params=params)


def run_site_export(rt: Runtime, job: Job, reporter: Reporter) -> Outcome:
    p = job.params
    where = places.PlaceFilter(
        SupplyState(p["state"]) if p.get("state") else None,
        p.get("building_id"),
        p.get("floor_id"),
        p.get("words") or "",
    )
    reporter("read", 0, 0)
    site, rows = places.site_rows_for_export(
        rt, _site_of(job), where=where, sort=places.Sorting.parse(p.get("sort"))
    )
    w = Words(Lang.of(p.get("lang")))
    keys = ["pcol.building", "pcol.floor", "col.unit", "col.owner", "pcol.phone", "col.account"]
    keys += ["col.utility", "pcol.meters", "col.balance", "col.state"]
    columns = [Column(_title(w, k), 16) for k in keys]
    data = (
        (
            r.building or "",
            r.floor or "",
            f"{r.unit_code} {r.unit_name}",
            r.owner or "",
            r.phone or "",
            r.number or "",
            w.plain(f"utility.{r.utility.value}") if r.utility else "",
            " ".join(m.address for m in r.meters),
            r.balance,
            w.plain(f"state.{r.state.value}") if r.state else w.plain("place.vacant"),
        )
        for r in _counted(rows, reporter)
    )
    body = workbook(site.code, columns, data, zone=site.timezone)
    return _sheet(f"{site.code}-accounts.xlsx", body, len(rows))


# --- an account's ledger ------------------------------------------------------------------


def start_ledger_export(rt: Runtime, account_id: int, *, lang: Lang, by: Principal) -> Job:
    site_id = sites.get(rt, "accounts", account_id).site_id
    params = {"account_id": account_id, "lang": lang.value}
    return jobs.submit(rt, JobKind.EXPORT_LEDGER, by=by, site_id=site_id, params=params)


def run_ledger_export(rt: Runtime, job: Job, reporter: Reporter) -> Outcome:
    reporter("read", 0, 0)
    site, head, ledger = account_view.ledger_for_export(rt, int(job.params["account_id"]))
    w = Words(Lang.of(job.params.get("lang")))
    keys = ("col.time", "col.kind", "pcol.amount", "pcol.balance_after", "pcol.memo")
    columns = [Column(_title(w, k), 18) for k in (*keys, "pcol.actor")]
    columns[0] = Column(f"{columns[0].title} ({site.timezone})", 20)
    data = (
        (e.at, w.plain(f"entry.{e.kind.value}"), e.amount, e.balance_after, e.memo, e.actor)
        for e in _counted(ledger.rows, reporter)
    )
    body = workbook(head.number, columns, data, zone=site.timezone)
    return _sheet(f"{head.number}-ledger.xlsx", body, len(ledger.rows))


# --- the audit log ------------------------------------------------------------------------


def start_audit_export(rt: Runtime, query: audit.AuditQuery, *, zone: str, by: Principal) -> Job:
    """The audit search ``query`` as seen by ``by`` (their sites, kept with the job)."""
    visible = by.sites_with(KIND_PERMISSION[JobKind.EXPORT_AUDIT])
    params = {
        "actor": query.actor,
        "action": query.action,
        "object_type": query.object_type,
        "object_id": query.object_id,
        "site_id": query.site_id,
        "since": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
        "text": query.text,
        "visible_sites": sorted(visible) if visible is not None else None,
        "zone": zone,
    }
    site_id = query.site_id
    if site_id is None and visible is not None and len(visible) == 1:
        site_id = next(iter(visible))
    return jobs.submit(rt, JobKind.EXPORT_AUDIT, by=by, site_id=site_id, params=params)


def run_audit_export(rt: Runtime, job: Job, reporter: Reporter) -> Outcome:
    p = job.params
    query = audit.AuditQuery(
        actor=p.get("actor"),
        action=p.get("action"),
        object_type=p.get("object_type"),
        object_id=p.get("object_id"),
        site_id=p.get("site_id"),
        since=datetime.fromisoformat(p["since"]) if p.get("since") else None,
        until=datetime.fromisoformat(p["until"]) if p.get("until") else None,
        text=p.get("text"),
    )
    visible = p.get("visible_sites")
    sites = frozenset(visible) if visible is not None else None
    entries: list[AuditEntry] = []
    before: int | None = None
    while len(entries) < AUDIT_ROWS:
        reporter("read", len(entries), 0)
        batch = audit.search(rt, query, visible_sites=sites, before_id=before, limit=1000)
        entries += batch
        if len(batch) < 1000:
            break
        before = batch[-1].id
    entries = entries[:AUDIT_ROWS]
    rows = (_audit_row(e) for e in _counted(entries, reporter))
    body = workbook("审计日志", AUDIT_COLUMNS, rows, zone=p.get("zone") or DEFAULT_ZONE)
    stamp = job.created_at.strftime("%Y%m%d-%H%M")
    return _sheet(f"audit-{stamp}.xlsx", body, len(entries))


AUDIT_COLUMNS: Final = (
    Column("编号 id", 10),
    Column("时间 time", 20),
    Column("操作人 actor", 18),
    Column("来源 IP", 16),
    Column("动作 action", 24),
    Column("对象 object", 14),
    Column("对象编号 object id", 12),
    Column("项目 site", 8),
    Column("之前 before", 40),
    Column("之后 after", 40),
    Column("原因 reason", 30),
)


def _audit_row(e: AuditEntry) -> list[Any]:
    def shown(values: dict[str, Any] | None) -> str:
        return "; ".join(f"{k}={v}" for k, v in values.items()) if values else ""

    return [
        e.id,
        e.at,
        e.actor,
        e.source_ip or "",
        e.action,
        e.object_type,
        e.object_id,
        e.site_id,
        shown(e.before),
        shown(e.after),
        e.reason,
    ]


def _site_of(job: Job) -> int:
    if job.site_id is None:
        raise InvalidInput(f"job {job.id} names no site to export")
    return job.site_id


def _sheet(name: str, body: bytes, rows: int) -> Outcome:
    return Outcome(result={"rows": rows}, output=File(name, XLSX, body))


HANDLERS: Final = {
    JobKind.EXPORT_SITE: run_site_export,
    JobKind.EXPORT_LEDGER: run_ledger_export,
    JobKind.EXPORT_AUDIT: run_audit_export,
}
