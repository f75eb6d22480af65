"""The negotiation service's errors; the API maps each to one HTTP status."""

from __future__ import annotations

from shared.errors import ParleyError


class NegotiationError(ParleyError):
    """Base of this service's errors; ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Unauthenticated(NegotiationError):
    """No valid bearer token."""

    status = 401


class NotFound(NegotiationError):
    """Unknown, or outside the caller's scope (existence is not revealed)."""

    status = 404


class Forbidden(NegotiationError):
    """A known case, but the action is beyond the caller's role, authority or recusal."""

    status = 403


class Conflict(NegotiationError):
    """The case changed since the caller read it, or the action does not fit its state."""

    status = 409


class Unprocessable(NegotiationError):
    """Well-formed but not acceptable (e.g. a flagged offer without justification)."""

    status = 422
