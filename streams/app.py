"""The Faust topology: two co-partitioned topics, one sessions table, two agents.

    sessions ──apply_lifecycle──▶ sessions table (changelog: <app_id>-sessions-changelog)
    intents ───decide_intents───▶ decisions, ClickHouse (and deadletter on bad input)

Both agents run with concurrency 1 (faust #606); only the sessions agent writes the
table, the intents agent's per-intent tasks only read it. Nothing lets an exception escape:
an exception in a Faust agent would still ack the event, so every failure becomes
a deny ``malformed`` (for an intent) and a dead letter with its cause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.types import TP

from dashboards.store import Source, Store, decision_row, rejection_row
from doublelock.errors import RejectedEvent
from doublelock.events import Intent, Millis, validate_event, validate_intent
from doublelock.policy import Policy
from doublelock.session import SessionState, apply
from doublelock.verdict import Decision, Reason, decide, deny
from schemas.codec import Codec
from streams.barrier import BrokerClient, SessionsBarrier
from streams.metrics import Metrics
from streams.sink import ClickHouseSink
from streams.transport import LowLatencyTransport
from workers.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], Millis]

# Intents being decided at once (most wait at the barrier); past this the agent
# waits, so memory stays bounded when the sessions state lags far behind.
MAX_WAITING_INTENTS = 2000


def wall_clock() -> Millis:
    return time.time_ns() // 1_000_000


class EnforcementApp(faust.App):
    """Flushes the ClickHouse sink while the consumer still runs, so that a clean
    stop commits every stored offset instead of leaving it to a replay."""

    before_stop: Callable[[], Awaitable[None]] | None = None

    def _new_transport(self) -> Any:
        return LowLatencyTransport(self.conf.broker_consumer, self)

    async def on_stop(self) -> None:
        if self.before_stop is not None:
            await self.before_stop()
        await super().on_stop()


@dataclass
class Worker:
    """What the topology is made of; tests and the CLI reach in through it."""

    app: faust.App
    metrics: Metrics
    sink: ClickHouseSink
    barrier: SessionsBarrier


def build_app(
    settings: Settings, policy: Policy, store: Store, clock: Clock = wall_clock
) -> Worker:
    topics = settings.topics
    codec = Codec(max_payload=settings.max_payload_bytes)
    app = EnforcementApp(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store=settings.faust_store(),
        datadir=str(settings.worker_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Batch decisions for a few ms: one produce request per message costs more
        # than the wait (see bench/worker_roundtrip.py).
        producer_linger=0.003,
        web_enabled=False,
        # Unacked events wait for the sink, not the other way round: never block a
        # stop or a rebalance on them (they are redelivered, rows are idempotent).
        stream_wait_empty=False,
        # A worker killed without leaving its group holds its partitions until the
        # session times out; every intent meanwhile goes stale. Keep that short.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        # Offsets only move once sink.flush() acks; commit soon after it does.
        broker_commit_interval=max(settings.flush_interval_ms / 1000, 0.2),
    )

    def raw_topic(name: str) -> faust.TopicT:
        # Keys are session ids as bytes, values Avro single-object payloads.
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=settings.partitions)

    intents_topic, sessions_topic = raw_topic(topics.intents), raw_topic(topics.sessions)
    decisions_topic, deadletter_topic = raw_topic(topics.decisions), raw_topic(topics.deadletter)
    table: Any = app.Table("sessions", partitions=settings.partitions, key_type=bytes,
                           value_type=bytes)
    # Faust picks "json" for any non-Model type; the values are Avro SessionState
    # bytes. Set before the store and the changelog topic are made (on first use).
    table.key_serializer = table.value_serializer = "raw"
    metrics = Metrics()
    sink = ClickHouseSink(store, app.producer.flush, settings.flush_rows,
                          settings.flush_interval_ms / 1000)

    async def start_offset(tp: TP) -> int:
        committed = _consumer(app)._committed_offset.get(tp)  # set by seek_to_committed
        if committed is not None:
            return int(committed)
        return int((await app.consumer.earliest_offsets(tp))[tp])

    broker = BrokerClient(settings.bootstrap)
    barrier = SessionsBarrier(topics.intents, topics.sessions, broker, start_offset)

    async def send(topic: faust.TopicT, key: bytes | None, value: bytes) -> None:
        """Produce without ever raising into an agent: a failed send is logged and
        counted; the application then hears nothing for that intent, which it must
        treat as a deny."""
        try:
            await topic.send(key=key, value=value, force=True)
        except Exception:
            metrics.send_failures += 1
            log.exception("could not produce to %s", topic.get_topic_name())

    async def dead_letter(message: Any, kind: str, error: str) -> list[Any]:
        """Keep the raw record with its cause; returns the ClickHouse rejection row."""
        now = clock()
        source = Source(message.topic, message.partition, message.offset)
        error = error[:1000]
        key, payload = message.key, message.value or b""
        if len(key or b"") + len(payload) > settings.max_payload_bytes:
            # Keep the dead letter under the broker's message size; the whole record
            # stays in its topic at this position.
            key, payload = (key or b"")[:1024], payload[:settings.max_payload_bytes]
            error += " (key and payload truncated in this dead letter)"
        record = {
            "source_topic": source.topic, "partition": source.partition,
            "offset": source.offset, "key": key, "payload": payload,
            "kind": kind, "error": error, "rejected_at": now,
        }
        await send(deadletter_topic, key, codec.encode_record("doublelock.DeadLetter", record))
        metrics.rejected[kind] += 1
        log.warning("rejected %s[%d]@%d: %s: %s", source.topic, source.partition,
                    source.offset, kind, error)
        return rejection_row(source, kind, error, len(message.value or b""), now)

    def session_key(session_id: str, message: Any) -> bytes:
        key = session_id.encode()
        if message.key != key:
            # Co-partitioning rests on the key: a wrong one could put the record on
            # another partition than its session's state.
            raise RejectedEvent("malformed", f"record key {_short(message.key)} is not the "
                                "session_id")
        expected = (murmur2(key) & 0x7FFFFFFF) % settings.partitions
        if message.partition != expected:
            # Another partitioner (librdkafka's crc32, say): a revoke here would never
            # meet its session. Reject it loudly rather than lose it quietly.
            raise RejectedEvent("malformed", f"on partition {message.partition}, but the "
                                f"default (murmur2) partitioner puts this key on {expected}")
        return key

    def check_size(message: Any) -> None:
        size = len(message.key or b"") + len(message.value or b"")
        if size > settings.max_payload_bytes:
            raise RejectedEvent("oversized", f"{size} bytes > limit of "
                                f"{settings.max_payload_bytes}")

    @app.agent(sessions_topic, concurrency=1)
    async def apply_lifecycle(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            try:
                check_size(message)
                lifecycle = codec.decode_lifecycle(message.value)
                validate_event(lifecycle, now=clock())
                key = session_key(lifecycle.session_id, message)
                raw_state = table.get(key)
                state = None if raw_state is None else codec.decode(raw_state)
                new_state = apply(state, lifecycle, policy)
                if new_state is not state:
                    table[key] = codec.encode(new_state)
                metrics.applied += 1
            except RejectedEvent as exc:
                row = await dead_letter(message, exc.kind, exc.message)
                sink.add(None, row, None)
            except Exception as exc:  # never let one record stop the worker
                log.exception("lifecycle record %s@%d failed", message.tp, message.offset)
                row = await dead_letter(message, "internal_error", repr(exc))
                sink.add(None, row, None)
            finally:
                barrier.applied(message.partition, message.offset)

    async def decide_one(message: Any) -> tuple[Decision, Intent | None, list[Any] | None]:
        intent = None
        try:
            check_size(message)
            intent = codec.decode_intent(message.value)
            validate_intent(intent, now=clock())
            key = session_key(intent.session_id, message)
        except RejectedEvent as exc:
            row = await dead_letter(message, exc.kind, exc.message)
            if intent is not None and intent.intent_id:  # it decoded: answer it by name
                return deny(intent.intent_id[:200], intent.session_id[:200],
                            intent.user_id[:200], intent.action[:200], Reason.MALFORMED,
                            clock(), policy, exc.message), None, row
            undecodable = _undecodable(message, Reason.MALFORMED, exc.message, clock(), policy)
            return undecodable, None, row
        waiting = time.monotonic()
        caught_up = await barrier.wait(message.partition, message.offset,
                                       settings.barrier_timeout_ms / 1000)
        metrics.timed(metrics.barrier_ms, waiting)
        if not caught_up:
            return deny(intent.intent_id, intent.session_id, intent.user_id, intent.action,
                        Reason.STATE_UNAVAILABLE, clock(), policy,
                        "sessions state not caught up in time"), intent, None
        raw_state = table.get(key)
        state: SessionState | None = None if raw_state is None else codec.decode(raw_state)
        return decide(state, intent, policy, clock()), intent, None

    async def handle_intent(event: Any) -> None:
        message = event.message
        received = time.monotonic()
        intent: Intent | None = None
        rejection = None
        try:
            decision, intent, rejection = await decide_one(message)
        except Exception as exc:  # the core or an adapter broke: deny, keep going
            log.exception("intent %s@%d failed", message.tp, message.offset)
            rejection = await dead_letter(message, "internal_error", repr(exc))
            decision = _undecodable(message, Reason.MALFORMED, repr(exc), clock(), policy)
        await send(decisions_topic, decision.session_id.encode(), codec.encode(decision))
        metrics.timed(metrics.decide_ms, received)
        metrics.record_decision(decision.verdict.value, decision.reason.value)
        source = Source(message.topic, message.partition, message.offset)
        sink.add(decision_row(decision, intent, source), rejection, event)
        if sink.due:
            await sink.flush()
        await sink.backpressure()

    waiting = asyncio.Semaphore(MAX_WAITING_INTENTS)
    in_flight: set[asyncio.Task[None]] = set()

    async def handle_and_release(event: Any) -> None:
        try:
            await handle_intent(event)
        finally:
            waiting.release()

    @app.agent(intents_topic, concurrency=1)
    async def decide_intents(stream: Any) -> None:
        # Each intent is decided in a task of its own, so an intent waiting at the
        # barrier never stops this agent from draining the intents buffer: a full
        # buffer would stall Faust's delivery of the sessions records the barrier
        # waits for. Tasks copy the context, so each keeps its own current event
        # (the table reads its partition from it).
        manual_acks = stream.noack()  # acked by the sink, once stored
        async for event in manual_acks.events():
            await waiting.acquire()
            task = asyncio.ensure_future(handle_and_release(event))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    @app.timer(max(settings.flush_interval_ms / 1000, 0.05))  # type: ignore[untyped-decorator]
    async def flush_sink() -> None:
        if sink.due:
            await sink.flush()

    @app.timer(settings.report_interval_ms / 1000)  # type: ignore[untyped-decorator]
    async def report() -> None:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == topics.intents]
        lag = 0
        for tp in assigned:
            high = app.consumer.highwater(tp)
            read = _consumer(app)._committed_offset.get(tp) or 0
            lag += max(0, (high or 0) - read)
        log.info("worker: %s", metrics.summary(lag))

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        barrier.reset()
        await sink.flush()

    async def before_stop() -> None:
        if in_flight:  # each ends within the barrier's budget
            await asyncio.wait(list(in_flight), timeout=settings.barrier_timeout_ms / 1000 + 5)
        await sink.flush()
        await broker.close()
        log.info("worker stopping: %s", metrics.summary(0))

    app.before_stop = before_stop

    return Worker(app, metrics, sink, barrier)


def _short(value: bytes | None, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(value or b'')} bytes)"


def _consumer(app: faust.App) -> Any:
    """Faust's consumer, for the offsets it tracks but does not type."""
    return app.consumer


def _undecodable(message: Any, reason: Reason, detail: str, now: Millis,
                 policy: Policy) -> Decision:
    """A deny for a record we could not read: identify it as well as the record allows."""
    headers = dict(message.headers or [])
    header_id = headers.get("intent_id")
    intent_id = (header_id[:200].decode(errors="replace") if isinstance(header_id, bytes)
                 else f"{message.topic}/{message.partition}/{message.offset}")
    session_id = (message.key or b"")[:200].decode(errors="replace")
    return deny(intent_id, session_id, "", "", reason, now, policy, detail)
