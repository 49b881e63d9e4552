"""NB-IoT platform pushes: recorded-style bodies in, messages and readings out, pure."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from meterpay.kernel.errors import InvalidInput
from meterpay.metering.push_formats import (
    AddressBy,
    BadPushSignature,
    FieldMapping,
    MalformedPush,
    MessageKind,
    map_reading,
    onenet_messages,
    onenet_signature,
    onenet_url_check_passes,
    parse_ctwing,
    parse_onenet,
    token_matches,
    verify_onenet,
)

# --- fixtures: what the platforms send (shapes from their public docs and captures) -------

# 2026-11-01 01:00:00 UTC, in milliseconds
AT_MS = 1793494800000
AT = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)

CTWING_OBJECT_MODEL = """
{"upPacketSN":-1,"upDataSN":-1,"topic":"v1/up/ad19prof","timestamp":1793494800000,
 "tenantId":"2000033827","serviceId":"","protocol":"lwm2m","productId":"15045240",
 "payload":{"serviceId":"meterReport",
            "serviceData":{"cumulativeFlow":123456,"valveState":1,"batteryVoltage":3.05}},
 "messageType":"dataReport","deviceType":"","deviceId":"d01308047f864601a821e02dc328eab4",
 "assocAssetId":"","IMSI":"undefined","IMEI":"861234050123456"}
"""

CTWING_DECODED_PAYLOAD = """
{"upPacketSN":-1,"upDataSN":-1,"topic":"v1/up/ad19","timestamp":1793494800000,
 "tenantId":"2000033827","serviceId":10,"protocol":"lwm2m","productId":"15045240",
 "payload":{"totalEnergy":1234.5678},
 "messageType":"dataReport","deviceType":"","deviceId":"d01308047f864601a821e02dc328eab4",
 "assocAssetId":"","IMSI":"undefined","IMEI":"861234050123456"}
"""

# Transparent mode (透传): the meter's own frame, base64; here a CJ/T 188 read request.
CJT188_FRAME = bytes.fromhex("FEFEFEFE6810443322110033780103 1F900080 16".replace(" ", ""))
CTWING_TRANSPARENT = json.dumps(
    {
        "upPacketSN": -1,
        "upDataSN": -1,
        "topic": "v1/up/ad",
        "timestamp": AT_MS,
        "tenantId": "10461180",
        "serviceId": "",
        "protocol": "lwm2m",
        "productId": "10053421",
        "payload": {"APPdata": base64.b64encode(CJT188_FRAME).decode()},
        "messageType": "dataReport",
        "deviceType": "",
        "deviceId": "44d0b9e48d404094bbbcf889e4e64ece",
        "assocAssetId": "",
        "IMSI": "undefined",
        "IMEI": "860803030676429",
    }
)

CTWING_OFFLINE = """
{"timestamp":1793494800000,"tenantId":"2000033827","protocol":"lwm2m","productId":"15045240",
 "messageType":"deviceOnlineOfflineReport","iccid":"undefined","eventType":0,
 "deviceId":"d01308047f864601a821e02dc328eab4"}
"""

CTWING_COMMAND_RESPONSE = """
{"timestamp":1793494800000,"tenantId":"10461180","taskId":1,
 "result":{"resultDetail":"","resultCode":"DELIVERED"},"protocol":"lwm2m",
 "productId":"10053421","messageType":"commandResponse",
 "deviceId":"44d0b9e48d404094bbbcf889e4e64ece"}
