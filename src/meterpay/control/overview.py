"""The supply overview of a site: what the operators' console shows on its supply page —
how many accounts are in each supply state, the accounts that are not normal with their
planned cut-off, the latest supply events, commands and owners' messages, open alarms.

Read-only. Each service function reads in one transaction (``rt.db.read()``), so a
page is one consistent snapshot; every list is limited (the accounts table is paged).
The queries are the repository-style functions below (a connection in, plain
dataclasses out); they never write.

A recipient's phone number, email address or WeChat openid never leaves this module
whole: it is masked for the screen (``138****0000``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, case, select

from meterpay.alarms import repository as alarms_repo
from meterpay.alarms.model import Alarm, AlarmState
from meterpay.control import effects
from meterpay.control import repository as repo
from meterpay.control.commands import CommandKind, CommandState
from meterpay.control.model import SupplyState
from meterpay.control.rules import CutoffReason, CutoffVerdict, decide_cutoff
from meterpay.db.schema import (
    accounts,
    commands,
    customers,
    meters,
    notifications,
    sites,
    supply_events,
    units,
)
from meterpay.kernel.errors import NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.repository import wallet_balances
from meterpay.notify.model import ChannelName, MessageState, Topic
from meterpay.runtime import Runtime

# Most urgent first: what a person should look at before anything else.
ATTENTION_ORDER: Final = (
    SupplyState.CUT_OFF,
    SupplyState.IN_ARREARS,
    SupplyState.RESTORE_PENDING,
    SupplyState.VERY_LOW,
    SupplyState.LOW,
)
MAX_PAGE: Final = 500
OWNER_CHANNELS: Final = tuple(c.value for c in ChannelName if c is not ChannelName.WEBHOOK)


@dataclass(frozen=True, slots=True)
class SiteSummary:
    id: int
    code: str
    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class AttentionRow:
    """An account that is not in normal supply, with what will happen to it."""

    account_id: int
    number: str
    utility: Utility
    unit_code: str
    unit_name: str
    owner_name: str | None
    balance: Money
    state: SupplyState
    since: datetime | None
    protected_reason: str | None
    planned_cutoff_at: datetime | None = None
    """In arrears: when the cut-off will happen (the scheduler's current decision)."""
    cutoff_reason: CutoffReason | None = None
    """In arrears: why it is not now (notice period, friendly hours, protected, ...)."""
    needs_person: bool = False
    """In arrears and never cut automatically (protected, water): a person decides."""


@dataclass(frozen=True, slots=True)
class SupplyEventRow:
    id: int
    at: datetime
    account_id: int
    number: str
    utility: Utility
    unit_code: str
    from_state: SupplyState
    to_state: SupplyState
    event: str
    balance: Money
    cause: str


@dataclass(frozen=True, slots=True)
class CommandRow:
    id: int
    kind: CommandKind
    state: CommandState
    attempts: int
    meter_id: int
    meter_address: str
    utility: Utility
    unit_code: str
    account_number: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    last_error: str
    requested_by: str


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    created_at: datetime
    topic: Topic
    channel: ChannelName
    recipient: str
    """Masked: enough to recognise, not enough to dial."""
    state: MessageState
    title: str
    body: str
    account_number: str | None
    last_error: str


@dataclass(frozen=True, slots=True)
class AccountsPage:
    rows: list[AttentionRow]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.rows) < self.total


@dataclass(frozen=True, slots=True)
class SupplyOverview:
    at: datetime
    site: SiteSummary
    sites: list[SiteSummary]
    counts: dict[SupplyState, int]
    accounts: AccountsPage
    events: list[SupplyEventRow]
    commands: list[CommandRow]
    messages: list[MessageRow]
    alarms: list[Alarm]


# --- use cases --------------------------------------------------------------------------------


def supply_overview(
    rt: Runtime,
    site_id: int | None = None,
    *,
    state: SupplyState | None = None,
    offset: int = 0,
    limit: int = 100,
    latest: int = 20,
    visible: frozenset[int] | None = None,
) -> SupplyOverview | None:
    """One site's supply page (the first site when ``site_id`` is None; None when there
    is no site at all). ``state`` narrows the accounts table to one state; ``visible``
    keeps the sites the reader works on (None: every site)."""
    now = rt.clock.now()
    with rt.db.read() as conn:
        found = [s for s in site_list(conn) if visible is None or s.id in visible]
        site = _pick(found, site_id)
        if site is None:
            return None
        counts = state_counts(conn, site.id)
        wanted = (state,) if state is not None else ATTENTION_ORDER
        return SupplyOverview(
            at=now,
            site=site,
            sites=found,
            counts=counts,
            accounts=AccountsPage(
                attention_rows(conn, site.id, wanted, now=now, offset=offset, limit=limit),
                sum(counts[s] for s in wanted),
                offset,
                limit,
            ),
            events=latest_supply_events(conn, site.id, limit=latest),
            commands=latest_commands(conn, site.id, limit=latest),
            messages=latest_messages(conn, site.id, limit=latest),
            alarms=open_alarms(conn, site.id, limit=latest),
        )


