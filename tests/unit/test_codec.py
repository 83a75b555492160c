"""The Avro single-object codec: round trips, framing, fingerprints, rejections, evolution."""

from __future__ import annotations

import io
import json
import shutil
import struct
from dataclasses import fields, replace
from enum import Enum
from pathlib import Path
from typing import Any, Final

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from doublelock.errors import RejectedEvent
from doublelock.events import (
    Activity,
    Expired,
    Heartbeat,
    Inherited,
    Intent,
    LoggedOut,
    Reauthenticated,
    Revoked,
    Rotated,
    SessionCreated,
    UserSessionsRevoked,
)
from doublelock.session import Early, SessionState, Status
from doublelock.verdict import Decision, Reason, Verdict
from schemas.codec import MAGIC, RECORD_NAMES, SCHEMA_DIR, Codec, fingerprint64

CODEC: Final = Codec()
CURRENT_NAMES: Final = frozenset({
    "doublelock.DeadLetter", "doublelock.Decision", "doublelock.Intent",
    "doublelock.session.Activity", "doublelock.session.Created", "doublelock.session.Expired",
    "doublelock.session.Heartbeat", "doublelock.session.LoggedOut",
    "doublelock.session.Reauthenticated", "doublelock.session.Revoked",
    "doublelock.session.Rotated", "doublelock.session.Inherited",
    "doublelock.user.SessionsRevoked", "doublelock.state.SessionState",
    "doublelock.state.EarlyEvents", "doublelock.state.DecidedIntent", "doublelock.Alert",
})
AT: Final = 1_775_548_800_000  # 2026-04-07T08:00:00Z
ROUND_TRIP = settings(max_examples=150, deadline=None)
FUZZ = settings(max_examples=300, deadline=None)

# -- strategies: the whole value space Avro can carry, not only sensible values -------------

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # no lone surrogates
longs = st.integers(-(2**63), 2**63 - 1)
ints = st.integers(-(2**31), 2**31 - 1)
maybe_text = st.none() | text
maybe_long = st.none() | longs

intents = st.builds(
    Intent, intent_id=text, session_id=text, user_id=text, action=text, resource=text,
    occurred_at=longs, ip=text, device_id=text, channel=text, app=text,
    attributes=st.dictionaries(text, text, max_size=4),
)
lifecycle_events = st.one_of(
    st.builds(SessionCreated, session_id=text, at=longs, user_id=text, auth_time=longs,
              auth_level=ints, ip=text, device_id=text, expires_at=maybe_long,
              parent_session_id=maybe_text),
    st.builds(Activity, session_id=text, at=longs, ip=maybe_text, device_id=maybe_text),
    st.builds(Heartbeat, session_id=text, at=longs),
    st.builds(Reauthenticated, session_id=text, at=longs, auth_time=longs, auth_level=ints,
              ip=maybe_text, device_id=maybe_text),
    st.builds(LoggedOut, session_id=text, at=longs),
    st.builds(Revoked, session_id=text, at=longs, reason=text),
    st.builds(Expired, session_id=text, at=longs),
    st.builds(Rotated, session_id=text, at=longs, new_session_id=text),
    st.builds(Inherited, session_id=text, at=longs, from_session_id=text, user_id=text,
              created_at=longs, login_at=longs, auth_time=longs, auth_level=ints, ip=text,
              device_id=text, last_activity=longs, status=text, expires_at=maybe_long,
              ended_at=maybe_long, end_reason=maybe_text),
)
user_events = st.builds(UserSessionsRevoked, user_id=text, at=longs, reason=text,
                        except_session_id=maybe_text)
decisions = st.builds(
    Decision, intent_id=text, session_id=text, user_id=text, action=text,
    verdict=st.sampled_from(Verdict), reason=st.sampled_from(Reason), decided_at=longs,
    valid_until=longs, policy_version=text, session_age_ms=maybe_long, idle_ms=maybe_long,
    reauth_age_ms=maybe_long, detail=text, redelivery=st.booleans(), key_id=text,
    signature=st.binary(max_size=40),
)
session_states = st.builds(
    SessionState, session_id=text, user_id=text, login_at=longs, auth_time=longs,
    auth_level=ints, ip=text, device_id=text, last_activity=longs, expires_at=maybe_long,
    status=st.sampled_from(Status), ended_at=maybe_long, end_reason=maybe_text,
    last_seen_ip=maybe_text, last_seen_device_id=maybe_text, created_at=maybe_long,
)
any_value = st.one_of(intents, lifecycle_events, user_events, decisions, session_states)