"""

WATER = FieldMapping.from_json(
    {
        "total": "cumulativeFlow",
        "scale": "0.001",
        "valve": "valveState",
        "valve_closed": ["1"],
        "battery": "batteryVoltage",
        "battery_low_below": "3.2",
    }
)

TOKEN = "mp-onenet-token-01"


def _onenet(msg: Any, *, nonce: str = "K2yFq9Wn", sign: str | None = None, **extra: Any) -> bytes:
    """An old-format OneNET push whose msg_signature covers msg as it is written."""
    text = json.dumps(msg, separators=(",", ":"))
    signature = sign if sign is not None else _independent_signature(TOKEN, nonce, text)
    body = {"msg": "@MSG@", "msg_signature": signature, "nonce": nonce, **extra}
    return json.dumps(body).replace('"@MSG@"', text).encode()


def _independent_signature(token: str, nonce: str, msg: str) -> str:
    """The documented rule, spelled out here rather than borrowed from the code under test."""
    md5 = hashlib.md5()  # noqa: S324  the platform's rule, not our choice
    for part in (token, nonce, msg):
        md5.update(part.encode("utf-8"))
    return base64.b64encode(md5.digest()).decode()


# --- CTWing -----------------------------------------------------------------------------------


def test_a_ctwing_object_model_report_maps_its_service_data_to_a_reading() -> None:
    """serviceData's litres become m³ exactly; a closed valve and low battery set ST bits."""
    message = parse_ctwing(CTWING_OBJECT_MODEL.encode())
    assert (message.kind, message.label) == (MessageKind.DATA, "dataReport")
    assert message.address(AddressBy.IMEI) == "861234050123456"
    assert message.address(AddressBy.DEVICE_ID) == "d01308047f864601a821e02dc328eab4"
    reading = map_reading(message, WATER)
    assert reading is not None
    assert (reading.read_at, reading.total, reading.status_word) == (AT, Decimal("123.456"), 0b101)


def test_a_ctwing_report_whose_payload_is_the_decoded_object_reads_it_directly() -> None:
    """A JSON number with four decimals arrives as that exact Decimal, never a float."""
    message = parse_ctwing(CTWING_DECODED_PAYLOAD.encode())
    reading = map_reading(message, FieldMapping(total="totalEnergy"))
    assert reading is not None
    assert reading.total == Decimal("1234.5678")
    assert reading.status_word is None


def test_a_transparent_ctwing_report_keeps_the_meter_frame_and_makes_no_reading() -> None:
    """APPdata is the meter's raw frame: kept for the frame log, not guessed at."""
    message = parse_ctwing(CTWING_TRANSPARENT.encode())
    assert message.kind is MessageKind.DATA
    assert message.raw == CJT188_FRAME
    assert map_reading(message, WATER) is None


def test_ctwing_online_offline_reports_carry_link_state_and_other_types_are_kept() -> None:
    """eventType 0 is offline; command responses are acknowledged as other messages."""
    offline = parse_ctwing(CTWING_OFFLINE.encode())
    assert (offline.kind, offline.imei, offline.at) == (MessageKind.OFFLINE, None, AT)
    other = parse_ctwing(CTWING_COMMAND_RESPONSE.encode())
    assert (other.kind, other.label) == (MessageKind.OTHER, "commandResponse")


def test_a_report_without_the_mapped_total_makes_no_reading() -> None:
    """A battery-only report is no reading and no error: the platform must not retry it."""
    message = parse_ctwing(CTWING_OBJECT_MODEL.encode())
    assert map_reading(message, FieldMapping(total="forwardEnergy")) is None


