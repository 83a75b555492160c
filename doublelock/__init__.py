"""doublelock's decision core: policy, session state, verdict.

Pure: it imports nothing of Kafka, Faust, Avro or ClickHouse, and takes the time
as an argument, so the live worker and the ``decide`` replay share every rule.
"""

from doublelock.errors import DoublelockError, PolicyError, RejectedEvent, ServiceError
from doublelock.events import (
    Activity,
    Expired,
    Heartbeat,
    Intent,
    LifecycleEvent,
    LoggedOut,
    Reauthenticated,
    Revoked,
    SessionCreated,
    validate_event,
    validate_intent,
)
from doublelock.policy import ActionRule, Policy, load_policy, parse_policy
from doublelock.session import SessionState, Status, apply
from doublelock.verdict import Decision, Reason, Verdict, decide, deny

__all__ = [
    "ActionRule", "Activity", "Decision", "DoublelockError", "Expired", "Heartbeat",
    "Intent", "LifecycleEvent", "LoggedOut", "Policy", "PolicyError", "Reason",
    "Reauthenticated", "RejectedEvent", "Revoked", "ServiceError", "SessionCreated",
    "SessionState", "Status", "Verdict", "apply", "decide", "deny", "load_policy",
    "parse_policy", "validate_event", "validate_intent",
]
