"""doublelock's decision core: policy, session state, verdict.

Pure: it imports nothing of Kafka, Faust, Avro or ClickHouse, and takes the time
as an argument, so the live worker and the ``decide`` replay share every rule.
"""

from doublelock.errors import DoublelockError, PolicyError, RejectedEvent, ServiceError
from doublelock.events import (
    Activity,
    Expired,
    Heartbeat,
    Inherited,
    Intent,
    LifecycleEvent,
    LoggedOut,
    Reauthenticated,
    Revoked,
    Rotated,
    SessionCreated,
    UserSessionsRevoked,
    validate_event,
    validate_intent,
    validate_user_event,
)
from doublelock.policy import ActionRule, Policy, load_policy, parse_policy
from doublelock.revocations import Revocations
from doublelock.session import Early, SessionState, Status, apply, step, successor
from doublelock.verdict import Decision, Reason, Verdict, decide, deny, deny_duplicate

__all__ = [
    "ActionRule", "Activity", "Decision", "DoublelockError", "Early", "Expired", "Heartbeat",
    "Inherited", "Intent", "LifecycleEvent", "LoggedOut", "Policy", "PolicyError", "Reason",
    "Reauthenticated", "RejectedEvent", "Revocations", "Revoked", "Rotated", "ServiceError",
    "SessionCreated", "SessionState", "Status", "UserSessionsRevoked", "Verdict", "apply",
    "decide", "deny", "deny_duplicate", "load_policy", "parse_policy", "step", "successor",
    "validate_event", "validate_intent", "validate_user_event",
]
