"""Every page and API route, for every role: a route states its rule (or says why it is
public); a staff member of site A, a token for site A or the owner of an account of site
A gets "not found" for any object of site B; on site A each role reaches exactly what its
permissions allow (403 otherwise); and a caller without credentials gets 401 (or the
sign-in page).

Two compounds are built (``console_builders.a_compound``) with every kind of object a
route can name; routes are walked from the app itself, so a new route without a rule
fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from meterpay.alarms import repository as alarms
from meterpay.alarms.model import AlarmKind
from meterpay.auth import users
from meterpay.auth.model import ROLE_PERMISSIONS, Grant, Permission, Principal, PrincipalKind, Role
from meterpay.control import manual
from meterpay.control.manual import ControlKind, Scope
from meterpay.db import schema
from meterpay.jobs import service as jobs
from meterpay.jobs.model import JobKind
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import cash, settlement
from meterpay.metering import link_service as links
from meterpay.metering.gateways import Transport
from meterpay.payments import repository as payments_repo
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.tickets import service as tickets
from meterpay.web.app import create_app
from meterpay.web.console.job_pages import job_handlers
from meterpay.web.guard import Rule, rule_of, signed_in
from tests.integration.console_builders import a_compound
from tests.integration.signed import PASSWORD, sign_in, staff_user

ACTOR = "test"
PUBLIC_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    rule: Rule | None
    public: bool
    signed_in_only: bool


def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def _walk(routes: list[Any]) -> Iterator[Any]:
    """Every route with its full path, through the included routers."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            yield from _walk(candidates())
        elif hasattr(route, "dependant") and hasattr(route, "methods"):
            yield route


def all_routes(app: Any) -> list[Route]:
    found = []
    for route in _walk(app.router.routes):
        calls = list(_calls(route.dependant))
        rules = [r for c in calls if (r := rule_of(c)) is not None]
        public = any(hasattr(c, "public") for c in calls)
        for method in sorted(route.methods):
            found.append(
                Route(method, route.path, rules[0] if rules else None, public, signed_in in calls)
            )
    return found


# --- the two compounds ------------------------------------------------------------------


def _objects(rt: Runtime, code: str) -> dict[str, Any]:
    """Ids of every kind of object a route names, all of one site."""
    compound = a_compound(rt, code=code)
    site_id = compound.site_id
    account_id = compound.accounts["in_arrears"]
    building = sites.create_building(rt, site_id=site_id, code="B", name="楼", actor=ACTOR)
    floor = sites.create_floor(rt, building_id=building.id, level=1, actor=ACTOR)
    gateway = links.create_gateway(
        rt, site_id=site_id, code=f"GW-{code}", name="", transport=Transport.HTTP, actor=ACTOR
    )
    now = rt.clock.now()
    with rt.db.write() as conn:
        alarms.raise_in(
            conn,
            kind=AlarmKind.BYPASS,
            object_type="meter",
            object_id=compound.meters["in_arrears"],
            dedupe_key=f"matrix:{code}",
            message="test",
            now=now,
            site_id=site_id,
        )
        order_id = payments_repo.insert_order(
            conn,
            {
                "out_trade_no": f"MPS2026110{code}",
                "provider": "sandbox",
                "channel": "native",
                "site_id": site_id,
                "account_id": account_id,
                "amount_fen": 100,
                "state": "created",
                "requested_by": ACTOR,
                "created_at": now,
                "expires_at": now + timedelta(minutes=15),
                "updated_at": now,
            },
        )
    action = manual.request(
        rt,
        scope=Scope.SITE,
        scope_id=site_id,
        kind=ControlKind.CUT,
        reason="test",
        requested_by="someone-else",
    )
    receipt = cash.take_payment(
        rt,
        account_id=account_id,
        amount=Money.from_yuan("1.00"),
        method="cash",
        idempotency_key=f"matrix-{code}",
        cashier=ACTOR,
    )
    moved = settlement.settle_move_out(
        rt,
        account_id=compound.accounts["low"],
        payout="cash",
        reason="test",
        by=ACTOR,
        idempotency_key=f"matrix-move-{code}",
    )
    ticket = tickets.file_ticket(
        rt,
        account_id=account_id,
        description="插座没电",
        photos=[b"\x89PNG\r\n\x1a\n" + b"\x00" * 16],
        by=ACTOR,
        request_key=f"matrix-{code}",
    )
    ids = _first_ids(rt, site_id, account_id)
    return {
        "job_id": _finished_export(rt, site_id),
        "ticket_id": ticket.id,
        "site_id": site_id,
        "building_id": building.id,
        "floor_id": floor.id,
        "account_id": account_id,
        "meter_id": compound.meters["in_arrears"],
        "gateway_id": gateway.id,
        "action_id": action.id,
        "order_id": order_id,
        "receipt_no": receipt.receipt.receipt_no,
        "settlement_id": moved.id,
        "utility": Utility.ELECTRICITY.value,
        **ids,
    }


