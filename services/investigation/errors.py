"""Investigation's errors."""

from __future__ import annotations

from shared.errors import ParleyError, TransientError


class InvestigationError(ParleyError):
    """Something in an investigation went wrong that retrying will not fix."""


class RecordsUnavailable(TransientError):
    """The core-system records could not be read now; the consume step retries."""


class Conflict(ParleyError):
    """The case's investigation changed while it was being written; retried."""

    retriable = True
