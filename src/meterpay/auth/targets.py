"""What a request touches: the ids in its path, query and JSON body resolved to the
sites (and, for accounts, the customers) they belong to — so the one decision in
``auth.model.decide`` can be made before any use case runs. They are read in the same
transaction as the caller (``auth.service.access_of``).

Invariants:
- every id a request names is resolved; one that does not exist makes the request
  "not found" (the same answer an object of another site gets). A background job's id is
  not among them: a job may span sites, and ``jobs.service`` decides who sees it;
- an id that names a deployment-wide object (an alarm without a site) resolves to no
  site, which only an all-sites principal may touch;
- ids are read from the path and query (``site_id``, ``account_id``, …) and from the
  JSON body at the top level and one list deep (a batch of readings names many
  meters), and ``scope``/``scope_id`` pairs of group control.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Select, null, select

from meterpay.auth.model import Target
from meterpay.db.schema import (
    accounts,
    alarms,
    buildings,
    commands,
    control_actions,
    counter_receipts,
    customers,
    floors,
    gateways,
    meters,
    move_out_settlements,
    notifications,
    sites,
    tariffs,
    tickets,
    topup_orders,
    units,
)


@dataclass(frozen=True, slots=True)
class Spec:
    """Where an id lives: the rows to read, its own column, its site's, its customer's."""

    source: Any
    key: Any
    site: Any
    customer: Any = None

    def query(self, values: list[Any]) -> Select[Any]:
        customer = self.customer if self.customer is not None else null()
        return (
            select(self.key, self.site, customer)
            .select_from(self.source)
            .where(self.key.in_(values))
        )


def _via_account(table: Any) -> Spec:
    joined = table.outerjoin(accounts, accounts.c.id == table.c.account_id)
    return Spec(joined, table.c.id, table.c.site_id, accounts.c.customer_id)


_ACCOUNT: Final = Spec(accounts, accounts.c.id, accounts.c.site_id, accounts.c.customer_id)
RESOLVERS: Final[dict[str, Spec]] = {
    "site_id": Spec(sites, sites.c.id, sites.c.id),
    "building_id": Spec(buildings, buildings.c.id, buildings.c.site_id),
    "floor_id": Spec(
        floors.join(buildings, buildings.c.id == floors.c.building_id),
        floors.c.id,
        buildings.c.site_id,
    ),
    "unit_id": Spec(units, units.c.id, units.c.site_id),
    "customer_id": Spec(customers, customers.c.id, customers.c.site_id, customers.c.id),
    "account_id": _ACCOUNT,
    "to_account_id": _ACCOUNT,
    "meter_id": _via_account(meters),
    "tariff_id": Spec(tariffs, tariffs.c.id, tariffs.c.site_id),
    "gateway_id": Spec(gateways, gateways.c.id, gateways.c.site_id),
    "alarm_id": Spec(alarms, alarms.c.id, alarms.c.site_id),
    "command_id": Spec(
        commands.join(meters, meters.c.id == commands.c.meter_id).outerjoin(
            accounts, accounts.c.id == commands.c.account_id
        ),
        commands.c.id,
        meters.c.site_id,
        accounts.c.customer_id,
    ),
    "action_id": Spec(control_actions, control_actions.c.id, control_actions.c.site_id),
    "order_id": _via_account(topup_orders),
    "settlement_id": _via_account(move_out_settlements),
    "receipt_no": Spec(
        counter_receipts.outerjoin(accounts, accounts.c.id == counter_receipts.c.account_id),
        counter_receipts.c.receipt_no,
        counter_receipts.c.site_id,
        accounts.c.customer_id,
    ),
    "message_id": Spec(
        notifications, notifications.c.id, notifications.c.site_id, notifications.c.customer_id
    ),
    "ticket_id": Spec(tickets, tickets.c.id, tickets.c.site_id, tickets.c.customer_id),
}
SCOPES: Final = {
    "meter": "meter_id",
    "floor": "floor_id",
    "building": "building_id",
    "site": "site_id",
}


@dataclass(frozen=True, slots=True)
class Resolved:
    targets: tuple[Target, ...]
    missing: tuple[str, ...] = ()
    """``name=value`` of ids that name nothing."""
    everywhere: bool = False
    """An id named a deployment-wide object (no site)."""


NOTHING: Final = Resolved(())
"""No ids named."""


def named_ids(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The (key, value) ids a request names in its path and query (``params``)."""
    return _unique((k, v) for k, v in params.items() if k in RESOLVERS and v not in (None, ""))


def body_ids(body: Any) -> list[tuple[str, Any]]:
    """The (key, value) ids a JSON body or form names, one list deep."""
    found: list[tuple[str, Any]] = []
    for item in _objects(body):
        found.extend((k, v) for k, v in item.items() if k in RESOLVERS and _scalar(v))
        scope, scope_id = item.get("scope"), item.get("scope_id")
        if isinstance(scope, str) and scope in SCOPES and _scalar(scope_id):
            found.append((SCOPES[scope], scope_id))
    return _unique(found)


def _unique(ids: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return list(dict.fromkeys((k, str(v)) for k, v in ids))


def _objects(body: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(body, Mapping):
        yield body
        for value in body.values():
            if isinstance(value, list):
                yield from (v for v in value[:50_000] if isinstance(v, Mapping))


def _scalar(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool) and value != ""


def resolve(conn: Connection, ids: Iterable[tuple[str, Any]]) -> Resolved:
    """The sites (and customers) of ``ids``, read in the caller's transaction
    (``auth.service.access_of`` reads them with the caller); no ids, no query."""
    targets: dict[Target, None] = {}
    missing: list[str] = []
    everywhere = False
    by_key: dict[str, list[str]] = {}
    for key, value in ids:
        by_key.setdefault(key, []).append(value)
    for key, values in by_key.items():
        spec = RESOLVERS[key]
        typed = {v: (v if key == "receipt_no" else _int(v)) for v in values}
        wanted = sorted({t for t in typed.values() if t is not None}, key=str)
        found: dict[Any, tuple[Any, Any]] = {}
        for at in range(0, len(wanted), 1000):
            rows = conn.execute(spec.query(wanted[at : at + 1000])).all()
            found.update({row[0]: (row[1], row[2]) for row in rows})
        for raw, typed_value in typed.items():
            if typed_value not in found:
                missing.append(f"{key}={raw}")
                continue
            site_id, customer_id = found[typed_value]
            if site_id is None:
                everywhere = True
            else:
                target = Target(int(site_id), int(customer_id) if customer_id else None)
                targets[target] = None
    return Resolved(tuple(targets), tuple(missing), everywhere)


def _int(value: str) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if 0 < number < 2**63 else None