def _finished_export(rt: Runtime, site_id: int) -> int:
    """A site's export job, run, its workbook waiting (started by no one of the callers)."""
    someone = Principal(
        PrincipalKind.STAFF, 0, "user:someone", grants=(Grant(frozenset(Permission), site_id),)
    )
    job = jobs.submit(
        rt, JobKind.EXPORT_SITE, by=someone, site_id=site_id, params={"site_id": site_id}
    )
    while jobs.run_next(rt, job_handlers(), runner="matrix"):
        pass
    return job.id


def _first_ids(rt: Runtime, site_id: int, account_id: int) -> dict[str, Any]:
    with rt.db.read() as conn:

        def first(query: Any) -> Any:
            return conn.execute(query.limit(1)).scalar_one()

        account = schema.accounts.c
        return {
            "unit_id": first(select(schema.units.c.id).where(schema.units.c.site_id == site_id)),
            "customer_id": first(select(account.customer_id).where(account.id == account_id)),
            "tariff_id": first(
                select(schema.tariffs.c.id).where(schema.tariffs.c.site_id == site_id)
            ),
            "version_id": first(
                select(schema.tariff_versions.c.id)
                .join(schema.tariffs, schema.tariffs.c.id == schema.tariff_versions.c.tariff_id)
                .where(schema.tariffs.c.site_id == site_id)
            ),
            "alarm_id": first(select(schema.alarms.c.id).where(schema.alarms.c.site_id == site_id)),
            "command_id": first(
                select(schema.commands.c.id)
                .join(schema.meters, schema.meters.c.id == schema.commands.c.meter_id)
                .where(schema.meters.c.site_id == site_id)
            ),
            "message_id": first(
                select(schema.notifications.c.id).where(
                    schema.notifications.c.account_id == account_id,
                    schema.notifications.c.channel == "in_app",
                )
            ),
        }


OTHER_PARAMS = {
    "day": "2026-11-02",
    "run_id": "1",
    "user_id": "0",  # a bystander's id, set by ``world``
    "token_id": "1",
    "provider": "sandbox",
    "merchant": "garden",
    "gateway_code": "GW-X",
    "out_trade_no": "MPS1",
    "rest": "x",
}


def _path(template: str, objects: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return str(objects.get(name, OTHER_PARAMS.get(name, "1")))

    return re.sub(r"\{([^}]+)\}", value, template)


BODY_IDS = ("site_id", "unit_id", "account_id", "meter_id", "customer_id", "tariff_id")
OWNED = (
    "account_id",
    "meter_id",
    "order_id",
    "receipt_no",
    "customer_id",
    "message_id",
    "ticket_id",
    "position",  # a photo's place within the owner's own ticket, not an id of its own
)
"""What the owner of site A's account owns: the account, its meter, its order, receipt
and messages, and the customer record itself."""


def _body(objects: dict[str, Any], owner: bool = False) -> dict[str, Any]:
    """Every id a body can name, so body-named objects are checked too (an owner's body
    names only their own account)."""
    return {k: objects[k] for k in (("account_id",) if owner else BODY_IDS)}


def _names(path: str) -> list[str]:
    return [m.split(":")[0] for m in re.findall(r"\{([^}]+)\}", path)]


# --- the callers ------------------------------------------------------------------------


@dataclass
class Caller:
    name: str
    client: TestClient
    permissions: frozenset[Permission]
    owner: bool = False


@pytest.fixture
def world(rt: Runtime) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[Caller]]]:
    a, b = _objects(rt, "AAA"), _objects(rt, "BBB")
    app = create_app(rt)
    callers: list[Caller] = []
    clients: list[TestClient] = []
    for role in (Role.ADMIN, Role.OPERATOR, Role.CASHIER, Role.TECHNICIAN):
        name = f"{role.value}-a"
        staff_user(rt, name, role, a["site_id"])
        client = TestClient(app)
        clients.append(client)
        client.__enter__()
        client.headers["X-CSRF-Token"] = sign_in(client, name)
        callers.append(Caller(name, client, ROLE_PERMISSIONS[role]))
    OTHER_PARAMS["user_id"] = str(staff_user(rt, "bystander", Role.TECHNICIAN, a["site_id"]))
    owner = _owner_client(rt, app, a)
    clients.append(owner)
    callers.append(Caller("owner-a", owner, frozenset(), owner=True))
    yield a, b, callers
    for client in clients:
        client.__exit__(None, None, None)


