"""The console's pure parts: the funnel, its words in both languages, the CSRF token, the
replay marker, and that every template renders."""

from __future__ import annotations

from services.supervision import handlers
from services.supervision.console import FUNNEL, TEMPLATES, WORDS, csrf_token, funnel, word
from shared.kafka.replay import logical_dlq, marker_of


def test_the_funnel_counts_every_status_once_in_order() -> None:
    counted = [s for _, statuses in FUNNEL for s in statuses]
    assert sorted(counted) == sorted(handlers.STATUS_RANK)  # every status, once
    assert counted == sorted(counted, key=handlers.STATUS_RANK.__getitem__)  # in the order of the stages
    stages = funnel({"registered": 2, "settled": 1, "escalated": 3, "closed": 4})
    assert [s["stage"] for s in stages] == [stage for stage, _ in FUNNEL]
    assert {s["stage"]: s["total"] for s in stages}["settled_escalated"] == 4
    assert sum(s["total"] for s in stages) == 10
    assert funnel({"somewhere_new": 1})[-1] == {"stage": "other", "statuses": [("somewhere_new", 1)], "total": 1}


def test_every_word_has_both_languages_and_chinese_is_the_default() -> None:
    assert all(zh and en and zh != en for zh, en in WORDS.values())
    assert word("alerts", "zh") == "告警" and word("alerts", "en") == "Alerts"
    assert word("alerts", "fr") == "告警" and word("no-such-word", "en") == "no-such-word"
    for stage, _ in FUNNEL:
        assert f"stage_{stage}" in WORDS


def test_the_csrf_token_belongs_to_one_session_and_one_secret() -> None:
    a = csrf_token(b"secret", "token-a")
    assert a == csrf_token(b"secret", "token-a") and len(a) == 40
    assert a != csrf_token(b"secret", "token-b") and a != csrf_token(b"other", "token-a")


def test_the_replay_marker_names_the_dead_letter_topic() -> None:
    assert logical_dlq("complaint.received") == logical_dlq("complaint.received.dlq") == "complaint.received.dlq"
    assert marker_of("complaint.received", 1, 7) == "complaint.received.dlq:1:7"


def test_every_template_compiles() -> None:
    for name in ("base.html", "login.html", "error.html", "overview.html", "alerts.html", "dead_letters.html",
                 "lag.html", "cases.html", "case.html"):
        TEMPLATES.env.get_template(name)
