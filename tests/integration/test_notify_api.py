"""The notification routes: the owners' inbox, the staff's outbox, webhook endpoints."""

from __future__ import annotations

from fastapi.testclient import TestClient

from meterpay.notify import service as notify
from meterpay.notify.model import Topic
from meterpay.runtime import Runtime
from tests.integration.notify_builders import a_reachable_home

PHONE = "13800138000"


def test_an_owner_reads_the_inbox_newest_first_and_marks_a_message_read(
    rt: Runtime, api: TestClient
) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    for key, topic in (("w1", Topic.WARNING1), ("cut", Topic.CUT_OFF)):
        notify.queue(
            rt, site_id=owner.site_id, topic=topic, dedupe_key=key, account_id=owner.account_id
        )
    inbox = api.get(f"/api/v1/accounts/{owner.account_id}/messages").json()
    assert [m["topic"] for m in inbox] == ["cut_off", "warning1"]
    assert inbox[0]["title"] == "已停电" and inbox[0]["read"] is False
    read = api.post(f"/api/v1/accounts/{owner.account_id}/messages/{inbox[0]['id']}/read")
    assert read.status_code == 200 and read.json()["read"] is True
    assert read.json()["read_at"].endswith(("Z", "+00:00"))
    other = api.post(f"/api/v1/accounts/{owner.account_id + 99}/messages/{inbox[0]['id']}/read")
    assert other.status_code == 404


def test_staff_see_the_outbox_by_state_and_each_messages_deliveries(
    rt: Runtime, api: TestClient
) -> None:
    owner = a_reachable_home(rt, phone=PHONE)
    notify.queue(
        rt,
        site_id=owner.site_id,
        topic=Topic.TOP_UP_RECEIPT,
        dedupe_key="topup:1",
        account_id=owner.account_id,
        params={"amount": "100.00"},
    )
    pending = api.get("/api/v1/notifications", params={"state": "pending"}).json()
    [sms] = pending["items"]
    assert (sms["channel"], sms["recipient"], sms["attempts"]) == ("sms", PHONE, 0)
    sent = api.get(
        "/api/v1/notifications", params={"account_id": owner.account_id, "state": "sent"}
    ).json()["items"]
    log = api.get(f"/api/v1/notifications/{sent[0]['id']}/deliveries").json()
    assert [d["outcome"] for d in log] == ["sent"]
    assert api.get("/api/v1/notifications/99999/deliveries").status_code == 404


def test_a_webhook_secret_is_shown_once_and_never_listed(rt: Runtime, api: TestClient) -> None:
    owner = a_reachable_home(rt)
    created = api.post(
        f"/api/v1/sites/{owner.site_id}/webhooks",
        json={"url": "https://erp.example.com/meterpay", "topics": ["cut_off", "restored"]},
    )
    assert created.status_code == 201
    assert created.json()["secret"].startswith("whsec_")
    listed = api.get(f"/api/v1/sites/{owner.site_id}/webhooks").json()
    assert [h["url"] for h in listed] == ["https://erp.example.com/meterpay"]
    assert "secret" not in listed[0] and listed[0]["topics"] == ["cut_off", "restored"]
    bad = api.post(f"/api/v1/sites/{owner.site_id}/webhooks", json={"url": "ftp://x.example"})
    assert bad.status_code == 422


def test_a_customer_can_be_written_to_in_english(rt: Runtime, api: TestClient) -> None:
    owner = a_reachable_home(rt)
    answer = api.put(f"/api/v1/customers/{owner.customer_id}/language", json={"language": "en"})
    assert answer.status_code == 204
    notify.queue(
        rt,
        site_id=owner.site_id,
        topic=Topic.RESTORED,
        dedupe_key="r1",
        account_id=owner.account_id,
    )
    [message] = api.get(f"/api/v1/accounts/{owner.account_id}/messages").json()
    assert message["title"] == "Electricity supply restored"
