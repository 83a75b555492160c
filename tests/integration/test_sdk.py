"""The SDK against the real broker and worker: round trips, fail-closed refusals,
the guard, the middleware's HTTP answers, and reply routing."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from doublelock.events import MINUTE, Intent
from doublelock.signing import parse_key_ring, sign
from doublelock.verdict import Decision, Reason, Verdict
from schemas.codec import Codec
from sdk import (
    AlreadyRan,
    AsgiGuard,
    Blocked,
    Doublelock,
    Lifecycle,
    Route,
    Subject,
    WsgiGuard,
    guard,
    guarded,
)
from sdk.client import now_ms
from tests.cases import policy
from workers.client import DecisionReader, Publisher

pytestmark = pytest.mark.integration

KEYS = "k-sdk:" + "s" * 40
POLICY = policy(actions='[[actions]]\nmatch = ["project.delete"]\nreauth_within = "5m"\n'
                        '[[actions]]\nmatch = ["billing.*"]\nmin_auth_level = 3\n')


def login(lifecycle: Lifecycle, user: str = "U1", ago_ms: int = 0) -> Subject:
    subject = Subject(f"sdk-{uuid.uuid4().hex[:8]}", user, "192.0.2.9", "D1", "api")
    lifecycle.created(subject.session_id, user, ip=subject.ip, device_id=subject.device_id,
                      auth_level=2, auth_time=now_ms() - ago_ms)
    return subject


def test_round_trips_guard_and_middleware(start_worker: Any) -> None:
    worker = start_worker(POLICY, DOUBLELOCK_SIGNING_KEYS=KEYS)
    with Lifecycle(worker.settings) as lifecycle, \
            Doublelock("sdk-test", worker.settings, timeout_s=10) as dl:
        fresh, stale = login(lifecycle), login(lifecycle, ago_ms=10 * MINUTE)

        allow = dl.check(dl.intent(fresh, "project.delete", "project/1"))
        assert (allow.verdict, allow.reason) == (Verdict.ALLOW, Reason.OK)
        assert allow.key_id == "k-sdk"
        step_up = asyncio.run(dl.check_async(dl.intent(stale, "project.delete")))
        assert (step_up.verdict, step_up.max_auth_age_ms) == (Verdict.STEP_UP, 5 * MINUTE)
        level = dl.check(dl.intent(fresh, "billing.export"))
        assert (level.verdict, level.min_auth_level) == (Verdict.STEP_UP, 3)

        # The guard: the body runs on allow, once per intent id, never on a deny.
        ran: list[str] = []
        with guard(dl, "project.delete", fresh, "project/2", intent_id="g-" + fresh.session_id):
            ran.append("first")
        with pytest.raises(AlreadyRan), guard(dl, "project.delete", fresh,
                                              intent_id="g-" + fresh.session_id):
            ran.append("twice")
        with pytest.raises(Blocked) as blocked, guard(dl, "project.delete", stale):
            ran.append("stale")
        assert blocked.value.decision.reason is Reason.REAUTH_REQUIRED
        # Another process (no memory of the first) is stopped by the worker.
        again = dl.check(dl.intent(fresh, "project.delete", intent_id="g-" + fresh.session_id))
        assert again.reason is Reason.DUPLICATE_INTENT

        @guarded(dl, "project.delete", resource=lambda subject, name: f"project/{name}")
        def delete(subject: Subject, name: str) -> str:
            ran.append(name)
            return name

        assert delete(fresh, "p3") == "p3"
        with pytest.raises(Blocked):
            delete(stale, "p4")
        assert ran == ["first", "p3"]

        _check_wsgi(dl, fresh, stale)
        _check_asgi(dl, fresh, stale)

        # Re-authenticating clears the step-up; logging out ends it all.
        lifecycle.reauthenticated(stale.session_id, auth_level=2)
        assert dl.check(dl.intent(stale, "project.delete")).allowed
        lifecycle.logged_out(fresh.session_id)
        gone = dl.check(dl.intent(fresh, "project.delete"))
        assert (gone.verdict, gone.reason) == (Verdict.DENY, Reason.REVOKED)
        assert dl.pending == 0


def _wsgi_call(app: Any, method: str, path: str, **headers: str) -> tuple[str, dict[str, str],
                                                                            bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer.update(status=status, headers=dict(headers))

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path,
               **{f"HTTP_{k.upper()}": v for k, v in headers.items()}}
    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def _check_wsgi(dl: Doublelock, fresh: Subject, stale: Subject) -> None:
    sessions = {"fresh": fresh, "stale": stale}

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        decision = environ.get("doublelock.decision")
        # Guarded routes are reached on allow only; the others are not checked at all.
        checked = environ["REQUEST_METHOD"] == "DELETE"
        assert (decision is not None and decision.allowed) if checked else decision is None
        start_response("204 No Content", [])
        return [b""]

    app = WsgiGuard(inner, dl, [Route("DELETE", "/projects/*", "project.delete")],
                    lambda environ: sessions.get(environ.get("HTTP_X_SESSION", "")))
    assert _wsgi_call(app, "DELETE", "/projects/9", x_session="fresh")[0] == "204 No Content"
    status, headers, body = _wsgi_call(app, "DELETE", "/projects/9", x_session="stale")
    assert status == "401 Unauthorized"
    assert headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="A more recent authentication is required", max_age="300"')
    assert b'"reason": "reauth_required"' in body
    status, headers, _ = _wsgi_call(app, "DELETE", "/projects/9")
    assert status == "401 Unauthorized" and 'error="invalid_token"' in headers["WWW-Authenticate"]
    key = "idem-" + uuid.uuid4().hex
    assert _wsgi_call(app, "DELETE", "/projects/9", x_session="fresh",
                      idempotency_key=key)[0] == "204 No Content"
    status, _, body = _wsgi_call(app, "DELETE", "/projects/9", x_session="fresh",
                                 idempotency_key=key)  # a client's retry
    assert status == "403 Forbidden" and b'"reason": "duplicate_intent"' in body
    assert _wsgi_call(app, "GET", "/projects/9")[0] == "204 No Content"  # not listed
    # Other spellings of a guarded route, and a POST standing in for a DELETE, are asked.
    for method, path, extra in (("DELETE", "//projects/9/", {}), ("DELETE", "/x/../projects/9", {}),
                                ("POST", "/projects/9", {"x_http_method_override": "DELETE"})):
        status, headers, _ = _wsgi_call(app, method, path, x_session="stale", **extra)
        assert status == "401 Unauthorized", (method, path)


def _check_asgi(dl: Doublelock, fresh: Subject, stale: Subject) -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    app = AsgiGuard(inner, dl, [Route("POST", "/projects/*/transfer", "project.delete")],
                    lambda scope: fresh if scope["path"].startswith("/projects/f") else stale)

    async def call(path: str) -> tuple[int, dict[bytes, bytes], bytes]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        await app({"type": "http", "method": "POST", "path": path, "headers": []},
                  receive, send)
        return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]

    assert asyncio.run(call("/projects/f1/transfer"))[0] == 200
    status, headers, _ = asyncio.run(call("/projects/s1/transfer"))
    assert status == 401 and b"max_age=\"300\"" in headers[b"www-authenticate"]

    async def websocket(path: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        await app({"type": "websocket", "path": path, "headers": []}, receive, send)
        return sent

    # A websocket on a guarded path is asked too, and closed if refused.
    assert asyncio.run(websocket("/projects/s1/transfer")) == [
        {"type": "websocket.close", "code": 1008}]


def test_fail_closed_when_the_worker_is_silent_forged_or_late(start_worker: Any) -> None:
    worker = start_worker(POLICY, DOUBLELOCK_SIGNING_KEYS=KEYS)
    settings = worker.settings
    worker.stop()  # nobody answers but the forger below
    codec, publisher = Codec(), Publisher(settings)
    with Doublelock("sdk-silent", settings, instance=1) as dl:
        subject = Subject("sdk-s", "U1", "192.0.2.9", "D1")

        ring, other = parse_key_ring(KEYS), parse_key_ring("k-sdk:" + "x" * 40)

        def answered(forge: Any) -> Decision:
            """Check, while ``forge(decision)`` is written to the reply partition once
            the SDK waits: ``decision`` an allow for exactly what was asked (its
            nonce too), valid for 60 s."""
            intent = dl.intent(subject, "project.delete")

            def write() -> None:
                while dl.pending == 0:
                    time.sleep(0.005)
                asked = dl._pending[intent.intent_id].intent
                at = now_ms()
                exact = Decision(intent.intent_id, "sdk-s", "U1", "project.delete",
                                 Verdict.ALLOW, Reason.OK, at, at + 60_000, "forged",
                                 nonce=asked.nonce or "")
                publisher.producer.send(dl.reply_topic, codec.encode(forge(exact)),
                                        partition=dl.reply_partition).get(timeout=10)

            threading.Thread(target=write).start()
            return dl.check(intent, timeout=1.5)

        cases = {
            "unsigned": (lambda d: d, Reason.BAD_SIGNATURE),
            "wrong key": (lambda d: sign(d, other), Reason.BAD_SIGNATURE),
            "expired": (lambda d: sign(replace(d, valid_until=d.decided_at - 1), ring),
                        Reason.DECISION_EXPIRED),
            "another session": (lambda d: sign(replace(d, session_id="sdk-x"), ring),
                                Reason.DECISION_MISMATCH),
            # A genuine answer to another request with the same intent id (replayed,
            # or read by an instance sharing the partition): not this one's.
            "another request": (lambda d: sign(replace(d, nonce="someone-else"), ring),
                                Reason.DECISION_MISMATCH),
        }
        for name, (forge, reason) in cases.items():
            got = answered(forge)
            assert (got.verdict, got.reason, name) == (Verdict.DENY, reason, name)
        # Signed with the worker's key, unexpired, the answer to this request: acted on.
        assert answered(lambda d: sign(d, ring)).allowed

        # The same intent id asked twice at once: the second is refused at once, and
        # nothing hangs (the first times out on its own).
        twice = dl.intent(subject, "project.delete")
        with ThreadPoolExecutor(2) as pool:
            started = time.monotonic()
            both = list(pool.map(lambda _: dl.check(twice, timeout=1.0), range(2)))
        assert sorted(d.reason.value for d in both) == ["decision_mismatch", "no_decision"]
        assert time.monotonic() - started < 5

        started = time.monotonic()
        silent = dl.check(dl.intent(subject, "project.delete"), timeout=1.0)
        assert silent.reason is Reason.NO_DECISION and time.monotonic() - started < 3
        assert dl.counts[Reason.BAD_SIGNATURE.value] == 2
    closed = dl.check(dl.intent(subject, "project.delete"))  # after close: a broker error
    assert (closed.verdict, closed.reason) == (Verdict.DENY, Reason.BROKER_ERROR)
    publisher.close()


def test_each_instance_reads_its_own_partition_and_bad_routes_fall_back(
    start_worker: Any,
) -> None:
    worker = start_worker(POLICY)
    with Lifecycle(worker.settings) as lifecycle:
        subject = login(lifecycle)
    asked: dict[int, list[str]] = {0: [], 1: []}
    with Doublelock("sdk-routes", worker.settings, instance=0, timeout_s=10) as a, \
            Doublelock("sdk-routes", worker.settings, instance=1, timeout_s=10) as b:
        for instance, dl in ((0, a), (1, b)):
            for _ in range(3):
                decision = dl.check(dl.intent(subject, "doc.read"))
                assert decision.allowed
                asked[instance].append(decision.intent_id)
        topic = a.reply_topic
        # Two instances on one partition, asked the same intent id at once (a retry
        # sent to another pod): each takes only the answer to its own request.
        with Doublelock("sdk-routes", worker.settings, instance=0, timeout_s=10) as c:
            retried = a.intent(subject, "doc.read")
            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(lambda dl: dl.check(retried), (a, c)))
        assert sorted((d.verdict.value, d.reason.value) for d in answers) == [
            ("allow", "ok"), ("deny", "duplicate_intent")]
        asked[0].append(retried.intent_id)
    codec = Codec()
    consumer = KafkaConsumer(bootstrap_servers=worker.settings.bootstrap,
                             enable_auto_commit=False, consumer_timeout_ms=2000)
    for partition, ids in asked.items():
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        seen = {codec.decode(r.value).intent_id for r in consumer}
        assert seen == set(ids)
    consumer.close()

    # A reply_to not named after the decisions topic: answered on the decisions topic.
    publisher, reader = Publisher(worker.settings), DecisionReader(worker.settings)
    intent = Intent(uuid.uuid4().hex, subject.session_id, "U1", "doc.read", "", now_ms(),
                    subject.ip, subject.device_id, "api", "sdk", reply_to="elsewhere")
    publisher.intent(intent).get(timeout=10)
    assert reader.wait_for([intent.intent_id], 20)[intent.intent_id].allowed
    publisher.close()
    reader.close()
    assert "unroutable=1" in worker.stop()