def _ctwing_with(**changes: Any) -> bytes:
    body = json.loads(CTWING_OBJECT_MODEL)
    for path, value in changes.items():
        target = body
        *parents, last = path.split("__")
        for name in parents:
            target = target[name]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b'["a list"]', "body"),
        ('{"deviceId": "\xff"}'.encode("latin-1"), "body"),
        (_ctwing_with(messageType=...), "messageType"),
        (_ctwing_with(deviceId=""), "deviceId"),
        (_ctwing_with(timestamp=1.5), "timestamp"),
        (_ctwing_with(timestamp="yesterday"), "timestamp"),
        (_ctwing_with(payload="AAEC"), "payload"),
        (_ctwing_with(payload={"APPdata": "not base64!"}), "payload.APPdata"),
        (_ctwing_with(payload__serviceData=[1, 2]), "payload.serviceData"),
        (
            _ctwing_with(payload__serviceData__cumulativeFlow="a lot"),
            "payload.serviceData.cumulativeFlow",
        ),
        (
            _ctwing_with(payload__serviceData__cumulativeFlow=-5),
            "payload.serviceData.cumulativeFlow",
        ),
        (
            _ctwing_with(payload__serviceData__cumulativeFlow=0.12345),
            "payload.serviceData.cumulativeFlow",
        ),
        (
            _ctwing_with(payload__serviceData__batteryVoltage="low"),
            "payload.serviceData.batteryVoltage",
        ),
    ],
)
def test_a_malformed_ctwing_push_is_refused_naming_the_field(body: bytes, field: str) -> None:
    """Refusals carry the JSON path of the culprit (a litre fraction below 0.1 ml included)."""
    with pytest.raises(MalformedPush) as refused:
        map_reading(parse_ctwing(body), WATER)
    assert refused.value.details["field"] == field
    assert field in refused.value.message or field == "body"


def test_the_ctwing_token_is_compared_whole() -> None:
    """CTWing signs nothing: the URL's token must equal the gateway's, and be present."""
    assert token_matches("s3cret-token", "s3cret-token")
    assert not token_matches("s3cret-toke", "s3cret-token")
    assert not token_matches(None, "s3cret-token")
    assert not token_matches("", "s3cret-token")


# --- OneNET signatures ------------------------------------------------------------------------


def test_the_onenet_signature_is_base64_of_md5_over_token_nonce_and_msg() -> None:
    """Vectors made outside Python: printf %s "$token$nonce$msg" | openssl md5 -binary | base64."""
    assert onenet_signature(TOKEN, "abcdefgh", "Z2MuxLW7") == "j57LxkxkivgXQxD9veMQ+w=="
    msg = '{"type":1,"dev_id":2016617,"ds_id":"3200_0_5750","at":1793494800000,"value":42}'
    assert onenet_signature(TOKEN, "K2yFq9Wn", msg) == "e+auWpZYDBvBYWZ/DEPxoA=="
    assert onenet_signature(TOKEN, "K2yFq9Wn", msg) == _independent_signature(
        TOKEN, "K2yFq9Wn", msg
    )


@pytest.mark.parametrize(
    "presented",
    ["j57LxkxkivgXQxD9veMQ+w==", "j57LxkxkivgXQxD9veMQ w==", "j57LxkxkivgXQxD9veMQ%2Bw%3D%3D"],
)
def test_the_url_check_passes_whether_the_plus_was_escaped_lost_or_kept(presented: str) -> None:
    """A '+' left unescaped in the query arrives as a space; an escaped one is undone."""
    assert onenet_url_check_passes(TOKEN, "Z2MuxLW7", "abcdefgh", presented)


def test_the_url_check_fails_for_another_token_or_another_msg() -> None:
    assert not onenet_url_check_passes(
        "another-token", "Z2MuxLW7", "abcdefgh", "j57LxkxkivgXQxD9veMQ+w=="
    )
    assert not onenet_url_check_passes(TOKEN, "Z2MuxLW8", "abcdefgh", "j57LxkxkivgXQxD9veMQ+w==")


# --- OneNET pushes ----------------------------------------------------------------------------


def test_an_old_format_data_point_push_verifies_and_maps_to_a_reading() -> None:
    """NB-IoT suite: msg is an object, msg_signature covers it as written."""
    point = {"type": 1, "imei": "865820060031939", "dev_id": 2016617, "ds_id": "3200_0_5750",
             "at": AT_MS, "value": "1.5"}  # fmt: skip
    push = parse_onenet(_onenet(point))
    verify_onenet(push, TOKEN)
    [message] = onenet_messages(push)
    assert (message.kind, message.device_id, message.imei) == (
        MessageKind.DATA, "2016617", "865820060031939",
    )  # fmt: skip
    reading = map_reading(message, FieldMapping(total="3200_0_5750"))
    assert reading is not None
    assert (reading.read_at, reading.total) == (AT, Decimal("1.5"))


