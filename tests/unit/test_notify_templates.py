"""Notification texts in zh-CN and en: money and times as a property manager writes them,
and a missing parameter only ever shortens a message."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from meterpay.notify.model import Language, Topic
from meterpay.notify.templates import format_money, format_time, render

SHANGHAI = ZoneInfo("Asia/Shanghai")
FULL = {
    "account_number": "1-0101-E",
    "utility": "electricity",
    "balance": "-3.2",
    "amount": "100",
    "planned_cutoff_at": "2026-11-27T06:30:00+00:00",
    "site_name": "幸福里小区",
}


def test_money_reads_in_yuan_with_two_decimals() -> None:
    assert format_money(Decimal("12.34"), Language.ZH_CN) == "12.34 元"
    assert format_money(Decimal("12.34"), Language.ZH_CN, symbol=True) == "¥12.34"
    assert format_money(Decimal("12.3"), Language.EN) == "¥12.30"
    assert format_money(Decimal("-3.2"), Language.EN) == "-¥3.20"
    assert format_money(Decimal("-3.2"), Language.ZH_CN) == "-3.20 元"


def test_times_are_the_sites_local_time() -> None:
    moment = datetime(2026, 11, 27, 6, 30, tzinfo=UTC)
    assert format_time(moment, Language.ZH_CN, SHANGHAI) == "2026年11月27日 14:30"
    assert format_time(moment, Language.EN, SHANGHAI) == "27 Nov 2026 14:30"
    assert format_time(moment, Language.ZH_CN, ZoneInfo("Asia/Urumqi")) == "2026年11月27日 12:30"


def test_an_arrears_notice_names_the_cut_off_time_in_chinese() -> None:
    text = render(Topic.ARREARS_NOTICE, Language.ZH_CN, FULL, SHANGHAI)
    assert text.title == "欠费停电通知"
    assert text.body == (
        "【幸福里小区】您的电费账户（户号 1-0101-E）已欠费，当前余额 -3.20 元。"
        "如未在 2026年11月27日 14:30 前充值，届时将暂停供电。充值到账后自动恢复。"
    )


def test_a_top_up_receipt_in_english() -> None:
    text = render(Topic.TOP_UP_RECEIPT, Language.EN, FULL, SHANGHAI)
    assert text.title == "Top-up received"
    assert text.body == (
        "[幸福里小区] Your top-up of ¥100.00 to electricity account 1-0101-E has arrived"
        " (balance -¥3.20)."
    )


def test_water_reads_as_water() -> None:
    water = dict(FULL, utility="water")
    assert render(Topic.CUT_OFF, Language.ZH_CN, water, SHANGHAI).title == "已停水"
    assert render(Topic.RESTORED, Language.ZH_CN, water, SHANGHAI).title == "已恢复供水"
    assert render(Topic.RESTORED, Language.EN, water, SHANGHAI).title == "Water supply restored"


def test_a_missing_cut_off_time_leaves_a_complete_sentence() -> None:
    params = {k: v for k, v in FULL.items() if k != "planned_cutoff_at"}
    zh = render(Topic.ARREARS_NOTICE, Language.ZH_CN, params, SHANGHAI).body
    en = render(Topic.FINAL_NOTICE, Language.EN, params, SHANGHAI).body
    assert "如不及时充值，将暂停供电" in zh
    assert "will be cut off in about 30 minutes" in en


@pytest.mark.parametrize("topic", list(Topic))
@pytest.mark.parametrize("language", list(Language))
def test_every_template_renders_with_nothing_but_the_topic(
    topic: Topic, language: Language
) -> None:
    """No parameter at all, or unreadable ones: a shorter message, never a placeholder."""
    for params in ({}, {"balance": "lots", "planned_cutoff_at": "tomorrow", "utility": "gas"}):
        text = render(topic, language, params, SHANGHAI)
        assert text.title and text.body
        assert "{" not in text.title + text.body and "None" not in text.body


def test_provider_variables_are_short_display_values() -> None:
    at = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    found = render(Topic.TOP_UP_RECEIPT, Language.EN, FULL, SHANGHAI, at).variables
    assert found["amount"] == "100.00" and found["balance"] == "-3.20"
    assert found["time"] == "2026年11月27日 14:30"  # the cut-off, when there is one
    no_cutoff = {k: v for k, v in FULL.items() if k != "planned_cutoff_at"}
    timed = render(Topic.TOP_UP_RECEIPT, Language.EN, no_cutoff, SHANGHAI, at).variables
    assert timed["time"] == "2026年11月1日 10:00"


def test_an_unknown_language_reads_chinese() -> None:
    assert Language.of(None) is Language.ZH_CN
    assert Language.of("zh-TW") is Language.ZH_CN
    assert Language.of("en-GB") is Language.EN