def sample_intent(**changes: Any) -> Intent:
    values: dict[str, Any] = {
        "intent_id": "I1", "session_id": "S1", "user_id": "U1", "action": "account.delete",
        "resource": "acct-1", "occurred_at": AT, "ip": "203.0.113.7", "device_id": "D1",
        "channel": "ui", "app": "console", "attributes": {"k": "v"},
    }
    return Intent(**{**values, **changes})


SAMPLES: Final[list[Any]] = [
    sample_intent(),
    SessionCreated("S1", AT, "U1", AT, 2, "203.0.113.7", "D1", AT + 3_600_000),
    Activity("S1", AT, "203.0.113.7"),
    Heartbeat("S1", AT),
    Reauthenticated("S1", AT, AT, 3, device_id="D2"),
    LoggedOut("S1", AT),
    Revoked("S1", AT, "admin"),
    Expired("S1", AT),
    Decision("I1", "S1", "U1", "a.b", Verdict.STEP_UP, Reason.REAUTH_REQUIRED, AT, AT, "v1",
             1, 2, 3, "needs level 3"),
    SessionState("S1", "U1", AT, AT, 2, "203.0.113.7", "D1", AT, status=Status.REVOKED,
                 ended_at=AT, end_reason="admin"),
    Rotated("S0", AT, "S1"),
    Inherited("S1", AT, "S0", "U1", AT, AT, AT, 2, "203.0.113.7", "D1", AT, "active",
              former_ids=("S0", "S-1")),
    UserSessionsRevoked("U1", AT, "password_reset", except_session_id="S1"),
    Early("S9", (Activity("S9", AT), LoggedOut("S9", AT + 1))),
]


def decode_kind(data: bytes, codec: Codec = CODEC) -> str:
    with pytest.raises(RejectedEvent) as info:
        codec.decode(data)
    return info.value.kind


def as_record(value: Any) -> dict[str, Any]:
    """A core value as the Avro record the codec writes for it."""
    record = {f.name: getattr(value, f.name) for f in fields(value)}
    return {k: v.value if isinstance(v, Enum) else v for k, v in record.items()}


def avro_body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


# -- round trips -----------------------------------------------------------------------


@ROUND_TRIP
@given(any_value)
def test_every_record_type_round_trips(value: Any) -> None:
    data = CODEC.encode(value)
    back = CODEC.decode(data)
    assert type(back) is type(value)
    assert back == value
    assert CODEC.encode(back) == data  # the encoding is deterministic


@ROUND_TRIP
@given(lifecycle_events)
def test_lifecycle_events_decode_on_the_sessions_topic(event: Any) -> None:
    assert CODEC.decode_lifecycle(CODEC.encode(event)) == event
    with pytest.raises(RejectedEvent) as info:
        CODEC.decode_intent(CODEC.encode(event))
    assert info.value.kind == "unknown_schema"


@ROUND_TRIP
@given(intents)
def test_intents_decode_on_the_intents_topic(intent: Intent) -> None:
    assert CODEC.decode_intent(CODEC.encode(intent)) == intent
    with pytest.raises(RejectedEvent) as info:
        CODEC.decode_lifecycle(CODEC.encode(intent))
    assert info.value.kind == "unknown_schema"


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_decision_and_state_are_on_neither_input_topic(value: Any) -> None:
    data = CODEC.encode(value)
    assert CODEC.decode(data) == value
    if isinstance(value, (Decision, SessionState)):
        for read in (CODEC.decode_intent, CODEC.decode_lifecycle):
            with pytest.raises(RejectedEvent) as info:
                read(data)
            assert info.value.kind == "unknown_schema"


def test_enum_fields_come_back_as_enums() -> None:
    decision = CODEC.decode(CODEC.encode(SAMPLES[8]))
    assert decision.verdict is Verdict.STEP_UP and decision.reason is Reason.REAUTH_REQUIRED
    state = CODEC.decode(CODEC.encode(SAMPLES[9]))
    assert state.status is Status.REVOKED


