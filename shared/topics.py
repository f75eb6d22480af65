"""The topic catalogue: every Kafka topic Parley uses, what it carries, who reads it.

A topic's name is its event type (past tense). Each one has a dead-letter topic
``<name>.dlq`` where consumers put what they could not process, with the original bytes
and the reason in headers (see ``shared.kafka.dlq``). Physical names get the configured
``PARLEY_KAFKA_TOPIC_PREFIX`` in front (``KafkaSettings.topic``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shared.contracts import followup, intake, investigation, negotiation, supervision
from shared.contracts.envelope import Envelope, Payload
from shared.errors import InvalidMessage

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the catalogue."""

    name: str
    description: str
    payload: type[Payload] | None = None  # None: not enveloped (channel ingress)
    consumers: tuple[str, ...] = field(default_factory=tuple)

    @property
    def dlq(self) -> str:
        """Name of this topic's dead-letter topic."""
        return self.name + DLQ_SUFFIX


def _spec(payload: type[Payload], description: str, *consumers: str) -> TopicSpec:
    return TopicSpec(payload.event_type, description, payload, ("supervision", *consumers))


CATALOGUE: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        TopicSpec(
            "complaint.received",
            "Complaints as channels publish them (ComplaintSubmission JSON, not enveloped; "
            "key: the channel's complaint id).",
            None,
            ("intake",),
        ),
        _spec(
            intake.ComplaintRegistered,
            "A complaint became or joined a case.",
            "investigation",
            "negotiation",
        ),
        _spec(intake.CustomerNotified, "A message to the customer was issued."),
        _spec(
            investigation.InvestigationCompleted, "Findings, evidence and category.", "negotiation"
        ),
        _spec(investigation.InvestigationPaused, "The decision clock paused or resumed (appraisal)."),
        _spec(negotiation.NegotiationStarted, "A negotiation workspace opened."),
        _spec(negotiation.NegotiationFailed, "Negotiation ended without agreement."),
        _spec(negotiation.SettlementProposed, "An offer went to the customer."),
        _spec(negotiation.SettlementApproved, "An offer above authority was approved."),
        _spec(negotiation.SettlementAgreed, "The customer accepted an offer.", "followup"),
        _spec(negotiation.SettlementRejected, "The customer rejected an offer."),
        _spec(followup.SettlementExecuted, "The agreed remedy was carried out.", "negotiation"),
        _spec(followup.ExecutionProgressed,
              "A step of the agreement was carried out or an instalment paid (or past due).", "negotiation"),
        _spec(negotiation.CaseEscalated, "The case goes to mediation or litigation.", "followup"),
        _spec(followup.FollowupCompleted, "The satisfaction callback was made."),
        _spec(followup.CaseReopened, "A dissatisfied callback reopened the case for negotiation.", "negotiation"),
        _spec(followup.CaseClosed, "The case was closed.", "intake", "negotiation"),
        # read by people (operations) through supervision, which keeps every service's alerts
        TopicSpec(supervision.SupervisionAlert.event_type, "Something needs a person's attention.",
                  supervision.SupervisionAlert, ("supervision",)),
    )
}


def spec(name: str) -> TopicSpec:
    """Return the catalogue entry of a topic (logical name, without prefix)."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the topic catalogue") from None


def all_topics(*, dead_letters: bool = True) -> list[str]:
    """Return every logical topic name, with their dead-letter topics unless told not to."""
    names = list(CATALOGUE)
    if dead_letters:
        names += [CATALOGUE[n].dlq for n in CATALOGUE]
    return names


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Turn pydantic errors into ``{"field", "problem"}`` pairs, leaving out the input values.

    The input may hold personal data, so it never goes into a reason that is logged or
    published.
    """
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(root)", "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def decode_json(raw: bytes | None) -> Any:
    """Decode UTF-8 JSON bytes, or raise ``InvalidMessage`` saying what is wrong."""
    if raw is None:
        raise InvalidMessage("message has no value")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"value is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMessage(f"value is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidMessage("value is JSON nested too deeply") from None


def known_versions(topic: str) -> tuple[int, ...]:
    """The ``schema_version`` values a consumer of ``topic`` (logical name) can read."""
    entry = spec(topic)
    if entry.payload is None:
        raise KeyError(f"{topic} is not an enveloped topic")
    return entry.payload.known_versions()


def _refuse(field: str, problem: str) -> InvalidMessage:
    return InvalidMessage(problem, errors=[{"field": field, "problem": problem}])


def check_header(topic: str, data: dict[str, Any]) -> None:
    """Refuse an envelope whose ``event_type`` is not ``topic``'s or whose ``schema_version``
    the consumer does not know; raise ``InvalidMessage`` naming the field.

    Checked before the payload is read: an event of an unknown major version may look like a
    known one (same field names, other meanings), so it is never read as one.
    """
    entry = spec(topic)
    assert entry.payload is not None
    event_type = data.get("event_type")
    if event_type != entry.name:
        if "event_type" not in data:
            raise _refuse("event_type", f"event_type is missing (must be {entry.name})")
        if not isinstance(event_type, str):
            raise _refuse("event_type", f"event_type must be the string {entry.name!r}")
        raise _refuse("event_type", f"event_type {event_type[:64]!r} does not belong on {topic}")
    known = entry.payload.known_versions()
    version = data.get("schema_version")
    if type(version) is int and version in known:  # every good event: nothing more to build
        return
    known_text = ", ".join(str(v) for v in known)
    if "schema_version" not in data:
        raise _refuse("schema_version", f"schema_version is missing for {topic} (known: {known_text})")
    if type(version) is not int:  # not bool, not "1", not 1.0
        raise _refuse("schema_version", f"schema_version must be an integer for {topic} (known: {known_text})")
    shown = str(version) if abs(version) < 10**12 else "(a huge number)"
    raise _refuse("schema_version", f"unsupported schema_version {shown} for {topic} (known: {known_text})")


def decode(topic: str, raw: bytes | None) -> Envelope[Any]:
    """Decode an enveloped event from ``topic`` (logical name), or raise ``InvalidMessage``.

    The envelope must carry ``topic``'s ``event_type`` and a ``schema_version`` this consumer
    knows (``check_header``); unknown fields, in the envelope or its payload, are ignored.
    """
    entry = spec(topic)
    if entry.payload is None:
        raise InvalidMessage(f"{topic} is not an enveloped topic")
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise InvalidMessage("value must be a JSON object")
    check_header(topic, data)
    try:
        return Envelope.of(entry.payload).model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        raise InvalidMessage(
            "; ".join(f"{e['field']}: {e['problem']}" for e in errors), errors=errors
        ) from None
