"""The texts of notifications, in zh-CN and en, and how money and times read in them.

A template is a run of segments. A segment that names a value the event did not carry
(or carried in a form we cannot read) is left out, or replaced by its alternative: a
missing optional parameter never breaks a message, it only makes it shorter.

Money reads as a Chinese property manager writes it: "12.34 元" in Chinese text,
"¥12.34" in English text and in short fields; times are the site's local time,
"2026年11月27日 14:30" in Chinese, "27 Nov 2026 14:30" in English.

Pure: the site's time zone is passed in.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Final

from meterpay.kernel.money import FEN_QUANTUM
from meterpay.notify.model import Language, Topic

Segment = str | tuple[str, str]  # (with its values, without them)
OPTIONAL: Final = frozenset(
    {"site", "account", "balance", "amount", "cutoff", "code", "ticket", "status", "note"}
)
TICKET_STATES: Final = {
    "open": ("已受理", "received"),
    "assigned": ("已派单", "assigned to a technician"),
    "in_progress": ("维修中", "being repaired"),
    "done": ("已完成", "done"),
    "cancelled": ("已取消", "cancelled"),
}
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


@dataclass(frozen=True, slots=True)
class Template:
    title: str
    text: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    body: str
    variables: dict[str, str]
    """Short display values for provider templates (SMS, WeChat): account, balance,
    amount, time, site, utility; only those the event carried."""


def yuan(value: str | None) -> Decimal | None:
    """A decimal yuan string, or None when absent or unreadable."""
    if value is None or not str(value).strip():
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount.quantize(FEN_QUANTUM) if amount.is_finite() else None


def format_money(amount: Decimal, language: Language, *, symbol: bool = False) -> str:
    """ "12.34 元" (Chinese text) or "¥12.34" (English, or ``symbol``); "-¥3.20" below zero."""
    fixed = amount.quantize(FEN_QUANTUM)
    if language is Language.ZH_CN and not symbol:
        return f"{fixed} 元"
    sign = "-" if fixed < 0 else ""
    return f"{sign}¥{abs(fixed)}"


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time with an offset, or None (a time without one is not guessed)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


def format_time(moment: datetime, language: Language, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    if language is Language.ZH_CN:
        return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year} {local:%H:%M}"


_ZH_UTILITY: Final = {
    "electricity": {"u": "电", "supply": "供电", "stopped": "停电"},
    "water": {"u": "水", "supply": "供水", "stopped": "停水"},
}
_ZH_ANY: Final = {"u": "水电", "supply": "供应", "stopped": "停止供应"}
_EN_ANY: Final = {"u": "utility", "U": "Utility"}

ZH: Final[dict[Topic, Template]] = {
    Topic.WARNING1: Template(
        "{u}费余额提醒",
        (
            "【{site}】",
            "尊敬的用户，您的{u}费账户",
            "（户号 {account}）",
            ("余额为 {balance}，已低于提醒值", "余额已低于提醒值"),
            "，请及时充值，以免影响使用。",
        ),
    ),
    Topic.WARNING2: Template(
        "{u}费余额不足",
        (
            "【{site}】",
            "您的{u}费账户",
            "（户号 {account}）",
            ("余额仅剩 {balance}", "余额不足"),
            "，请尽快充值。欠费后将发出欠费停{u}通知。",
        ),
    ),
    Topic.ARREARS_NOTICE: Template(
        "欠费{stopped}通知",
        (
            "【{site}】",
            "您的{u}费账户",
            "（户号 {account}）",
            "已欠费",
            "，当前余额 {balance}",
            ("。如未在 {cutoff} 前充值，届时将暂停{supply}", "。如不及时充值，将暂停{supply}"),
            "。充值到账后自动恢复。",
        ),
    ),
    Topic.FINAL_NOTICE: Template(
        "{stopped}最后提醒",
        (
            "【{site}】",
            "您的{u}费账户",
            "（户号 {account}）",
            "，当前余额 {balance}，",
            ("将于 {cutoff}（约 30 分钟后）暂停{supply}", "将于约 30 分钟后暂停{supply}"),
            "，请立即充值。",
        ),
    ),
    Topic.CUT_OFF: Template(
        "已{stopped}",
        (
            "【{site}】",
            "因欠费，您的{u}费账户",
            "（户号 {account}）",
            "已暂停{supply}",
            "，当前余额 {balance}",
            "。充值到账后将自动恢复{supply}。",
        ),
    ),
    Topic.RESTORED: Template(
        "已恢复{supply}",
        (
            "【{site}】",
            "您的{u}费账户",
            "（户号 {account}）",
            "已恢复{supply}",
            "，当前余额 {balance}",
            "。",
        ),
    ),
    Topic.TOP_UP_RECEIPT: Template(
        "充值到账",
        (
            "【{site}】",
            "您的{u}费账户",
            "（户号 {account}）",
            ("充值 {amount} 已到账", "充值已到账"),
            "，当前余额 {balance}",
            "。",
        ),
    ),
    Topic.TICKET_UPDATE: Template(
        "报修进度",
        (
            "【{site}】",
            ("您的报修（工单 {ticket}）", "您的报修"),
            ("{status}", "有新进展"),
            ("：{note}", ""),
            "。",
        ),
    ),
    Topic.SIGN_IN_CODE: Template(
        "登录验证码",
        (
            "【{site}】",
            ("您的登录验证码为 {code}，5 分钟内有效。请勿告诉他人。", "您的登录验证码已发送。"),
        ),
    ),
}

EN: Final[dict[Topic, Template]] = {
    Topic.WARNING1: Template(
        "Low {u} balance",
        (
            "[{site}] ",
            "Your {u} account",
            " {account}",
            (
                " has a balance of {balance}, below your reminder level",
                " is below your reminder level",
            ),
            ". Please top up to avoid an interruption.",
        ),
    ),
    Topic.WARNING2: Template(
        "{U} balance insufficient",
        (
            "[{site}] ",
            "Your {u} account",
            " {account}",
            (" has only {balance} left", " is almost empty"),
            ". Please top up now; an arrears notice follows once it runs out.",
        ),
    ),
    Topic.ARREARS_NOTICE: Template(
        "{U} cut-off notice",
        (
            "[{site}] ",
            "Your {u} account",
            " {account}",
            " is in arrears",
            " (balance {balance})",
            (". Unless you top up before {cutoff}, ", ". Unless you top up soon, "),
            "the {u} supply will be cut off. It is restored automatically once the top-up arrives.",
        ),
    ),
    Topic.FINAL_NOTICE: Template(
        "{U} cut-off in 30 minutes",
        (
            "[{site}] ",
            "The {u} supply of account",
            " {account}",
            (
                " will be cut off at {cutoff} (in about 30 minutes)",
                " will be cut off in about 30 minutes",
            ),
            " (balance {balance})",
            ". Please top up now.",
        ),
    ),
    Topic.CUT_OFF: Template(
        "{U} supply cut off",
        (
            "[{site}] ",
            "The {u} supply of account",
            " {account}",
            " has been cut off for arrears",
            " (balance {balance})",
            ". It is restored automatically once you top up.",
        ),
    ),
    Topic.RESTORED: Template(
        "{U} supply restored",
        (
            "[{site}] ",
            "The {u} supply of account",
            " {account}",
            " has been restored",
            " (balance {balance})",
            ".",
        ),
    ),
    Topic.TOP_UP_RECEIPT: Template(
        "Top-up received",
        (
            "[{site}] ",
            ("Your top-up of {amount}", "Your top-up"),
            " to {u} account",
            " {account}",
            " has arrived",
            " (balance {balance})",
            ".",
        ),
    ),
    Topic.TICKET_UPDATE: Template(
        "Repair request",
        (
            "[{site}] ",
            ("Your repair request {ticket}", "Your repair request"),
            (" is {status}", " has news"),
            (": {note}", ""),
            ".",
        ),
    ),
    Topic.SIGN_IN_CODE: Template(
        "Sign-in code",
        (
            "[{site}] ",
            (
                "Your sign-in code is {code}, valid for 5 minutes. Never share it.",
                "Your sign-in code was sent.",
            ),
        ),
    ),
}


def render(
    topic: Topic,
    language: Language,
    params: Mapping[str, str],
    zone: tzinfo,
    at: datetime | None = None,
) -> Rendered:
    """The title and text of ``topic`` in ``language`` with the event's ``params``;
    ``at`` (when the event happened) is the variables' time when no cut-off is named."""
    values = _values(language, params, zone)
    template = (ZH if language is Language.ZH_CN else EN)[topic]
    body = "".join(_segment(s, values) for s in template.text)
    return Rendered(_fill(template.title, values) or "", body, _variables(params, zone, at))