def test_a_dead_letter_is_readable_as_a_record_but_is_no_core_value() -> None:
    record = {"source_topic": "t", "partition": 1, "offset": 2, "key": None, "payload": b"x",
              "kind": "malformed", "error": "e", "rejected_at": AT}
    data = CODEC.encode_record("doublelock.DeadLetter", record)
    assert CODEC.decode_record(data) == ("doublelock.DeadLetter", record)
    assert decode_kind(data) == "unknown_schema"


# -- framing and fingerprints ---------------------------------------------------------------


def test_the_codec_knows_every_schema_file() -> None:
    assert set(CODEC.names) == CURRENT_NAMES
    assert {path.stem for path in SCHEMA_DIR.glob("*.avsc")} >= {"intent", "decision"}


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.avsc")), ids=lambda p: p.name)
def test_header_is_magic_and_little_endian_crc64_of_the_canonical_form(path: Path) -> None:
    raw = json.loads(path.read_text())
    # The canonical form drops logicalType: fingerprinting the file as written must agree.
    canonical = to_parsing_canonical_form(fastavro.parse_schema(raw, _write_hint=False))
    name = f"{raw['namespace']}.{raw['name']}"
    value = next((v for v in SAMPLES if RECORD_NAMES[type(v)] == name), None)
    records: dict[str, dict[str, Any]] = {  # the records with no core value
        "doublelock.DeadLetter": {"source_topic": "t", "partition": 0, "offset": 0,
                                  "payload": b"", "kind": "malformed", "error": "",
                                  "rejected_at": AT},
        "doublelock.state.DecidedIntent": {"offset": 7, "decision": CODEC.encode(SAMPLES[8])},
        "doublelock.Alert": {"alert_id": "a1", "detector": "burst_sources",
                             "subject": "203.0.113.66", "window_start": AT, "window_end": AT,
                             "detected_at": AT, "summary": "s", "evidence": {"k": "v"}},
    }
    data = CODEC.encode(value) if value is not None else CODEC.encode_record(name, records[name])
    assert data[:2] == b"\xc3\x01" == MAGIC
    assert data[2:10].hex() == fingerprint(canonical, "CRC-64-AVRO")
    assert data[2:10] == struct.pack("<Q", fingerprint64(canonical.encode()))


def test_crc64_avro_of_the_null_schema_is_the_specification_vector() -> None:
    # Avro's share/test/data/schema-tests.txt: "null" has fingerprint 7195948357588979594.
    assert fingerprint64(b'"null"') == 7195948357588979594
    assert fingerprint("\"null\"", "CRC-64-AVRO") == (7195948357588979594).to_bytes(
        8, "little").hex()
    assert fingerprint64(b"") == 0xC15D213AA4D7A795  # the empty fingerprint


@pytest.mark.parametrize(
    "schema", ['"null"', '"boolean"', '"int"', '"long"', '"float"', '"double"', '"bytes"',
               '"string"', '{"type":"fixed","name":"f","size":4}',
               '{"name":"R","type":"record","fields":[{"name":"a","type":"long"}]}'],
)
def test_crc64_avro_agrees_with_fastavro(schema: str) -> None:
    expected = int.from_bytes(bytes.fromhex(fingerprint(schema, "CRC-64-AVRO")), "little")
    assert fingerprint64(schema.encode()) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=64))
def test_crc64_avro_agrees_with_fastavro_on_any_text(value: str) -> None:
    try:
        expected_hex = fingerprint(value, "CRC-64-AVRO")
    except UnicodeEncodeError:
        return  # lone surrogates are no schema text
    assert struct.pack("<Q", fingerprint64(value.encode())).hex() == expected_hex


# -- rejections -----------------------------------------------------------------------------


@ROUND_TRIP
@given(any_value, st.data())
def test_a_truncated_payload_is_malformed(value: Any, data: st.DataObject) -> None:
    payload = CODEC.encode(value)
    cut = data.draw(st.integers(0, len(payload) - 1))
    assert decode_kind(payload[:cut]) == "malformed"


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_every_prefix_is_malformed(value: Any) -> None:
    payload = CODEC.encode(value)
    assert {decode_kind(payload[:cut]) for cut in range(len(payload))} == {"malformed"}


