"""NB-IoT platforms push over HTTP: CTWing and OneNET bill meters, once, and only when signed."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

from meterpay.kernel.clock import FixedClock
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import service as ledger
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Protocol
from meterpay.runtime import Runtime
from meterpay.web.app import create_app
from tests.conftest import START
from tests.integration.builders import ACTOR, Home, a_home
from tests.integration.http import API, error, ok
from tests.integration.signed import token_for

IMEI = "861234050123456"
CTWING_TOKEN = "ct-7Hq2mX9vLw4k"
ONENET_TOKEN = "mp-onenet-token-01"
READ_AT_MS = 1793494800000  # START + 1 h, in milliseconds
CTWING = f"{API}/push/ctwing/ctwing-15045240"
ONENET = f"{API}/push/onenet/onenet-C6z4Zk012B"


@dataclass
class PushHome:
    home: Home
    gateway_id: int


def a_pushed_water_meter(rt: Runtime, api: TestClient, platform: str, token: str) -> PushHome:
    """A water home whose meter is an NB-IoT device behind a platform gateway, 100 yuan paid."""
    home = a_home(rt, utility=Utility.WATER, price="5.00")
    code = "ctwing-15045240" if platform == "ctwing" else "onenet-C6z4Zk012B"
    gateway = links.create_gateway(
        rt, site_id=home.site.id, code=code, name="NB 水表", transport=Transport.HTTP, actor=ACTOR
    )
    metering.update_meter(
        rt, home.meter.id, gateway_id=gateway.id, address=IMEI, protocol=Protocol.HTTP, actor=ACTOR
    )
    settings = {
        "platform": platform,
        "token": token,
        "fields": {"total": "cumulativeFlow", "scale": "0.001", "valve": "valveState"},
    }
    ok(api.put(f"{API}/gateways/{gateway.id}/push", json=settings))
    ledger.cash_top_up(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan("100"),
        idempotency_key="T-1",
        cashier=ACTOR,
    )
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(hours=2))  # the pushed reading (START + 1 h) is in the past
    return PushHome(home, gateway.id)


def ctwing_report(*, imei: str = IMEI, litres: int = 1500) -> bytes:
    return json.dumps(
        {
            "upPacketSN": -1,
            "upDataSN": -1,
            "topic": "v1/up/ad19prof",
            "timestamp": READ_AT_MS,
            "tenantId": "2000033827",
            "serviceId": "",
            "protocol": "lwm2m",
            "productId": "15045240",
            "payload": {
                "serviceId": "meterReport",
                "serviceData": {"cumulativeFlow": litres, "valveState": 0},
            },
            "messageType": "dataReport",
            "deviceType": "",
            "deviceId": "d01308047f864601a821e02dc328eab4",
            "assocAssetId": "",
            "IMSI": "undefined",
            "IMEI": imei,
        }
    ).encode()


def onenet_push(token: str = ONENET_TOKEN, *, litres: int = 1500) -> bytes:
    """An old-format OneNET data point push, signed as the platform signs (md5, base64)."""
    msg = json.dumps(
        {"type": 1, "imei": IMEI, "dev_id": 2016617, "ds_id": "cumulativeFlow",
         "at": READ_AT_MS, "value": litres},
        separators=(",", ":"),
    )  # fmt: skip
    nonce = "K2yFq9Wn"
    digest = hashlib.md5((token + nonce + msg).encode()).digest()  # noqa: S324  OneNET's rule
    signature = base64.b64encode(digest).decode()
    return f'{{"msg":{msg},"msg_signature":"{signature}","nonce":"{nonce}"}}'.encode()


def balance(api: TestClient, account_id: int) -> str:
    return str(ok(api.get(f"{API}/accounts/{account_id}"))["balance"])


def frames(rt: Runtime, code: str) -> list[dict[str, object]]:
    return links.recent_frames(rt, gateway_code=code)


def http_readings(rt: Runtime, meter_id: int) -> list[dict[str, object]]:
    return [r for r in metering.recent_readings(rt, meter_id) if r["source"] == "http"]


# --- CTWing -----------------------------------------------------------------------------------


def test_a_ctwing_data_report_bills_the_meter_behind_the_gateway(
    rt: Runtime, api: TestClient
) -> None:
    """1 500 litres at 5 yuan/m³ is 7.50 yuan; the reading is stored with source http."""
    pushed = a_pushed_water_meter(rt, api, "ctwing", CTWING_TOKEN)
    answer = ok(api.post(CTWING, params={"token": CTWING_TOKEN}, content=ctwing_report()))
    assert answer == {
        "messages": 1,
        "readings": 1,
        "duplicates": 0,
        "charged": "7.50",
        "unknown_devices": [],
    }
    assert balance(api, pushed.home.account.id) == "92.50"
    [reading] = http_readings(rt, pushed.home.meter.id)
    assert reading["total"] == Decimal("1.5")
    assert reading["read_at"] == START + timedelta(hours=1)
    assert reading["status_word"] == 0  # valve open
    [frame] = frames(rt, "ctwing-15045240")
    assert frame["meter_id"] == pushed.home.meter.id
    assert "total 1.5000 (valid)" in str(frame["note"])
    meter = metering.get_meter(rt, pushed.home.meter.id)
    assert (meter.link_status, meter.last_heard_at) == ("online", rt.clock.now())


def test_a_repeated_ctwing_push_bills_once(rt: Runtime, api: TestClient) -> None:
    """The platform retries: the second delivery is a 200 and a duplicate, not a charge."""
    pushed = a_pushed_water_meter(rt, api, "ctwing", CTWING_TOKEN)
    ok(api.post(CTWING, params={"token": CTWING_TOKEN}, content=ctwing_report()))
    again = ok(api.post(CTWING, headers={"X-Push-Token": CTWING_TOKEN}, content=ctwing_report()))
    assert (again["readings"], again["duplicates"], again["charged"]) == (0, 1, "0.00")
    assert balance(api, pushed.home.account.id) == "92.50"
    assert len(http_readings(rt, pushed.home.meter.id)) == 1


def test_a_ctwing_push_without_the_right_token_changes_nothing(
    rt: Runtime, api: TestClient
) -> None:
    """401, no reading, no frame, the gateway not even marked seen."""
    pushed = a_pushed_water_meter(rt, api, "ctwing", CTWING_TOKEN)
    error(
        api.post(CTWING, params={"token": "guessed-token"}, content=ctwing_report()),
        401,
        "bad_signature",
    )
    error(api.post(CTWING, content=ctwing_report()), 401, "bad_signature")
    assert balance(api, pushed.home.account.id) == "100.00"
    assert http_readings(rt, pushed.home.meter.id) == []
    assert frames(rt, "ctwing-15045240") == []
    assert links.get_gateway(rt, pushed.gateway_id).last_seen_at is None


def test_a_malformed_ctwing_push_is_a_400_naming_the_field(rt: Runtime, api: TestClient) -> None:
    pushed = a_pushed_water_meter(rt, api, "ctwing", CTWING_TOKEN)
    bad = ctwing_report().replace(b'"cumulativeFlow": 1500', b'"cumulativeFlow": "lots"')
    found = error(
        api.post(CTWING, params={"token": CTWING_TOKEN}, content=bad), 400, "malformed_push"
    )
    assert found["details"]["field"] == "payload.serviceData.cumulativeFlow"
    assert balance(api, pushed.home.account.id) == "100.00"
    assert frames(rt, "ctwing-15045240") == []


def test_a_push_from_an_unknown_device_is_acknowledged_and_logged(
    rt: Runtime, api: TestClient
) -> None:
    """A 200 (or the platform retries forever), the whole body in the frame log, no charge."""
    pushed = a_pushed_water_meter(rt, api, "ctwing", CTWING_TOKEN)
    body = ctwing_report(imei="869999999999999")
    answer = ok(api.post(CTWING, params={"token": CTWING_TOKEN}, content=body))
    assert (answer["readings"], answer["unknown_devices"]) == (0, ["imei 869999999999999"])
    [frame] = frames(rt, "ctwing-15045240")
    assert frame["meter_id"] is None
    assert frame["note"] == "unknown device: imei 869999999999999"
    assert bytes.fromhex(str(frame["hex"])) == body
    assert balance(api, pushed.home.account.id) == "100.00"


def test_an_unknown_gateway_or_another_platform_is_not_found(rt: Runtime, api: TestClient) -> None:
    a_pushed_water_meter(rt, api, "ctwing", CTWING_TOKEN)
    error(
        api.post(
            f"{API}/push/ctwing/nobody", params={"token": CTWING_TOKEN}, content=ctwing_report()
        ),
        404,
        "not_found",
    )
    error(api.post(f"{API}/push/onenet/ctwing-15045240", content=onenet_push()), 404, "not_found")


# --- OneNET -----------------------------------------------------------------------------------


def test_the_onenet_url_check_answers_msg_when_the_signature_verifies(
    rt: Runtime, api: TestClient
) -> None:
    """The handshake's answer is msg itself as plain text; a '+' left unescaped still passes."""
    a_pushed_water_meter(rt, api, "onenet", ONENET_TOKEN)
    # base64(md5("mp-onenet-token-01" "abcdefgh" "Z2MuxLW7")), computed with openssl
    signature = "j57LxkxkivgXQxD9veMQ+w=="
    query = {"msg": "Z2MuxLW7", "nonce": "abcdefgh", "signature": signature}
    answer = api.get(ONENET, params=query)
    assert (answer.status_code, answer.text) == (200, "Z2MuxLW7")
    unescaped = api.get(f"{ONENET}?msg=Z2MuxLW7&nonce=abcdefgh&signature={signature}")
    assert (unescaped.status_code, unescaped.text) == (200, "Z2MuxLW7")
    error(api.get(ONENET, params={**query, "msg": "Z2MuxLW8"}), 401, "bad_signature")


