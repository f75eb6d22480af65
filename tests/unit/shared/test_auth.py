"""shared.auth: tokens round-trip; expired, forged, alg=none, wrong issuer/audience and
incomplete identities are refused; RS256 with a PEM key and with a JWKS URL; production
refuses unsafe secrets; the role gate and the scopes; the token command."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from pydantic import SecretStr, ValidationError

from shared.auth import (
    ROLES,
    AuthSettings,
    Principal,
    UnsafeSettings,
    Verifier,
    check_scope,
    install_auth,
    may_see,
    mint,
    require,
    verify,
)
from shared.auth.cli import main as cli_main
from shared.errors import NotFound, Unauthenticated
from shared.http import install_error_handlers
from shared.settings import DEV_AUTH_SECRET, CommonSettings

SECRET = "unit-test-secret-0123456789abcdef-0123"
HS = AuthSettings(secret=SecretStr(SECRET))


def claims(**extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"sub": "a1", "role": "agent", "team": "t1", "iat": now, "exp": now + timedelta(hours=1),
            "iss": "parley", "aud": "parley"} | extra


def test_a_token_round_trips_for_every_role() -> None:
    for role in ROLES:
        p = verify(HS, mint(HS, sub="x1", role=role, team="t1", customer_id="c1"))
        assert (p.sub, p.role, p.team, p.customer_id) == ("x1", role, "t1", "c1")
    p = verify(HS, mint(HS, sub="c9", role="customer", customer_id="c9"))
    assert p.is_customer and not p.is_staff and p.team is None
    assert verify(HS, mint(HS, sub="ch", role="channel")).is_staff is False
    assert verify(HS, mint(HS, sub="o", role="ops")).is_staff is True


def test_expired_forged_and_incomplete_tokens_are_refused() -> None:
    with pytest.raises(Unauthenticated, match="expired"):
        verify(HS, mint(HS, sub="a", role="ops", ttl=timedelta(seconds=-1)))
    forged = mint(AuthSettings(secret=SecretStr(SECRET + "x")), sub="a", role="manager")
    with pytest.raises(Unauthenticated, match="invalid"):
        verify(HS, forged)
    with pytest.raises(Unauthenticated, match="team"):
        verify(HS, mint(HS, sub="a", role="agent"))
    with pytest.raises(Unauthenticated, match="customer_id"):
        verify(HS, mint(HS, sub="c", role="customer"))
    with pytest.raises(Unauthenticated, match="unknown role"):
        verify(HS, jwt.encode(claims(role="root"), SECRET, algorithm="HS256"))
    with pytest.raises(Unauthenticated, match="sub"):
        verify(HS, jwt.encode(claims(sub=""), SECRET, algorithm="HS256"))
    with pytest.raises(Unauthenticated, match="malformed team"):
        verify(HS, jwt.encode(claims(team=["t1", "t2"]), SECRET, algorithm="HS256"))
    for missing in ("sub", "role", "exp", "iss", "aud"):
        body = claims()
        del body[missing]
        with pytest.raises(Unauthenticated):
            verify(HS, jwt.encode(body, SECRET, algorithm="HS256"))
    with pytest.raises(Unauthenticated):
        verify(HS, "not-a-jwt")
    with pytest.raises(ValueError, match="role"):
        mint(HS, sub="a", role="root")


def test_alg_none_and_wrong_issuer_or_audience_are_refused() -> None:
    unsigned = jwt.encode(claims(role="manager"), None, algorithm="none")
    with pytest.raises(Unauthenticated, match="invalid"):
        verify(HS, unsigned)
    with pytest.raises(Unauthenticated, match="invalid"):
        verify(HS, jwt.encode(claims(), SECRET * 2, algorithm="HS512"))
    with pytest.raises(Unauthenticated, match="(?i)audience"):
        verify(HS, jwt.encode(claims(aud="someone-else"), SECRET, algorithm="HS256"))
    with pytest.raises(Unauthenticated, match="(?i)issuer"):
        verify(HS, jwt.encode(claims(iss="evil"), SECRET, algorithm="HS256"))


def test_leeway_allows_a_little_clock_skew() -> None:
    token = mint(HS, sub="a", role="ops", ttl=timedelta(seconds=-5))
    assert verify(HS.model_copy(update={"leeway_s": 30}), token).sub == "a"


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_rs256_with_a_pem_public_key(key_pair: tuple[str, str], tmp_path: Path) -> None:
    private, public = key_pair
    rs = AuthSettings(algorithm="RS256", public_key=public)
    token = mint(rs, sub="lead", role="team_lead", team="t1", signing_key=private)
    assert verify(rs, token).role == "team_lead"
    pem_file = tmp_path / "idp.pem"
    pem_file.write_text(public)
    assert verify(AuthSettings(algorithm="RS256", public_key=str(pem_file)), token).sub == "lead"
    # the public key used as an HS256 secret (algorithm confusion) is refused, as is HS256 at all
    confused = jwt.encode(claims(), SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated, match="invalid"):
        verify(rs, confused)
    with pytest.raises(Unauthenticated, match="invalid"):
        verify(rs, jwt.encode(claims(role="manager"), None, algorithm="none"))
    with pytest.raises(ValueError, match="private key"):
        mint(rs, sub="x", role="ops")
    with pytest.raises(ValidationError, match="JWKS_URL or PARLEY_AUTH_PUBLIC_KEY"):
        AuthSettings(algorithm="RS256")


@pytest.fixture
def jwks_server(key_pair: tuple[str, str]) -> Iterator[str]:
    from cryptography.hazmat.primitives import serialization
    from jwt.algorithms import RSAAlgorithm

    jwk = json.loads(RSAAlgorithm.to_jwk(serialization.load_pem_public_key(key_pair[1].encode())))
    body = json.dumps({"keys": [jwk | {"kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def test_rs256_with_a_jwks_url(key_pair: tuple[str, str], jwks_server: str) -> None:
    rs = AuthSettings(algorithm="RS256", jwks_url=jwks_server)
    verifier = Verifier(rs)
    assert verifier.fetches_keys
    token = mint(rs, sub="c1", role="customer", customer_id="c1", signing_key=key_pair[0], kid="k1")
    assert verifier.verify(token).customer_id == "c1"
    unknown_kid = mint(rs, sub="c1", role="customer", customer_id="c1", signing_key=key_pair[0], kid="k2")
    with pytest.raises(Unauthenticated, match="invalid"):
        verifier.verify(unknown_kid)
    unreachable = Verifier(AuthSettings(algorithm="RS256", jwks_url="http://127.0.0.1:9/jwks.json"))
    with pytest.raises(Unauthenticated):
        unreachable.verify(token)


def test_production_refuses_the_default_or_a_short_secret() -> None:
    for weak in (DEV_AUTH_SECRET, "short-secret", "x" * 31):
        settings = CommonSettings(environment="production", auth=AuthSettings(secret=SecretStr(weak)))
        with pytest.raises(UnsafeSettings, match="PARLEY_AUTH_SECRET"):
            install_auth(FastAPI(), settings)
    install_auth(FastAPI(), CommonSettings(environment="production", auth=HS))
    install_auth(FastAPI(), CommonSettings(environment="development"))  # the default is fine here
    assert "x" * 32 not in repr(AuthSettings(secret=SecretStr("x" * 32)))  # never printed


@pytest.mark.parametrize("name", ["intake", "negotiation", "followup", "supervision"])
def test_no_api_starts_in_production_on_the_development_secret(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from shared.service import build_api
    from tests.unit.shared.test_service_specs import spec_of

    spec = spec_of(name)
    kind = importlib.import_module(f"services.{name}.settings").Settings  # not the cached get_settings()
    monkeypatch.setenv("PARLEY_ENVIRONMENT", "production")
    with pytest.raises((UnsafeSettings, ValidationError), match="SECRET"):
        build_api(spec, kind())
    monkeypatch.setenv("PARLEY_AUTH_SECRET", SECRET)
    build_api(spec, kind())


def test_scopes() -> None:
    customer = Principal(sub="c1", role="customer", customer_id="c1")
    agent = Principal(sub="a1", role="agent", team="t1")
    manager = Principal(sub="m", role="manager")
    assert may_see(customer, customer_id="c1") and not may_see(customer, customer_id="c2")
    assert not may_see(customer, customer_id=None)
    assert may_see(agent, customer_id="c2", team="t1") and not may_see(agent, customer_id="c2", team="t2")
    assert may_see(agent, customer_id="c2")  # a case without a team
    assert may_see(manager, customer_id="c2", team="t9")
    with pytest.raises(NotFound, match="no such case"):
        check_scope(customer, customer_id="c2", not_found="no such case")
    with pytest.raises(ValueError):
        Principal(sub="x", role="root")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        require()
    with pytest.raises(ValueError):
        require("root")  # type: ignore[arg-type]


async def test_the_gate_answers_401_then_403() -> None:
    app = FastAPI()
    install_error_handlers(app)
    install_auth(app, CommonSettings(environment="test", auth=HS))

    @app.get("/ops-only")
    async def ops_only(p: Principal = Depends(require("ops", "auditor"))) -> dict[str, str]:  # noqa: B008
        return {"sub": p.sub}

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        resp = await client.get("/ops-only")
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
        assert (await client.get("/ops-only", headers={"Authorization": "Basic eDp5"})).status_code == 401
        resp = await client.get("/ops-only", headers=bearer(mint(HS, sub="a", role="agent", team="t")))
        assert resp.status_code == 403 and "ops, auditor" in resp.json()["detail"]
        resp = await client.get("/ops-only", headers=bearer(mint(HS, sub="o7", role="ops")))
        assert resp.status_code == 200 and resp.json() == {"sub": "o7"}


def test_token_command(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                       key_pair: tuple[str, str], tmp_path: Path) -> None:
    monkeypatch.setenv("PARLEY_AUTH_SECRET", SECRET)
    assert cli_main(["token", "--role", "team_lead", "--sub", "l1", "--team", "t1", "--hours", "2"]) == 0
    p = verify(HS, capsys.readouterr().out.strip())
    assert (p.sub, p.role, p.team) == ("l1", "team_lead", "t1")
    assert cli_main(["token", "--role", "customer", "--sub", "c1", "--customer-id", "c1"]) == 0
    assert verify(HS, capsys.readouterr().out.strip()).customer_id == "c1"
    for bad in (["--role", "customer", "--sub", "c1"], ["--role", "agent", "--sub", "a1"],
                ["--role", "root", "--sub", "x"], ["--role", "ops", "--sub", "o", "--hours", "0"]):
        with pytest.raises(SystemExit):
            cli_main(["token", *bad])
    assert cli_main(["mint"]) == 2
    monkeypatch.setenv("PARLEY_AUTH_ALGORITHM", "RS256")
    monkeypatch.setenv("PARLEY_AUTH_PUBLIC_KEY", key_pair[1])
    key_file = tmp_path / "key.pem"
    key_file.write_text(key_pair[0])
    assert cli_main(["token", "--role", "ops", "--sub", "o", "--private-key", str(key_file)]) == 0
    rs = AuthSettings(algorithm="RS256", public_key=key_pair[1])
    assert verify(rs, capsys.readouterr().out.strip()).role == "ops"
    monkeypatch.setenv("PARLEY_ENVIRONMENT", "production")
    with pytest.raises(SystemExit):
        cli_main(["token", "--role", "ops", "--sub", "o", "--private-key", str(key_file)])
