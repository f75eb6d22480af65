"""Settings refuse placeholder secrets outside development; tokens carry identity and role."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.negotiation.__main__ import main
from services.negotiation.auth import mint, verify
from services.negotiation.errors import Unauthenticated
from services.negotiation.settings import Settings

SECRET = "unit-test-secret-0123456789abcdef0123"


def test_production_refuses_the_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(environment="production")
    assert Settings(environment="production", jwt_secret=SECRET).jwt_secret == SECRET
    assert Settings(environment="development").jwt_secret  # the dev default is allowed


def test_authority_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PARLEY_NEGOTIATION_AUTHORITY",
        '{"agent": {"max_concession": "100"}, "team_lead": {}, "manager": {}, "committee": {}}',
    )
    assert str(Settings().authority["agent"].max_concession) == "100"
    monkeypatch.setenv("PARLEY_NEGOTIATION_AUTHORITY", '{"agent": {}}')
    with pytest.raises(ValidationError, match="team_lead"):
        Settings()


def test_tokens_round_trip_and_are_checked() -> None:
    s = Settings(environment="test", jwt_secret=SECRET)
    p = verify(s, mint(s, sub="c1", role="customer", customer_id="c1"))
    assert (p.sub, p.role, p.customer_id) == ("c1", "customer", "c1")
    with pytest.raises(Unauthenticated, match="expired"):
        verify(s, mint(s, sub="a", role="agent", team="t", ttl=timedelta(seconds=-1)))
    with pytest.raises(Unauthenticated, match="team"):
        verify(s, mint(s, sub="a", role="agent"))
    with pytest.raises(Unauthenticated, match="customer_id"):
        verify(s, mint(s, sub="a", role="customer"))
    other = Settings(environment="test", jwt_secret=SECRET + "x")
    with pytest.raises(Unauthenticated, match="invalid"):
        verify(other, mint(s, sub="a", role="manager"))


def test_token_cli_mints_a_usable_token(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from services.negotiation.settings import get_settings

    monkeypatch.setenv("PARLEY_NEGOTIATION_JWT_SECRET", SECRET)
    get_settings.cache_clear()
    try:
        assert main(["token", "--role", "agent", "--sub", "a1", "--team", "t1"]) == 0
        token = capsys.readouterr().out.strip()
        p = verify(get_settings(), token)
        assert (p.sub, p.role, p.team) == ("a1", "agent", "t1")
        with pytest.raises(SystemExit):
            main(["token", "--role", "customer", "--sub", "c1"])
    finally:
        get_settings.cache_clear()