def test_a_onenet_data_push_bills_the_meter_once(rt: Runtime, api: TestClient) -> None:
    pushed = a_pushed_water_meter(rt, api, "onenet", ONENET_TOKEN)
    first = ok(api.post(ONENET, content=onenet_push()))
    again = ok(api.post(ONENET, content=onenet_push()))
    assert (first["readings"], first["charged"]) == (1, "7.50")
    assert (again["readings"], again["duplicates"]) == (0, 1)
    assert balance(api, pushed.home.account.id) == "92.50"
    [reading] = http_readings(rt, pushed.home.meter.id)
    assert reading["total"] == Decimal("1.5")


def test_a_onenet_push_with_a_bad_signature_changes_nothing(rt: Runtime, api: TestClient) -> None:
    pushed = a_pushed_water_meter(rt, api, "onenet", ONENET_TOKEN)
    forged = onenet_push(token="not-the-token")
    error(api.post(ONENET, content=forged), 401, "bad_signature")
    tampered = onenet_push().replace(b'"value":1500', b'"value":15')
    error(api.post(ONENET, content=tampered), 401, "bad_signature")
    assert balance(api, pushed.home.account.id) == "100.00"
    assert http_readings(rt, pushed.home.meter.id) == []
    assert frames(rt, "onenet-C6z4Zk012B") == []


