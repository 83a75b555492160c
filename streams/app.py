"""The Faust topology: three co-partitioned topics, two tables, a global view.

    sessions ──apply_lifecycle──▶ sessions table (changelog: <app_id>-sessions-changelog)
    users ─────check_user_events─▶ (deadletter on bad input)
    users + every sessions partition ──▶ global view: user revocations, lineage
    intents ───decide_intents────▶ decisions, decided table, ClickHouse

Every agent runs with concurrency 1 (faust #606); only the sessions agent writes the
sessions table, the intents agent's per-intent tasks read it and write ``decided``.
Nothing lets an exception escape: an exception in a Faust agent would still ack the
event, so every failure becomes a deny ``malformed`` (for an intent) and a dead
letter with its cause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import faust
from faust.types import TP

from dashboards.store import Source, Store, decision_row, rejection_row
from doublelock.errors import PolicyError, RejectedEvent
from doublelock.events import HOUR, Intent, Millis, Rotated
from doublelock.policy import Policy
from doublelock.revocations import Revocations
from doublelock.session import Early, SessionState, step, successor
from doublelock.signing import SIGNATURE_HEADER, sign, sign_record
from doublelock.verdict import Decision, Reason, decide, deny, deny_duplicate, is_duplicate
from schemas.codec import Codec
from streams.admission import Admission, partition_of
from streams.barrier import BrokerClient, SessionsBarrier
from streams.decided import DecidedIntents, dedupe_key
from streams.expiry import Expiry
from streams.global_view import GlobalView
from streams.metrics import Metrics
from streams.replies import Replies
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
    global_view: GlobalView


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one intent record leads to: the decision to emit, the decision whose row
    is stored (None: none is), and a rejection row."""

    decision: Decision
    stored: Decision | None
    intent: Intent | None = None
    rejection: list[Any] | None = None
    reserved: bytes | None = None  # the dedupe key held until the decision is sent
    asked: Intent | None = None  # the intent as decoded, even if it could not be decided


