"""Negotiation's business rules as plain functions, one module per flow.

* ``opening`` — record what intake registered; open the workspace from investigation's
  findings (idempotent per case and revision); take a revised investigation.
* ``assignment`` — pick an agent by skill, language, load and conflicts; assign; recuse (回避).
* ``talk`` — the communication log.
* ``offers`` — compute terms, compare with like cases, check authority, approve, withdraw;
  hardship.
* ``answers`` — the customer accepts (the agreement), rejects or counters.
* ``escalation`` — mediation or litigation with a dossier, on request or near the deadline.
* ``progress`` — after the agreement: follow-up's steps and instalments, the execution and
  the case's closure.
* ``reopening`` — a dissatisfied callback reopens the case and reassigns it.
* ``reports`` — the regular progress notice while a case is open.
* ``common`` — scope, permission and version checks, events and customer notices.

Each command takes its input and keyword-only dependencies (``repo``: a ``ports.Store``,
``settings``, ``now``), checks scope, role, authority and recusal, changes the workspace and
saves it together with the events it owes in one document write (``Store.save``, which
refuses a stale version with ``Conflict``). Publishing the owed events (the outbox relay) is
the caller's job. No faust, FastAPI or Kafka here.
"""

from services.negotiation.handlers.answers import (
    accept_offer,
    agree,
    counter_offer,
    record_acceptance,
    record_settlement,
    reject_offer,
)
from services.negotiation.handlers.assignment import assign, pick_agent, recuse
from services.negotiation.handlers.common import (
    PRODUCER,
    SYSTEM,
    Target,
    check_version,
    in_scope,
    load_case,
    require_staff_action,
)
from services.negotiation.handlers.escalation import (
    end_negotiation,
    escalate,
    escalate_near_deadline,
)
from services.negotiation.handlers.offers import (
    assess_fairness,
    decide_approval,
    make_offer,
    offer_metrics,
    prepare_terms,
    preview_offer,
    set_hardship,
    withdraw_offer,
)
from services.negotiation.handlers.opening import (
    open_workspace,
    open_workspaces,
    record_registration,
    record_registrations,
)
from services.negotiation.handlers.ports import Store
from services.negotiation.handlers.progress import record_closure, record_execution, record_progress
from services.negotiation.handlers.reopening import record_reopening
from services.negotiation.handlers.reports import send_progress_notices
from services.negotiation.handlers.talk import log_message

__all__ = [
    "PRODUCER", "SYSTEM", "Store", "Target", "accept_offer", "agree", "assess_fairness", "assign",
    "check_version", "counter_offer", "decide_approval", "end_negotiation", "escalate",
    "escalate_near_deadline", "in_scope", "load_case", "log_message", "make_offer", "offer_metrics",
    "open_workspace", "open_workspaces", "pick_agent", "prepare_terms", "preview_offer", "record_acceptance",
    "record_closure", "record_execution", "record_progress", "record_registration", "record_registrations", "record_reopening", "record_settlement", "recuse",
    "reject_offer", "require_staff_action", "send_progress_notices", "set_hardship", "withdraw_offer",
]
