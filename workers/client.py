"""Publishing lifecycle events and intents, reading decisions: kafka-python, no Faust.

The demo and the tests drive the worker through this, as an application would.
"""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from doublelock.errors import ServiceError
from doublelock.events import Intent, LifecycleEvent, UserSessionsRevoked
from doublelock.signing import SIGNATURE_HEADER, sign_record, verify
from doublelock.verdict import Decision
from schemas.codec import Codec
from workers.settings import Settings

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, settings: Settings, codec: Codec | None = None) -> None:
        self.topics = settings.topics
        self.codec = codec or Codec()
        self.event_ring = settings.event_key_ring()
        self.producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap, acks="all", linger_ms=2,
            enable_idempotence=True, client_id="doublelock-publisher",
        )

    def lifecycle(self, event: LifecycleEvent) -> Any:
        return self._signed(self.topics.sessions, event.session_id.encode(),
                            self.codec.encode(event))

    def user_event(self, event: UserSessionsRevoked) -> Any:
        return self._signed(self.topics.users, event.user_id.encode(), self.codec.encode(event))

    def _signed(self, topic: str, key: bytes, value: bytes) -> Any:
        """Send, signed with the identity provider's key when one is configured."""
        headers = [] if self.event_ring is None else [
            (SIGNATURE_HEADER, sign_record(topic, key, value, self.event_ring))]
        return self.producer.send(topic, key=key, value=value, headers=headers)

    def intent(self, intent: Intent) -> Any:
        return self.producer.send(self.topics.intents, key=intent.session_id.encode(),
                                  value=self.codec.encode(intent),
                                  headers=[("intent_id", intent.intent_id.encode())])

    def raw(self, topic: str, key: bytes | None, value: bytes | None,
            headers: list[tuple[str, bytes]] | None = None) -> Any:
        return self.producer.send(topic, key=key, value=value, headers=headers or [])

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()


class DecisionReader:
    """Reads the decisions topic from its end (as of construction) onwards."""

    def __init__(self, settings: Settings, from_beginning: bool = False,
                 codec: Codec | None = None) -> None:
        self.codec = codec or Codec()
        self.key_ring = settings.key_ring()
        self.refused = 0
        self.consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap,
                                      enable_auto_commit=False, consumer_timeout_ms=200)
        topic = settings.topics.decisions
        partitions: set[int] = set()
        deadline = time.monotonic() + 15
        # A topic created a moment ago may not be in this client's metadata yet.
        while not partitions:
            partitions = self.consumer.partitions_for_topic(topic) or set()
            if not partitions:
                if time.monotonic() > deadline:
                    self.consumer.close()
                    raise ServiceError(f"topic {topic} does not exist on {settings.bootstrap}")
                time.sleep(0.1)
        self.consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        if from_beginning:
            self.consumer.seek_to_beginning()
        else:
            self.consumer.seek_to_end()
            for tp in self.consumer.assignment():
                self.consumer.position(tp)  # resolve now, not at the first poll

    def poll(self, timeout_s: float = 0.2) -> Iterator[Decision]:
        """Decisions as they come; with signing keys configured, only those signed by
        one of them (a forged or unsigned one is counted in ``refused`` and dropped)."""
        batches = self.consumer.poll(timeout_ms=int(timeout_s * 1000))
        for records in batches.values():
            for record in records:
                decision = self.codec.decode(record.value)
                if self.key_ring is not None and not verify(decision, self.key_ring):
                    self.refused += 1
                    log.warning("refused a decision for %r: not signed by a known key",
                                decision.intent_id[:80])
                    continue
                yield decision

    def wait_for(self, intent_ids: Iterable[str], timeout_s: float) -> dict[str, Decision]:
        """The first decision for each of these intents; what arrived before the timeout."""
        found = self.gather({i: 1 for i in intent_ids}, timeout_s)
        return {i: decisions[0] for i, decisions in found.items()}

    def gather(self, counts: Mapping[str, int], timeout_s: float) -> dict[str, list[Decision]]:
        """Up to ``counts[i]`` decisions for intent id i, in the order they came."""
        found: dict[str, list[Decision]] = {}
        deadline = time.monotonic() + timeout_s

        def short() -> bool:
            return any(len(found.get(i, ())) < n for i, n in counts.items())

        while short() and time.monotonic() < deadline:
            for decision in self.poll():
                if decision.intent_id in counts:
                    found.setdefault(decision.intent_id, []).append(decision)
        return found

    def close(self) -> None:
        self.consumer.close()


def wait_until_deciding(settings: Settings, process: subprocess.Popen[bytes] | None = None,
                        timeout_s: float = 90.0) -> None:
    """Return once a worker answers: a probe intent goes in and its decision comes out."""
    reader, publisher = DecisionReader(settings), Publisher(settings)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise ServiceError(f"the worker exited with {process.returncode}")
            probe = Intent(f"probe-{uuid.uuid4().hex}", "probe-session", "probe", "probe.ping",
                           "", time.time_ns() // 1_000_000, "127.0.0.1", "probe", "cli", "probe")
            publisher.intent(probe)
            publisher.flush()
            if reader.wait_for([probe.intent_id], timeout_s=3.0):
                return
        raise ServiceError(f"no worker answered on {settings.bootstrap} in {timeout_s:.0f}s")
    finally:
        reader.close()
        publisher.close()
