"""Queries for users, roles, sessions, API tokens, sign-in attempts and codes. Never commits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update

from meterpay.auth.model import ApiToken, Role, User
from meterpay.db.rows import to_model
from meterpay.db.schema import (
    api_tokens,
    customers,
    sign_in_attempts,
    sign_in_codes,
    user_roles,
    user_sessions,
    users,
)

# --- users and roles --------------------------------------------------------------------


def insert_user(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(conn.execute(insert(users).values(**values).returning(users.c.id)).scalar_one())


def user(conn: Connection, user_id: int, *, lock: bool = False) -> User | None:
    return _one_user(conn, users.c.id == user_id, lock)


def user_named(conn: Connection, username: str, *, lock: bool = False) -> User | None:
    return _one_user(conn, users.c.username == username, lock)


def user_with_phone(conn: Connection, phone: str, *, lock: bool = False) -> User | None:
    return _one_user(conn, users.c.phone == phone, lock)


def _one_user(conn: Connection, where: Any, lock: bool) -> User | None:
    query = select(users).where(where)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return to_model(User, row) if row else None


def save_user(conn: Connection, user_id: int, **values: Any) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(**values))


def staff(conn: Connection, *, site_ids: frozenset[int] | None = None) -> list[User]:
    """Staff users; with ``site_ids``, those holding a role on one of them."""
    query = select(users).where(users.c.kind == "staff").order_by(users.c.username)
    if site_ids is not None:
        holders = select(user_roles.c.user_id).where(user_roles.c.site_id.in_(sorted(site_ids)))
        query = query.where(users.c.id.in_(holders))
    return [to_model(User, row) for row in conn.execute(query).mappings()]


def roles_of(conn: Connection, user_ids: Iterable[int]) -> dict[int, list[tuple[Role, int | None]]]:
    wanted = sorted(set(user_ids))
    found: dict[int, list[tuple[Role, int | None]]] = {i: [] for i in wanted}
    if not wanted:
        return found
    query = (
        select(user_roles.c.user_id, user_roles.c.role, user_roles.c.site_id)
        .where(user_roles.c.user_id.in_(wanted))
        .order_by(user_roles.c.id)
    )
    for user_id, role, site_id in conn.execute(query):
        found[int(user_id)].append((Role(role), site_id))
    return found


def replace_roles(conn: Connection, user_id: int, roles: Iterable[tuple[Role, int | None]]) -> None:
    conn.execute(delete(user_roles).where(user_roles.c.user_id == user_id))
    rows = [
        {"user_id": user_id, "role": r.value, "site_id": s} for r, s in sorted(set(roles), key=str)
    ]
    if rows:
        conn.execute(insert(user_roles), rows)


def customers_with_phone(conn: Connection, phone: str) -> frozenset[int]:
    query = select(customers.c.id).where(customers.c.phone == phone)
    return frozenset(int(i) for i in conn.execute(query).scalars())


# --- sessions ---------------------------------------------------------------------------


def insert_session(conn: Connection, values: Mapping[str, Any]) -> int:
    query = insert(user_sessions).values(**values).returning(user_sessions.c.id)
    return int(conn.execute(query).scalar_one())


def session_by_hash(conn: Connection, token_hash: str) -> RowMapping | None:
    query = select(user_sessions).where(user_sessions.c.token_hash == token_hash)
    return conn.execute(query).mappings().first()


def save_session(conn: Connection, session_id: int, **values: Any) -> None:
    conn.execute(update(user_sessions).where(user_sessions.c.id == session_id).values(**values))


def end_sessions_of(
    conn: Connection, user_id: int, now: datetime, *, keep: int | None = None
) -> None:
    query = update(user_sessions).where(
        user_sessions.c.user_id == user_id, user_sessions.c.ended_at.is_(None)
    )
    if keep is not None:
        query = query.where(user_sessions.c.id != keep)
    conn.execute(query.values(ended_at=now))


# --- API tokens -------------------------------------------------------------------------


def insert_token(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(
        conn.execute(insert(api_tokens).values(**values).returning(api_tokens.c.id)).scalar_one()
    )


def token_by_hash(conn: Connection, token_hash: str) -> ApiToken | None:
    row = (
        conn.execute(select(api_tokens).where(api_tokens.c.token_hash == token_hash))
        .mappings()
        .first()
    )
    return to_model(ApiToken, row) if row else None


def token(conn: Connection, token_id: int) -> ApiToken | None:
    row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).mappings().first()
    return to_model(ApiToken, row) if row else None


def tokens(conn: Connection) -> list[ApiToken]:
    query = select(api_tokens).order_by(api_tokens.c.id.desc())
    return [to_model(ApiToken, row) for row in conn.execute(query).mappings()]


def save_token(conn: Connection, token_id: int, **values: Any) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(**values))


# --- attempts and codes -----------------------------------------------------------------


def add_attempt(conn: Connection, who: str, source_ip: str | None, ok: bool, now: datetime) -> None:
    conn.execute(insert(sign_in_attempts).values(at=now, who=who[:64], source_ip=source_ip, ok=ok))


def failures_from(conn: Connection, source_ip: str, since: datetime) -> int:
    query = select(func.count()).where(
        sign_in_attempts.c.source_ip == source_ip,
        sign_in_attempts.c.at >= since,
        sign_in_attempts.c.ok.is_(False),
    )
    return int(conn.execute(query).scalar_one())


def insert_code(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(sign_in_codes).values(**values))


def codes_since(
    conn: Connection, since: datetime, *, phone: str | None = None, source_ip: str | None = None
) -> list[RowMapping]:
    query = select(sign_in_codes).where(sign_in_codes.c.created_at >= since)
    if phone is not None:
        query = query.where(sign_in_codes.c.phone == phone)
    if source_ip is not None:
        query = query.where(sign_in_codes.c.source_ip == source_ip)
    return list(conn.execute(query.order_by(sign_in_codes.c.id.desc())).mappings())


def latest_code(conn: Connection, phone: str, *, lock: bool = False) -> RowMapping | None:
    query = (
        select(sign_in_codes)
        .where(sign_in_codes.c.phone == phone)
        .order_by(sign_in_codes.c.id.desc())
        .limit(1)
    )
    if lock:
        query = query.with_for_update()
    return conn.execute(query).mappings().first()


def save_code(conn: Connection, code_id: int, **values: Any) -> None:
    conn.execute(update(sign_in_codes).where(sign_in_codes.c.id == code_id).values(**values))