def _owner_client(rt: Runtime, app: Any, a: dict[str, Any]) -> TestClient:
    phone = "13912345678"  # the compounds share their phone numbers: this one is A's alone
    sites.update_place(rt, "customers", a["customer_id"], actor=ACTOR, phone=phone)
    users.set_owner_password(rt, phone, PASSWORD, by=ACTOR)
    client = TestClient(app)
    client.__enter__()
    page = client.get("/portal/sign-in")
    pre = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert pre
    done = client.post(
        "/portal/sign-in",
        data={"csrf_token": pre.group(1), "phone": phone, "password": PASSWORD},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    page = client.get("/account/password")
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text) or re.search(
        r'name="csrf_token" value="([^"]+)"', page.text
    )
    assert token
    client.headers["X-CSRF-Token"] = token.group(1)
    return client


def _call(
    client: TestClient, route: Route, objects: dict[str, Any], owner: bool = False
) -> tuple[int, str]:
    path = _path(route.path, objects)
    query = {"site_id": objects["site_id"]} if "{" not in route.path and not owner else {}
    body = _body(objects, owner) if route.method not in ("GET", "DELETE") else None
    response = client.request(
        route.method,
        path,
        params=query,
        json=body,
        headers={"Accept": "application/json"},
        follow_redirects=False,
    )
    kind = response.headers.get("content-type", "")
    body = response.json() if kind.startswith("application/json") and response.content else {}
    found = body.get("error", {}) if isinstance(body, dict) else {}
    message = found.get("message", "") if isinstance(found, dict) else ""
    return response.status_code, message


def _guarded(app_routes: list[Route]) -> list[Route]:
    routes = [r for r in app_routes if not r.public and r.path not in PUBLIC_PATHS]
    return sorted(routes, key=lambda r: (r.method == "DELETE", r.path, r.method))


def test_every_route_states_its_rule(rt: Runtime) -> None:
    """A route with neither ``allow(...)``, ``public(...)`` nor a signed-in caller is a
    hole: it fails here."""
    routes = all_routes(create_app(rt))
    assert len(routes) > 100
    unruled = [
        f"{r.method} {r.path}"
        for r in routes
        if r.rule is None and not r.public and not r.signed_in_only and r.path not in PUBLIC_PATHS
    ]
    assert unruled == []


def test_without_credentials_every_guarded_route_is_refused(rt: Runtime) -> None:
    a = {**OTHER_PARAMS, **dict.fromkeys(BODY_IDS, 1), "utility": "electricity"}
    with TestClient(create_app(rt)) as client:
        for route in _guarded(all_routes(client.app)):
            status, _ = _call(client, route, a)
            expected = 401 if route.path.startswith("/api/") else 303
            assert status in (401, 303, 403), f"{route.method} {route.path}: {status}"
            if route.method == "GET":
                assert status == expected, f"{route.method} {route.path}: {status}"


