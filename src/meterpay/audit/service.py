"""Reading the audit log: search by who, what, which object, which site and when,
newest first, paged by id. A reader limited to some sites sees those sites' entries
only; entries that belong to no site (sign-ins, users, deployment-wide settings) are for
readers of every site."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, or_, select

from meterpay.audit.repository import AuditEntry
from meterpay.db.rows import to_model
from meterpay.db.schema import audit_log
from meterpay.runtime import Runtime


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None
    """An exact action, or a prefix ending in ``.`` (``money.``, ``security.``)."""
    object_type: str | None = None
    object_id: str | None = None
    site_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    """Words to find in the reason."""


def search(
    rt: Runtime,
    query: AuditQuery,
    *,
    visible_sites: frozenset[int] | None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Entries matching ``query`` that the reader may see, newest first."""
    with rt.db.read() as conn:
        return _search(conn, query, visible_sites, before_id, limit)


def _search(
    conn: Connection,
    query: AuditQuery,
    visible: frozenset[int] | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEntry]:
    where = _conditions(query)
    if visible is not None:
        where.append(audit_log.c.site_id.in_(sorted(visible)))
    if before_id is not None:
        where.append(audit_log.c.id < before_id)
    rows = conn.execute(
        select(audit_log).where(*where).order_by(audit_log.c.id.desc()).limit(limit)
    ).mappings()
    return [to_model(AuditEntry, row) for row in rows]


def _conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    exact: dict[str, Any] = {
        "actor": query.actor,
        "object_type": query.object_type,
        "object_id": query.object_id,
        "site_id": query.site_id,
    }
    where.extend(audit_log.c[name] == value for name, value in exact.items() if value)
    if query.action:
        if query.action.endswith("."):
            where.append(audit_log.c.action.startswith(query.action, autoescape=True))
        else:
            where.append(audit_log.c.action == query.action)
    if query.since is not None:
        where.append(audit_log.c.at >= query.since)
    if query.until is not None:
        where.append(audit_log.c.at < query.until)
    if query.text:
        words = query.text.strip()[:100]
        where.append(
            or_(
                audit_log.c.reason.contains(words, autoescape=True),
                audit_log.c.action.contains(words, autoescape=True),
            )
        )
    return where
