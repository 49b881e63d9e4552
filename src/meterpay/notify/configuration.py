"""Which settings a channel needs, told as a reason a message can be skipped with."""

from __future__ import annotations

from meterpay.config import Settings


def blank_settings(settings: Settings, *names: str) -> str | None:
    """A reason naming the settings that are empty, or None when all are set."""
    empty = [n for n in names if not _value(getattr(settings, n))]
    if not empty:
        return None
    listed = ", ".join("MP_" + n.upper() for n in empty)
    return f"not configured: {listed} {'is' if len(empty) == 1 else 'are'} empty"


def _value(setting: object) -> str:
    reveal = getattr(setting, "get_secret_value", None)
    return str(reveal() if reveal else setting).strip()
