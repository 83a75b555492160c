"""Ask before a dangerous action, and act only on a verified allow.

One ``Doublelock`` per process: a producer for intents, and a reader of the one
partition of the application's reply topic that this instance asks its decisions on,
in a thread that hands each decision to whoever waits for it. Anything but a
verified, matching, unexpired allow comes back as a deny with a reason of the SDK's
own (``no_decision``, ``decision_expired``, ``bad_signature``, ``decision_mismatch``,
``broker_error``): fail closed, never raise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from doublelock.events import Intent, Millis
from doublelock.signing import verify
from doublelock.verdict import Decision, Reason, Verdict
from schemas.codec import Codec
from workers.settings import Settings
from workers.topics import ensure_reply_topic

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 2.0
REPLY_PARTITIONS: Final = 8


def now_ms() -> Millis:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Subject:
    """Who acts, and from where: what the application knows of the request."""

    session_id: str
    user_id: str
    ip: str
    device_id: str
    channel: str = "api"  # ui, api, ws or cli


@dataclass(slots=True)
class _Waiter:
    intent: Intent
    # check_async waits on an asyncio future of its loop, check on a thread's future.
    loop: asyncio.AbstractEventLoop | None = None
    future: Any = field(default_factory=concurrent.futures.Future)
    # Why the decisions seen for it so far could not be used, if any were seen.
    refused: Reason | None = None


class Doublelock:
    def __init__(self, app: str, settings: Settings | None = None, *,
                 instance: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 reply_partitions: int = REPLY_PARTITIONS) -> None:
        """``app`` names the application (and its reply topic); ``instance`` picks
        this process's partition of it (random if None: instances that share one
        each skip the others' decisions)."""
        self.settings = settings or Settings.from_env()
        self.app = app
        self.timeout_s = timeout_s
        self.codec = Codec()
        self.key_ring = self.settings.key_ring()
        suffix = re.sub(r"[^A-Za-z0-9_-]", "-", app)[:100] or "app"
        self.reply_topic = f"{self.settings.topics.decisions}.{suffix}"
        partitions = ensure_reply_topic(self.settings, self.reply_topic, reply_partitions)
        self.reply_partition = (random.randrange(partitions) if instance is None
                                else instance % partitions)
        self._pending: dict[str, _Waiter] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.counts: dict[str, int] = {}  # by reason, of what the SDK refused itself
        self._consumer = KafkaConsumer(bootstrap_servers=self.settings.bootstrap,
                                       enable_auto_commit=False, fetch_max_wait_ms=20)
        reply = TopicPartition(self.reply_topic, self.reply_partition)
        self._consumer.assign([reply])
        self._consumer.seek_to_end(reply)
        self._consumer.position(reply)  # from now on: resolved before the first intent
        # acks=all and idempotence: an intent is either appended once or reported lost.
        # A short max_block_ms: a send that cannot even be queued is a broker error.
        self._producer = KafkaProducer(
            bootstrap_servers=self.settings.bootstrap, acks="all", enable_idempotence=True,
            linger_ms=1, max_block_ms=1000, client_id=f"doublelock-sdk-{suffix}")
        self._producer.partitions_for(self.settings.topics.intents)  # metadata now
        self._reader = threading.Thread(target=self._read, name="doublelock-decisions",
                                        daemon=True)
        self._reader.start()

    # -- asking --------------------------------------------------------------------
    def intent(self, subject: Subject, action: str, resource: str = "", *,
               intent_id: str | None = None,
               attributes: Mapping[str, str] | None = None) -> Intent:
        """An intent for ``action`` by ``subject``, now; a fresh id unless one is given
        (pass the client's idempotency key: a retry is then a duplicate, denied)."""
        return Intent(intent_id or uuid.uuid4().hex, subject.session_id, subject.user_id,
                      action, resource, now_ms(), subject.ip, subject.device_id,
                      subject.channel, self.app, dict(attributes or {}))

    def check(self, intent: Intent, timeout: float | None = None) -> Decision:
        """The decision for ``intent``, waited for at most ``timeout`` seconds."""
        waiter = self._submit(intent)
        try:
            decision = waiter.future.result(self.timeout_s if timeout is None else timeout)
        except concurrent.futures.TimeoutError:
            decision = None
        return self._finish(waiter, decision)

    async def check_async(self, intent: Intent, timeout: float | None = None) -> Decision:
        waiter = self._submit(intent, asyncio.get_running_loop())
        try:
            decision: Decision | None = await asyncio.wait_for(
                asyncio.shield(waiter.future), self.timeout_s if timeout is None else timeout)
        except TimeoutError:
            decision = None
        return self._finish(waiter, decision)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _submit(self, intent: Intent, loop: asyncio.AbstractEventLoop | None = None
                ) -> _Waiter:
        # The nonce comes back in the decision (signed): this request takes only the
        # answer to itself, not one to another request with the same intent id.
        intent = replace(intent, reply_to=self.reply_topic,
                         reply_partition=self.reply_partition, nonce=uuid.uuid4().hex)
        waiter = _Waiter(intent) if loop is None else _Waiter(intent, loop, loop.create_future())
        with self._lock:
            taken = intent.intent_id in self._pending
            if not taken:
                self._pending[intent.intent_id] = waiter  # before sending: answers are fast
        if taken:  # the same id twice at once (outside the lock: _refusal takes it)
            waiter.future.set_result(self._refusal(
                intent, Reason.DECISION_MISMATCH, "this intent id is already waiting"))
            return waiter
        try:
            sent = self._producer.send(self.settings.topics.intents,
                                       key=intent.session_id.encode(),
                                       value=self.codec.encode(intent))
            sent.add_errback(lambda exc: self._settle(waiter, self._refusal(
                intent, Reason.BROKER_ERROR, f"intent not appended: {exc!r}")))
        except Exception as exc:  # closed, metadata unavailable, buffer full
            self._settle(waiter, self._refusal(intent, Reason.BROKER_ERROR,
                                               f"intent not sent: {exc!r}"))
        return waiter

    def _finish(self, waiter: _Waiter, decision: Decision | None) -> Decision:
        with self._lock:
            if self._pending.get(waiter.intent.intent_id) is waiter:
                del self._pending[waiter.intent.intent_id]
        intent = waiter.intent
        if decision is None:
            reason = waiter.refused or Reason.NO_DECISION
            decision = self._refusal(intent, reason, "no usable decision in time")
        elif decision.allowed and now_ms() >= decision.valid_until:
            decision = self._refusal(
                intent, Reason.DECISION_EXPIRED,
                f"allow decided at {decision.decided_at}, valid until {decision.valid_until}")
        return decision

    def _refusal(self, intent: Intent, reason: Reason, detail: str) -> Decision:
        """A deny of the SDK's own, counted and logged."""
        with self._lock:
            self.counts[reason.value] = self.counts.get(reason.value, 0) + 1
        log.warning("intent %s (%s): deny %s: %s", intent.intent_id, intent.action,
                    reason.value, detail)
        at = now_ms()
        return Decision(intent.intent_id, intent.session_id, intent.user_id, intent.action,
                        Verdict.DENY, reason, at, at, SDK_VERSION, detail=detail)

    @classmethod
    def _settle(cls, waiter: _Waiter, decision: Decision) -> None:
        """Answer one waiter, from any thread."""
        cls._settle_all([(waiter, decision)])

    @staticmethod
    def _settle_all(answers: list[tuple[_Waiter, Decision]]) -> None:
        """Answer waiters, from any thread: one wake-up per event loop, not one per
        decision (at 10k pending, per-decision wake-ups were the reader's main cost)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Waiter, Decision]]] = {}
        for waiter, decision in answers:
            if waiter.loop is None:
                # Answered already (InvalidStateError): the first answer stands.
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    waiter.future.set_result(decision)
            else:
                by_loop.setdefault(waiter.loop, []).append((waiter, decision))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_answer_in_loop, items)

    # -- the reader thread ---------------------------------------------------------
    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                batches = self._consumer.poll(timeout_ms=100)
            except Exception:  # the broker went away: waiters time out, keep trying
                if self._closed.is_set():
                    return
                log.exception("reading decisions failed")
                time.sleep(0.5)
                continue
            answers = []
            for records in batches.values():
                for record in records:
                    answer = self._deliver(record.value)
                    if answer is not None:
                        answers.append(answer)
            self._settle_all(answers)

    def _deliver(self, value: bytes | None) -> tuple[_Waiter, Decision] | None:
        """The waiter a decision answers, if it is usable and someone waits for it."""
        try:
            decision = self.codec.decode(value)
        except Exception:
            log.warning("undecodable record on %s", self.reply_topic, exc_info=True)
            return None
        if not isinstance(decision, Decision):
            return None
        with self._lock:
            waiter = self._pending.get(decision.intent_id)
        if waiter is None:
            return None  # another instance's, or one whose wait is over
        asked = waiter.intent
        # A decision that is not the worker's, or not about what was asked, is
        # refused and waited past: a forger cannot answer for the worker.
        if self.key_ring is not None and not verify(decision, self.key_ring):
            waiter.refused = Reason.BAD_SIGNATURE
            log.warning("refused a decision for %s: not signed by a known key",
                        decision.intent_id)
        elif (decision.session_id, decision.user_id, decision.action, decision.nonce) != (
                asked.session_id, asked.user_id, asked.action, asked.nonce or ""):
            waiter.refused = waiter.refused or Reason.DECISION_MISMATCH
            log.warning("refused a decision for %s: the answer to another request",
                        decision.intent_id)
        else:
            return waiter, decision
        return None

    def close(self) -> None:
        self._closed.set()
        self._reader.join(timeout=2)
        self._producer.close(timeout=2)
        self._consumer.close()

    def __enter__(self) -> Doublelock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _answer_in_loop(items: list[tuple[_Waiter, Decision]]) -> None:
    for waiter, decision in items:
        if not waiter.future.done():
            waiter.future.set_result(decision)


# The policy_version of the decisions the SDK makes itself.
SDK_VERSION: Final = "sdk"
