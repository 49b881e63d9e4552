"""Faults a simulated meter can be given while it runs, the way field meters misbehave.

Switches on ``MeterFaults`` (set or clear them at any time; the next request sees them):
- ``offline``: the meter hears nothing and answers nothing (a cut bus wire, dead module);
  it keeps metering meanwhile, as a real meter does;
- ``slow_seconds``: the answer comes this long after the request; the meter only says
  so, the DTU does the waiting (it owns real time, the meter does not);
- ``garbage``: line noise before or after every reply, or noise instead of it;
- ``leak_per_hour``: a steady draw at every hour, whoever is home (a running toilet:
  the night flow a leak alarm looks for); it stops only when the valve closes;
- ``bypass``: the meter counts while its relay is open or valve closed (a bridged relay).

The tamper faults are events, not switches: ``Usage.rollback`` (the register goes back
once) and ``MeterClock.jump`` (the meter reports readings from the future).

Invariant: noise never contains a frame start (68), end (16) or wake-up (FE) byte, so a
garbled reply tests a decoder's skipping of junk, not its reply timeout.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

_NOT_NOISE: Final = frozenset({0x68, 0x16, 0xFE})
NOISE_BYTES: Final = bytes(b for b in range(256) if b not in _NOT_NOISE)


class Garbage(StrEnum):
    """Where line noise goes relative to a reply."""

    BEFORE = "before"
    AFTER = "after"
    INSTEAD = "instead"


@dataclass(slots=True)
class MeterFaults:
    """The switchable faults of one meter (see the module docstring); all off by default."""

    offline: bool = False
    slow_seconds: float = 0.0
    garbage: Garbage | None = None
    leak_per_hour: Decimal = Decimal(0)
    bypass: bool = False

    def garble(self, reply: bytes, rng: random.Random) -> bytes:
        """``reply`` as it reaches the DTU with the ``garbage`` fault applied."""
        if self.garbage is None:
            return reply
        if self.garbage is Garbage.INSTEAD:
            return noise(len(reply), rng)
        junk = noise(rng.randint(3, 12), rng)
        return junk + reply if self.garbage is Garbage.BEFORE else reply + junk


def noise(size: int, rng: random.Random) -> bytes:
    """``size`` random bytes that cannot start, end or wake up a frame."""
    return bytes(rng.choice(NOISE_BYTES) for _ in range(size))
