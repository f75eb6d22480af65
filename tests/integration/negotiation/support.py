"""Helpers for negotiation's real-stack tests: run the processes, mint tokens, publish events."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from services.negotiation.auth import mint
from services.negotiation.settings import Settings
from shared.contracts.common import Category, Channel, Language, Priority, Product
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ComplaintRegistered
from shared.contracts.investigation import InvestigationCompleted
from shared.kafka import Publisher, ensure_topics
from shared.settings import CommonSettings
from tests.support.kafka import read_all
from tests.support.processes import WORKER_READY, running_service, service_env

SECRET = "test-secret-for-negotiation-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_settings(settings: CommonSettings) -> Settings:
    """The negotiation settings the test processes use (for minting tokens)."""
    return Settings(environment="test", jwt_secret=SECRET, kafka=settings.kafka, mongo=settings.mongo)


def env_for(settings: CommonSettings, **extra: str) -> dict[str, str]:
    return service_env(
        settings,
        PARLEY_NEGOTIATION_JWT_SECRET=SECRET,
        PARLEY_NEGOTIATION_SWEEP_INTERVAL_S="1",
        PARLEY_NEGOTIATION_FAIRNESS_SEED_PER_CELL="24",
        **extra,
    )


@contextmanager
def negotiation_stack(settings: CommonSettings, tmp: Path, *, worker: bool = True, **extra: str) -> Iterator[str]:
    """Run the API (and the worker) as real processes; yield the API's base URL."""
    port = free_port()
    env = env_for(settings, **extra)
    with running_service(
        "services.negotiation", ["api", "--port", str(port)], env, tmp / "api.log",
        ready_url=f"http://127.0.0.1:{port}/health", timeout=120,
    ):
        if worker:
            with running_service(
                "services.negotiation", ["worker", "-l", "info"], env, tmp / "worker.log",
                ready_text=WORKER_READY, timeout=150,
            ):
                yield f"http://127.0.0.1:{port}"
        else:
            yield f"http://127.0.0.1:{port}"


class Caller:
    """An HTTP client with one identity's bearer token."""

    def __init__(self, base: str, settings: Settings, **identity: Any) -> None:
        token = mint(settings, **identity)
        self.client = httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    async def __aenter__(self) -> httpx.AsyncClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()


def registered(case_id: str, customer_id: str, *, amount: str = "3000.00", days: int = 20,
               language: str = "zh-CN") -> Envelope[Any]:
    now = datetime.now(UTC)
    return Envelope.wrap(
        ComplaintRegistered(
            case_number=f"TS-{case_id}", complaint_id=f"C-{case_id}", channel=Channel.APP,
            channel_complaint_id=f"app-{case_id}", received_at=now,
            deadline_at=now + timedelta(days=days), priority=Priority.NORMAL,
            product=Product.CREDIT_CARD, language=Language(language), customer_id=customer_id,
            customer_name_masked="张*", text="逾期三天被收取滞纳金 500 元和罚息 800 元，认为不合理",
            demand="减免滞纳金和罚息", amount_disputed=Decimal(amount),
        ),
        case_id=case_id, producer="intake",
    )


def completed(case_id: str, *, category: Category = Category.PRICING_FEES, cause: Envelope[Any] | None = None,
              extras: dict[str, Any] | None = None) -> bytes:
    """An investigation.completed event as bytes, with optional fields investigation may add."""
    env = Envelope.wrap(
        InvestigationCompleted(case_number=f"TS-{case_id}", category=category, finding="partly_substantiated",
                               reasons=["滞纳金按合同收取，但提醒短信未送达"]),
        case_id=case_id, producer="investigation", cause=cause,
    )
    data = json.loads(env.model_dump_json())
    data["payload"].update(extras or {})
    return json.dumps(data, ensure_ascii=False).encode()


async def publish(settings: CommonSettings, *items: tuple[str, str, bytes]) -> None:
    await ensure_topics(settings.kafka)
    async with Publisher(settings.kafka) as pub:
        for topic, key, value in items:
            await pub.send_raw(topic, value, key=key.encode())


async def wait_for_case(client: httpx.AsyncClient, path: str, *, timeout: float = 60) -> dict[str, Any]:
    """Poll until the case answers 200 (the worker opened it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await client.get(path)
        if resp.status_code == 200:
            return resp.json()  # type: ignore[no-any-return]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path} still answers {resp.status_code}: {resp.text}")
        await asyncio.sleep(0.5)


async def events(settings: CommonSettings, topic: str, case_id: str, n: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Read the first ``n`` events of ``topic`` for ``case_id``."""
    def mine(records: list[Any]) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in records if r.key == case_id.encode()]

    records = await read_all(settings, topic, until=lambda rs: len(mine(rs)) >= n, timeout=timeout)
    return mine(records)
