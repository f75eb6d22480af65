"""QuietStream.take_events: the same batches as faust's, without waking while nothing comes.

On faust's in-memory test context (an agent over a channel, no broker): the batching rules
(full at ``max_``, else ``within`` after the first event, every event acked after its batch)
and the idle behaviour, counted as the stream's ``wait_first`` calls while the agent waits
with nothing to take — faust's stream ticks every ``within``, the quiet one does not.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust

from shared.kafka.batches import QuietStream


class Counting:
    """A mixin counting the stream's waits (each is one wake of the batch loop)."""

    waits = 0

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        type(self).waits += 1
        return await super().wait_first(*coros, timeout=timeout)  # type: ignore[misc]


class CountingFaust(Counting, faust.Stream):  # type: ignore[misc]
    waits = 0


class CountingQuiet(Counting, QuietStream):
    waits = 0


def make_app(stream: type) -> tuple[faust.App, Any, list[list[Any]], list[float]]:
    app = faust.App(f"quiet-{stream.__name__}-{time.monotonic_ns()}", store="memory://", Stream=stream,
                    autodiscover=False, web_enabled=False)
    batches: list[list[Any]] = []
    yielded_at: list[float] = []

    @app.agent()
    async def agent(stream_: Any) -> None:
        async for events in stream_.take_events(3, 0.2):
            yielded_at.append(time.monotonic())
            batches.append([e.value for e in events])

    return app, agent, batches, yielded_at


async def idle_waits(stream: type[Counting], idle_s: float) -> int:
    app, agent, _, _ = make_app(stream)
    async with agent.test_context():
        await asyncio.sleep(0.1)  # the agent is in its loop
        before = stream.waits
        await asyncio.sleep(idle_s)
        return stream.waits - before


async def test_an_idle_agent_does_not_wake() -> None:
    ticking = await idle_waits(CountingFaust, 1.0)
    quiet = await idle_waits(CountingQuiet, 1.0)
    assert ticking >= 3  # faust's loop wakes every within (0.2 s) with nothing to take
    assert quiet == 0


async def test_batches_are_full_at_max_or_cut_within_after_the_first_event() -> None:
    app, agent, batches, yielded_at = make_app(QuietStream)
    async with agent.test_context() as test:
        await asyncio.sleep(0.5)  # idle first: the first event must still be taken
        sent = [await test.put(value) for value in range(4)]
        t0 = time.monotonic()
        for _ in range(100):  # the fourth waits for more, then goes alone
            if sum(len(b) for b in batches) == 4:
                break
            await asyncio.sleep(0.02)
        assert batches == [[0, 1, 2], [3]]
        assert yielded_at[1] - t0 >= 0.15  # the lone event waited about within (0.2 s) for company
        sent.append(await test.put(4))
        for _ in range(100):
            if len(batches) == 3:
                break
            await asyncio.sleep(0.02)
        assert batches[2] == [4]  # after a batch, the next event starts a new one
        await asyncio.sleep(0.05)
        assert [event.message.acked for event in sent] == [True] * 5  # acked once their batch was taken
