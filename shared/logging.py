"""Logging for every service: ``case_id`` and ``correlation_id`` on each line, no personal data.

Context comes from ``contextvars`` (``log_context``), so it follows a message through
awaits. A redaction filter masks anything that looks like a mainland phone number, an ID
number or a bank-card number in every record, as a last line of defence: code should
never log personal data in the first place.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime

_case_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("case_id", default=None)
_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

_ID_NUMBER = re.compile(r"(?<![0-9])([1-9][0-9]{5})(?:[0-9]{8})([0-9]{3}[0-9Xx])(?![0-9])")
_CARD = re.compile(r"(?<![0-9])([0-9]{4})[0-9]{5,11}([0-9]{4})(?![0-9])")
_PHONE = re.compile(r"(?<![0-9])(1[3-9][0-9])[0-9]{4}([0-9]{4})(?![0-9])")


def redact(text: str) -> str:
    """Mask ID numbers, card numbers and mobile numbers found in free text."""
    text = _ID_NUMBER.sub(lambda m: m.group(1)[:4] + "*" * 10 + m.group(2), text)
    text = _CARD.sub(lambda m: m.group(1) + "*" * 8 + m.group(2), text)
    return _PHONE.sub(lambda m: m.group(1) + "****" + m.group(2), text)


@contextlib.contextmanager
def log_context(*, case_id: str | None = None, correlation_id: str | None = None) -> Iterator[None]:
    """Attach ``case_id`` / ``correlation_id`` to every log line inside the block."""
    tokens = []
    if case_id is not None:
        tokens.append((_case_id, _case_id.set(case_id)))
    if correlation_id is not None:
        tokens.append((_correlation_id, _correlation_id.set(correlation_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Add the context ids to the record and redact personal data from its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.case_id = _case_id.get() or "-"
        record.correlation_id = _correlation_id.get() or "-"
        message = redact(record.getMessage())
        record.msg, record.args = message, ()  # () not None: mode's formatter turns None into (None,)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "case_id": getattr(record, "case_id", "-"),
            "correlation_id": getattr(record, "correlation_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [case=%(case_id)s corr=%(correlation_id)s] %(message)s"


def setup_logging(level: str = "INFO", *, json_lines: bool = False) -> None:
    """Configure the root logger once for a service process."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def install_context_filter() -> None:
    """Add ``ContextFilter`` to every root handler (after faust/uvicorn set up their own)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
