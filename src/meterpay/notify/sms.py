"""SMS through Aliyun (阿里云短信, SendSms 2017-05-25) or Tencent Cloud (腾讯云短信,
SendSms 2021-01-11), behind one interface.

The text of an SMS in mainland China is the provider's approved template (with the
approved 签名); we send the template's code and its variables. Each topic has a fixed
list of variables (``SMS_VARIABLES``): Aliyun gets them by name, Tencent in that order.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from meterpay.config import Settings
from meterpay.notify.configuration import blank_settings
from meterpay.notify.model import Outgoing, SendResult, Topic
from meterpay.notify.signing import (
    TencentRequest,
    aliyun_signature,
    aliyun_timestamp,
    tc3_authorization,
)

SMS_VARIABLES: Final[dict[Topic, tuple[str, ...]]] = {
    Topic.WARNING1: ("account", "balance"),
    Topic.WARNING2: ("account", "balance"),
    Topic.ARREARS_NOTICE: ("account", "balance", "time"),
    Topic.FINAL_NOTICE: ("account", "time"),
    Topic.CUT_OFF: ("account", "balance"),
    Topic.RESTORED: ("account", "balance"),
    Topic.TOP_UP_RECEIPT: ("account", "amount", "balance"),
    Topic.TICKET_UPDATE: ("ticket", "status"),
    Topic.SIGN_IN_CODE: ("code",),
}
ALIYUN_RETRY: Final = frozenset(
    {"isv.BUSINESS_LIMIT_CONTROL", "isp.SYSTEM_ERROR", "Throttling", "Throttling.User"}
)
TENCENT_RETRY_PREFIXES: Final = ("InternalError", "RequestLimitExceeded", "LimitExceeded")
JSON_UTF8: Final = "application/json; charset=utf-8"


def _variables(outgoing: Outgoing) -> list[tuple[str, str]]:
    message = outgoing.message
    return [(n, str(message.variables.get(n, ""))) for n in SMS_VARIABLES[message.topic]]


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


class AliyunSms:
    def __init__(self, settings: Settings, client: httpx.Client) -> None:
        self._settings = settings
        self._client = client

    def send(self, outgoing: Outgoing, now: datetime) -> SendResult:
        s, message = self._settings, outgoing.message
        code = s.aliyun_sms_templates.get(message.topic.value)
        if not code:
            return SendResult.skipped(
                f"MP_ALIYUN_SMS_TEMPLATES has no template for {message.topic}"
            )
        params = {
            "AccessKeyId": s.aliyun_sms_access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "OutId": str(message.id),
            "PhoneNumbers": message.recipient.removeprefix("+86"),
            "RegionId": s.aliyun_sms_region,
            "SignName": s.aliyun_sms_sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": code,
            "TemplateParam": _compact(dict(_variables(outgoing))),
            "Timestamp": aliyun_timestamp(now),
            "Version": "2017-05-25",
        }
        secret = s.aliyun_sms_access_key_secret.get_secret_value()
        params["Signature"] = aliyun_signature("POST", params, secret)
        response = self._client.post(s.aliyun_sms_endpoint, data=params)
        return self._result(response)

    @staticmethod
    def _result(response: httpx.Response) -> SendResult:
        body = _json(response)
        code, text = str(body.get("Code", "")), str(body.get("Message", ""))
        if response.status_code == 200 and code == "OK":
            return SendResult.sent(str(body.get("BizId", "")))
        error = f"aliyun {response.status_code} {code}: {text}".strip()
        if response.status_code >= 500 or response.status_code == 429 or code in ALIYUN_RETRY:
            return SendResult.retry(error)
        return SendResult.failed(error)


class TencentSms:
    def __init__(self, settings: Settings, client: httpx.Client) -> None:
        self._settings = settings
        self._client = client

    def send(self, outgoing: Outgoing, now: datetime) -> SendResult:
        s, message = self._settings, outgoing.message
        template = s.tencent_sms_templates.get(message.topic.value)
        if not template:
            return SendResult.skipped(
                f"MP_TENCENT_SMS_TEMPLATES has no template for {message.topic}"
            )
        phone = (
            message.recipient if message.recipient.startswith("+") else "+86" + message.recipient
        )
        payload = _compact(
            {
                "PhoneNumberSet": [phone],
                "SmsSdkAppId": s.tencent_sms_sdk_app_id,
                "SignName": s.tencent_sms_sign_name,
                "TemplateId": template,
                "TemplateParamSet": [v for _, v in _variables(outgoing)],
                "SessionContext": str(message.id),
            }
        )
        host = urlsplit(s.tencent_sms_endpoint).netloc
        request = TencentRequest(host, "sms", JSON_UTF8, payload, int(now.timestamp()))
        secret = s.tencent_sms_secret_key.get_secret_value()
        headers = {
            "Authorization": tc3_authorization(request, s.tencent_sms_secret_id, secret),
            "Content-Type": JSON_UTF8,
            "X-TC-Action": "SendSms",
            "X-TC-Version": "2021-01-11",
            "X-TC-Timestamp": str(request.timestamp),
            "X-TC-Region": s.tencent_sms_region,
        }
        response = self._client.post(
            s.tencent_sms_endpoint, content=payload.encode(), headers=headers
        )
        return self._result(response)

    @staticmethod
    def _result(response: httpx.Response) -> SendResult:
        answer = _json(response).get("Response")
        answer = answer if isinstance(answer, dict) else {}
        error = answer.get("Error")
        if response.status_code >= 500 or response.status_code == 429:
            return SendResult.retry(f"tencent {response.status_code}")
        if isinstance(error, dict) or not answer:
            details = error if isinstance(error, dict) else {}
            return _tencent_code(response, str(details.get("Code", "")), details.get("Message"))
        statuses = answer.get("SendStatusSet") or [{}]
        status = statuses[0] if isinstance(statuses[0], dict) else {}
        if status.get("Code") == "Ok":
            return SendResult.sent(str(status.get("SerialNo", "")))
        return _tencent_code(response, str(status.get("Code", "")), status.get("Message"))


def _tencent_code(response: httpx.Response, code: str, text: object) -> SendResult:
    error = f"tencent {response.status_code} {code}: {text or ''}".strip()
    if code.startswith(TENCENT_RETRY_PREFIXES):
        return SendResult.retry(error)
    return SendResult.failed(error)


def sms_from(settings: Settings, client: httpx.Client) -> AliyunSms | TencentSms | str:
    """The configured SMS provider, or why there is none."""
    if settings.sms_provider == "aliyun":
        keys = ("aliyun_sms_access_key_id", "aliyun_sms_access_key_secret")
        problem = blank_settings(settings, *keys, "aliyun_sms_sign_name")
        return problem or AliyunSms(settings, client)
    if settings.sms_provider == "tencent":
        keys = ("tencent_sms_secret_id", "tencent_sms_secret_key")
        problem = blank_settings(settings, *keys, "tencent_sms_sdk_app_id", "tencent_sms_sign_name")
        return problem or TencentSms(settings, client)
    return "SMS is not configured (MP_SMS_PROVIDER=none)"
