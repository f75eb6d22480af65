"""Investigation's errors (the shared ones — ``shared.errors.Conflict``, ... — are used as they are)."""

from __future__ import annotations

from shared.errors import ParleyError, TransientError


class InvestigationError(ParleyError):
    """Something in an investigation went wrong that retrying will not fix."""


class RecordsUnavailable(TransientError):
    """The core-system records could not be read now; the consume step retries."""