# --- settings and authentication ----------------------------------------------------------------


def test_push_endpoints_need_no_bearer_token_but_push_settings_do(rt: Runtime) -> None:
    """Platforms get in with their own proof; the push settings need one of our tokens."""
    with TestClient(create_app(rt)) as api:
        bearer = {"Authorization": f"Bearer {token_for(rt)}"}
        home = a_home(rt, utility=Utility.WATER, price="5.00")
        gateway = links.create_gateway(
            rt,
            site_id=home.site.id,
            code="ctwing-15045240",
            name="",
            transport=Transport.HTTP,
            actor=ACTOR,
        )
        settings: dict[str, Any] = {"platform": "ctwing", "token": CTWING_TOKEN}
        error(api.put(f"{API}/gateways/{gateway.id}/push", json=settings), 401, "unauthorized")
        shown = ok(api.put(f"{API}/gateways/{gateway.id}/push", json=settings, headers=bearer))
        assert shown["push_path"] == "/api/v1/push/ctwing/ctwing-15045240"
        assert "token" not in shown
        answer = ok(api.post(CTWING, params={"token": CTWING_TOKEN}, content=ctwing_report()))
        assert answer["unknown_devices"] == [f"imei {IMEI}"]


def test_only_an_http_gateway_takes_push_settings(rt: Runtime, api: TestClient) -> None:
    home = a_home(rt)
    dtu = links.create_gateway(
        rt, site_id=home.site.id, code="DTU-1", name="", transport=Transport.DTU, actor=ACTOR
    )
    settings = {"platform": "onenet", "token": ONENET_TOKEN}
    found = error(api.put(f"{API}/gateways/{dtu.id}/push", json=settings), 422, "invalid_input")
    assert found["details"]["field"] == "gateway_id"


def test_a_push_body_over_the_limit_is_refused_before_it_is_read(rt: Runtime) -> None:
    small = dataclasses.replace(
        rt, settings=rt.settings.model_copy(update={"push_max_body_bytes": 1024})
    )
    with TestClient(create_app(small)) as api:
        too_big = b'{"padding": "' + b"x" * 2000 + b'"}'
        response = api.post(CTWING, params={"token": CTWING_TOKEN}, content=too_big)
        assert response.status_code == 413
