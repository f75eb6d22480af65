"""A timer's failure is logged and the timer runs again; it never stops the worker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared import service


class FakeApp:
    def __init__(self) -> None:
        self.timers: dict[str, Callable[[], Awaitable[None]]] = {}

    def timer(self, *, interval: float, name: str) -> Callable[[Any], Any]:
        def register(fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
            self.timers[name] = fn
            return fn

        return register


async def test_a_failing_timer_is_logged_and_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    app, runs, published = FakeApp(), [], []

    async def run() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("database hiccup")
        return "written"

    async def publish(result: Any) -> None:
        published.append(result)

    service._declare_timer(app, "deadlines", 30.0, run, publish)  # noqa: SLF001
    with caplog.at_level(logging.ERROR, logger="shared.service"):
        await app.timers["deadlines"]()  # raises inside: must not escape
    assert "timer deadlines failed" in caplog.text
    await app.timers["deadlines"]()
    assert len(runs) == 2 and published == ["written"]


async def test_a_timer_cut_off_by_the_worker_stopping_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """The worker closes its database client before faust stops the timers: a run still going
    fails on the closed client, which is the stop, not a failure worth a traceback."""
    app, stopping = FakeApp(), [False]

    async def run() -> str:
        raise RuntimeError("Cannot use AsyncMongoClient after close")

    async def publish(result: Any) -> None:
        raise AssertionError("nothing to publish")

    service._declare_timer(app, "paused", 2.0, run, publish, closing=lambda: stopping[0])  # noqa: SLF001
    stopping[0] = True
    with caplog.at_level(logging.INFO, logger="shared.service"):
        await app.timers["paused"]()
    assert "timer paused stopped with the worker" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    stopping[0] = False
    with caplog.at_level(logging.ERROR, logger="shared.service"):
        await app.timers["paused"]()
    assert "timer paused failed" in caplog.text


@pytest.mark.parametrize("name", ["followup", "supervision", "negotiation", "investigation", "intake"])
def test_every_timer_of_every_service_is_declared_guarded(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    spec = importlib.import_module(f"services.{name}.app").SPEC
    declared: list[str] = []
    real = service._declare_timer  # noqa: SLF001

    def spy(app: Any, timer_name: str, *args: Any, **kwargs: Any) -> None:
        declared.append(timer_name)
        real(app, timer_name, *args, **kwargs)

    monkeypatch.setattr(service, "_declare_timer", spy)
    service.build_worker(spec, spec.settings())
    assert set(declared) >= {t.name for t in spec.timers}
    if spec.outboxes:
        assert "outbox-sweep" in declared
