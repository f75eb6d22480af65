"""Follow-up's errors; HTTP status codes are mapped only in the API."""

from __future__ import annotations

from shared.errors import ParleyError


class NotFound(ParleyError):
    """No such case or step."""


class Conflict(ParleyError):
    """The record changed since the caller read it, or the action does not fit its state."""