def test_a_batch_groups_points_by_device_and_time_and_keeps_online_messages() -> None:
    """Cached batches (数据缓存) arrive as a list; type 2 status 1 is online."""
    batch = [
        {"type": 1, "dev_id": 7, "ds_id": "flow", "at": AT_MS, "value": 1000},
        {"type": 1, "dev_id": 7, "ds_id": "valve", "at": AT_MS, "value": 1},
        {"type": 1, "dev_id": 7, "ds_id": "flow", "at": AT_MS + 1000, "value": 1001},
        {"type": 2, "dev_id": 7, "status": 1, "login_type": 10, "at": AT_MS},
    ]
    push = parse_onenet(_onenet(batch))
    verify_onenet(push, TOKEN)
    messages = onenet_messages(push)
    assert [m.kind for m in messages] == [MessageKind.DATA, MessageKind.DATA, MessageKind.ONLINE]
    mapping = FieldMapping(total="flow", scale=Decimal("0.001"), valve="valve",
                           valve_closed=frozenset({"1"}))  # fmt: skip
    first = map_reading(messages[0], mapping)
    assert first is not None and (first.total, first.status_word) == (Decimal("1.000"), 1)


def test_an_old_format_push_signed_over_its_compact_form_verifies_too() -> None:
    """The platform SDKs sign msg re-serialized compactly; a spaced body must still verify."""
    point = {"type": 2, "dev_id": 7, "status": 0, "login_type": 10, "at": AT_MS}
    compact = json.dumps(point, separators=(",", ":"))
    spaced = json.dumps(point, indent=2)
    body = {"msg": "@", "msg_signature": _independent_signature(TOKEN, "n0nce123", compact),
            "nonce": "n0nce123"}  # fmt: skip
    push = parse_onenet(json.dumps(body).replace('"@"', spaced).encode())
    verify_onenet(push, TOKEN)
    assert onenet_messages(push)[0].kind is MessageKind.OFFLINE


def test_a_push_whose_msg_was_changed_after_signing_is_refused() -> None:
    point = {"type": 1, "dev_id": 7, "ds_id": "flow", "at": AT_MS, "value": 1000}
    signed = _onenet(point)
    tampered = signed.replace(b'"value":1000', b'"value":9000')
    with pytest.raises(BadPushSignature):
        verify_onenet(parse_onenet(tampered), TOKEN)
    with pytest.raises(BadPushSignature):
        verify_onenet(parse_onenet(signed), "another-token")


def test_a_studio_property_report_verifies_over_the_msg_string_and_uses_the_field_time() -> None:
    """OneNET Studio: msg is a JSON string; each property has its own time."""
    inner = {
        "productId": "C6z4Zk012B", "deviceId": 1343759, "deviceName": "861234050123456",
        "messageType": "notify", "notifyType": "property", "imei": "861234050123456",
        "data": {"id": "1631522002438", "version": "1.0",
                 "params": {"totalFlow": {"time": AT_MS, "value": 12.5},
                            "battery": {"time": AT_MS - 500, "value": 87}}},
    }  # fmt: skip
    msg = json.dumps(inner, ensure_ascii=False)
    body = {"msg": msg, "signature": _independent_signature(TOKEN, "Qw3rTy12", msg),
            "nonce": "Qw3rTy12", "time": AT_MS + 40, "id": "b2d1c1e8"}  # fmt: skip
    push = parse_onenet(json.dumps(body).encode())
    verify_onenet(push, TOKEN)
    [message] = onenet_messages(push)
    assert message.label == "notify/property"
    reading = map_reading(message, FieldMapping(total="totalFlow"))
    assert reading is not None
    assert (reading.read_at, reading.total) == (AT, Decimal("12.5"))


