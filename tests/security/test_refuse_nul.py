"""``shared.http.RefuseNul``: a NUL character is a 422 naming the field, before any handler runs.

Schemathesis found it as 500s (PostgreSQL under FerretDB refuses ``\\u0000`` in text); this
pins the edge down on a small app with the shared error handling, no servers needed.
"""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from shared.http import NUL_CHECKED_BODY_BYTES, install_error_handlers


class Body(BaseModel):
    note: str = ""
    tags: list[str] = []
    extra: dict[str, str] = {}


def app_with_calls() -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    install_error_handlers(app)
    calls: list[str] = []

    @app.get("/items/{item_id}")
    async def read(item_id: str, kind: str = "") -> dict[str, str]:
        calls.append("read")
        return {"item_id": item_id, "kind": kind}

    @app.post("/items")
    async def write(body: Body) -> Body:
        calls.append("write")
        return body

    return app, calls


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_nul_in_a_query_parameter_or_the_path_is_a_422_naming_it() -> None:
    app, calls = app_with_calls()
    async with client(app) as api:
        resp = await api.get("/items/a?kind=x%00y&other=fine")
        assert resp.status_code == 422
        assert resp.json()["field"] == "kind" and [e["field"] for e in resp.json()["errors"]] == ["kind"]
        assert (await api.get("/items/a%00b")).json()["field"] == "(path)"
        assert (await api.get("/items/a?kind=x")).json() == {"item_id": "a", "kind": "x"}
    assert calls == ["read"]


async def test_nul_in_a_json_body_is_a_422_naming_every_field_and_clean_bodies_pass_intact() -> None:
    app, calls = app_with_calls()
    async with client(app) as api:
        resp = await api.post("/items", json={"note": "a\x00", "tags": ["ok", "b\x00"], "extra": {"k\x00": "v"}})
        assert resp.status_code == 422, resp.text
        assert [e["field"] for e in resp.json()["errors"]] == ["note", "tags.1", "extra.k\x00"]
        assert calls == []
        clean = {"note": "a literal \\u0000 is text", "tags": ["x"], "extra": {"k": "v"}}
        resp = await api.post("/items", json=clean)
        assert resp.status_code == 200 and resp.json() == clean
        # larger bodies are left to the route (intake reads its own with a cap)
        big = {"note": "x" * NUL_CHECKED_BODY_BYTES + "\x00"}
        resp = await api.post("/items", content=json.dumps(big), headers={"content-type": "application/json"})
        assert resp.status_code == 200, resp.text[:300]
    assert calls == ["write", "write"]
