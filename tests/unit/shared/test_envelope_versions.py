"""Envelope decoding refuses what a consumer cannot read: unknown major versions, foreign types.

Issue 10: an event with ``schema_version`` 99 and unknown payload fields was applied as
version 1 (a ``case.closed`` closed a case). Unknown *fields* within a known version stay
ignored (forward compatibility); an unknown *version* is refused, so it is dead-lettered.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import topics
from shared.contracts.envelope import Envelope
from shared.contracts.followup import CaseClosed
from shared.errors import InvalidMessage


def closed(**changes: Any) -> dict[str, Any]:
    e = Envelope.wrap(CaseClosed(case_number="TS-20260101-000001", outcome="resolved"),
                      case_id="c-1", producer="followup")
    data: dict[str, Any] = json.loads(e.to_bytes())
    data.update(changes)
    return data


def refusal(data: dict[str, Any], topic: str = "case.closed") -> InvalidMessage:
    with pytest.raises(InvalidMessage) as info:
        topics.decode(topic, json.dumps(data).encode())
    return info.value


def test_an_unknown_major_version_is_refused_naming_the_known_ones() -> None:
    data = closed(schema_version=99)
    data["payload"]["reopen_policy"] = "v99 only"
    error = refusal(data)
    assert error.reason == "unsupported schema_version 99 for case.closed (known: 1)"
    assert [e["field"] for e in error.errors] == ["schema_version"]


@pytest.mark.parametrize("version", [0, -1, 2, "1", "99", 1.0, True, None, [1]])
def test_schema_version_must_be_a_known_integer(version: Any) -> None:
    error = refusal(closed(schema_version=version))
    assert "schema_version" in error.reason
    assert [e["field"] for e in error.errors] == ["schema_version"]


def test_a_missing_schema_version_is_refused() -> None:
    data = closed()
    del data["schema_version"]
    error = refusal(data)
    assert [e["field"] for e in error.errors] == ["schema_version"]


@pytest.mark.parametrize("event_type", ["case.opened", "complaint.registered", "", None, 1])
def test_event_type_must_be_the_topics(event_type: Any) -> None:
    error = refusal(closed(event_type=event_type))
    assert [e["field"] for e in error.errors] == ["event_type"]
    assert "case.closed" in error.reason


def test_a_missing_event_type_is_refused() -> None:
    data = closed()
    del data["event_type"]
    assert [e["field"] for e in refusal(data).errors] == ["event_type"]


def test_unknown_fields_of_a_known_version_are_still_ignored() -> None:
    data = closed(added_later=True)
    data["payload"]["added_in_v1_later"] = {"any": "thing"}
    assert topics.decode("case.closed", json.dumps(data).encode()).payload.outcome == "resolved"


def test_every_enveloped_topic_decodes_its_own_version() -> None:
    for name, entry in topics.CATALOGUE.items():
        if entry.payload is None:
            continue
        known = topics.known_versions(name)
        assert entry.payload.schema_version in known
        data = closed(event_type=name, schema_version=max(known) + 1)
        assert f"unsupported schema_version {max(known) + 1} for {name}" in refusal(data, name).reason