def build_app(
    settings: Settings, policy: Policy, store: Store, clock: Clock = wall_clock,
    users_partitions: int | None = None,
) -> Worker:
    """``users_partitions``: the users topic's count if not ``settings.partitions``
    (it need not be co-partitioned)."""
    topics = settings.topics
    codec = Codec(max_payload=settings.max_payload_bytes)
    event_ring = settings.event_key_ring()
    if policy.require_signed_events and event_ring is None:
        raise PolicyError("the policy requires signed events ([events] require_signature) "
                          "but DOUBLELOCK_EVENT_KEYS(_FILE) names no key")
    admission = Admission(codec, settings.partitions, settings.max_payload_bytes, clock,
                          event_ring if policy.require_signed_events else None)
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

    def raw_topic(name: str, partitions: int = settings.partitions) -> faust.TopicT:
        # Keys are session (or user) ids as bytes, values Avro single-object payloads.
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=partitions)

    def raw_table(name: str) -> Any:
        table: Any = app.Table(name, partitions=settings.partitions, key_type=bytes,
                               value_type=bytes)
        # Faust picks "json" for any non-Model type; the values are Avro bytes. Set
        # before the store and the changelog topic are made (on first use).
        table.key_serializer = table.value_serializer = "raw"
        return table

    intents_topic, sessions_topic = raw_topic(topics.intents), raw_topic(topics.sessions)
    users_topic = raw_topic(topics.users, users_partitions or settings.partitions)
    decisions_topic, deadletter_topic = raw_topic(topics.decisions), raw_topic(topics.deadletter)
    sessions = raw_table("sessions")

    def forget_at(slot: SessionState | Early) -> Millis:
        # Kept a while past its last possible moment (an hour, or one absolute timeout
        # if shorter), so that late attempts are still reported as expired, not
        # unknown; held events for an absolute timeout.
        if isinstance(slot, SessionState):
            return slot.absolute_end(policy) + min(HOUR, policy.absolute_timeout)
        return max(e.at for e in slot.events) + policy.absolute_timeout

    sessions_expiry = Expiry("sessions", sessions, lambda raw: forget_at(codec.decode(raw)),
                             lambda key: partition_of(key, settings.partitions), clock)
    decided = DecidedIntents(raw_table("decided"), codec, policy.dedupe_window,
                             settings.partitions, clock)
    metrics = Metrics()
    sink = ClickHouseSink(store, app.producer.flush, settings.flush_rows,
                          settings.flush_interval_ms / 1000)
    revocations = Revocations(policy)
    global_view = GlobalView(
        settings.bootstrap,
        {topics.users: users_partitions or settings.partitions,
         topics.sessions: settings.partitions},
        admission, revocations, clock)

    async def start_offset(tp: TP) -> int:
        committed = _consumer(app)._committed_offset.get(tp)  # set by seek_to_committed
        if committed is not None:
            return int(committed)
        return int((await app.consumer.earliest_offsets(tp))[tp])

    broker = BrokerClient(settings.bootstrap)
    barrier = SessionsBarrier(topics.intents, topics.sessions, broker, start_offset,
                              global_view)
    grace_s = settings.grace_ms / 1000
    key_ring = settings.key_ring()
    budget_s = settings.barrier_timeout_ms / 1000 + grace_s

    replies = Replies(topics.decisions, broker.topic_partitions)
    reply_topics = {topics.decisions: decisions_topic}

    def reply_topic(name: str) -> faust.TopicT:
        if name not in reply_topics:  # only names Replies checked exist
            reply_topics[name] = raw_topic(name)
        return reply_topics[name]

    async def send(topic: faust.TopicT, key: bytes | None, value: bytes,
                   headers: list[tuple[str, bytes]] | None = None,
                   partition: int | None = None) -> None:
        """Produce without ever raising into an agent: a failed send is logged and
        counted; the application then hears nothing for that intent, which it must
        treat as a deny."""
        try:
            await topic.send(key=key, value=value, headers=headers, partition=partition,
                             force=True)
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

    async def reject(message: Any, exc: Exception) -> None:
        if isinstance(exc, RejectedEvent):
            row = await dead_letter(message, exc.kind, exc.message)
        else:  # never let one record stop the worker
            log.exception("record %s@%d failed", message.tp, message.offset)
            row = await dead_letter(message, "internal_error", repr(exc))
        sink.add(None, row, None)

    @app.agent(sessions_topic, concurrency=1)
    async def apply_lifecycle(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            try:
                lifecycle, key = admission.lifecycle(message)
                raw_slot = sessions.get(key)
                slot = None if raw_slot is None else codec.decode(raw_slot)
                new_slot, held = step(slot, lifecycle, policy)
                if new_slot is not slot:
                    sessions[key] = codec.encode(new_slot)
                    if not isinstance(slot, SessionState) and new_slot is not None:
                        sessions_expiry.track(key, forget_at(new_slot))  # born or held
                if isinstance(lifecycle, Rotated) and isinstance(slot, SessionState):
                    # The new id hashes to a partition of its own: hand the login on
                    # through the topic, to whichever worker owns that partition.
                    heir = successor(slot, lifecycle)
                    heir_key, heir_value = heir.session_id.encode(), codec.encode(heir)
                    await send(sessions_topic, heir_key, heir_value,
                               None if event_ring is None else [(SIGNATURE_HEADER, sign_record(
                                   topics.sessions, heir_key, heir_value, event_ring))])
                if held is not None:
                    raise held  # kept for when the session shows up, and reported now
                metrics.applied += 1
            except Exception as exc:
                await reject(message, exc)
            finally:
                barrier.applied(message.partition, message.offset)

    @app.agent(users_topic, concurrency=1)
    async def check_user_events(stream: faust.StreamT[bytes]) -> None:
        # The global view applies them, in every worker; the partition's owner alone
        # dead-letters the unusable ones, so that each is rejected once.
        async for event in stream.events():
            try:
                admission.user_event(event.message)
                metrics.applied += 1
            except Exception as exc:
                await reject(event.message, exc)

    # Intents being decided right now, by dedupe key: a duplicate arriving meanwhile
    # waits for the first decision instead of racing it.
    pending: dict[bytes, tuple[int, asyncio.Future[Decision | None]]] = {}

    def duplicate(message: Any, intent: Intent, first: Decision | None) -> Outcome:
        now = clock()
        if first is None:  # the first attempt failed; this one is refused all the same
            decision = deny(intent.intent_id, intent.session_id, intent.user_id,
                            intent.action, Reason.DUPLICATE_INTENT, now, policy,
                            "intent id already being decided")
        else:
            decision = deny_duplicate(intent, first, now, policy)
        source = Source(message.topic, message.partition, message.offset)
        # The first decision stands and keeps its row; the attempt is kept as a rejection.
        row = rejection_row(source, "duplicate_intent", decision.detail,
                            len(message.value or b""), now)
        return Outcome(decision, None, intent, row)

    def again(message: Any, intent: Intent, first: Decision) -> Outcome:
        """The same record delivered again (after a crash, a rebalance): the same answer."""
        metrics.redelivered += 1
        return Outcome(replace(first, redelivery=True), first, intent)

    async def decide_one(message: Any, received: float) -> Outcome:
        intent = None
        try:
            intent = admission.intent(message)
            key = admission.intent_key(intent, message)
        except RejectedEvent as exc:
            row = await dead_letter(message, exc.kind, exc.message)
            if intent is not None and intent.intent_id:  # it decoded: answer it by name
                decision = deny(intent.intent_id[:200], intent.session_id[:200],
                                intent.user_id[:200], intent.action[:200], Reason.MALFORMED,
                                clock(), policy, exc.message)
            else:
                decision = _undecodable(message, Reason.MALFORMED, exc.message, clock(),
                                        policy)
            return Outcome(decision, decision, None, row, asked=intent)
        # From the lookup to the reservation nothing awaits: tasks start in the
        # order their records arrived, so the first of two duplicates reserves first.
        key_of_intent = dedupe_key(key, intent.intent_id)
        # The first attempt may be stored already but not yet sent: wait for it
        # either way, so that a duplicate's deny never overtakes the first decision.
        running = pending.get(key_of_intent)
        if running is not None:
            offset, future = running
            first_or_none = await asyncio.shield(future)
            if offset == message.offset and first_or_none is not None:
                return again(message, intent, first_or_none)
            return duplicate(message, intent, first_or_none)
        seen = decided.first(key_of_intent)
        if seen is not None:
            offset, first = seen
            if offset == message.offset:
                return again(message, intent, first)
            if is_duplicate(first, clock(), policy):
                return duplicate(message, intent, first)
        future = asyncio.get_running_loop().create_future()
        pending[key_of_intent] = (message.offset, future)
        try:
            fresh = await decide_fresh(message, intent, key, received)
            # Durable before it is emitted: a redelivery must find it.
            if not await decided.record(key_of_intent, message.partition, message.offset,
                                        fresh):
                metrics.send_failures += 1
        except BaseException:
            release(key_of_intent, None)
            raise
        return Outcome(fresh, fresh, intent, reserved=key_of_intent)

    def release(key_of_intent: bytes, first: Decision | None) -> None:
        """Let duplicates of this intent go: its decision is out (or never will be)."""
        _, future = pending.pop(key_of_intent)
        future.set_result(first)

    async def decide_fresh(message: Any, intent: Intent, key: bytes,
                           received: float) -> Decision:
        waiting = time.monotonic()
        # Without grace, any refresh that saw this intent's offset will do.
        caught_up = await barrier.wait(message.partition, message.offset, budget_s, received,
                                       not_before=received + grace_s if grace_s else 0.0)
        metrics.timed(metrics.barrier_ms, waiting)
        if not caught_up:
            return deny(intent.intent_id, intent.session_id, intent.user_id, intent.action,
                        Reason.STATE_UNAVAILABLE, clock(), policy,
                        "sessions state not caught up in time")
        state = _state(codec, sessions.get(key))
        if state is None and revocations.rotated_from(intent.session_id) is not None:
            # Rotated a moment ago: the login it inherits is on its way from the old
            # id's partition. Wait for it within the budget; else unknown_session.
            deadline = received + budget_s
            while state is None and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
                state = _state(codec, sessions.get(key))
        return decide(state, intent, policy, clock(), revocations=revocations)

    async def handle_intent(event: Any) -> None:
        message = event.message
        received = time.monotonic()
        try:
            outcome = await decide_one(message, received)
        except Exception as exc:  # the core or an adapter broke: deny, keep going
            log.exception("intent %s@%d failed", message.tp, message.offset)
            rejection = await dead_letter(message, "internal_error", repr(exc))
            decision = _undecodable(message, Reason.MALFORMED, repr(exc), clock(), policy)
            outcome = Outcome(decision, decision, None, rejection)
        asked = outcome.intent or outcome.asked
        decision = outcome.decision
        if asked is not None and asked.nonce:
            decision = replace(decision, nonce=asked.nonce[:64])  # this record's answer
        try:
            emitted = decision if key_ring is None else sign(decision, key_ring)
            topic, partition = await replies.route(asked)
            await send(reply_topic(topic), decision.session_id.encode(), codec.encode(emitted),
                       partition=partition)
        finally:
            # Only now: a duplicate's deny must follow the first decision, not pass it.
            if outcome.reserved is not None:
                release(outcome.reserved, decision)
        metrics.timed(metrics.decide_ms, received)
        metrics.record_decision(decision.verdict.value, decision.reason.value)
        source = Source(message.topic, message.partition, message.offset)
        row = None if outcome.stored is None else decision_row(outcome.stored, outcome.intent,
                                                                source)
        sink.add(row, outcome.rejection, event)
        if sink.due:
            await sink.flush()
        await sink.backpressure()

    waiting = asyncio.Semaphore(MAX_WAITING_INTENTS)
    stopping = asyncio.Event()
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
        # (the tables read and write its partition from it).
        manual_acks = stream.noack()  # acked by the sink, once stored
        async for event in manual_acks.events():
            if stopping.is_set():
                continue  # unacked: the next start decides it (the app hears silence)
            await waiting.acquire()
            task = asyncio.ensure_future(handle_and_release(event))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    @app.task  # type: ignore[untyped-decorator]
    async def start_global_view() -> None:
        while True:
            try:
                await broker.start()  # not on the first intent: it would miss its budget
                await global_view.start()
                return
            except Exception:  # the barrier denies state_unavailable meanwhile
                log.exception("global view could not start; trying again")
                await global_view.stop()
                await asyncio.sleep(1.0)

    @app.timer(max(settings.flush_interval_ms / 1000, 0.05))  # type: ignore[untyped-decorator]
    async def flush_sink() -> None:
        if sink.due:
            await sink.flush()

    @app.timer(60.0)  # type: ignore[untyped-decorator]
    async def prune_revocations() -> None:
        revocations.prune(clock())

    def assigned(topic: str) -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}

    @app.timer(min(60.0, max(1.0, policy.dedupe_window / 4000)))  # type: ignore[untyped-decorator]
    async def expire_decided() -> None:
        if metrics.decided:  # recovery is over once intents are decided
            await decided.expiry.sweep(assigned(topics.intents))

    @app.timer(min(60.0, max(1.0, policy.absolute_timeout / 4000)))  # type: ignore[untyped-decorator]
    async def expire_sessions() -> None:
        if metrics.decided:
            await sessions_expiry.sweep(assigned(topics.sessions))

    @app.timer(settings.report_interval_ms / 1000)  # type: ignore[untyped-decorator]
    async def report() -> None:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == topics.intents]
        lag = 0
        for tp in assigned:
            high = app.consumer.highwater(tp)
            read = _consumer(app)._committed_offset.get(tp) or 0
            lag += max(0, (high or 0) - read)
        gauges()
        log.info("worker: %s", metrics.summary(lag))

    def gauges() -> None:
        metrics.revocations = len(revocations)
        metrics.unroutable = replies.unroutable
        metrics.forgotten = decided.expiry.deleted + sessions_expiry.deleted

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        barrier.reset()
        await sink.flush()

    async def before_stop() -> None:
        stopping.set()  # no new intents: what is stored below is all that was decided
        if in_flight:  # each ends within the barrier's budget
            await asyncio.wait(list(in_flight), timeout=budget_s + 5)
        await sink.flush()
        await broker.close()
        await global_view.stop()
        gauges()
        log.info("worker stopping: %s", metrics.summary(0))

    app.before_stop = before_stop

    return Worker(app, metrics, sink, barrier, global_view)


def _state(codec: Codec, raw: bytes | None) -> SessionState | None:
    """The session in a table slot; None if it is not created (yet)."""
    slot = None if raw is None else codec.decode(raw)
    return slot if isinstance(slot, SessionState) else None


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
