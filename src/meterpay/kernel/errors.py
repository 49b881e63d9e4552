"""Domain errors, named for what went wrong; web/ maps them to HTTP codes.

Each carries a stable machine-readable ``code`` that API clients may rely on.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "domain_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class InvalidInput(DomainError):
    code = "invalid_input"


class Conflict(DomainError):
    code = "conflict"


class IdempotencyConflict(Conflict):
    """The same idempotency key was used before for a different request."""

    code = "idempotency_conflict"


class Unauthorized(DomainError):
    """The caller did not prove who they are (missing or wrong token)."""

    code = "unauthorized"


class Forbidden(DomainError):
    """The caller is known but may not do this here."""

    code = "forbidden"


class TooManyAttempts(DomainError):
    """Too many tries in too short a time: wait before trying again."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_s: int, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s