def accounts_in(
    rt: Runtime, site_id: int, states: Sequence[SupplyState], *, limit: int = 100
) -> list[AttentionRow]:
    """A site's open accounts in these states, most urgent first, longest waiting first."""
    with rt.db.read() as conn:
        return attention_rows(conn, site_id, states, now=rt.clock.now(), offset=0, limit=limit)


def _pick(found: list[SiteSummary], site_id: int | None) -> SiteSummary | None:
    if site_id is None:
        return found[0] if found else None
    for site in found:
        if site.id == site_id:
            return site
    raise NotFound(f"site {site_id} does not exist", site_id=site_id)


# --- queries ----------------------------------------------------------------------------------


def site_list(conn: Connection, *, limit: int = 200) -> list[SiteSummary]:
    query = select(sites.c.id, sites.c.code, sites.c.name, sites.c.timezone)
    rows = conn.execute(query.order_by(sites.c.id).limit(limit)).all()
    return [SiteSummary(r.id, r.code, r.name, r.timezone) for r in rows]


def state_counts(conn: Connection, site_id: int) -> dict[SupplyState, int]:
    return {SupplyState(k): n for k, n in repo.count_states(conn, site_id).items()}


def attention_rows(
    conn: Connection,
    site_id: int,
    states: Sequence[SupplyState],
    *,
    now: datetime,
    offset: int,
    limit: int,
) -> list[AttentionRow]:
    """Open accounts in ``states``, most urgent state first, then longest in it."""
    urgency = case(
        {s.value: rank for rank, s in enumerate(ATTENTION_ORDER)},
        value=accounts.c.supply_state,
        else_=len(ATTENTION_ORDER),
    )
    query = (
        select(
            accounts.c.id,
            accounts.c.number,
            accounts.c.utility,
            accounts.c.wallet_id,
            accounts.c.supply_state,
            accounts.c.supply_changed_at,
            accounts.c.protected_reason,
            units.c.code.label("unit_code"),
            units.c.name.label("unit_name"),
            customers.c.name.label("owner_name"),
        )
        .join(units, units.c.id == accounts.c.unit_id)
        .outerjoin(customers, customers.c.id == accounts.c.customer_id)
        .where(
            accounts.c.site_id == site_id,
            accounts.c.status == "open",
            accounts.c.supply_state.in_([s.value for s in states]),
        )
        .order_by(urgency, accounts.c.supply_changed_at, accounts.c.id)
        .offset(max(0, offset))
        .limit(min(max(1, limit), MAX_PAGE))
    )
    rows = conn.execute(query).mappings().all()
    balances = wallet_balances(conn, [r["wallet_id"] for r in rows])
    plans = _cutoff_plans(
        conn, [r["id"] for r in rows if r["supply_state"] == SupplyState.IN_ARREARS], now
    )
    return [_attention(r, Money(balances.get(r["wallet_id"], 0)), plans.get(r["id"])) for r in rows]


