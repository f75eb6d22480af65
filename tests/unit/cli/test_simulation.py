"""``parley simulate`` and ``parley report`` without servers: the policies, arrivals, texts,
offers, the report's arithmetic and files, and the command line's parsing."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.cli import report, simulate, simulation
from deploy.cli.main import app
from shared.clock import AcceleratedClock, beijing_day, to_local
from shared.contracts.intake import decode_submission

runner = CliRunner()
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def test_policy_probabilities_must_add_up() -> None:
    with pytest.raises(ValueError, match="must be 1"):
        simulation.Policy(accept=0.9)


def test_customer_answers_follow_the_stated_probabilities() -> None:
    policy, rng = simulation.Policy(), random.Random(1)
    seen = Counter(policy.answer(rng, final=False) for _ in range(20_000))
    for choice, p in (("accept", policy.accept), ("counter", policy.counter), ("reject", policy.reject),
                      ("silent", policy.silent)):
        assert seen[choice] / 20_000 == pytest.approx(p, abs=0.02), choice
    finals = Counter(policy.answer(rng, final=True) for _ in range(5_000))
    assert "counter" not in finals  # a final offer is accepted, rejected or left unanswered
    assert finals["accept"] / 5_000 == pytest.approx(policy.final_accept, abs=0.03)


def test_arrivals_are_sorted_inside_the_span_and_follow_the_day() -> None:
    times = simulation.arrival_times(START, timedelta(days=20), 3_000, random.Random(2))
    assert times == sorted(times) and len(times) == 3_000
    assert START <= times[0] and times[-1] < START + timedelta(days=20)
    hours = Counter(to_local(t, "Asia/Shanghai").hour for t in times)
    assert hours[10] > 4 * hours[3]  # mornings busy, nights quiet
    weekdays = Counter(to_local(t, "Asia/Shanghai").weekday() for t in times)
    assert weekdays[1] > weekdays[6]


@pytest.mark.parametrize("lang", ["zh", "en", "mixed"])
def test_real_texts_make_valid_submissions(lang: str) -> None:
    rng = random.Random(3)
    texts = simulation.load_texts(lang, 30, rng)
    assert len(texts) == 30 and len({t for _, t, _ in texts}) == 30
    langs = Counter(lg for lg, _, _ in texts)
    assert (langs["en"] == 30) if lang == "en" else (langs["zh-CN"] == 30 if lang == "zh" else langs["en"] == 10)
    for i, (lg, text, product) in enumerate(texts):
        body = simulation.submission("r1", i, START, lg, text, product, rng)
        got = decode_submission(__import__("json").dumps(body, ensure_ascii=False).encode())  # the contract
        assert got.channel_complaint_id == f"sim-r1-{i:05d}"
        assert Decimal("20") <= got.amount_disputed <= Decimal("50000")


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="zh, en or mixed"):
        simulation.load_texts("fr", 3, random.Random(0))


def _workspace(**remedy: object) -> dict[str, object]:
    return {"language": "zh-CN", "product": "credit_card", "amount_disputed": "800.00",
            "remedy_range": remedy}


def test_offer_stays_inside_the_remedy_range_and_the_agents_authority() -> None:
    ws = _workspace(min="100.00", max="5000.00", items=[{"kind": "refund", "min": "100.00", "max": "5000.00"}])
    for seed in range(50):
        terms, moved = simulation.build_offer(ws, random.Random(seed), policy=simulation.Policy(), today=START)
        refund = [t for t in terms if t["kind"] == "refund"]
        assert refund and Decimal("100") <= Decimal(refund[0]["amount"]) <= simulation.AGENT_MAX_CONCESSION
        assert moved == Decimal(refund[0]["amount"])
        assert terms[-1]["kind"] == "apology"


def test_offer_matches_the_finding_not_another_remedy() -> None:
    """The demo's old flaw: a late-fee waiver for unauthorised charges. Terms follow the items."""
    ws = _workspace(min="0", max="300.00", items=[{"kind": "refund", "min": "300.00", "max": "300.00"},
                                                 {"kind": "credit_report_correction"}])
    terms, _ = simulation.build_offer(ws, random.Random(0), policy=simulation.Policy(), today=START)
    assert {t["kind"] for t in terms} == {"refund", "credit_report_correction", "apology"}
    ws = _workspace(min="0", max="200.00", items=[{"kind": "fee_waiver", "max": "400.00", "pct_min": 20,
                                                   "pct_max": 80}])
    terms, moved = simulation.build_offer(ws, random.Random(0), policy=simulation.Policy(), today=START)
    waiver = next(t for t in terms if t["kind"] == "fee_waiver")
    assert Decimal(waiver["waiver_pct"]) <= simulation.AGENT_MAX_WAIVER_PCT
    assert moved <= Decimal("200.00")


