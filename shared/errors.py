"""The base of every Parley error: each one says whether trying again may help.

Mirrors aiokafka's ``KafkaError.retriable``: retry code looks at the flag, never at a list
of exception types. HTTP status codes are mapped only in each service's FastAPI handlers.
"""

from __future__ import annotations


class ParleyError(Exception):
    """An error in Parley; ``retriable`` says whether the same input may succeed later."""

    retriable: bool = False


class InvalidMessage(ParleyError):
    """A message that cannot be decoded or fails its contract; goes to the dead-letter topic."""

    def __init__(self, reason: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


class TransientError(ParleyError):
    """A failure of a dependency (broker, database) that may pass; retried with a bound."""

    retriable = True
