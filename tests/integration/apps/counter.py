"""A faust worker for the stack proof: counts events per key in a table with a changelog.

Run as ``python -m tests.integration.apps.counter worker``; configured from the usual
``PARLEY_KAFKA_*`` environment variables. Each count is published to ``proof.counts`` as
``key=count``, so a test can watch the table from outside.
"""

from __future__ import annotations

import os

from shared.kafka.faust_app import make_faust_app, raw_topic
from shared.settings import CommonSettings

settings = CommonSettings()
app = make_faust_app(
    "proof-counter",
    settings,
    datadir=os.environ.get("PROOF_DATADIR"),
    broker_commit_every=1,
    broker_commit_interval=0.5,
)
events = raw_topic(app, settings, "proof.events")
counts_out = raw_topic(app, settings, "proof.counts")
counts = app.Table("counts", default=int, partitions=settings.kafka.partitions)


@app.agent(events)
async def count(stream):  # type: ignore[no-untyped-def]
    """Count each key; publish the new count."""
    async for key, _value in stream.items():
        name = key.decode()
        counts[name] += 1
        await counts_out.send(key=key, value=f"{name}={counts[name]}".encode())


if __name__ == "__main__":
    app.main()
