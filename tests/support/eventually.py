"""``eventually()``: the one way tests wait for something another process will do.

Poll a check (a plain or ``async`` callable) until it holds, then return its value; on
time-out fail with what was awaited and the last value seen, so a red test says what it
was waiting for. It is for waiting for something to *happen*; proving that something did
*not* happen needs a barrier (a later event that must come after it, or a consumer group's
committed offset), never a sleep.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

async def eventually(
    check: Callable[[], Awaitable[T] | T],
    *,
    what: str | None = None,
    until: Callable[[T], object] | None = None,
    timeout: float = 30,
    interval: float = 0.2,
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``check`` until its value holds and return that value.

    The value holds when it is truthy, or, given ``until``, when ``until(value)`` is truthy
    (for checks that return something falsy-looking but useful, such as an HTTP response).
    Exceptions of the types in ``retry_on`` (say ``httpx.TransportError`` while a service
    starts) count as "not yet"; any other exception fails at once. On time-out raise
    ``AssertionError`` naming ``what`` (default: the check's name) and the last value or error.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    attempts = 0
    while True:
        attempts += 1
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except retry_on as error:
            last = error
        else:
            last = value
            if until(value) if until is not None else value:
                return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            break
        await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))
    name = what or getattr(check, "__qualname__", None) or repr(check)
    raise AssertionError(
        f"timed out after {timeout:g}s ({attempts} tries) waiting for {name}; "
        f"last value: {_show(last)}"
    )


def _show(value: Any, limit: int = 2000) -> str:
    """A readable, bounded rendering of the last value (an HTTP response shows its body)."""
    if isinstance(value, BaseException):
        text = f"{type(value).__name__}: {value}"
    elif hasattr(value, "status_code") and hasattr(value, "text"):
        text = f"<{value.status_code}> {value.text}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"
