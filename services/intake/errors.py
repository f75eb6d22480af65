"""Intake's exceptions; each says whether trying again may help (``retriable``)."""

from __future__ import annotations

from shared.errors import Conflict, NotFound, ParleyError


class IntakeError(ParleyError):
    """Base of intake's errors."""


class RegistrationConflict(IntakeError, Conflict):
    """A concurrent writer changed the case under us; the same message will succeed on retry."""

    retriable = True


class CaseNotFound(IntakeError, NotFound):
    """No case with that id or number in intake's store."""
