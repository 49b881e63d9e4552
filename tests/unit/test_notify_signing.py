"""Request signatures against the examples the providers publish, and our webhook
signature as an integrator verifies it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from meterpay.notify.signing import (
    TencentRequest,
    aliyun_signature,
    aliyun_string_to_sign,
    aliyun_timestamp,
    percent_encode,
    tc3_authorization,
    tc3_canonical_request,
    tc3_signature,
    tc3_string_to_sign,
    verify_webhook,
    webhook_signature,
)

# Aliyun's worked example for the RPC signature (DescribeRegions, testid / testsecret).
ALIYUN_EXAMPLE = {
    "Timestamp": "2016-02-23T12:46:24Z",
    "Format": "XML",
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}

# Tencent Cloud's worked example for TC3-HMAC-SHA256 (CVM DescribeInstances).
TENCENT_EXAMPLE = TencentRequest(
    host="cvm.tencentcloudapi.com",
    service="cvm",
    content_type="application/json; charset=utf-8",
    payload=(
        '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    ),
    timestamp=1551113065,
)
TENCENT_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"


def test_aliyun_string_to_sign_matches_the_documented_example() -> None:
    assert aliyun_string_to_sign("GET", ALIYUN_EXAMPLE) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
        "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
        "%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z"
        "%26Version%3D2014-05-26"
    )


def test_aliyun_signature_matches_the_documented_example() -> None:
    assert aliyun_signature("GET", ALIYUN_EXAMPLE, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_aliyun_leaves_the_signature_itself_out_and_signs_the_method() -> None:
    signed = dict(ALIYUN_EXAMPLE, Signature="anything")
    assert aliyun_signature("GET", signed, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    assert aliyun_signature("POST", ALIYUN_EXAMPLE, "testsecret") != "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_aliyun_percent_encoding_follows_rfc_3986() -> None:
    assert percent_encode("a b*c~d/e") == "a%20b%2Ac~d%2Fe"
    assert percent_encode("幸福") == "%E5%B9%B8%E7%A6%8F"
    assert aliyun_timestamp(
        datetime(2016, 2, 23, 20, 46, 24, tzinfo=ZoneInfo("Asia/Shanghai"))
    ) == ("2016-02-23T12:46:24Z")


def test_tc3_steps_match_the_documented_example() -> None:
    assert tc3_canonical_request(TENCENT_EXAMPLE).endswith(
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert tc3_string_to_sign(TENCENT_EXAMPLE) == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert tc3_signature(TENCENT_EXAMPLE, TENCENT_KEY) == (
        "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


def test_tc3_authorization_names_the_scope_and_signed_headers() -> None:
    assert tc3_authorization(TENCENT_EXAMPLE, "AKIDEXAMPLE", TENCENT_KEY) == (
        "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


def test_tc3_dates_the_scope_in_utc_even_after_midnight_in_beijing() -> None:
    """1551113065 is 2019-02-26 00:44:25 in Beijing but still the 25th in UTC."""
    assert TENCENT_EXAMPLE.scope == "2019-02-25/cvm/tc3_request"


NOW = datetime(2026, 11, 27, 6, 30, tzinfo=UTC)


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=40))
def test_a_webhook_signature_verifies_and_any_change_breaks_it(body: bytes, secret: str) -> None:
    stamp = int(NOW.timestamp())
    signature = webhook_signature(secret, stamp, body)
    assert signature.startswith("v1=")
    ok = {"timestamp": str(stamp), "body": body, "signature": signature, "now": NOW}
    assert verify_webhook(secret, **ok)  # type: ignore[arg-type]
    assert not verify_webhook(secret + "x", **ok)  # type: ignore[arg-type]
    assert not verify_webhook(secret, **ok | {"body": body + b" "})  # type: ignore[arg-type]
    assert not verify_webhook(secret, **ok | {"timestamp": str(stamp + 1)})  # type: ignore[arg-type]


def test_an_old_webhook_delivery_is_refused_as_a_replay() -> None:
    stamp = int(NOW.timestamp())
    signature = webhook_signature("whsec_x", stamp, b"{}")
    late = NOW + timedelta(minutes=6)
    assert not verify_webhook(
        "whsec_x", timestamp=str(stamp), body=b"{}", signature=signature, now=late
    )
    assert not verify_webhook("whsec_x", timestamp="soon", body=b"{}", signature=signature, now=NOW)
