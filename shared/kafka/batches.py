"""faust's ``take_events`` without the idle ticks: an agent's batch loop sleeps while nothing comes.

faust-streaming 0.15's ``Stream.take_events(max_, within)`` waits for "buffer full" with a
timeout of ``within`` in a loop, also while the buffer is empty: an idle agent with
``within=0.05`` wakes 20 times a second, and each wake is a ``mode`` ``wait_first`` (three
tasks made and cancelled, a timer handle). Measured with ``python -m bench.idle``: about
0.2 CPU-seconds a minute per agent, 13 agents in the pipeline.

``QuietStream.take_events`` is faust's method with one change: while the buffer is empty it
waits, without a timeout, for the first event (or the stream stopping); from then on it is
faust's loop — yield when ``max_`` events are in or ``within`` seconds have passed. The
batches are the same; the time a batch waits for more is measured from its first event
(faust's ticks start wherever the previous wait ended, so a lone event waited 0 to
``within``; now it waits ``within``). Acknowledgement is unchanged: events are acked after
the consumer of the batch returns (faust's ``finally``), and the buffer is not written while
a batch is out. ``shared.kafka.faust_app.make_faust_app`` gives every app this stream class.
"""

from __future__ import annotations

import asyncio
from asyncio import CancelledError
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

import faust
from faust.streams import _tracks_buffer_agen
from mode import Seconds, want_seconds
from mode.utils.aiter import aiter
from mode.utils.futures import notify


class QuietStream(faust.Stream[Any]):
    """A faust stream whose ``take_events`` does not wake while there is nothing to take."""

    @_tracks_buffer_agen
    async def take_events(self, max_: int, within: Seconds) -> AsyncGenerator[Sequence[Any], None]:
        """Buffer up to ``max_`` events and yield them when full or ``within`` seconds after the
        first (faust's ``Stream.take_events``, minus its wakes while the buffer is empty)."""
        buffer: list[Any] = []
        events: list[Any] = []
        buffer_full = asyncio.Event()
        buffer_started = asyncio.Event()  # set by the first event of a batch (the change)
        buffer_consumed = asyncio.Event()
        timeout = want_seconds(within) if within else None
        stream_enable_acks: bool = self.enable_acks
        buffer_consuming: asyncio.Future[None] | None = None
        channel_it = aiter(self.channel)

        async def add_to_buffer(value: Any) -> Any:
            try:
                nonlocal buffer_consuming
                if buffer_consuming is not None:  # a batch is out: wait until it is consumed
                    try:
                        await buffer_consuming
                    finally:
                        buffer_consuming = None
                buffer.append(value)
                event = self.current_event
                if event is None:
                    raise RuntimeError("Take buffer found current_event is None")
                events.append(event)
                buffer_started.set()
                if len(buffer) >= max_:
                    buffer_full.set()
                    buffer_consumed.clear()  # strict: never more than max_ in a batch
                    # mode types the waitable as its own Event; wait_first takes any .wait()
                    await self.wait(buffer_consumed)  # type: ignore[arg-type]
            except CancelledError:  # pragma: no cover
                raise
            except Exception as exc:  # noqa: BLE001 - faust's own handling: log and crash the stream
                self.log.exception("Error adding to take buffer: %r", exc)
                await self.crash(exc)
            return value

        self.enable_acks = False  # this method acks, after the batch is consumed
        self.add_processor(add_to_buffer)
        self._enable_passive(cast(Any, channel_it))
        try:
            while not self.should_stop:
                if not buffer:  # nothing to flush: sleep until the first event (no ticks)
                    await self.wait_for_stopped(buffer_started)  # type: ignore[arg-type]
                    continue
                await self.wait_for_stopped(buffer_full, timeout=timeout)  # type: ignore[arg-type]
                if buffer:
                    buffer_consuming = self.loop.create_future()
                    try:
                        yield list(events)
                    finally:
                        buffer.clear()
                        for event in events:
                            await self.ack(event)
                        events.clear()
                        buffer_started.clear()  # before adding may resume
                        notify(buffer_consuming)
                        buffer_full.clear()
                        buffer_consumed.set()
        finally:
            self.enable_acks = stream_enable_acks
            self._processors.remove(add_to_buffer)
