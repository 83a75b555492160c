"""The one exception tree of doublelock.

    DoublelockError
    ├── PolicyError          the policy file is unreadable or invalid
    ├── RejectedEvent        an input record cannot be used (it is dead-lettered)
    │   └── .kind            why: malformed, unknown_schema, missing_field,
    │                        absurd_timestamp, unknown_session, bad_signature,
    │                        oversized
    └── ServiceError         Kafka or ClickHouse failed (raised by adapters)
"""

from __future__ import annotations


class DoublelockError(Exception):
    """Root of every error doublelock raises on purpose."""


class PolicyError(DoublelockError):
    """The policy file cannot be loaded."""


class RejectedEvent(DoublelockError):
    """A record that cannot change state or be decided; it goes to the dead letters."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class ServiceError(DoublelockError):
    """Kafka or ClickHouse did not do what was asked."""
