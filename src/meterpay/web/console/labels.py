"""The console's words, in Chinese and English, keyed by a stable id.

The console is Chinese first: each label shows the Chinese words with the English in
small type beneath (``?lang=en`` swaps them). Keys follow the values they name —
``state.in_arrears``, ``command.failed``, ``topic.final_notice`` — so a template can
label any enum value as ``w("state." ~ row.state)``. A key missing here shows itself
(never an empty cell), which a test catches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from markupsafe import Markup

from meterpay.web.console import words_admin, words_jobs, words_pages, words_tickets


class Lang(StrEnum):
    ZH_CN = "zh-CN"
    EN = "en"

    @classmethod
    def of(cls, value: str | None) -> Lang:
        return cls.EN if value and value.lower().startswith("en") else cls.ZH_CN


_WORDS: Final[dict[str, tuple[str, str]]] = {
    # the navigation
    "page.dashboard": ("仪表盘", "Dashboard"),
    "page.sites": ("项目与房间", "Sites"),
    "page.tickets": ("报修工单", "Work orders"),
    "page.tariffs": ("电价水价", "Tariffs"),
    "page.control": ("拉闸合闸", "Supply control"),
    "page.import": ("批量导入", "Import"),
    "page.users": ("用户与角色", "Users"),
    "page.audit": ("审计日志", "Audit log"),
    # signing in
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "two_factor": ("两步验证", "Two-step sign-in"),
    "sign_in.title": ("登录运营控制台", "Sign in to the console"),
    "sign_in.username": ("用户名", "User name"),
    "sign_in.password": ("密码", "Password"),
    "sign_in.totp": ("动态验证码（6 位）", "Authenticator code (6 digits)"),
    "sign_in.owner_title": ("业主登录", "Owners' sign-in"),
    "sign_in.phone": ("手机号", "Mobile number"),
    "sign_in.code": ("短信验证码", "SMS code"),
    "sign_in.send_code": ("获取验证码", "Send me a code"),
    "sign_in.code_sent": (
        "验证码已发送，5 分钟内有效。",
        "A code was sent; it is valid for 5 minutes.",
    ),
    "sign_in.demo_code": ("演示环境：验证码为", "Demo: the code is"),
    "sign_in.with_password": ("用密码登录", "Sign in with a password"),
    "sign_in.staff_link": ("物业人员登录", "Staff sign-in"),
    "sign_in.owner_link": ("业主登录", "Owners' sign-in"),
    "password.title": ("修改密码", "Change password"),
    "password.must_change": ("请先设置新密码再继续。", "Choose a new password before you go on."),
    "password.old": ("当前密码", "Current password"),
    "password.new": ("新密码（至少 10 位）", "New password (10 characters or more)"),
    "password.again": ("再次输入新密码", "New password again"),
    "password.save": ("保存", "Save"),
    "password.mismatch": ("两次输入的新密码不一致。", "The two new passwords differ."),
    "error.403": ("没有权限", "Not allowed"),
    "error.404": ("找不到", "Not found"),
    "error.back": ("返回首页", "Back to the start"),
    # the page
    "console": ("运营控制台", "Operators' console"),
    "page.supply": ("供应状态", "Supply"),
    "page.counter": ("收费台", "Counter"),
    "counter.find": ("查找账户", "Find an account"),
    "counter.find_hint": ("账户号、房号或业主手机号", "account, unit or owner's phone"),
    "counter.search": ("查找", "Search"),
    "counter.nothing": ("没有找到账户。", "No account found."),
    "counter.amount": ("金额（元）", "Amount (元)"),
    "counter.method": ("方式", "Method"),
    "counter.note": ("备注", "Note"),
    "counter.take": ("收款并打印收据", "Take it and print the receipt"),
    "counter.online": ("业主线上充值（演示支付）", "Owner's online top-up (sandbox)"),
    "counter.online_go": ("去支付", "Pay"),
    "site": ("项目", "Site"),
    "no_site": (
        "还没有项目。创建一个项目，或运行 make demo。",
        "No site yet: create one, or run make demo.",
    ),
    "refresh": ("每 5 秒自动刷新", "refreshes every 5 s"),
    "as_of": ("数据时间", "as of"),
    "language": ("English", "中文"),
    "accounts_by_state": ("各状态账户数", "Accounts by supply state"),
    "attention": ("需关注的账户", "Accounts not in normal supply"),
    "attention.none": ("所有账户供应正常。", "Every account is in normal supply."),
    "all_states": ("全部", "all"),
    "shown": ("显示", "showing"),
    "of": ("共", "of"),
    "prev": ("上一页", "previous"),
    "next": ("下一页", "next"),
    "events": ("最新状态变化", "Latest supply events"),
    "commands": ("最新控制命令", "Latest commands"),
    "messages": ("业主最新消息", "Owners' latest messages"),
    "alarms": ("未关闭告警", "Open alarms"),
    "none": ("暂无", "none yet"),
    # columns
    "col.unit": ("房间", "Unit"),
    "col.owner": ("业主", "Owner"),
    "col.account": ("账户号", "Account"),
    "col.utility": ("类型", "Utility"),
    "col.balance": ("余额", "Balance"),
    "col.state": ("状态", "State"),
    "col.since": ("进入时间", "Since"),
    "col.cutoff": ("计划停供", "Planned cut-off"),
    "col.protection": ("保电原因", "Protected because"),
    "col.time": ("时间", "Time"),
    "col.change": ("变化", "Change"),
    "col.cause": ("原因", "Cause"),
    "col.kind": ("命令", "Kind"),
    "col.attempts": ("尝试", "Tries"),
    "col.meter": ("表计", "Meter"),
    "col.expires": ("失效时间", "Expires"),
    "col.error": ("最近错误", "Last error"),
    "col.topic": ("主题", "Topic"),
    "col.channel": ("渠道", "Channel"),
    "col.recipient": ("接收人", "Recipient"),
    "col.message": ("内容", "Message"),
    "col.severity": ("级别", "Severity"),
    "col.alarm": ("告警", "Alarm"),
    "col.seen": ("最近发生", "Last seen"),
    "col.count": ("次数", "Count"),
    # supply states (meterpay.control.model.SupplyState)
    "state.normal": ("正常", "normal"),
    "state.low": ("余额偏低", "low"),
    "state.very_low": ("余额不足", "very low"),
    "state.in_arrears": ("欠费待停", "in arrears"),
    "state.cut_off": ("已停供", "cut off"),
    "state.restore_pending": ("待恢复", "restore pending"),
    # utilities
    "utility.electricity": ("电", "electricity"),
    "utility.water": ("水", "water"),
    # the planned cut-off
    "cutoff.needs_person": ("不自动停供", "needs a person"),
    "cutoff.allowed": ("正在停供", "cutting now"),
    "cutoff.notice_period": ("通知期内", "notice period"),
    "cutoff.final_notice": ("最后通知后", "after the final notice"),
    "cutoff.friendly_hours": ("夜间顺延", "deferred: night hours"),
    "cutoff.rest_day": ("休息日顺延", "deferred: rest day"),
    "cutoff.unknown_day": ("日历未知", "calendar unknown"),
    "cutoff.protected": ("保电", "protected"),
    "cutoff.manual_only": ("仅人工停供", "manual only"),
    "cutoff.no_allowed_moment": ("无可停时间", "no allowed moment"),
    # causes of supply events (reading:<id>, topup:<key>, command:<id>, ...)
    "cause.reading": ("抄表扣费", "charged reading"),
    "cause.topup": ("充值", "top-up"),
    "cause.command": ("表计确认", "meter confirmed"),
    "cause.other": ("其他", "other"),
    # commands (meterpay.control.commands)
    "kind.cut.electricity": ("拉闸", "cut"),
    "kind.cut.water": ("关阀", "close valve"),
    "kind.restore.electricity": ("合闸", "restore"),
    "kind.restore.water": ("开阀", "open valve"),
    "kind.read_status.electricity": ("读状态", "read status"),
    "kind.read_status.water": ("读状态", "read status"),
    "kind.time_sync.electricity": ("校时", "time sync"),
    "kind.time_sync.water": ("校时", "time sync"),
    "command.pending": ("待发送", "pending"),
    "command.sent": ("已发送", "sent"),
    "command.acknowledged": ("表计已应答", "acknowledged"),
    "command.verified": ("已核实", "verified"),
    "command.failed": ("失败", "failed"),
    "command.expired": ("已失效", "expired"),
    # the owners' messages (meterpay.notify.model)
    "topic.warning1": ("低余额提醒", "low balance"),
    "topic.warning2": ("余额不足", "balance very low"),
    "topic.arrears_notice": ("欠费停供通知", "arrears notice"),
    "topic.final_notice": ("停供最后通知", "final notice"),
    "topic.cut_off": ("已停供", "cut off"),
    "topic.restored": ("已恢复供应", "restored"),
    "topic.top_up_receipt": ("充值到账", "top-up receipt"),
    "topic.sign_in_code": ("登录验证码", "sign-in code"),
    "topic.ticket_update": ("报修进度", "repair request"),
    "channel.in_app": ("站内信", "in-app"),
    "channel.sms": ("短信", "SMS"),
    "channel.email": ("邮件", "email"),
    "channel.wechat": ("微信", "WeChat"),
    "channel.webhook": ("Webhook", "webhook"),
    "message.pending": ("待发送", "pending"),
    "message.sending": ("发送中", "sending"),
    "message.sent": ("已送达", "sent"),
    "message.failed": ("失败", "failed"),
    "message.skipped": ("未发送", "skipped"),
    # alarms (meterpay.alarms.model)
    "alarm.cutoff_needs_person": ("停供需人工决定", "cut-off needs a person"),
    "alarm.arrears_growing": ("欠费持续增加", "arrears growing"),
    "alarm.cutoff_deferred_too_long": ("停供顺延过久", "cut-off deferred too long"),
    "alarm.command_failed": ("命令未完成", "command failed"),
    "alarm.relay_mismatch": ("开关状态不符", "relay mismatch"),
    "alarm.bypass": ("疑似绕表用电", "possible bypass"),
    "alarm.restore_held": ("人工停供中，待人工恢复", "restore held: manual cut in force"),
    "alarm.payment_mismatch": ("支付与订单不符", "payment does not match the order"),
    "alarm.reconciliation": ("对账差异", "reconciliation difference"),
    "severity.info": ("提示", "info"),
    "severity.warning": ("警告", "warning"),
    "severity.critical": ("严重", "critical"),
    "alarm_state.open": ("未处理", "open"),
    "alarm_state.acknowledged": ("已确认", "acknowledged"),
    "alarm_state.closed": ("已关闭", "closed"),
    # the cash counter (meterpay.ledger.cash): receipts and shift reports
    "cause.reversal": ("冲正", "reversal"),
    "method.cash": ("现金", "cash"),
    "method.pos": ("银行卡 POS", "bank card (POS)"),
    "page.receipt": ("收款收据", "Receipt"),
    "page.shift": ("收款员交班报表", "Cashier shift report"),
    "receipt.no": ("收据号", "Receipt no."),
    "receipt.time": ("收款时间", "Time"),
    "receipt.payer": ("缴款人", "Paid by"),
    "receipt.amount": ("金额", "Amount"),
    "receipt.words": ("人民币（大写）", "In words (RMB)"),
    "receipt.method": ("支付方式", "Method"),
    "receipt.cashier": ("收款员", "Cashier"),
    "receipt.balance_after": ("充值后余额", "Balance after"),
    "receipt.note": ("备注", "Note"),
    "receipt.reversed": ("已冲正", "REVERSED"),
    "receipt.reversed_at": ("冲正时间", "Reversed at"),
    "receipt.reversed_by": ("冲正人", "Reversed by"),
    "receipt.reason": ("冲正原因", "Reason"),
    "receipt.balance_after_reversal": ("冲正后余额", "Balance after reversal"),
    "receipt.keep": ("请妥善保管本收据", "Please keep this receipt"),
    "print": ("打印", "Print"),
    "paper": ("纸张", "Paper"),
    "shift.cashier": ("收款员", "Cashier"),
    "shift.all_cashiers": ("全部收款员", "all cashiers"),
    "shift.date": ("日期", "Date"),
    "shift.period": ("时段", "Period"),
    "shift.printed_at": ("打印时间", "Printed"),
    "shift.show": ("查询", "Show"),
    "shift.totals": ("汇总", "Totals"),
    "shift.count": ("笔数", "Count"),
    "shift.taken": ("收款", "Taken"),
    "shift.reversed": ("冲正", "Reversed"),
    "shift.net": ("净额", "Net"),
    "shift.total": ("合计", "Total"),
    "shift.net_words": ("净额（大写）", "Net in words"),
    "shift.receipts": ("收款明细", "Receipts"),
    "shift.reversals": ("冲正明细", "Reversals"),
    "shift.none": ("本时段没有收款。", "No payments in this period."),
    "shift.sign_cashier": ("收款员签字", "Cashier's signature"),
    "shift.sign_checker": ("复核人签字", "Checked by"),
    # move-out settlements (meterpay.ledger.settlement): the printed settlement (退费)
    "cause.payout": ("退费转入", "move-out transfer"),
    "page.settlement": ("退费结算单", "Move-out settlement"),
    "payout.cash": ("现金退费", "paid out in cash"),
    "payout.transfer": ("转入下一住户账户", "transferred to the next occupant"),
    "settlement.no": ("结算单号", "Settlement no."),
    "settlement.time": ("结算时间", "Settled at"),
    "settlement.holder": ("迁出住户", "Moving out"),
    "settlement.final_readings": ("最终读数", "Final readings"),
    "settlement.read_at": ("抄表时间", "Read at"),
    "settlement.total": ("表底数", "Register"),
    "settlement.charge": ("扣费", "Charged"),
    "settlement.read_before": ("此前已抄", "read before"),
    "settlement.charges": ("最终扣费", "Final charges"),
    "settlement.balance": ("扣费后余额", "Balance after charges"),
    "settlement.payout": ("退费方式", "Payout"),
    "settlement.payout_amount": ("退费金额", "Amount paid out"),
    "settlement.nothing_paid": ("无余额可退", "nothing to pay out"),
    "settlement.next_occupant": ("下一住户账户", "Next occupant's account"),
    "settlement.debt": ("欠费", "Debt left"),
    "settlement.debt_note": (
        "欠费由迁出住户承担，留在已销户账户上，不转给下一住户。",
        "The debt is owed by the person moving out; it stays on the closed account and "
        "is never passed to the next occupant.",
    ),
    "settlement.meters": ("表计移交", "Meters handed over"),
    "settlement.handed_to": ("移交至", "To"),
    "settlement.vacant": ("空置，无账户", "vacant, no account"),
    "settlement.no_meters": ("本账户无表计。", "The account has no meters."),
    "settlement.by": ("经办人", "Settled by"),
    "settlement.reason": ("原因", "Reason"),
    "settlement.sign_owner": ("迁出住户签字", "Person moving out"),
    "settlement.sign_next": ("下一住户签字", "Next occupant"),
    "settlement.sign_operator": ("经办人签字", "Operator"),
}


WORDS: Final[dict[str, tuple[str, str]]] = {
    **_WORDS,
    **words_pages.WORDS,
    **words_admin.WORDS,
    **words_tickets.WORDS,
    **words_jobs.WORDS,
}
"""Every label; the pages' and the administration pages' words live in their own modules."""


@dataclass(frozen=True, slots=True)
class Words:
    """Labels in one language first and the other in small type."""

    lang: Lang = Lang.ZH_CN

    def __call__(self, key: str) -> Markup:
        primary, secondary = self.pair(key)
        return Markup('{}<small class="alt" lang="{}">{}</small>').format(
            primary, self.other.value, secondary
        )

    def plain(self, key: str) -> str:
        """Only the first language's words (titles, attributes)."""
        return self.pair(key)[0]

    def pair(self, key: str) -> tuple[str, str]:
        zh, en = WORDS.get(key, (key, key))
        return (en, zh) if self.lang is Lang.EN else (zh, en)

    @property
    def other(self) -> Lang:
        return Lang.ZH_CN if self.lang is Lang.EN else Lang.EN


def cause_key(cause: str) -> str:
    """The kind of a supply event's cause: ``reading:12`` -> ``cause.reading``."""
    head = cause.split(":", 1)[0]
    return f"cause.{head}" if f"cause.{head}" in WORDS else "cause.other"