SPEC_DIR = Path(__file__).parent / "authz"
"""The approved matrix, one file per part of the product (``core.txt``, …): a line per
guarded route, ``METHOD path code``. Codes: R site.read, SW site.write, MW meter.write, RW
reading.write, TW tariff.write, CW control.write, CA control.approve, AW alarm.write, C
money.counter, T money.topup, RF money.refund, RC money.reconcile, NW notify.write, AU
audit.read, UM user.manage, O owners only; +o owners may use it on their own accounts,
* only all-sites holders, ~ the route filters by the caller itself. A route's rule in the
code must be the one approved here, and the behaviour is tested against this, not against
the code."""
CODES = {
    "R": Permission.SITE_READ,
    "SW": Permission.SITE_WRITE,
    "MW": Permission.METER_WRITE,
    "RW": Permission.READING_WRITE,
    "TW": Permission.TARIFF_WRITE,
    "CW": Permission.CONTROL_WRITE,
    "CA": Permission.CONTROL_APPROVE,
    "AW": Permission.ALARM_WRITE,
    "C": Permission.COUNTER,
    "T": Permission.TOPUP,
    "RF": Permission.REFUND,
    "RC": Permission.RECONCILE,
    "NW": Permission.NOTIFY_WRITE,
    "AU": Permission.AUDIT_READ,
    "UM": Permission.USER_MANAGE,
}
HIDDEN = "no such object here"
EVERY_SITE = "this is for administrators of every site"
"""The guard's own 404 messages (a use case's "not found" says what it did not find)."""


def _spec() -> dict[tuple[str, str], Rule]:
    rules = {}
    lines = [
        line.split("#")[0].strip()
        for spec in sorted(SPEC_DIR.glob("*.txt"))
        for line in spec.read_text(encoding="utf-8").splitlines()
    ]
    for line in filter(None, lines):
        method, path, code = line.split()
        base = code.rstrip("+o*~").split("+")[0]
        if base == "O":  # a page for owners only
            rules[(method, path)] = Rule(None, owners=True)
            continue
        rules[(method, path)] = Rule(
            CODES[base], owners="+o" in code, everywhere="*" in code, own_filter="~" in code
        )
    return rules


def test_every_guarded_route_has_the_approved_rule(rt: Runtime) -> None:
    spec = _spec()
    declared = {(r.method, r.path): r.rule for r in _guarded(all_routes(create_app(rt))) if r.rule}
    assert declared == spec


def test_each_role_reaches_exactly_its_own_site_and_permissions(
    rt: Runtime, world: tuple[dict[str, Any], dict[str, Any], list[Caller]]
) -> None:
    """On site B's objects every caller of site A gets 404 (403 for the routes of
    all-sites holders); on site A's, each gets what the approved matrix gives its role."""
    a, b, callers = world
    spec = _spec()
    problems: list[str] = []
    for route in _guarded(all_routes(create_app(rt))):
        rule = spec.get((route.method, route.path))
        if rule is None:
            continue
        names = _names(route.path)
        on_b = "{" not in route.path or any(n in a for n in names if n != "utility")
        for caller in callers:
            status, _ = _call(caller.client, route, b, caller.owner)
            wanted = (403, 404) if rule.everywhere or caller.owner else (404,)
            if on_b and status not in wanted:
                problems.append(f"{caller.name} {route.method} {route.path} on B: {status}")
        # those who may not go first: a DELETE by one who may leaves nothing to refuse
        for caller in sorted(callers, key=lambda c: _may(c, rule, names)):
            status, message = _call(caller.client, route, a, caller.owner)
            if not route.path.startswith("/api/") and status == 404:
                message = HIDDEN  # a page answers with an HTML page, not our JSON
            verdict = _verdict(caller, rule, names, status, message)
            if verdict:
                problems.append(f"{caller.name} {route.method} {route.path}: {verdict}")
    assert problems == [], "\n".join(problems)


def _may(caller: Caller, rule: Rule, names: list[str]) -> bool:
    if caller.owner:
        mine = all(n in OWNED or n == "utility" for n in names)
        if rule.permission is None:  # a page for owners only: their own things, or none
            return mine
        return rule.owners and bool(names) and mine
    return (
        rule.permission is not None
        and not rule.everywhere
        and (rule.permission in caller.permissions)
    )


def _verdict(caller: Caller, rule: Rule, names: list[str], status: int, message: str) -> str:
    """What is wrong with ``status`` for this caller, if anything."""
    passed = status not in (401, 403) and not (status == 404 and message == HIDDEN)
    if _may(caller, rule, names):
        return "" if passed else f"{status}, may"
    if caller.owner or rule.everywhere or rule.permission is None:  # never let through
        return (
            "" if (status in (403, 404) and not passed) or status == 404 else f"{status}, may not"
        )
    return "" if status == 403 else f"{status}, may not"