def test_no_fault_found_means_an_apology_only() -> None:
    terms, moved = simulation.build_offer(_workspace(min="0", max="0", items=[]), random.Random(0),
                                          policy=simulation.Policy(), today=START)
    assert [t["kind"] for t in terms] == ["apology"] and moved == 0


def test_final_offer_is_better_and_still_within_bounds() -> None:
    ws = _workspace(min="100.00", max="1000.00", items=[{"kind": "refund", "min": "100.00", "max": "1000.00"}])
    _, first = simulation.build_offer(ws, random.Random(4), policy=simulation.Policy(), today=START)
    _, final = simulation.build_offer(ws, random.Random(4), policy=simulation.Policy(), today=START,
                                      better_than=first, final=True)
    assert first <= final <= Decimal("1000.00")


def test_loan_cases_may_get_an_instalment_plan_due_after_the_agreement() -> None:
    ws = {**_workspace(min="0", max="0", items=[]), "product": "consumer_loan"}
    policy = simulation.Policy(instalment_share=1.0)
    terms, _ = simulation.build_offer(ws, random.Random(0), policy=policy, today=START)
    plan = next(t for t in terms if t["kind"] == "instalment_plan")
    assert plan["months"] == 3 and plan["first_due_date"] == (beijing_day(START) + timedelta(days=10)).isoformat()


def test_plan_spreads_arrivals_over_two_thirds_and_mixes_kafka_and_http() -> None:
    cases = simulation.plan(n=60, lang="zh", start=START, days=30, seed=5, run="t", policy=simulation.Policy())
    assert len(cases) == 60 and {c.via for c in cases} == {"kafka", "http"}
    assert all(START <= c.at < START + timedelta(days=20) for c in cases)


# ------------------------------------------------------------------ the report


def _row(i: int, **kw: object) -> report.CaseRow:
    return report.CaseRow(case_id=f"c{i}", case_number=f"TS-{i}", channel="app", product="credit_card",
                          received_at="2026-03-02T01:00:00+00:00", **kw)  # type: ignore[arg-type]


def test_judge_reads_decision_deadline_alerts_and_callback() -> None:
    ws = {"status": "agreed", "category": "pricing_fees", "deadline_at": "2026-03-17T15:59:59.999000+00:00",
          "agreement": {"acceptance": {"at": "2026-03-05T01:00:00+00:00"}}}
    ex = {"status": "closed", "steps": [{"status": "done"}, {"status": "overdue"}],
          "callback": {"satisfied": True, "score": 5}}
    row = report.judge(_row(1), ws, {"alerts": ["deadline_warning"]}, ex)
    assert (row.status, row.days_to_decision, row.on_time, row.warned, row.breached) == ("agreed", 3.0, True,
                                                                                          True, False)
    assert (row.overdue_steps, row.satisfied, row.score, row.settled, row.escalated) == (1, True, 5, True, False)
    reopened = report.judge(_row(4), {
        "status": "open", "deadline_at": "2026-04-01T00:00:00+00:00", "reopenings": [{"at": "2026-03-10T00:00:00Z"}],
        "deadline_changes": [{"at": "2026-03-10T00:00:00Z", "previous_at": "2026-03-17T15:59:59+00:00"}],
        "agreement": {"acceptance": {"at": "2026-03-05T01:00:00+00:00"}}}, None, None)
    assert (reopened.settled, reopened.reopened, reopened.on_time) == (True, True, True)
    assert reopened.deadline_at == "2026-03-17T15:59:59+00:00"  # the regulatory one, not the new round's
    late = report.judge(_row(2), {"status": "escalated", "deadline_at": "2026-03-03T00:00:00+00:00",
                                  "escalation": {"at": "2026-03-04T00:00:00+00:00", "target": "mediation"}},
                        {"alerts": ["deadline_breached"]}, None)
    assert (late.on_time, late.escalation_target, late.breached) == (False, "mediation", True)
    open_ = report.judge(_row(3), {"status": "open", "deadline_at": "2026-03-17T00:00:00+00:00"}, {"alerts": []},
                         None)
    assert open_.on_time is None  # still running: not judged


def test_headline_numbers() -> None:
    rows = [
        _row(1, status="agreed", settled=True, on_time=True, decided_at="x", days_to_decision=2.0, satisfied=True,
             score=5),
        _row(2, status="open", settled=True, reopened=True, on_time=True, decided_at="x", days_to_decision=4.0,
             satisfied=False, score=1, warned=True),
        _row(3, status="escalated", escalated=True, on_time=False, decided_at="x", days_to_decision=16.0,
             breached=True),
        _row(4, status="open", on_time=False, breached=True),
        _row(5, status="awaiting_investigation"),
    ]
    head = report.headline(rows)
    assert head["reopened"] == 1
    assert {k: head[k] for k in ("cases", "settled", "escalated", "open", "deadlines_judged", "deadlines_met",
                                 "deadlines_breached", "deadline_warnings", "callbacks", "satisfied")} == {
        "cases": 5, "settled": 2, "escalated": 1, "open": 3, "deadlines_judged": 4, "deadlines_met": 2,
        "deadlines_breached": 2, "deadline_warnings": 1, "callbacks": 2, "satisfied": 1}
    assert head["deadlines_met_pct"] == 50.0 and head["avg_days_to_decision"] == pytest.approx(7.33)
    assert head["satisfaction_pct"] == 50.0 and head["avg_score"] == 3.0
    assert report.headline([])["deadlines_met_pct"] is None
    assert any("50.0%" in line for line in report.headline_lines(head))


