"""Supervision's rules for alerts other services raise, a person's acknowledgement and
resolution, and consumer lag over offsets (pure functions, no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.supervision import handlers
from services.supervision.handlers import PartitionLag
from shared.contracts.envelope import Envelope
from shared.contracts.supervision import SupervisionAlert
from shared.topics import CATALOGUE

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Store:
    def __init__(self) -> None:
        self.alerts: dict[str, Envelope[Any]] = {}

    async def store_alert(self, alert_id: str, envelope: Envelope[Any]) -> bool:
        if alert_id in self.alerts:
            return False
        self.alerts[alert_id] = envelope
        return True


def _alert(producer: str, kind: str = "case_reopened") -> Envelope[SupervisionAlert]:
    return Envelope.wrap(SupervisionAlert(kind=kind, severity="warning", message="m"),
                         case_id="case-1", producer=producer)


async def test_other_services_alerts_are_kept_once_by_event_id_and_supervisions_own_are_skipped() -> None:
    store = Store()
    reopened, missed, own = _alert("followup"), _alert("followup", "instalment_missed"), _alert("supervision")
    assert await handlers.record_foreign_alerts([reopened, missed, own, reopened], repo=store) == 2  # type: ignore[arg-type]
    assert await handlers.record_foreign_alerts([reopened], repo=store) == 0  # type: ignore[arg-type]  # redelivery
    assert set(store.alerts) == {f"event:{reopened.event_id}", f"event:{missed.event_id}"}


def test_an_alert_is_acknowledged_once_and_the_first_record_stays() -> None:
    alert: dict[str, Any] = {"_id": "a1", "kind": "case_reopened"}
    assert handlers.alert_status(alert) == "open"
    fields = handlers.acknowledge(alert, by="ops-1", note=" looking ", now=NOW)
    assert fields == {"acknowledged": {"by": "ops-1", "at": NOW, "note": "looking"}, "status": "acknowledged"}
    alert.update(fields)
    assert handlers.alert_status(alert) == "acknowledged"
    assert handlers.acknowledge(alert, by="ops-2", note="me too", now=NOW + timedelta(hours=1)) is None


def test_resolving_records_who_and_when_once_and_ends_acknowledgement() -> None:
    alert: dict[str, Any] = {"_id": "a1"}
    alert.update(handlers.acknowledge(alert, by="ops-1", note=None, now=NOW) or {})
    fields = handlers.resolve(alert, by="ops-2", note="customer called back", now=NOW + timedelta(hours=2))
    assert fields is not None and fields["status"] == "resolved"
    assert fields["resolved"] == {"by": "ops-2", "at": NOW + timedelta(hours=2), "note": "customer called back"}
    alert.update(fields)
    assert handlers.alert_status(alert) == "resolved"
    assert alert["acknowledged"]["by"] == "ops-1"  # kept
    assert handlers.resolve(alert, by="ops-3", note=None, now=NOW) is None
    assert handlers.acknowledge(alert, by="ops-3", note=None, now=NOW) is None  # resolved is final
    direct: dict[str, Any] = {"_id": "a2"}
    assert handlers.resolve(direct, by="ops-1", note="", now=NOW) == {
        "resolved": {"by": "ops-1", "at": NOW, "note": None}, "status": "resolved"}


def test_every_service_group_reads_what_the_catalogue_says_and_supervision_the_dead_letters() -> None:
    groups = handlers.consumer_groups("t1.")
    assert set(groups) == {f"t1.parley-{s}" for s in ("intake", "investigation", "negotiation", "followup", "supervision")}
    assert "supervision.alert" in groups["t1.parley-supervision"]
    assert set(groups["t1.parley-supervision"]) >= {e.dlq for e in CATALOGUE.values()}
    assert groups["t1.parley-followup"] == ("settlement.agreed", "case.escalated")


def test_lag_is_end_minus_committed_and_all_records_when_nothing_is_committed() -> None:
    parts = [("a", 1), ("a", 0), ("b", 0)]
    committed = {("a", 0): 10, ("a", 1): -1}  # -1: Kafka's "no offset"
    ends = {("a", 0): 15, ("a", 1): 4, ("b", 0): 0}
    rows = handlers.partition_lags("g", parts, committed, ends)
    assert rows == [PartitionLag("g", "a", 0, 10, 15), PartitionLag("g", "a", 1, None, 4), PartitionLag("g", "b", 0, None, 0)]
    assert [r.lag for r in rows] == [5, 4, 0]
    assert handlers.total_lag(rows) == 9
    assert PartitionLag("g", "a", 0, 20, 15).lag == 0  # committed past a truncated end: never negative


def test_a_group_alerts_once_while_above_the_threshold_and_again_after_it_recovered() -> None:
    rising, falling = handlers.lag_transitions({"g1": 20_000, "g2": 5}, threshold=10_000, above=set())
    assert (rising, falling) == (["g1"], [])
    rising, falling = handlers.lag_transitions({"g1": 30_000, "g2": 5}, threshold=10_000, above={"g1"})
    assert (rising, falling) == ([], [])  # still above: no second alert
    rising, falling = handlers.lag_transitions({"g1": 10_000, "g2": 5}, threshold=10_000, above={"g1"})
    assert (rising, falling) == ([], ["g1"])
    assert handlers.lag_alert_id("g1", NOW) == "consumer_lag:g1:20260302T080000Z"
    alert = handlers.lag_alert("g1", 20_000, 10_000)
    assert alert.kind == "consumer_lag" and "20000" in alert.message