def test_a_studio_life_cycle_message_is_online_or_offline() -> None:
    inner = {"productId": "C6z4Zk012B", "deviceId": 1343759, "deviceName": "meter-0101",
             "messageType": "lifeCycle", "data": {"status": "offline", "time": AT_MS}}  # fmt: skip
    msg = json.dumps(inner)
    body = {"msg": msg, "signature": _independent_signature(TOKEN, "n", msg), "nonce": "n"}
    [message] = onenet_messages(parse_onenet(json.dumps(body).encode()))
    assert (message.kind, message.device_id, message.at) == (MessageKind.OFFLINE, "meter-0101", AT)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{}", "nonce"),
        (b'{"nonce": "abcdefgh", "msg": {}}', "msg_signature"),
        (b'{"nonce": "abcdefgh", "msg_signature": "x"}', "msg"),
        (b'{"nonce": "abcdefgh", "msg_signature": "x", "msg": 5}', "msg"),
        (b'{"enc_msg": "3q2+7w==", "msg_signature": "x", "nonce": "abcdefgh"}', "enc_msg"),
    ],
)
def test_a_malformed_onenet_envelope_is_refused_naming_the_field(body: bytes, field: str) -> None:
    """Encrypted pushes (安全模式) are refused with a clear word, not misread."""
    with pytest.raises(MalformedPush) as refused:
        parse_onenet(body)
    assert refused.value.details["field"] == field


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        ({"type": 1, "dev_id": 7, "ds_id": "flow", "value": 1}, "msg.at"),
        ({"type": "1", "dev_id": 7, "ds_id": "flow", "at": AT_MS}, "msg.type"),
        ({"type": 1, "dev_id": 7, "at": AT_MS, "value": 1}, "msg.ds_id"),
        ([{"type": 1, "dev_id": 7, "ds_id": "f", "at": AT_MS}, {"type": 1, "at": AT_MS}],
         "msg[1].dev_id"),
    ],
)  # fmt: skip
def test_a_verified_but_malformed_onenet_message_is_refused_naming_the_field(
    msg: Any, field: str
) -> None:
    push = parse_onenet(_onenet(msg))
    verify_onenet(push, TOKEN)
    with pytest.raises(MalformedPush) as refused:
        onenet_messages(push)
    assert refused.value.details["field"] == field


def test_a_studio_push_in_secure_mode_is_refused_with_a_hint() -> None:
    """Studio's secure mode sends msg as base64 ciphertext: verified, then refused clearly."""
    msg = "k3Qz2kq9mH3rZbOq0w1c4A=="
    body = {"msg": msg, "signature": _independent_signature(TOKEN, "n", msg), "nonce": "n"}
    push = parse_onenet(json.dumps(body).encode())
    verify_onenet(push, TOKEN)
    with pytest.raises(MalformedPush, match="安全模式"):
        onenet_messages(push)


# --- the field mapping ------------------------------------------------------------------------


def test_a_field_mapping_survives_its_json_form() -> None:
    assert FieldMapping.from_json(WATER.to_json()) == WATER
    assert FieldMapping.from_json({}) == FieldMapping()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"scale": "0"}, "fields.scale"),
        ({"scale": 0.001}, "fields.scale"),
        ({"total": ""}, "fields.total"),
        ({"battery_low_below": "-1"}, "fields.battery_low_below"),
        ({"colour": "blue"}, "fields.colour"),
    ],
)
def test_a_bad_field_mapping_is_refused_naming_the_key(data: dict[str, Any], field: str) -> None:
    """Floats are refused here too: a scale is an exact decimal."""
    with pytest.raises(InvalidInput) as refused:
        FieldMapping.from_json(data)
    assert refused.value.details["field"] == field
