"""The negotiation service's errors: the shared domain errors, nothing about HTTP.

The domain raises ``NotFound`` / ``Conflict`` / ``Forbidden`` / ``Unauthenticated`` /
``Unprocessable`` from ``shared.errors`` (re-exported here); ``shared.http`` maps each to its
HTTP status in one place. ``Conflict`` is retriable: a lost compare-and-set while consuming
an event is tried again against the new state.
"""

from __future__ import annotations

from shared.errors import Conflict, Forbidden, NotFound, ParleyError, Unauthenticated, Unprocessable

#: Base of every error negotiation raises (kept for callers that catch it).
NegotiationError = ParleyError


class StaleVersion(Conflict):
    """The case changed since the caller read it (its version moved on): reload and retry."""


__all__ = [
    "Conflict", "Forbidden", "NegotiationError", "NotFound", "StaleVersion", "Unauthenticated",
    "Unprocessable",
]