@ROUND_TRIP
@given(any_value, st.integers(2, 9), st.integers(0, 7))
def test_a_flipped_fingerprint_bit_is_an_unknown_schema(
    value: Any, index: int, bit: int
) -> None:
    payload = bytearray(CODEC.encode(value))
    payload[index] ^= 1 << bit
    assert decode_kind(bytes(payload)) == "unknown_schema"


@ROUND_TRIP
@given(any_value, st.binary(min_size=2, max_size=2).filter(lambda b: b != MAGIC))
def test_without_the_magic_it_is_malformed(value: Any, magic: bytes) -> None:
    payload = CODEC.encode(value)
    assert decode_kind(magic + payload[2:]) == "malformed"
    assert decode_kind(payload[2:]) == "malformed"


@ROUND_TRIP
@given(any_value, st.binary(min_size=1, max_size=16))
def test_trailing_bytes_are_malformed(value: Any, tail: bytes) -> None:
    assert decode_kind(CODEC.encode(value) + tail) == "malformed"


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_the_payload_limit_is_inclusive(value: Any) -> None:
    payload = CODEC.encode(value)
    assert Codec(max_payload=len(payload)).decode(payload) == value
    assert decode_kind(payload, Codec(max_payload=len(payload) - 1)) == "oversized"


def test_oversized_is_checked_before_anything_else() -> None:
    assert decode_kind(b"\x00" * (64 * 1024 + 1)) == "oversized"
    big = sample_intent(attributes={"blob": "x" * 70_000})
    assert decode_kind(CODEC.encode(big)) == "oversized"
    assert Codec(max_payload=1 << 20).decode(CODEC.encode(big)) == big


def test_an_empty_payload_is_malformed() -> None:
    assert decode_kind(b"") == "malformed"
    assert decode_kind(MAGIC) == "malformed"


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_are_only_ever_rejected(data: bytes) -> None:
    try:
        value = CODEC.decode(data)
    except RejectedEvent as exc:
        assert exc.kind in {"malformed", "unknown_schema", "oversized"}
    else:  # astronomically unlikely, but then it must be a real record
        assert type(value) in RECORD_NAMES


@FUZZ
@given(st.sampled_from(SAMPLES), st.binary(max_size=120))
def test_random_bodies_behind_a_valid_header_never_crash(value: Any, body: bytes) -> None:
    header = CODEC.encode(value)[:10]
    try:
        back = CODEC.decode(header + body)
    except RejectedEvent as exc:
        assert exc.kind == "malformed"
    else:
        assert type(back) is type(value)


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_corrupted_bodies_never_crash(value: Any, data: st.DataObject) -> None:
    payload = bytearray(CODEC.encode(value))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(10, len(payload) - 1))
        payload[index] = data.draw(st.integers(0, 255))
    try:
        back = CODEC.decode(bytes(payload))
    except RejectedEvent as exc:
        assert exc.kind == "malformed"
    else:
        assert type(back) is type(value)


def test_invalid_utf8_in_a_string_is_malformed() -> None:
    payload = CODEC.encode(Heartbeat("S1", AT))
    assert payload[10:13] == b"\x04S1"
    assert decode_kind(payload[:11] + b"\xff" + payload[12:]) == "malformed"


@pytest.mark.parametrize(
    ("name", "field", "bad"),
    [("doublelock.Decision", "reason", "because"),
     ("doublelock.state.SessionState", "status", "zombie")],
)
def test_an_unknown_enum_value_is_malformed(name: str, field: str, bad: str) -> None:
    record = as_record(next(v for v in SAMPLES if RECORD_NAMES[type(v)] == name))
    record[field] = bad
    assert decode_kind(CODEC.encode_record(name, record)) == "malformed"


