"""Work orders (报修) end to end: an owner files a request with photos from the portal,
refused files store nothing, staff of the site see the photos and move the ticket along
(each move audited and shown to the owner), staff of another site find nothing; the
owner withdraws a request not yet started, and staff read why."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from meterpay.audit.service import AuditQuery, search
from meterpay.auth.model import Role
from meterpay.kernel.errors import NotFound
from meterpay.runtime import Runtime
from meterpay.tickets import service as tickets
from meterpay.tickets.model import MAX_PHOTO_BYTES, TicketState
from meterpay.web.app import create_app
from tests.integration.builders import Home, a_home
from tests.integration.portal_people import owner_browser, owner_of, staff_browser
from tests.integration.signed import sign_in, staff_user

PHONE = "13900002222"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x11" * 200
PNG = b"\x89PNG\r\n\x1a\n" + b"\x22" * 200


def _home_with_owner(rt: Runtime, code: str = "HOME", phone: str = PHONE) -> Home:
    home = a_home(rt, code=code)
    owner_of(rt, home.account.id, home.site.id, phone)
    return home


def _form(client: object, path: str) -> dict[str, str]:
    page = client.get(path)
    assert page.status_code == 200, page.text
    key = re.search(r'name="key" value="([^"]+)"', page.text)
    assert key
    return {"key": key.group(1), "csrf_token": client.headers["X-CSRF-Token"]}


def test_an_owner_files_a_repair_request_with_photos_and_staff_of_the_site_see_them(
    rt: Runtime,
) -> None:
    home = _home_with_owner(rt)
    path = f"/portal/accounts/{home.account.id}/tickets"
    with owner_browser(rt, PHONE) as phone:
        fields = _form(phone, path) | {"description": "厨房插座没电"}
        files = [("photos", ("a.jpg", JPEG, "image/jpeg")), ("photos", ("b.png", PNG, "image/png"))]
        sent = phone.post(path, data=fields, files=files, follow_redirects=False)
        assert sent.status_code == 303, sent.text
        again = phone.post(path, data=fields, files=files, follow_redirects=False)
        assert again.status_code == 303  # the same form twice: one ticket
        (ticket,) = tickets.tickets_of_account(rt, home.account.id)
        assert ticket.photo_count == 2 and ticket.state is TicketState.OPEN
        listed = phone.get(path + "?sent=1")
        assert "厨房插座没电" in listed.text and "报修已提交" in listed.text
        shown = phone.get(f"/portal/tickets/{ticket.id}")
        assert shown.status_code == 200 and "待受理" in shown.text
        photo = phone.get(f"/api/v1/tickets/{ticket.id}/photos/1")
        assert photo.content == JPEG and photo.headers["content-type"] == "image/jpeg"
    with staff_browser(rt, "tech", Role.TECHNICIAN, home.site.id) as staff:
        page = staff.get(f"/console/tickets?site_id={home.site.id}")
        assert page.status_code == 200 and f"#{ticket.id}" in page.text
        detail = staff.get(f"/console/tickets/{ticket.id}")
        assert f"/api/v1/tickets/{ticket.id}/photos/2" in detail.text
        assert staff.get(f"/api/v1/tickets/{ticket.id}/photos/2").content == PNG


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ([("photos", ("x.jpg", b"GIF89a" + b"\x00" * 50, "image/jpeg"))], "JPEG, PNG or WebP"),
        ([("photos", ("big.jpg", JPEG + b"\x00" * MAX_PHOTO_BYTES, "image/jpeg"))], "5 MB"),
        ([("photos", (f"{n}.png", PNG, "image/png")) for n in range(4)], "at most 3 photos"),
    ],
)
def test_a_file_that_is_not_an_accepted_photo_is_refused_and_nothing_is_stored(
    rt: Runtime, files: list[tuple[str, tuple[str, bytes, str]]], problem: str
) -> None:
    home = _home_with_owner(rt)
    path = f"/portal/accounts/{home.account.id}/tickets"
    with owner_browser(rt, PHONE) as phone:
        fields = _form(phone, path) | {"description": "水表漏水"}
        refused = phone.post(path, data=fields, files=files)
        assert refused.status_code == 422
        assert problem in refused.text and "水表漏水" in refused.text  # the words are kept
    assert tickets.tickets_of_account(rt, home.account.id) == []


def test_staff_of_another_site_and_another_owner_find_no_ticket(rt: Runtime) -> None:
    home = _home_with_owner(rt)
    east = _home_with_owner(rt, code="EAST", phone="13900003333")
    filed = tickets.file_ticket(
        rt, account_id=home.account.id, description="门口灯不亮", photos=[PNG], by="owner:1"
    )
    with staff_browser(rt, "east-tech", Role.TECHNICIAN, east.site.id) as staff:
        for path in (
            f"/console/tickets/{filed.id}",
            f"/api/v1/tickets/{filed.id}",
            f"/api/v1/tickets/{filed.id}/photos/1",
        ):
            assert staff.get(path).status_code == 404, path
        moved = staff.post(
            f"/api/v1/tickets/{filed.id}/moves", json={"to": "assigned", "note": "x"}
        )
        assert moved.status_code == 404
    with owner_browser(rt, "13900003333") as other:
        assert other.get(f"/portal/tickets/{filed.id}").status_code == 404
        assert other.get(f"/api/v1/tickets/{filed.id}/photos/1").status_code == 404
        assert other.get(f"/portal/accounts/{home.account.id}/tickets").status_code == 404
    assert tickets.ticket_view(rt, filed.id).ticket.state is TicketState.OPEN


def test_each_move_is_audited_and_the_owner_reads_the_notes(rt: Runtime) -> None:
    home = _home_with_owner(rt)
    filed = tickets.file_ticket(
        rt, account_id=home.account.id, description="空调插座跳闸", by="owner:1"
    )
    with staff_browser(rt, "tech", Role.TECHNICIAN, home.site.id) as staff:
        for to, note in (
            ("assigned", "明早上门"),
            ("in_progress", "已到现场"),
            ("done", "已更换插座"),
        ):
            done = staff.post(
                f"/console/tickets/{filed.id}/moves",
                data={"to": to, "note": note, "csrf_token": staff.headers["X-CSRF-Token"]},
                follow_redirects=False,
            )
            assert done.status_code == 303, done.text
        illegal = staff.post(f"/api/v1/tickets/{filed.id}/moves", json={"to": "in_progress"})
        assert illegal.status_code == 409
        assert illegal.json()["error"]["code"] == "illegal_ticket_move"
    with staff_browser(rt, "cashier", Role.CASHIER, home.site.id) as cashier:
        refused = cashier.post(f"/api/v1/tickets/{filed.id}/moves", json={"to": "cancelled"})
        assert refused.status_code == 403  # seeing is not working on it
    entries = search(
        rt, AuditQuery(object_type="ticket", object_id=str(filed.id)), visible_sites=None
    )
    assert [e.action for e in entries][::-1] == [
        "ticket.filed",
        "ticket.assigned",
        "ticket.in_progress",
        "ticket.done",
    ]
    assert {e.actor for e in entries[:3]} == {"user:tech"}
    view = tickets.ticket_view(rt, filed.id)
    assert view.ticket.assignee == "user:tech" and view.ticket.closed_at is not None
    with owner_browser(rt, PHONE) as phone:
        page = phone.get(f"/portal/tickets/{filed.id}")
        assert "已完成" in page.text and "已更换插座" in page.text and "明早上门" in page.text


def test_the_api_files_a_ticket_as_multipart_and_lists_it_for_the_owner(rt: Runtime) -> None:
    home = _home_with_owner(rt)
    with owner_browser(rt, PHONE) as phone:
        made = phone.post(
            f"/api/v1/accounts/{home.account.id}/tickets",
            data={"description": "楼道水管滴水", "key": "k-1"},
            files=[("photos", ("p.png", PNG, "image/png"))],
        )
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["photos"] == [f"/api/v1/tickets/{body['id']}/photos/1"]
        listed = phone.get(f"/api/v1/accounts/{home.account.id}/tickets").json()
        assert [t["id"] for t in listed["items"]] == [body["id"]]
        assert phone.get("/api/v1/tickets").status_code == 403  # the staff's list


def test_a_technician_of_one_site_sees_that_sites_work_orders_without_naming_it(
    rt: Runtime,
) -> None:
    """The console's list keeps to the reader's sites when no site is named."""
    east, west = a_home(rt, code="EAST"), a_home(rt, code="WEST")
    mine = tickets.file_ticket(rt, account_id=east.account.id, description="东区漏水", by="o1")
    theirs = tickets.file_ticket(rt, account_id=west.account.id, description="西区停电", by="o2")
    staff_user(rt, "tech1", Role.TECHNICIAN, east.site.id)
    with TestClient(create_app(rt)) as client:
        sign_in(client, "tech1")
        page = client.get("/console/tickets")
        assert page.status_code == 200
        assert "东区漏水" in page.text and "西区停电" not in page.text
        assert client.get(f"/console/tickets/{theirs.id}").status_code == 404
        assert client.get(f"/console/tickets/{mine.id}").status_code == 200


def test_the_owner_hears_of_each_move_in_their_messages(rt: Runtime) -> None:
    home = a_home(rt)
    owner_of(rt, home.account.id, home.site.id, PHONE)
    filed = tickets.file_ticket(rt, account_id=home.account.id, description="灯不亮", by="owner")
    tickets.move_ticket(rt, filed.id, TicketState.ASSIGNED, by="user:op", assignee="张师傅")
    tickets.move_ticket(rt, filed.id, TicketState.IN_PROGRESS, by="user:tech")
    tickets.move_ticket(rt, filed.id, TicketState.DONE, by="user:tech", note="已更换灯泡")
    with owner_browser(rt, PHONE) as client:
        inbox = client.get(f"/api/v1/accounts/{home.account.id}/messages").json()
    texts = [m["body"] for m in inbox]
    assert any(f"工单 #{filed.id}" in t and "已派单" in t for t in texts), texts
    assert any("已完成：已更换灯泡" in t for t in texts), texts


def _cancel(client: TestClient, ticket_id: int, reason: str = "") -> httpx.Response:
    return client.post(
        f"/portal/tickets/{ticket_id}/cancel",
        data={"csrf_token": client.headers["X-CSRF-Token"], "reason": reason, "lang": "zh-CN"},
        follow_redirects=False,
    )


@pytest.mark.parametrize("moved", [(), (TicketState.ASSIGNED,)])
def test_an_owner_cancels_their_request_before_work_starts_and_staff_see_why(
    rt: Runtime, moved: tuple[TicketState, ...]
) -> None:
    home = _home_with_owner(rt)
    filed = tickets.file_ticket(rt, account_id=home.account.id, description="门铃坏了", by="o")
    for to in moved:
        tickets.move_ticket(rt, filed.id, to, by="user:op", assignee="张师傅")
    with owner_browser(rt, PHONE) as phone:
        page = phone.get(f"/portal/tickets/{filed.id}")
        assert f'action="/portal/tickets/{filed.id}/cancel"' in page.text
        assert 'data-confirm="确定要取消这条报修吗' in page.text and "confirm.js" in page.text
        done = _cancel(phone, filed.id, "已经自己修好了")
        assert done.status_code == 303, done.text
        shown = phone.get(done.headers["location"])
        assert "报修已取消" in shown.text and "已取消" in shown.text
        assert "已经自己修好了" in shown.text
        assert f'action="/portal/tickets/{filed.id}/cancel"' not in shown.text
    view = tickets.ticket_view(rt, filed.id)
    assert view.ticket.state is TicketState.CANCELLED and view.ticket.closed_at is not None
    last = view.events[-1]
    assert last.to_state is TicketState.CANCELLED and last.note == "已经自己修好了"
    assert last.actor.startswith("owner:")
    (entry,) = search(rt, AuditQuery(action="ticket.cancelled"), visible_sites=None)
    assert entry.actor == last.actor and entry.reason == "已经自己修好了"
    assert entry.before == {
        "state": "assigned" if moved else "open",
        "assignee": "张师傅" if moved else None,
    }
    with staff_browser(rt, "tech", Role.TECHNICIAN, home.site.id) as staff:
        detail = staff.get(f"/console/tickets/{filed.id}")
        assert "已经自己修好了" in detail.text and "业主本人" in detail.text
        assert last.actor not in detail.text  # the owner's user id means nothing to staff


def test_an_owner_cannot_cancel_once_work_has_started_and_nothing_changes(rt: Runtime) -> None:
    home = _home_with_owner(rt)
    filed = tickets.file_ticket(rt, account_id=home.account.id, description="电表不走", by="o")
    tickets.move_ticket(rt, filed.id, TicketState.ASSIGNED, by="user:op")
    tickets.move_ticket(rt, filed.id, TicketState.IN_PROGRESS, by="user:tech", note="已到现场")
    before = tickets.ticket_view(rt, filed.id)
    with owner_browser(rt, PHONE) as phone:
        page = phone.get(f"/portal/tickets/{filed.id}")
        assert f"/portal/tickets/{filed.id}/cancel" not in page.text  # no button to press
        refused = _cancel(phone, filed.id, "不修了")
        assert refused.status_code == 409
        assert "only a request not yet started can be cancelled" in refused.text
        assert "处理中" in refused.text
    assert tickets.ticket_view(rt, filed.id) == before
    assert search(rt, AuditQuery(action="ticket.cancelled"), visible_sites=None) == []


def test_another_owners_or_staffs_cancel_finds_no_ticket(rt: Runtime) -> None:
    home = _home_with_owner(rt)
    _home_with_owner(rt, code="EAST", phone="13900003333")
    filed = tickets.file_ticket(rt, account_id=home.account.id, description="漏水", by="o")
    with owner_browser(rt, "13900003333") as other:
        assert _cancel(other, filed.id).status_code == 404
    with staff_browser(rt, "operator", Role.OPERATOR, home.site.id) as staff:
        assert _cancel(staff, filed.id).status_code == 404
    with pytest.raises(NotFound):
        tickets.cancel_by_owner(rt, filed.id, customer_ids=frozenset({-1}), by="owner:x")
    assert tickets.ticket_view(rt, filed.id).ticket.state is TicketState.OPEN