def _values(language: Language, params: Mapping[str, str], zone: tzinfo) -> dict[str, str]:
    utility = str(params.get("utility") or "")
    if language is Language.ZH_CN:
        values = dict(_ZH_UTILITY.get(utility, _ZH_ANY))
    else:
        known = utility in ("electricity", "water")
        values = {"u": utility, "U": utility.capitalize()} if known else dict(_EN_ANY)
    for name, key in (
        ("site", "site_name"),
        ("account", "account_number"),
        ("code", "code"),
        ("ticket", "ticket"),
        ("note", "note"),
    ):
        if str(params.get(key) or "").strip():
            values[name] = str(params[key]).strip()
    for name in ("balance", "amount"):
        if (amount := yuan(params.get(name))) is not None:
            values[name] = format_money(amount, language)
    if (cutoff := parse_time(params.get("planned_cutoff_at"))) is not None:
        values["cutoff"] = format_time(cutoff, language, zone)
    if (words := TICKET_STATES.get(str(params.get("ticket_state") or ""))) is not None:
        values["status"] = words[0] if language is Language.ZH_CN else words[1]
    return values


def _variables(params: Mapping[str, str], zone: tzinfo, at: datetime | None) -> dict[str, str]:
    found = {
        "site": str(params.get("site_name") or ""),
        "account": str(params.get("account_number") or ""),
        "utility": _ZH_UTILITY.get(str(params.get("utility")), _ZH_ANY)["u"],
        "ticket": str(params.get("ticket") or ""),
        "status": TICKET_STATES.get(str(params.get("ticket_state") or ""), ("", ""))[0],
    }
    for name in ("balance", "amount"):
        if (amount := yuan(params.get(name))) is not None:
            found[name] = str(amount)
    moment = parse_time(params.get("planned_cutoff_at")) or at
    if moment is not None:
        found["time"] = format_time(moment, Language.ZH_CN, zone)
    return {k: v for k, v in found.items() if v}


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _fill(text: str, values: Mapping[str, str]) -> str | None:
    """The text with its values, or None when one of its optional values is missing."""
    if any(p in OPTIONAL and p not in values for p in _placeholders(text)):
        return None
    return text.format_map(values)


def _segment(segment: Segment, values: Mapping[str, str]) -> str:
    choices = segment if isinstance(segment, tuple) else (segment,)
    return next((t for c in choices if (t := _fill(c, values)) is not None), "")
