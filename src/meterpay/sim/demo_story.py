"""The demo's arrears story: what makes accounts move through the supply states within
minutes of ``make demo``, with the rules that protect owners left on.

- the site's policy gives the arrears notice 20 minutes and the final notice 5 minutes
  before the cut; friendly hours (18:00-08:00) and rest days stay, so at night and at
  weekends a cut-off waits and the console shows when it will happen;
- each meter's load has a fixed size (``usage_scale``), so an opening balance can be
  sized to what the 30 days of history will cost: after the history most accounts are
  normal, some low, very low or in arrears (``STORIES``);
- one elderly resident's electricity is protected (保电): never cut automatically;
- owners pay at the counter (``CounterPayments``), so restores show too.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from meterpay.control import overview
from meterpay.control.model import SupplyState
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.service import cash_top_up
from meterpay.runtime import Runtime
from meterpay.sites.model import UnitKind

log = logging.getLogger("meterpay.demo")

ACTOR: Final = "demo"
POLICY: Final = {"notice_period_minutes": 20, "final_notice_lead_minutes": 5}
PROTECTED_UNIT: Final = "1-0502"
PROTECTED_REASON: Final = "独居老人 elderly resident living alone"
MONTH_COST: Final = {
    (UnitKind.HOME, Utility.ELECTRICITY): 222,
    (UnitKind.SHOP, Utility.ELECTRICITY): 687,
    (UnitKind.HOME, Utility.WATER): 71,
    (UnitKind.SHOP, Utility.WATER): 72,
}
"""What the 30 days of history cost a unit at load scale 1.0 on the demo's Beijing
tariffs, in yuan (measured on a demo run)."""
PAY_EVERY: Final = timedelta(minutes=2)
PAY_AFTER_WAITING: Final = timedelta(minutes=30)
"""An owner in arrears this long without a cut (night, rest day, water) pays anyway."""


@dataclass(frozen=True, slots=True)
class Story:
    """Where an opening balance leaves an account after the history: between ``low`` and
    ``high`` yuan; an ``empty`` one instead starts with that little (very low at once,
    in arrears early in the history). Weights are per hundred accounts."""

    name: str
    electricity: int
    water: int
    low: int
    high: int

    @property
    def empty(self) -> bool:
        return self.name == "empty"


STORIES: Final = (
    Story("comfortable", 62, 83, 150, 600),
    Story("low", 10, 7, 25, 45),
    Story("very_low", 8, 5, 5, 15),
    Story("in_arrears", 12, 3, -60, -5),
    Story("empty", 8, 2, 5, 19),
)
EMPTY: Final = STORIES[-1]


def usage_scale(address: str) -> float:
    """How large a meter's load is (0.6-1.6 times its unit kind's profile): the same for
    the seeding, the history and the live links, so openings can be sized to it."""
    return random.Random(f"usage:{address}").uniform(0.6, 1.6)  # noqa: S311  simulation only


def opening_balance(
    rng: random.Random, kind: UnitKind, utility: Utility, address: str, story: Story | None = None
) -> Money:
    """What the owner paid in: what the history will cost plus what the story leaves."""
    weights = [s.electricity if utility is Utility.ELECTRICITY else s.water for s in STORIES]
    chosen = story or rng.choices(STORIES, weights)[0]
    if chosen.empty:
        return Money.from_yuan(rng.randint(chosen.low, chosen.high))
    cost = MONTH_COST[(kind, utility)] * usage_scale(address)
    return Money.from_yuan(max(1, round(cost + rng.uniform(chosen.low, chosen.high))))


class CounterPayments:
    """Owners paying at the counter (cashier ``demo``): every ``PAY_EVERY`` one whose
    supply is cut, or who has waited in arrears ``PAY_AFTER_WAITING``, pays the debt and
    100-300 元 more. Protected accounts are left to a person, as the rules say."""

    def __init__(self, rt: Runtime, site_id: int, rng: random.Random) -> None:
        self.rt, self.site_id, self.rng = rt, site_id, rng
        self.next_at = rt.clock.now() + PAY_EVERY

    def maybe_pay(self) -> int | None:
        """Let one owner pay if it is time; the account paid for, if any."""
        now = self.rt.clock.now()
        if now < self.next_at:
            return None
        self.next_at = now + PAY_EVERY
        waiting = overview.accounts_in(
            self.rt, self.site_id, (SupplyState.CUT_OFF, SupplyState.IN_ARREARS), limit=100
        )
        payer = next(
            (
                a
                for a in waiting
                if a.protected_reason is None
                and (a.state is SupplyState.CUT_OFF or now - (a.since or now) >= PAY_AFTER_WAITING)
            ),
            None,
        )
        if payer is None:
            return None
        debt = _round_up(max(0, -payer.balance.fen), 100) // 100
        amount = Money.from_yuan(_round_up(debt + self.rng.choice((100, 200, 300)), 50))
        cash_top_up(
            self.rt,
            account_id=payer.account_id,
            amount=amount,
            idempotency_key=f"demo-counter-{payer.account_id}-{now:%Y%m%dT%H%M%S}",
            cashier=ACTOR,
            note="demo: 业主前台缴费 the owner paid at the counter",
        )
        log.info("demo: the owner of %s paid %s 元 at the counter", payer.number, amount)
        return payer.account_id


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step
