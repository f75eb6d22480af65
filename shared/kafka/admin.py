"""Create topics explicitly, with the partition count we mean.

The local broker runs with ``auto.create.topics.enable=false`` and faust does not create
the source topics it subscribes to, so every service creates the catalogue topics it
touches before it starts (idempotent: existing topics are left alone).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import KafkaSettings
from shared.topics import all_topics

log = logging.getLogger(__name__)


async def ensure_topics(
    settings: KafkaSettings,
    names: Iterable[str] | None = None,
    *,
    partitions: int | None = None,
    configs: dict[str, str] | None = None,
) -> list[str]:
    """Create the given logical topics (default: the whole catalogue) if missing.

    Returns the physical names that were created now.
    """
    wanted = [settings.topic(n) for n in (names if names is not None else all_topics())]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id="parley-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(wanted) if t not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    t,
                    partitions or settings.partitions,
                    settings.replication_factor,
                    topic_configs=configs or {},
                )
                for t in missing
            ]
        )
        created = []
        for name, code, *_ in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                raise RuntimeError(f"could not create topic {name}: Kafka error code {code}")
        log.info("created %d topics", len(created))
        return created
    finally:
        await admin.close()
