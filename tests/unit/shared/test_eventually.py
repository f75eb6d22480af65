"""tests.support.eventually: polls sync and async checks, and says what it waited for."""

from __future__ import annotations

import pytest

from tests.support.eventually import eventually


async def test_returns_the_first_truthy_value_of_a_sync_check() -> None:
    values = iter([0, [], None, "ready", "later"])
    assert await eventually(lambda: next(values), interval=0) == "ready"


async def test_awaits_an_async_check() -> None:
    calls = 0

    async def count() -> int:
        nonlocal calls
        calls += 1
        return calls if calls >= 3 else 0

    assert await eventually(count, interval=0) == 3


async def test_until_decides_for_values_that_are_not_simply_truthy() -> None:
    values = iter([{"status": "open"}, {"status": "closed"}])
    got = await eventually(lambda: next(values), until=lambda v: v["status"] == "closed", interval=0)
    assert got == {"status": "closed"}
    assert await eventually(lambda: 0, until=lambda v: v == 0) == 0


async def test_timeout_names_what_was_awaited_and_the_last_value() -> None:
    values = iter(range(1000))
    with pytest.raises(AssertionError) as info:
        await eventually(lambda: {"n": next(values), "status": "open"},
                         until=lambda v: v["status"] == "closed", what="the case to close",
                         timeout=0.2, interval=0.01)
    message = str(info.value)
    assert "waiting for the case to close" in message
    assert "'status': 'open'" in message and "timed out after 0.2s" in message


async def test_the_check_name_stands_in_when_what_is_missing() -> None:
    async def case_is_closed() -> bool:
        return False

    with pytest.raises(AssertionError, match="waiting for .*case_is_closed; last value: False"):
        await eventually(case_is_closed, timeout=0.05, interval=0.01)


async def test_listed_errors_mean_not_yet_and_others_fail_at_once() -> None:
    attempts = 0

    def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("refused")
        return "up"

    assert await eventually(flaky, retry_on=(ConnectionError,), interval=0) == "up"

    with pytest.raises(AssertionError, match="last value: ConnectionError: refused"):
        await eventually(lambda: (_ for _ in ()).throw(ConnectionError("refused")),
                         retry_on=(ConnectionError,), timeout=0.05, interval=0.01)

    def broken() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await eventually(broken, retry_on=(ConnectionError,), timeout=5)


async def test_a_long_last_value_is_cut() -> None:
    with pytest.raises(AssertionError) as info:
        await eventually(lambda: "x" * 10_000, until=lambda v: False, timeout=0.01, interval=0.01)
    assert len(str(info.value)) < 2300 and "10002 chars" in str(info.value)
