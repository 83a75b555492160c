"""Creates doublelock's topics with kafka-python and checks co-partitioning."""

from __future__ import annotations

import logging
import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from doublelock.errors import ServiceError
from workers.settings import Settings

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create missing topics; return each topic's partition count."""
    topics = settings.topics
    # User revocations are few and each matters for one absolute timeout, whatever
    # the policy says it is: keep them (docs/OPERATIONS.md).
    configs = {topics.users: {"retention.ms": "-1"}}
    names = [topics.intents, topics.sessions, topics.decisions, topics.deadletter, topics.users,
             topics.alerts]
    counts = _ensure(settings, [NewTopic(n, settings.partitions, 1,
                                         topic_configs=configs.get(n, {})) for n in names])
    if counts.get(topics.intents) != counts.get(topics.sessions):
        raise ServiceError(
            f"{topics.intents} has {counts.get(topics.intents)} partitions and "
            f"{topics.sessions} {counts.get(topics.sessions)}: they must be co-partitioned"
        )
    return counts


def ensure_reply_topic(settings: Settings, name: str, partitions: int) -> int:
    """Create an application's reply topic if missing (decisions are answers waited
    for within seconds: an hour of retention is plenty); its partition count."""
    return _ensure(settings, [NewTopic(name, partitions, 1,
                                       topic_configs={"retention.ms": "3600000"})])[name]


def _ensure(settings: Settings, wanted: list[NewTopic]) -> dict[str, int]:
    names = [t.name for t in wanted]
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=15000)
    except KafkaError as exc:
        raise ServiceError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
                log.info("created topics %s", ", ".join(t.name for t in missing))
            except TopicAlreadyExistsError:
                pass  # another process won the race
        counts = _partition_counts(admin, names)
    except KafkaError as exc:
        raise ServiceError(f"cannot create topics on {settings.bootstrap}: {exc}") from exc
    finally:
        admin.close()
    if min(counts.values(), default=0) == 0:
        raise ServiceError(f"topics {names} did not show their partitions in time")
    return counts


def _partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Each topic's partition count; a topic created a moment ago may not list its
    partitions yet, so ask again for a while."""
    deadline = time.monotonic() + 15
    while True:
        described = admin.describe_topics(names)
        counts = {d.get("name", d.get("topic")): len(d["partitions"]) for d in described}
        if all(counts.get(n) for n in names) or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def delete_topics(settings: Settings, prefixes: set[str]) -> None:
    """Delete every topic whose name starts with one of ``prefixes`` (tests and
    benchmarks drop theirs, so a broker kept between runs does not pile up
    thousands of partitions)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap)
    try:
        doomed = [t for t in admin.list_topics() if any(t.startswith(p) for p in prefixes)]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


def changelog_ends(settings: Settings) -> dict[tuple[str, int], int] | None:
    """The end offset of every partition of the worker's table changelogs, by (table,
    partition); None if a changelog is missing (a broker whose data was reset)."""
    names = {f"{settings.app_id}-{table}-changelog": table for table in ("sessions", "decided")}
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    try:
        partitions = []
        for name in names:
            found = consumer.partitions_for_topic(name)
            if not found:
                return None
            partitions += [TopicPartition(name, p) for p in found]
        ends = consumer.end_offsets(partitions)
    finally:
        consumer.close()
    return {(names[tp.topic], tp.partition): end for tp, end in ends.items()}
