"""Follow-up's errors: the shared classes (``shared.errors``); ``shared.http`` maps them to HTTP."""

from __future__ import annotations

from shared.errors import Conflict, NotFound

__all__ = ["Conflict", "NotFound"]
