"""When each meter's polls are due, for links that poll (DTU buses, Modbus TCP endpoints).

A meter model names how often each read is made (``every_minutes``); a link keeps,
per (meter, interval), the monotonic time the next poll is due and always serves
the most overdue meter first, with every interval of that meter that is due, so
one round yields one reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PollSchedule:
    """When each (meter, interval) group of polls is next due (monotonic seconds)."""

    due: dict[tuple[int, int], float] = field(default_factory=dict)

    def next_round(self, now: float) -> tuple[int, list[int]] | None:
        """The meter whose polls are most overdue and every interval of it due now."""
        ready = [(at, key) for key, at in self.due.items() if at <= now]
        if not ready:
            return None
        meter_id = min(ready)[1][0]
        return meter_id, sorted(minutes for _, (m, minutes) in ready if m == meter_id)

    def wait_s(self, now: float) -> float:
        """Seconds until the next poll is due (a minute when nothing is scheduled)."""
        return max(0.0, min(self.due.values(), default=now + 60.0) - now)
