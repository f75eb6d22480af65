"""A starting worker waits for its servers instead of exiting (``prepare_when_ready``)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from shared import service

SPEC: Any = type("Spec", (), {"name": "intake"})()


async def test_a_worker_waits_while_the_broker_is_down_then_prepares(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    slept: list[float] = []

    async def prepare(spec: Any, settings: Any) -> None:
        calls.append(1)
        if len(calls) < 4:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 18092)]")

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(service, "prepare", prepare)
    await service.prepare_when_ready(SPEC, object(), wait_s=60, sleep=sleep)  # type: ignore[arg-type]
    assert len(calls) == 4 and slept == [1.0, 2.0, 4.0]


async def test_it_gives_up_after_the_wait_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    async def prepare(spec: Any, settings: Any) -> None:
        raise KafkaConnectionError("Unable to bootstrap")

    async def sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(service, "prepare", prepare)
    with pytest.raises(KafkaConnectionError):
        await service.prepare_when_ready(SPEC, object(), wait_s=20, sleep=sleep)  # type: ignore[arg-type]


async def test_a_programming_error_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    async def prepare(spec: Any, settings: Any) -> None:
        raise ValueError("bad index spec")

    monkeypatch.setattr(service, "prepare", prepare)
    with pytest.raises(ValueError):
        await service.prepare_when_ready(SPEC, object(), wait_s=60)  # type: ignore[arg-type]