def test_an_out_of_range_verdict_symbol_is_malformed() -> None:
    payload = CODEC.encode(SAMPLES[8])
    # Four one-byte strings, then the verdict's enum index: 2 (step_up) is zigzag 0x04.
    strings = b"\x04I1\x04S1\x04U1\x06a.b"
    assert payload[10:10 + len(strings)] == strings
    index = 10 + len(strings)
    assert payload[index] == 0x04
    corrupt = payload[:index] + b"\x06" + payload[index + 1:]  # symbol 3 does not exist
    assert decode_kind(corrupt) == "malformed"


# -- schema evolution -------------------------------------------------------------------


def _older(file: str, dropped: str) -> dict[str, Any]:
    """An older version of a current schema: the same record without one defaulted field."""
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / file).read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != dropped]
    return schema


OLD_INTENT: Final = _older("intent.avsc", "attributes")
OLD_DECISION: Final = _older("decision.avsc", "detail")


@pytest.fixture
def evolved_dir(tmp_path: Path) -> Path:
    """The current schemas plus older writer versions under history/."""
    target = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, target)
    (target / "history").mkdir(exist_ok=True)
    (target / "history" / "intent.v1.avsc").write_text(json.dumps(OLD_INTENT))
    # Sorts after decision.avsc: it must not replace the current Decision either.
    (target / "history" / "decision.v1.avsc").write_text(json.dumps(OLD_DECISION))
    return target


def _written_with(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """What a producer still on an older schema writes (the codec only writes current)."""
    canonical = to_parsing_canonical_form(fastavro.parse_schema(schema, _write_hint=False))
    header = MAGIC + struct.pack("<Q", fingerprint64(canonical.encode()))
    return header + avro_body(schema, record)


def _old_intent_bytes() -> bytes:
    return _written_with(OLD_INTENT, {
        "intent_id": "I1", "session_id": "S1", "user_id": "U1", "action": "account.delete",
        "resource": "acct-1", "occurred_at": AT, "ip": "203.0.113.7", "device_id": "D1",
        "channel": "ui", "app": "console"})


def test_an_older_writer_version_is_resolved_against_the_current_reader(
    evolved_dir: Path,
) -> None:
    codec = Codec(schema_dir=evolved_dir)
    old = _old_intent_bytes()
    assert old[2:10] != CODEC.encode(sample_intent())[2:10]
    intent = codec.decode_intent(old)
    assert intent == sample_intent(attributes={})
    # Re-encoding writes the current version, which every reader knows.
    assert CODEC.decode(codec.encode(intent)) == intent


def test_history_holds_writers_never_the_current_version(evolved_dir: Path) -> None:
    codec = Codec(schema_dir=evolved_dir)
    assert set(codec.names) == CURRENT_NAMES
    for value in SAMPLES:
        assert codec.encode(value) == CODEC.encode(value)
    decision = SAMPLES[8]
    record = as_record(decision)
    del record["detail"]
    assert codec.decode(_written_with(OLD_DECISION, record)) == replace(decision, detail="")


def test_without_the_history_file_the_older_version_is_unknown() -> None:
    assert decode_kind(_old_intent_bytes()) == "unknown_schema"


def test_the_history_folder_is_found_wherever_the_schema_dir_lives(tmp_path: Path) -> None:
    # Only a folder named "history" *inside* the schema dir holds older versions; a parent
    # folder that happens to be called "history" must not demote the current schemas.
    target = tmp_path / "history" / "avro"
    shutil.copytree(SCHEMA_DIR, target)
    codec = Codec(schema_dir=target)
    assert set(codec.names) == CURRENT_NAMES
    assert codec.decode(codec.encode(sample_intent())) == sample_intent()


@pytest.mark.parametrize("index", [1, 8, 9], ids=["created", "decision", "state"])
def test_what_0_1_wrote_still_decodes_with_the_shipped_history(index: int) -> None:
    # Sessions tables and decisions topics written by 0.1 must survive the upgrade.
    value = SAMPLES[index]
    stem = {1: "session.created", 8: "decision", 9: "session_state"}[index]
    old = json.loads((SCHEMA_DIR / "history" / f"{stem}.v1.avsc").read_text())
    known = {f["name"] for f in old["fields"]}
    record = {k: v for k, v in as_record(value).items() if k in known}
    assert CODEC.decode(_written_with(old, record)) == value
    assert CODEC.encode(value) != _written_with(old, record)  # the current writer differs
