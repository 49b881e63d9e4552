"""What staff may see of a person's contact on a screen: phone numbers, e-mail addresses
and WeChat openids masked (``138****0000``) — enough to recognise, not enough to dial.

The console's read models (``control.overview``, ``reports.*``) never show a recipient or
an owner's phone number whole; they pass it through here.
"""

from __future__ import annotations

from meterpay.notify.model import ChannelName


def mask_recipient(channel: ChannelName, recipient: str) -> str:
    """A recipient as staff may see it on a screen: ``138****0000``, ``z***@example.com``,
    ``oAbC****yz`` (WeChat). In-app recipients (``customer:<id>``) are not personal."""
    text = recipient.strip()
    if channel is ChannelName.SMS:
        return _mask_middle(text, keep_end=4)
    if channel is ChannelName.EMAIL:
        local, at, domain = text.partition("@")
        return f"{local[:1]}***@{domain}" if at else _mask_middle(text, keep_end=2)
    if channel is ChannelName.WECHAT:  # an openid is 28 characters: show only its ends
        return f"{text[:4]}****{text[-2:]}" if len(text) > 8 else "****"
    return text


def masked_phone(phone: str | None) -> str | None:
    """An owner's phone number as a table shows it (None or blank: None)."""
    return mask_recipient(ChannelName.SMS, phone) if phone else None


def _mask_middle(text: str, *, keep_end: int) -> str:
    """Hide the four characters before the last ``keep_end`` (a phone number's 5th to 8th
    digits); a value too short to show anything safely is hidden whole."""
    if len(text) <= keep_end + 4:
        return "****"
    return text[: len(text) - keep_end - 4] + "****" + text[len(text) - keep_end :]
