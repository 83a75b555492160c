"""Scenario files: parse_line's rejections, the JSON form's round trip, replay on garbage."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
from datetime import UTC, datetime
from typing import Any, Final

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from doublelock.errors import RejectedEvent
from doublelock.events import (
    CHANNELS,
    EARLIEST,
    EVENT_TYPES,
    LATEST,
    Activity,
    Expired,
    Heartbeat,
    Intent,
    LoggedOut,
    Reauthenticated,
    Revoked,
    SessionCreated,
)
from doublelock.policy import Policy, parse_policy
from doublelock.verdict import Decision, Reason, Verdict
from tests.cases import CASES, Case
from workers.decide import replay
from workers.scenario import Line, format_instant, parse_instant, parse_line, to_json

AT: Final = "2026-04-07T08:00:00Z"
AT_MS: Final = 1_775_548_800_000
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
GARBAGE = settings(max_examples=300, deadline=None)

VALID: Final[dict[str, dict[str, Any]]] = {
    "session.created": {"type": "session.created", "at": AT, "session_id": "S1",
                        "user_id": "U1", "auth_time": AT, "auth_level": 2,
                        "ip": "203.0.113.7", "device_id": "D1",
                        "expires_at": "2026-04-07T16:00:00Z"},
    "session.activity": {"type": "session.activity", "at": AT, "session_id": "S1",
                         "ip": "203.0.113.7", "device_id": "D1"},
    "session.heartbeat": {"type": "session.heartbeat", "at": AT, "session_id": "S1"},
    "session.reauthenticated": {"type": "session.reauthenticated", "at": AT,
                                "session_id": "S1", "auth_time": AT, "auth_level": 3,
                                "ip": "203.0.113.8", "device_id": "D2"},
    "session.logged_out": {"type": "session.logged_out", "at": AT, "session_id": "S1"},
    "session.revoked": {"type": "session.revoked", "at": AT, "session_id": "S1",
                        "reason": "admin"},
    "session.expired": {"type": "session.expired", "at": AT, "session_id": "S1"},
    "intent": {"type": "intent", "at": AT, "intent_id": "I1", "session_id": "S1",
               "user_id": "U1", "action": "account.delete", "resource": "acct-1",
               "ip": "203.0.113.7", "device_id": "D1", "channel": "ui", "app": "console",
               "attributes": {"k": "v"}},
}
REQUIRED: Final = [
    (kind, name) for kind, obj in VALID.items() for name in obj
    if name != "type" and name not in {"expires_at", "attributes"}
    and not (kind in {"session.activity", "session.reauthenticated"}
             and name in {"ip", "device_id"})
]


def line(kind: str, **changes: Any) -> dict[str, Any]:
    return {**VALID[kind], **changes}


def without(kind: str, name: str) -> dict[str, Any]:
    return {k: v for k, v in VALID[kind].items() if k != name}


def kind_of(obj: Any) -> str:
    with pytest.raises(RejectedEvent) as info:
        parse_line(obj)
    return info.value.kind


def exact_ms(text: str) -> int:
    """Milliseconds of an ISO instant, by integer arithmetic only."""
    delta = datetime.fromisoformat(text) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# -- parse_line: what it accepts -------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_valid_line_parses(kind: str) -> None:
    value = parse_line(VALID[kind])
    assert type(value) is (Intent if kind == "intent" else EVENT_TYPES[kind])
    assert value.session_id == "S1"


def test_values_are_what_the_line_says() -> None:
    created = parse_line(VALID["session.created"])
    assert created == SessionCreated("S1", AT_MS, "U1", AT_MS, 2, "203.0.113.7", "D1",
                                     AT_MS + 8 * 3_600_000)
    intent = parse_line(VALID["intent"])
    assert intent.occurred_at == AT_MS  # an intent's `at` is its occurred_at
    assert intent.attributes == {"k": "v"}
    assert parse_line(without("session.activity", "ip")) == Activity("S1", AT_MS, None, "D1")
    assert parse_line(line("session.activity", ip=None)) == Activity("S1", AT_MS, None, "D1")
    assert parse_line(without("intent", "attributes")).attributes == {}


@pytest.mark.parametrize(
    ("text", "millis"),
    [("2026-04-07T10:00:00+02:00", AT_MS), ("2026-04-07T03:00:00-05:00", AT_MS),
     ("2026-04-07T08:00:00.123Z", AT_MS + 123), ("2026-04-07T08:00:00+00:00", AT_MS),
     ("2000-01-01T00:00:00Z", EARLIEST), ("2099-12-31T23:59:59.999Z", LATEST - 1)],
)
def test_offsets_are_honoured(text: str, millis: int) -> None:
    assert parse_instant("at", text) == millis
    assert parse_line(line("session.heartbeat", at=text)).at == millis


def test_parse_instant_is_exact_to_the_millisecond() -> None:
    # Float arithmetic (timestamp() * 1000, then truncation) loses a millisecond here.
    assert parse_instant("at", "2004-03-22T01:32:09.416Z") == 1_079_919_129_416
    assert parse_line(line("session.heartbeat", at="2039-07-06T01:24:33.693Z")).at == (
        2_193_528_273_693)


@settings(max_examples=500, deadline=None)
@given(st.integers(EARLIEST, LATEST - 1))
@example(1_079_919_129_416)
@example(2_193_528_273_693)
def test_format_and_parse_instant_are_inverse(ms: int) -> None:
    text = format_instant(ms)
    assert text.endswith("Z")
    assert exact_ms(text) == ms  # format_instant is right...
    assert parse_instant("at", text) == ms  # ...and parse_instant must give it back


# -- parse_line: what it rejects --------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [line("intent", type="session.bogus"), without("intent", "type"), line("intent", type=5),
     line("intent", type="Intent"), line("intent", type=None), line("intent", type="")],
    ids=["unknown", "missing", "number", "case", "null", "empty"],
)
def test_an_unknown_type_is_an_unknown_schema(obj: dict[str, Any]) -> None:
    assert kind_of(obj) == "unknown_schema"


@pytest.mark.parametrize("value", [[], {}, ["intent"], {"a": 1}], ids=repr)
def test_an_unhashable_type_is_rejected_not_raised(value: Any) -> None:
    assert kind_of(line("intent", type=value)) == "unknown_schema"


@pytest.mark.parametrize(("kind", "name"), REQUIRED, ids=lambda v: str(v))
def test_a_missing_field_is_missing_field(kind: str, name: str) -> None:
    assert kind_of(without(kind, name)) == "missing_field"
    assert kind_of(line(kind, **{name: None})) == "missing_field"  # null is missing too


@pytest.mark.parametrize(
    ("kind", "name"),
    [("intent", "intent_id"), ("intent", "session_id"), ("intent", "action"),
     ("session.created", "user_id"), ("session.heartbeat", "session_id")],
)
def test_an_empty_identifier_is_missing_field(kind: str, name: str) -> None:
    assert kind_of(line(kind, **{name: ""})) == "missing_field"


@pytest.mark.parametrize(
    "obj",
    [
        line("session.heartbeat", session_id=5),
        line("session.created", user_id=["U1"]),
        line("session.created", auth_level="2"),
        line("session.created", auth_level=2.0),
        line("session.revoked", reason={"why": "admin"}),
        line("intent", channel=1),
        line("session.activity", ip=7),
        line("session.created", auth_level=True),
        line("intent", attributes="k=v"),
        line("intent", attributes=["k", "v"]),
        line("intent", attributes={"k": 1}),
    ],
    ids=["session_id-number", "user_id-list", "level-string", "level-float", "reason-object",
         "channel-number", "ip-number", "level-bool", "attributes-string", "attributes-list",
         "attributes-non-string-value"],
)
def test_a_wrong_type_is_malformed(obj: dict[str, Any]) -> None:
    assert kind_of(obj) == "malformed"


@pytest.mark.parametrize(
    "obj",
    [line("session.created", auth_level=0), line("session.created", auth_level=4),
     line("session.reauthenticated", auth_level=9), line("intent", channel="sms")],
)
def test_an_invalid_value_is_malformed(obj: dict[str, Any]) -> None:
    assert kind_of(obj) == "malformed"


@pytest.mark.parametrize(
    "obj",
    [line("session.heartbeat", extra=1), line("session.heartbeat", occurred_at=AT),
     line("session.heartbeat", Session_id="S1"), line("intent", verdict="allow")],
    ids=["extra", "occurred_at-on-an-event", "case", "intent-extra"],
)
def test_an_unknown_field_is_malformed(obj: dict[str, Any]) -> None:
    assert kind_of(obj) == "malformed"


@pytest.mark.parametrize("obj", [[VALID["intent"]], "intent", 5, None, True], ids=repr)
def test_a_line_that_is_no_object_is_malformed(obj: Any) -> None:
    assert kind_of(obj) == "malformed"


@pytest.mark.parametrize(
    "at",
    [
        "2026-04-07T08:00:00",  # no offset
        "2026-04-07",  # a date is no instant
        "1970-01-01T00:00:00Z",
        "1970-01-21T13:12:28.800Z",  # 1775548800 seconds sent as milliseconds
        "1999-12-31T23:59:59.999Z",
        "2100-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ],
    ids=["no-offset", "date", "epoch", "seconds-as-millis", "before-2000", "2100", "far"],
)
@pytest.mark.parametrize("field", ["at", "auth_time", "expires_at"])
def test_an_impossible_time_is_an_absurd_timestamp(at: str, field: str) -> None:
    assert kind_of(line("session.created", **{field: at})) == "absurd_timestamp"


def test_an_intents_time_is_checked_too() -> None:
    assert kind_of(line("intent", at="2026-04-07T08:00:00")) == "absurd_timestamp"
    assert kind_of(line("intent", at="1970-01-21T13:12:28.800Z")) == "absurd_timestamp"


@pytest.mark.parametrize(
    "at", [1_775_548_800, 1_775_548_800_000, 1.5, ["2026-04-07T08:00:00Z"], "yesterday",
           "2026-13-01T00:00:00Z", "2026-04-07T25:00:00Z", ""],
    ids=["epoch-seconds", "epoch-millis", "float", "list", "words", "month-13", "hour-25",
         "empty"],
)
def test_a_time_that_is_no_iso_string_is_malformed(at: Any) -> None:
    assert kind_of(line("session.heartbeat", at=at)) == "malformed"


# -- to_json / parse_line round trip --------------------------------------------------------

ids = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=10)
free_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
instants = st.integers(EARLIEST, LATEST - 1)
lags = st.integers(0, 10**9)  # a proof is never dated after its event
maybe = st.none() | free_text.filter(bool)
lines: st.SearchStrategy[Line] = st.one_of(
    st.builds(lambda at, lag, **rest: SessionCreated(at=at, auth_time=max(EARLIEST, at - lag),
                                                     **rest),
              instants, lags, session_id=ids, user_id=ids, auth_level=st.integers(1, 3),
              ip=free_text, device_id=free_text, expires_at=st.none() | instants),
    st.builds(Activity, session_id=ids, at=instants, ip=maybe, device_id=maybe),
    st.builds(Heartbeat, session_id=ids, at=instants),
    st.builds(lambda at, lag, **rest: Reauthenticated(at=at, auth_time=max(EARLIEST, at - lag),
                                                      **rest),
              instants, lags, session_id=ids, auth_level=st.integers(1, 3), ip=maybe,
              device_id=maybe),
    st.builds(LoggedOut, session_id=ids, at=instants),
    st.builds(Revoked, session_id=ids, at=instants, reason=free_text),
    st.builds(Expired, session_id=ids, at=instants),
    st.builds(Intent, intent_id=ids, session_id=ids, user_id=free_text, action=ids,
              resource=free_text, occurred_at=instants, ip=free_text, device_id=free_text,
              channel=st.sampled_from(CHANNELS), app=free_text,
              attributes=st.dictionaries(free_text, free_text, max_size=3)),
)


@settings(max_examples=400, deadline=None)
@given(lines)
@example(Heartbeat("S1", 1_079_919_129_416))
@example(Intent("I1", "S1", "U1", "a.b", "r", 2_193_528_273_693, "ip", "D1", "ui", "app"))
def test_to_json_and_parse_line_round_trip(value: Line) -> None:
    obj = to_json(value)
    assert obj["type"] == ("intent" if isinstance(value, Intent) else
                           next(k for k, v in EVENT_TYPES.items() if v is type(value)))
    assert None not in obj.values()
    names = {"at" if f.name == "occurred_at" else f.name for f in dataclasses.fields(value)}
    assert set(obj) - {"type"} <= names  # an intent's time is written as `at`
    assert "at" in obj
    assert parse_line(json.loads(json.dumps(obj))) == value


def test_to_json_writes_utc_milliseconds_and_omits_nulls() -> None:
    assert to_json(Activity("S1", AT_MS + 5)) == {
        "type": "session.activity", "session_id": "S1", "at": "2026-04-07T08:00:00.005Z"}


# -- replay ---------------------------------------------------------------------------------


def run(text: str, policy: Policy | None = None) -> list[tuple[int, Decision | RejectedEvent]]:
    return list(replay(io.StringIO(text), policy or Policy()))


def nonblank(text: str) -> list[int]:
    return [n for n, t in enumerate(io.StringIO(text), start=1) if t.strip()]


def intent_lines(text: str) -> set[int]:
    """Numbers of the lines that are JSON objects of type intent."""
    found = set()
    for number, raw in enumerate(io.StringIO(text), start=1):
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and obj.get("type") == "intent":
            found.add(number)
    return found


def check_replay_of_garbage(text: str) -> None:
    """Replay must not raise, must report every unusable line and decide every intent line."""
    results = run(text)
    numbers = nonblank(text)
    assert [n for n, _ in results] == sorted(n for n, _ in results)
    assert {n for n, _ in results} <= set(numbers)
    for _, result in results:
        assert isinstance(result, (RejectedEvent, Decision))
        if isinstance(result, Decision):
            assert result.verdict is not Verdict.ALLOW  # there is no session to allow
    decided = [n for n, r in results if isinstance(r, Decision)]
    assert sorted(decided) == sorted(intent_lines(text))  # one decision per intent line
    reported = {n for n, r in results if isinstance(r, RejectedEvent)}
    usable = {n for n in numbers if n not in reported}
    for number in usable:  # a line that was not rejected was a usable event or intent
        obj = json.loads(io.StringIO(text).readlines()[number - 1])
        parse_line(obj)


@GARBAGE
@given(st.lists(st.text(max_size=60), max_size=8))
def test_replay_never_raises_on_text_garbage(texts: list[str]) -> None:
    check_replay_of_garbage("\n".join(texts) + "\n")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(sorted({k for obj in VALID.values() for k in obj} | {"x"}))
type_names = st.sampled_from([*sorted(VALID), "nope"]) | json_values
json_objects = st.builds(
    lambda kind, fields: {"type": kind, **fields}, type_names,
    st.dictionaries(field_names, json_values | st.sampled_from((AT, "S1", 2)), max_size=6),
)


@GARBAGE
@given(st.lists(json_objects | json_values, max_size=6))
def test_replay_never_raises_on_json_garbage(values: list[Any]) -> None:
    check_replay_of_garbage("".join(json.dumps(v) + "\n" for v in values))


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"a": ' * 100_000, '{"type": "intent", "attributes": ' + "[" * 50_000,
     '{"type": []}', '{"type": {"x": 1}}', "\x00\x01", "NaN", '"intent"', "{}", "null"],
    ids=["deep-array", "deep-object", "deep-intent", "list-type", "object-type", "nul",
         "nan", "string", "empty-object", "null"],
)
def test_replay_reports_each_bad_line(text: str) -> None:
    results = run(f"{text}\n" + json.dumps(VALID["session.heartbeat"]) + "\n")
    assert results and {n for n, _ in results} == {1, 2}
    first = [r for n, r in results if n == 1]
    assert isinstance(first[0], RejectedEvent)
    assert first[0].kind in {"malformed", "unknown_schema"}
    # The heartbeat for a session never created is rejected too, not silently applied.
    assert [r.kind for n, r in results if n == 2 and isinstance(r, RejectedEvent)] == [
        "unknown_session"]


def test_a_broken_intent_line_is_reported_and_denied_malformed() -> None:
    text = "".join(json.dumps(obj) + "\n" for obj in [
        VALID["session.created"],
        line("intent", at="2026-04-07T08:01:00"),  # no offset
        line("intent", intent_id=7, at="2026-04-07T08:01:00Z", channel="sms"),
    ])
    results = run(text)
    assert [(n, type(r).__name__) for n, r in results] == [
        (2, "RejectedEvent"), (2, "Decision"), (3, "RejectedEvent"), (3, "Decision")]
    assert results[0][1].kind == "absurd_timestamp"  # type: ignore[union-attr]
    denied = [r for _, r in results if isinstance(r, Decision)]
    assert [(d.intent_id, d.verdict, d.reason) for d in denied] == [
        ("I1", Verdict.DENY, Reason.MALFORMED), ("line-3", Verdict.DENY, Reason.MALFORMED)]


@functools.cache
def _policy(text: str) -> Policy:
    return parse_policy(text.encode())


def policy_of(case: Case) -> Policy:
    return _policy(case.policy)


# Noise that can never be a usable line (a valid event could change the case's sessions).
noise = (
    st.text(max_size=30).filter(lambda t: "\n" not in t)
    | json_values.map(json.dumps)
    | st.builds(lambda kind, fields: json.dumps({"type": kind, **fields}), type_names,
                st.dictionaries(field_names, json_values, max_size=6))
)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(CASES), st.data())
def test_garbage_lines_change_no_decision(case: Case, data: st.DataObject) -> None:
    texts: list[str] = []
    origin: dict[int, int] = {}  # line number in the noisy file -> index in the case
    for index, obj in enumerate(case.lines):
        texts.extend(data.draw(st.lists(noise, max_size=2)))
        texts.append(json.dumps(obj))
        origin[len(texts)] = index
    decisions = {}
    rejected = []
    for number, result in run("".join(t + "\n" for t in texts), policy_of(case)):
        if number not in origin:
            continue
        if isinstance(result, RejectedEvent):
            rejected.append(origin[number] + 1)
        else:
            decisions[result.intent_id] = (result.verdict.value, result.reason.value)
    assert decisions == case.expected
    assert rejected == case.rejected


def test_a_small_scenario_replays() -> None:
    text = "".join(json.dumps(obj) + "\n" for obj in [
        VALID["session.created"],
        line("intent", at="2026-04-07T08:01:00Z"),
        line("session.revoked", at="2026-04-07T08:02:00Z"),
        line("intent", intent_id="I2", at="2026-04-07T08:03:00Z"),
    ])
    got = [(n, r.intent_id, r.verdict, r.reason) for n, r in run(text) if isinstance(r, Decision)]
    assert got == [(2, "I1", Verdict.ALLOW, Reason.OK), (4, "I2", Verdict.DENY, Reason.REVOKED)]