def _attention(row: Any, balance: Money, plan: _Plan | None) -> AttentionRow:
    return AttentionRow(
        account_id=row["id"],
        number=row["number"],
        utility=Utility(row["utility"]),
        unit_code=row["unit_code"],
        unit_name=row["unit_name"],
        owner_name=row["owner_name"],
        balance=balance,
        state=SupplyState(row["supply_state"]),
        since=row["supply_changed_at"],
        protected_reason=row["protected_reason"],
        planned_cutoff_at=plan.at if plan else None,
        cutoff_reason=plan.reason if plan else None,
        needs_person=plan.needs_person if plan else False,
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    at: datetime | None
    reason: CutoffReason
    needs_person: bool


def _cutoff_plans(conn: Connection, account_ids: list[int], now: datetime) -> dict[int, _Plan]:
    """What the scheduler would decide now for each account in arrears (as
    ``control.service.supply_view`` shows it for one account)."""
    supplies = repo.account_supplies(conn, account_ids)
    if not supplies:
        return {}
    policies = repo.site_policies(conn, {a.site_id for a in supplies.values()})
    day_type = repo.day_type_source(conn)
    plans: dict[int, _Plan] = {}
    for account in supplies.values():
        if account.notice_given_at is None:
            continue
        site = policies[(account.site_id, account.utility)]
        decision = decide_cutoff(
            now,
            notice_given_at=account.notice_given_at,
            final_notice_given_at=account.final_notice_given_at,
            thresholds=effects.thresholds_for(account, site),
            policy=site.policy,
            day_type=day_type,
            protection=account.protection,
        )
        never = decision.verdict is CutoffVerdict.NEVER_AUTOMATIC
        plans[account.id] = _Plan(decision.at, decision.reason, never)
    return plans


def latest_supply_events(conn: Connection, site_id: int, *, limit: int) -> list[SupplyEventRow]:
    return supply_event_rows(conn, accounts.c.site_id == site_id, limit=min(limit, MAX_PAGE))


def supply_event_rows(conn: Connection, where: Any, *, limit: int) -> list[SupplyEventRow]:
    """Supply events matching ``where`` (on accounts or supply_events), newest first."""
    query = (
        select(
            supply_events,
            accounts.c.number,
            accounts.c.utility,
            units.c.code.label("unit_code"),
        )
        .join(accounts, accounts.c.id == supply_events.c.account_id)
        .join(units, units.c.id == accounts.c.unit_id)
        .where(where)
        .order_by(supply_events.c.id.desc())
        .limit(limit)
    )
    return [
        SupplyEventRow(
            id=r["id"],
            at=r["at"],
            account_id=r["account_id"],
            number=r["number"],
            utility=Utility(r["utility"]),
            unit_code=r["unit_code"],
            from_state=SupplyState(r["from_state"]),
            to_state=SupplyState(r["to_state"]),
            event=r["event"],
            balance=Money(r["balance_fen"]),
            cause=r["cause"],
        )
        for r in conn.execute(query).mappings()
    ]


def latest_commands(conn: Connection, site_id: int, *, limit: int) -> list[CommandRow]:
    query = (
        select(
            commands,
            meters.c.address,
            meters.c.utility,
            units.c.code.label("unit_code"),
            accounts.c.number.label("account_number"),
        )
        .join(meters, meters.c.id == commands.c.meter_id)
        .join(units, units.c.id == meters.c.unit_id)
        .outerjoin(accounts, accounts.c.id == commands.c.account_id)
        .where(meters.c.site_id == site_id)
        .order_by(commands.c.id.desc())
        .limit(min(limit, MAX_PAGE))
    )
    return [
        CommandRow(
            id=r["id"],
            kind=CommandKind(r["kind"]),
            state=CommandState(r["state"]),
            attempts=r["attempts"],
            meter_id=r["meter_id"],
            meter_address=r["address"],
            utility=Utility(r["utility"]),
            unit_code=r["unit_code"],
            account_number=r["account_number"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            expires_at=r["expires_at"],
            last_error=r["last_error"],
            requested_by=r["requested_by"],
        )
        for r in conn.execute(query).mappings()
    ]


def latest_messages(conn: Connection, site_id: int, *, limit: int) -> list[MessageRow]:
    """The owners' messages (every channel but integrators' webhooks), newest first."""
    query = (
        select(
            notifications.c.id,
            notifications.c.created_at,
            notifications.c.topic,
            notifications.c.channel,
            notifications.c.recipient,
            notifications.c.state,
            notifications.c.title,
            notifications.c.body,
            notifications.c.last_error,
            accounts.c.number.label("account_number"),
        )
        .outerjoin(accounts, accounts.c.id == notifications.c.account_id)
        .where(notifications.c.site_id == site_id, notifications.c.channel.in_(OWNER_CHANNELS))
        .order_by(notifications.c.id.desc())
        .limit(min(limit, MAX_PAGE))
    )
    return [message_row(r, r["account_number"]) for r in conn.execute(query).mappings()]


def message_row(r: Mapping[Any, Any], account_number: str | None) -> MessageRow:
    """A message as the console shows it: the recipient masked."""
    channel = ChannelName(r["channel"])
    return MessageRow(
        id=r["id"],
        created_at=r["created_at"],
        topic=Topic(r["topic"]),
        channel=channel,
        recipient=mask_recipient(channel, r["recipient"]),
        state=MessageState(r["state"]),
        title=r["title"],
        body=r["body"],
        account_number=account_number,
        last_error=r["last_error"],
    )


def open_alarms(conn: Connection, site_id: int, *, limit: int) -> list[Alarm]:
    """Alarms not closed yet (open or acknowledged), most recently seen first."""
    found = [
        alarm
        for state in (AlarmState.OPEN, AlarmState.ACKNOWLEDGED)
        for alarm in alarms_repo.find(conn, state=state, site_id=site_id, limit=limit)
    ]
    found.sort(key=lambda a: (a.last_seen_at, a.id), reverse=True)
    return found[:limit]


# --- masking ----------------------------------------------------------------------------------


def mask_recipient(channel: ChannelName, recipient: str) -> str:
    """A recipient as staff may see it on a screen: ``138****0000``, ``z***@example.com``,
    ``oAbC****yz`` (WeChat). In-app recipients (``customer:<id>``) are not personal."""
    text = recipient.strip()
    if channel is ChannelName.SMS:
        return _mask_middle(text, keep_end=4)
    if channel is ChannelName.EMAIL:
        local, at, domain = text.partition("@")
        return f"{local[:1]}***@{domain}" if at else _mask_middle(text, keep_end=2)
    if channel is ChannelName.WECHAT:  # an openid is 28 characters: show only its ends
        return f"{text[:4]}****{text[-2:]}" if len(text) > 8 else "****"
    return text


def _mask_middle(text: str, *, keep_end: int) -> str:
    """Hide the four characters before the last ``keep_end`` (a phone number's 5th to 8th
    digits); a value too short to show anything safely is hidden whole."""
    if len(text) <= keep_end + 4:
        return "****"
    return text[: len(text) - keep_end - 4] + "****" + text[len(text) - keep_end :]
