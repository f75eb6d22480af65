"""The ``parley`` command line without servers: parsing, help, tokens, import validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.cli import backlog
from deploy.cli.main import app
from shared.auth.tokens import verify
from shared.settings import AuthSettings

runner = CliRunner()


@pytest.mark.parametrize("args", [[], ["stack"], ["services"], ["cases"], ["dlq"], ["import", "--help"],
                                  ["token", "--help"], ["dlq", "replay", "--help"], ["cases", "search", "--help"]])
def test_help(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"] if args and args[-1] != "--help" else args or ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_every_group_is_listed() -> None:
    out = runner.invoke(app, ["--help"]).output
    for name in ("stack", "services", "cases", "dlq", "import", "token"):
        assert name in out


def test_token_round_trip() -> None:
    result = runner.invoke(app, ["token", "--role", "agent", "--sub", "a1", "--team", "t1", "--hours", "1"])
    assert result.exit_code == 0, result.output
    p = verify(AuthSettings(), result.output.strip())
    assert (p.sub, p.role, p.team, p.customer_id) == ("a1", "agent", "t1", None)
    result = runner.invoke(app, ["token", "--role", "customer", "--sub", "c1", "--customer-id", "C9"])
    assert verify(AuthSettings(), result.output.strip()).customer_id == "C9"


@pytest.mark.parametrize("args,says", [
    (["--role", "agent", "--sub", "a1"], "--team is required"),
    (["--role", "customer", "--sub", "c1"], "--customer-id is required"),
    (["--role", "ops", "--sub", "o1", "--hours", "0"], "--hours"),
    (["--role", "king", "--sub", "o1"], "Invalid value"),
])
def test_token_refuses(args: list[str], says: str) -> None:
    result = runner.invoke(app, ["token", *args])
    assert result.exit_code == 2
    assert says in result.output


def test_argument_errors() -> None:
    assert runner.invoke(app, ["dlq", "show", "complaint.received", "x", "1"]).exit_code == 2
    assert runner.invoke(app, ["cases", "search", "--limit", "0"]).exit_code == 2
    assert runner.invoke(app, ["services", "up", "--workers", "0"]).exit_code == 2
    assert runner.invoke(app, ["import", "/nonexistent.csv"]).exit_code == 2


def test_import_validates_rows(tmp_path: Path) -> None:
    good = {"channel": "app", "received_at": "2026-01-05T10:00:00+08:00", "customer": {"customer_id": "c1"},
            "product": "credit_card", "text": "年费被乱收"}
    lines = [json.dumps(dict(good, channel_complaint_id="K1")), json.dumps(good), "",
             json.dumps(dict(good, channel="pigeon")), "{not json", json.dumps(dict(good, text=""))]
    f = tmp_path / "backlog.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = list(backlog.read_rows(f, backlog.Format.jsonl, channel="web", received_at=""))
    assert [r.line for r in rows] == [1, 2, 4, 5, 6]
    checked = [(r.line, backlog.validate(r)) for r in rows]
    assert checked[0][1][0].channel_complaint_id == "K1"
    assert checked[1][1][0].channel_complaint_id == backlog.derived_id(f, 2)
    bad = {line: [e["field"] for e in errs] for line, (sub, errs) in checked if sub is None}
    assert bad == {4: ["channel"], 5: ["(line)"], 6: ["text"]}


def test_derived_ids_are_deterministic_and_valid(tmp_path: Path) -> None:
    from shared.contracts.intake import ComplaintSubmission

    a = backlog.derived_id(Path("/x/投诉 backlog 2026.csv"), 12345)
    assert a == backlog.derived_id(Path("/elsewhere/投诉 backlog 2026.csv"), 12345)
    assert a != backlog.derived_id(Path("/x/other.csv"), 12345)
    assert len(a) <= 64
    ComplaintSubmission.model_fields["channel_complaint_id"]  # noqa: B018 - the field exists
    assert a.startswith("IMP-") and " " not in a


def test_shared_data_csv_rows_and_line_numbers(tmp_path: Path) -> None:
    f = tmp_path / "train.csv"
    f.write_text('信用卡年费乱扣,3\n"第一行\n第二行 逾期 催收",0\n,1\n' + "x" * 20_001 + ",2\n", encoding="utf-8")
    rows = list(backlog.read_rows(f, backlog.Format.csv, channel="hotline", received_at="2026-01-05T10:00:00+00:00"))
    assert [r.line for r in rows] == [1, 2, 4, 5]
    subs = [backlog.validate(r) for r in rows]
    assert subs[0][0].product.value == "credit_card"
    assert subs[0][0].channel.value == "hotline"
    assert subs[1][0].product.value == "consumer_loan"
    assert subs[1][0].customer.customer_id == "C" + backlog.derived_id(f, 2)
    assert [e["field"] for e in subs[2][1]] == ["text"]
    assert [e["field"] for e in subs[3][1]] == ["text"]


def test_schema_csv(tmp_path: Path) -> None:
    f = tmp_path / "schema.csv"
    f.write_text(
        "channel_complaint_id,channel,received_at,customer_id,customer_name,customer_phone,product,text,amount_disputed,customer_vulnerable\n"
        "S1,web,2026-01-05T10:00:00+08:00,c1,王伟,13800000000,credit_card,年费,12.50,true\n"
        ",web,2026-01-05T10:00:00+08:00,c2,,not-a-phone,credit_card,年费,,\n"
        "S3,web,tomorrow,c3,,,loan,text,,\n",
        encoding="utf-8")
    rows = list(backlog.read_rows(f, backlog.Format.csv, channel="web", received_at=""))
    subs = [backlog.validate(r) for r in rows]
    assert subs[0][0].customer.vulnerable is True and str(subs[0][0].amount_disputed) == "12.50"
    assert [e["field"] for e in subs[1][1]] == ["customer.phone"]
    assert sorted(e["field"] for e in subs[2][1]) == ["product", "received_at"]


def test_import_when_kafka_does_not_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path))
    f = tmp_path / "b.csv"
    f.write_text("信用卡年费乱扣,3\n", encoding="utf-8")
    result = runner.invoke(app, ["import", str(f), "-q"])
    assert result.exit_code == 1
    assert "Kafka does not answer at 127.0.0.1:1" in result.output
    assert "parley stack up" in result.output


def test_cases_when_the_api_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_INTAKE_URL", "http://127.0.0.1:1")
    result = runner.invoke(app, ["cases", "search"])
    assert result.exit_code == 1
    assert "parley services up" in result.output
