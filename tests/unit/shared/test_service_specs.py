"""Every service is built from one spec, and the topic catalogue says who reads what."""

from __future__ import annotations

import importlib

import pytest

from shared.service import ServiceSpec
from shared.topics import CATALOGUE

SERVICES = ["intake", "investigation", "negotiation", "followup", "supervision"]


def spec_of(name: str) -> ServiceSpec:  # type: ignore[type-arg]
    return importlib.import_module(f"services.{name}.app").SPEC  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_one_spec_named_after_it(name: str) -> None:
    spec = spec_of(name)
    assert spec.name == name
    assert spec.subscriptions, f"{name} consumes nothing"
    names = [s.name for s in spec.subscriptions]
    assert len(names) == len(set(names)), f"{name} has two subscriptions of one name"


def _consumed() -> dict[str, set[str]]:
    consumed: dict[str, set[str]] = {}
    for name in SERVICES:
        for sub in spec_of(name).subscriptions:
            for topic in sub.topics:
                consumed.setdefault(topic, set()).add(name)
    return consumed


def test_catalogue_consumers_are_what_the_specs_subscribe_to() -> None:
    consumed = _consumed()
    for topic, entry in CATALOGUE.items():
        assert set(entry.consumers) == consumed.get(topic, set()), topic
        assert consumed.get(entry.dlq) == {"supervision"}, entry.dlq
    unknown = {t for t in consumed if t not in CATALOGUE and t.removesuffix(".dlq") not in CATALOGUE}
    assert not unknown


@pytest.mark.parametrize("name", ["intake", "negotiation", "followup", "supervision"])
async def test_apis_share_health_and_error_shape(name: str) -> None:
    import httpx

    from shared.errors import Conflict, NotFound
    from shared.service import build_api

    spec = spec_of(name)
    app = build_api(spec, spec.settings())  # no I/O at build time
    assert "/health" in app.openapi()["paths"]

    @app.get("/_test/missing")
    async def missing() -> None:
        raise NotFound("no such case", field="case_id")

    @app.get("/_test/conflict")
    async def conflict() -> None:
        raise Conflict("changed meanwhile")

    # the lifespan does not run here, so there is no database: health must say so
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json() == {"status": "unavailable", "service": name, "database": "down"}
        resp = await client.get("/_test/missing")
        assert resp.status_code == 404
        assert resp.json() == {"detail": "no such case", "field": "case_id", "errors": []}
        resp = await client.get("/_test/conflict")
        assert resp.status_code == 409 and resp.json()["detail"] == "changed meanwhile"
