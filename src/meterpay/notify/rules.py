"""When to try a message again, when a recipient has had enough, which message a newer
one makes pointless.

Invariants:
- retries back off exponentially from ``FIRST_RETRY`` and never wait longer than
  ``MAX_RETRY``; after ``MAX_ATTEMPTS`` tries a message fails;
- a rate limit of N per ``RATE_WINDOW`` never lets an (N+1)th send into any window, and
  names the earliest moment the next send fits (a message waits, it is not dropped);
- only low-balance warnings are ever superseded: a notice about a cut-off, a restore or
  a top-up is always delivered.

Pure: the clock's reading is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from meterpay.notify.model import Outcome, Topic

FIRST_RETRY: Final = timedelta(seconds=30)
MAX_RETRY: Final = timedelta(hours=1)
MAX_ATTEMPTS: Final = 8
RATE_WINDOW: Final = timedelta(hours=1)
SUPERSEDABLE: Final = frozenset({Topic.WARNING1, Topic.WARNING2})


def retry_after(attempts: int) -> timedelta:
    """The pause after ``attempts`` tries: 30 s, 1 min, 2 min … capped at an hour."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    doubled: timedelta = FIRST_RETRY * (1 << min(attempts - 1, 30))
    return min(doubled, MAX_RETRY)


def out_of_tries(attempts: int) -> bool:
    return attempts >= MAX_ATTEMPTS


def next_allowed(sends: Iterable[datetime], limit: int | None, now: datetime) -> datetime | None:
    """None when one more send fits the limit now; otherwise the earliest time it does.

    ``sends`` are the recipient's sends on this channel (older ones are ignored); a limit
    of None means no limit."""
    if limit is None:
        return None
    if limit < 1:
        raise ValueError(f"a rate limit must be at least 1, got {limit}")
    recent = sorted(t for t in sends if now - RATE_WINDOW < t <= now)
    if len(recent) < limit:
        return None
    # The window that ends at the answer holds only the sends after recent[-limit].
    return recent[len(recent) - limit] + RATE_WINDOW


def superseded(topic: Topic, newer_topics: Iterable[Topic]) -> bool:
    """A low-balance warning is stale once anything newer went to the same person on the
    same channel: a newer warning repeats it, a notice, cut-off or top-up overtakes it."""
    return topic in SUPERSEDABLE and any(True for _ in newer_topics)


def http_outcome(status: int) -> Outcome:
    """2xx sent; timeouts, throttling and server errors are worth a retry; any other
    answer is a refusal that a retry would only repeat."""
    if 200 <= status < 300:
        return Outcome.SENT
    if status in (408, 425, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.FAILED
