"""The portal's words, Chinese first with the English in small type beneath
(``?lang=en`` swaps them), keyed like the console's: the console's labels for supply
states, utilities and message topics are shared, the portal's own are here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from markupsafe import Markup

from meterpay.web.console.labels import WORDS as CONSOLE_WORDS
from meterpay.web.console.labels import Lang

_PORTAL: Final[dict[str, tuple[str, str]]] = {
    "portal": ("业主服务", "Owners' portal"),
    "home": ("我的账户", "My accounts"),
    "no_accounts": (
        "您的手机号下还没有账户，请联系物业服务中心。",
        "No account is registered to your number yet: please ask the property office.",
    ),
    "balance": ("余额", "Balance"),
    "days_left": ("预计可用", "Lasts about"),
    "days": ("天", "days"),
    "no_estimate": ("—", "—"),
    "no_estimate_hint": ("暂无用量记录，无法估算", "no use yet to estimate from"),
    "average": ("近 30 天日均", "30-day daily average"),
    "state": ("供应状态", "Supply"),
    "closed": ("已销户", "closed"),
    "top_up": ("充值", "Top up"),
    "top_up.amount": ("充值金额（元）", "Amount (元)"),
    "top_up.other": ("其他金额", "Other amount"),
    "top_up.pay": ("去支付", "Pay"),
    "top_up.provider": ("支付方式", "Pay with"),
    "top_up.none": (
        "线上充值暂未开通，请到物业服务中心缴费。",
        "Online top-up is not available here: please pay at the property office.",
    ),
    "provider.sandbox": ("演示支付", "Sandbox (demo)"),
    "provider.wechat": ("微信支付", "WeChat Pay"),
    "provider.alipay": ("支付宝", "Alipay"),
    "wechat.pay_in_app": ("正在打开微信支付…", "Opening WeChat Pay…"),
    "wechat.open_in_wechat": (
        "请在微信中打开本页面完成支付。",
        "Open this page in WeChat to pay.",
    ),
    "wechat.link": ("用微信支付", "Pay with WeChat"),
    "wechat.link_hint": (
        "首次使用需经微信授权，获取您在本公众号下的身份标识，仅用于支付。",
        "The first time, WeChat confirms who you are to this account; used only to pay.",
    ),
    "wechat.failed": ("微信授权未完成", "WeChat authorization did not complete"),
    "wechat.linked": ("已关联微信，可用微信支付充值。", "WeChat is linked: you can pay with it."),
    "order.no": ("订单号", "Order no."),
    "usage": ("用量", "Usage"),
    "usage.daily": ("近 30 天每日用量", "Daily use, last 30 days"),
    "usage.monthly": ("近 12 个月", "Last 12 months"),
    "usage.quantity": ("用量", "Use"),
    "usage.cost": ("费用", "Cost"),
    "usage.day": ("日期", "Day"),
    "usage.month": ("月份", "Month"),
    "bills": ("账单", "Bills"),
    "bill.month": ("账单月份", "Month"),
    "bill.total": ("本月扣费", "Charged this month"),
    "bill.quantity": ("本月用量", "Used this month"),
    "bill.breakdown": ("费用构成", "Breakdown"),
    "bill.charges": ("扣费笔数", "Charges"),
    "bill.none": ("本月没有扣费。", "Nothing charged this month."),
    "bill.show": ("查看", "Show"),
    "component.energy": ("基本用量费", "Usage"),
    "component.share": ("公摊分摊", "Shared supply"),
    "component.surcharge": ("附加费", "Surcharge"),
    "component.fee": ("固定费用", "Fixed fee"),
    "messages": ("消息", "Messages"),
    "messages.none": ("暂无消息。", "No messages yet."),
    "messages.unread": ("未读", "unread"),
    "messages.mark_read": ("标为已读", "Mark read"),
    "tickets": ("报修", "Repairs"),
    "ticket.new": ("我要报修", "Report a problem"),
    "ticket.description": ("问题描述", "What is wrong"),
    "ticket.description_hint": (
        "例如：厨房插座没电、水表漏水",
        "e.g. no power at the kitchen socket, the water meter leaks",
    ),
    "ticket.photos": (
        "照片（最多 3 张，JPG/PNG/WebP，每张不超过 5 MB）",
        "Photos (up to 3; JPEG, PNG or WebP; 5 MB each)",
    ),
    "ticket.send": ("提交报修", "Send"),
    "ticket.sent": ("报修已提交，物业会尽快处理。", "Sent: the property office will be in touch."),
    "ticket.none": ("还没有报修记录。", "No repair requests yet."),
    "ticket.no": ("报修单号", "Request no."),
    "ticket.filed": ("提交时间", "Sent"),
    "ticket.history": ("处理进度", "Progress"),
    "ticket.assignee": ("处理人", "Handled by"),
    "ticket.cancel": ("取消报修", "Cancel this request"),
    "ticket.cancel_reason": ("取消原因（选填）", "Why (optional)"),
    "ticket.cancel_reason_hint": ("例如：问题已自行解决", "e.g. it works again"),
    "ticket.cancel_send": ("取消报修", "Cancel request"),
    "ticket.cancel_confirm": (
        "确定要取消这条报修吗？取消后物业将不再处理。",
        "Cancel this repair request? The property office will not work on it any more.",
    ),
    "ticket.cancelled": ("报修已取消。", "The request is cancelled."),
    "ticket_state.open": ("待受理", "received"),
    "ticket_state.assigned": ("已派单", "assigned"),
    "ticket_state.in_progress": ("处理中", "in progress"),
    "ticket_state.done": ("已完成", "done"),
    "ticket_state.cancelled": ("已取消", "cancelled"),
    "settings": ("设置", "Settings"),
    "settings.warnings": ("余额提醒", "Low-balance alerts"),
    "settings.warning1": ("第一次提醒", "First alert"),
    "settings.warning2": ("第二次提醒", "Second alert"),
    "settings.site_default": ("按物业默认", "as the property sets it"),
    "settings.by_amount": ("余额低于（元）", "balance below (元)"),
    "settings.by_days": ("预计可用天数少于", "fewer days left than"),
    "settings.now": ("当前生效", "now in force"),
    "settings.fixed": (
        "透支额度与停供线由物业设定，业主不能修改。",
        "The credit limit and the cut-off line are set by the property office.",
    ),
    "settings.contact": ("联系方式", "How to reach me"),
    "settings.phone": ("手机号（登录用）", "Mobile (your sign-in)"),
    "settings.email": ("电子邮箱", "E-mail"),
    "settings.language": ("消息语言", "Language of messages"),
    "settings.save": ("保存", "Save"),
    "settings.saved": ("已保存。", "Saved."),
    "back": ("返回", "Back"),
    "lang.zh-CN": ("中文", "Chinese"),
    "lang.en": ("English", "English"),
}

WORDS: Final[dict[str, tuple[str, str]]] = {**CONSOLE_WORDS, **_PORTAL}


@dataclass(frozen=True, slots=True)
class Words:
    """Labels in one language first and the other in small type (as the console's)."""

    lang: Lang = Lang.ZH_CN

    def __call__(self, key: str) -> Markup:
        primary, secondary = self.pair(key)
        return Markup('{}<small class="alt" lang="{}">{}</small>').format(
            primary, self.other.value, secondary
        )

    def plain(self, key: str) -> str:
        return self.pair(key)[0]

    def pair(self, key: str) -> tuple[str, str]:
        zh, en = WORDS.get(key, (key, key))
        return (en, zh) if self.lang is Lang.EN else (zh, en)

    @property
    def other(self) -> Lang:
        return Lang.ZH_CN if self.lang is Lang.EN else Lang.EN


def component_key(component: str) -> str:
    """The label of a bill line's component: ``surcharge:sewage`` -> ``component.surcharge``."""
    head = component.split(":", 1)[0]
    return f"component.{head}" if f"component.{head}" in WORDS else "component.fee"
