"""Kafka plumbing: topic creation, the event publisher, dead letters, faust apps and the
consume step every agent uses (decode → handle → retry or dead-letter)."""

from shared.kafka.admin import ensure_topics
from shared.kafka.consume import Incoming, consume_one
from shared.kafka.dlq import DeadLetter, dead_letter_headers
from shared.kafka.faust_app import make_faust_app
from shared.kafka.producer import Publisher

__all__ = [
    "DeadLetter",
    "Incoming",
    "Publisher",
    "consume_one",
    "dead_letter_headers",
    "ensure_topics",
    "make_faust_app",
]