def test_report_files(tmp_path: Path) -> None:
    rows = [_row(1, status="agreed", on_time=True), _row(2, status="open")]
    ev = report.Evaluation(frm=START, to=START + timedelta(days=30), rows=rows, headline=report.headline(rows),
                           source="test")
    paths = report.write(ev, stem="t", directory=tmp_path, console_url="http://127.0.0.1:8005/console")
    assert [p.name for p in paths] == ["t.csv", "t.html"]
    got = list(csv.DictReader(io.StringIO(paths[0].read_text(encoding="utf-8"))))
    assert [r["case_id"] for r in got] == ["c1", "c2"] and got[0]["status"] == "agreed"
    page = paths[1].read_text(encoding="utf-8")
    assert "http://127.0.0.1:8005/console" in page and "TS-2" in page and "settled" in page


def test_report_options_are_checked() -> None:
    result = runner.invoke(app, ["report", "--from", "2026-03-10", "--to", "2026-03-01"])
    assert result.exit_code == 2 and "must be after --from" in result.output
    result = runner.invoke(app, ["report", "--from", "March", "--to", "2026-03-01"])
    assert result.exit_code == 2 and "ISO date" in result.output


def test_report_without_services_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_INTAKE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    result = runner.invoke(app, ["report", "--from", "2026-03-01", "--to", "2026-04-01", "-q"])
    assert result.exit_code == 1
    assert "parley services up" in result.output


def test_simulate_options_are_checked() -> None:
    result = runner.invoke(app, ["simulate", "--lang", "fr"])
    assert result.exit_code == 2 and "zh, en or mixed" in result.output
    result = runner.invoke(app, ["simulate", "--start", "2026-03-02T09:00:00"])
    assert result.exit_code == 2 and "offset" in result.output
    out = runner.invoke(app, ["--help"]).output
    assert "simulate" in out and "report" in out


def test_services_get_the_clock_and_short_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_FOLLOWUP_SWEEP_INTERVAL_S", "7")  # a setting the user made is kept
    clock = AcceleratedClock(START, simulate.DEFAULT_SPEED)
    env = simulate.services_env(clock)
    assert env["PARLEY_CLOCK_START"] == START.isoformat() and float(env["PARLEY_CLOCK_SPEED"]) == 8640
    assert float(env["PARLEY_CLOCK_ANCHOR"]) == clock.real_start
    assert env["PARLEY_SUPERVISION_SWEEP_INTERVAL_S"] == "2" and env["PARLEY_FOLLOWUP_SWEEP_INTERVAL_S"] == "7"
    assert clock.real_seconds(timedelta(days=30)) == pytest.approx(300)


def test_next_simulation_starts_after_the_last(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path))
    assert simulate.default_start() == datetime.fromisoformat(simulate.FIRST_START)
    (tmp_path / "simulations").mkdir()
    (tmp_path / "simulations" / "last.json").write_text('{"end": "2026-04-01T01:00:00+00:00"}')
    assert simulate.default_start() == datetime(2026, 4, 2, 1, 0, tzinfo=UTC)


def test_supervisions_report_gives_the_headline_when_the_period_is_whole_days() -> None:
    from shared.clock import end_of_day

    a = end_of_day(date(2026, 3, 7)) + timedelta(microseconds=1)
    b = end_of_day(date(2026, 4, 7)) + timedelta(microseconds=1)
    assert report.whole_days(a, b) == (date(2026, 3, 8), date(2026, 4, 7))
    assert report.whole_days(START, b) is None  # 09:00 Beijing is not a day's start
    served = {"cases": 30, "deadlines": {"met": 18, "extended": 6, "breached": 1, "pending": 5, "decided": 25},
              "rates": {"settlement": {"cases": 18}, "escalation": {"cases": 7}},
              "satisfaction": {"by_channel": [{"callbacks": 10, "satisfied": 9, "mean_score": 4.5},
                                              {"callbacks": 6, "satisfied": 6, "mean_score": 5.0}]}}
    head = report.served_headline(served)
    assert head == {"cases": 30, "settled": 18, "escalated": 7, "deadlines_judged": 25, "deadlines_met": 24,
                    "deadlines_met_pct": 96.0, "deadlines_breached": 1, "callbacks": 16, "satisfied": 15,
                    "satisfaction_pct": 93.8, "avg_score": 4.69}
