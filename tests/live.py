"""Small helpers for the integration tests that talk to a live worker."""

from __future__ import annotations

from doublelock.events import Intent
from doublelock.verdict import Decision
from workers.client import DecisionReader, Publisher


def ask(publisher: Publisher, reader: DecisionReader, intent: Intent,
        timeout_s: float = 20.0) -> Decision:
    """Publish one intent (acknowledged) and return its decision; KeyError if none came."""
    publisher.intent(intent).get(timeout=10)
    return reader.wait_for([intent.intent_id], timeout_s)[intent.intent_id]
