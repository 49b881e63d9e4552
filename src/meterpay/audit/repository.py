"""Writing and reading the audit log. Rows are never updated or deleted
(database triggers refuse it); a correction is a new entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from meterpay.db.schema import audit_log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    site_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str
    source_ip: str | None = None


def record(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: object,
    site_id: int | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str = "",
    source_ip: str | None = None,
) -> None:
    conn.execute(
        insert(audit_log).values(
            at=at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            site_id=site_id,
            before=_jsonable(before),
            after=_jsonable(after),
            reason=reason,
            source_ip=source_ip,
        )
    )


def _jsonable(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: v if isinstance(v, int | str | bool | None) else str(v) for k, v in values.items()}
