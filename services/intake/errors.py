"""Intake's exceptions; each says whether trying again may help (``retriable``)."""

from __future__ import annotations

from shared.errors import ParleyError


class IntakeError(ParleyError):
    """Base of intake's errors."""


class RegistrationConflict(IntakeError):
    """A concurrent writer changed the case under us; the same message will succeed on retry."""

    retriable = True


class CaseNotFound(IntakeError):
    """No case with that id or number in intake's store."""
