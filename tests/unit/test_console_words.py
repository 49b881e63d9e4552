"""What the console writes: money, times on the site's clock, labels for every value the
pages show, and recipients masked before they reach a screen."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from meterpay.alarms.model import AlarmKind, AlarmState, Severity
from meterpay.control.commands import CommandKind, CommandState
from meterpay.control.masking import mask_recipient
from meterpay.control.model import SupplyState
from meterpay.control.rules import CutoffReason
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.notify.model import ChannelName, MessageState, Topic
from meterpay.web.console import labels, words_admin, words_pages, words_tickets
from meterpay.web.console.formats import SiteClock, yuan
from meterpay.web.console.labels import WORDS, Lang, Words, cause_key

NOW = datetime(2026, 11, 27, 6, 30, tzinfo=UTC)  # 14:30 in Shanghai


@pytest.mark.parametrize(
    ("fen", "shown"),
    [
        (1234, "¥12.34"),
        (-1234, "-¥12.34"),
        (0, "¥0.00"),
        (5, "¥0.05"),
        (123456789, "¥1,234,567.89"),
    ],
)
def test_money_is_written_in_yuan_exactly(fen: int, shown: str) -> None:
    assert yuan(Money(fen)) == shown


def test_times_are_written_on_the_sites_clock_with_the_year_only_when_it_differs() -> None:
    clock = SiteClock.of("Asia/Shanghai", NOW)
    assert clock(NOW) == "11月27日 14:30"
    assert clock(NOW.replace(year=2025)) == "2025年11月27日 14:30"
    assert clock(None) == ""
    assert SiteClock.of("Asia/Shanghai", NOW, Lang.EN)(NOW) == "27 Nov 14:30"
    assert SiteClock.of("Asia/Urumqi", NOW)(NOW) == "11月27日 12:30"


def test_every_value_the_pages_show_has_words_in_both_languages() -> None:
    """A new enum value without a label would show its key: this names it."""
    keys = (
        [f"state.{s}" for s in SupplyState]
        + [f"command.{s}" for s in CommandState]
        + [f"kind.{k}.{u}" for k in CommandKind for u in Utility]
        + [f"utility.{u}" for u in Utility]
        + [f"topic.{t}" for t in Topic]
        + [f"channel.{c}" for c in ChannelName]
        + [f"message.{s}" for s in MessageState]
        + [f"alarm.{k}" for k in AlarmKind]
        + [f"severity.{s}" for s in Severity]
        + [f"alarm_state.{s}" for s in AlarmState]
        + [f"cutoff.{r}" for r in CutoffReason]
    )
    missing = [k for k in keys if k not in WORDS or not all(WORDS[k])]
    assert missing == []


def test_a_label_shows_one_language_first_and_the_other_small_and_escaped() -> None:
    assert str(Words()("state.cut_off")) == '已停供<small class="alt" lang="en">cut off</small>'
    assert str(Words(Lang.EN)("state.cut_off")).startswith("cut off<small")
    assert Words(Lang.of("en-US")).plain("state.low") == "low"
    assert str(Words()("<b>unknown</b>")).startswith("&lt;b&gt;")


def test_a_supply_events_cause_is_labelled_by_its_kind() -> None:
    assert cause_key("reading:12") == "cause.reading"
    assert cause_key("topup:cash:abc") == "cause.topup"
    assert cause_key("command:7") == "cause.command"
    assert cause_key("something:else") == "cause.other"


@pytest.mark.parametrize(
    ("channel", "recipient", "shown"),
    [
        (ChannelName.SMS, "13812345678", "138****5678"),
        (ChannelName.SMS, "+8613812345678", "+86138****5678"),
        (ChannelName.SMS, "1234", "****"),
        (ChannelName.EMAIL, "zhang.san@example.com", "z***@example.com"),
        (ChannelName.WECHAT, "oAbCdEfGhIjKlMnOpQrStUvWxYz1", "oAbC****z1"),
        (ChannelName.IN_APP, "customer:12", "customer:12"),
    ],
)
def test_recipients_are_masked_for_the_screen(
    channel: ChannelName, recipient: str, shown: str
) -> None:
    assert mask_recipient(channel, recipient) == shown


def test_every_label_a_console_template_names_exists() -> None:
    """``w("page.x")`` with a key that has no words would show the key itself."""
    templates = Path(labels.__file__).parent / "templates"
    used = {
        key
        for page in templates.glob("*.html")
        for key in re.findall(r"""\bw(?:\.plain)?\(\s*["']([^"'~]+)["']\s*\)""", page.read_text())
    }
    assert sorted(k for k in used if k not in WORDS) == []


def test_the_word_modules_never_reuse_a_key() -> None:
    modules = (labels._WORDS, words_pages.WORDS, words_admin.WORDS, words_tickets.WORDS)
    keys = [k for words in modules for k in words]
    assert len(keys) == len(set(keys))
