"""The errors every service raises: each says whether trying again may help.

Mirrors aiokafka's ``KafkaError.retriable``: retry code looks at the flag, never at a list
of exception types. The domain raises ``NotFound`` / ``Conflict`` / ``Forbidden`` /
``Unauthenticated`` / ``Unprocessable``; the HTTP status of each is decided in one place,
``shared.http`` (the FastAPI exception handlers every API installs), never in the domain.
On Kafka, ``consume`` retries what is ``retriable`` and dead-letters the rest.
"""

from __future__ import annotations


class ParleyError(Exception):
    """An error in Parley; ``retriable`` says whether the same input may succeed later.

    ``field`` names the input field at fault, when one is (shown to HTTP callers).
    """

    retriable: bool = False

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidMessage(ParleyError):
    """A message that cannot be decoded or fails its contract; goes to the dead-letter topic."""

    def __init__(self, reason: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


class TransientError(ParleyError):
    """A failure of a dependency (broker, database) that may pass; retried with a bound."""

    retriable = True


class NotFound(ParleyError):
    """Unknown, or outside the caller's scope (existence is not revealed)."""


class Conflict(ParleyError):
    """The state changed under the caller (a lost compare-and-set), or the action does not
    fit the state. Retriable: on Kafka the same message is tried again against the new state;
    over HTTP the caller re-reads and decides (409)."""

    retriable = True


class Forbidden(ParleyError):
    """Known, but beyond the caller's role, authority, scope or recusal."""


class Unauthenticated(ParleyError):
    """No valid credentials."""


class Unprocessable(ParleyError):
    """Well-formed but not acceptable (a business rule refuses it)."""
