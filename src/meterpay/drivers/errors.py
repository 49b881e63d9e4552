"""The one error type the codecs raise: a frame that is not what it claims to be.

Every message names what was wrong and the values involved (``checksum 0x08 !=
computed 0x13``, ``missing end byte 0x16``), so a frame log entry explains itself.
A meter that answers with an abnormal reply is not an error here: that is a
decoded reply carrying the meter's error bits.
"""

from __future__ import annotations


class FrameError(ValueError):
    """Bytes that do not form a valid frame, or a frame that breaks the protocol's rules."""


class StreamOverflow(FrameError):
    """More bytes were fed to a stream decoder than it may hold without being drained."""


class UnexpectedReply(FrameError):
    """A well-formed reply that does not answer the request it was matched with
    (another meter's address, another function, another data identifier)."""
