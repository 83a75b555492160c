"""Signed decisions: what verifies, and every way a forgery does not."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doublelock.errors import PolicyError
from doublelock.policy import load_policy, parse_policy
from doublelock.signing import (
    SIGNED_FIELDS,
    canonical,
    parse_key_ring,
    sign,
    sign_record,
    verify,
    verify_record,
)
from doublelock.verdict import Decision, Reason, Verdict
from workers.settings import Settings

K1 = "k1:" + "a" * 32
K2 = "k2:hex:" + "0b" * 32
ALLOW = Decision("I1", "S1", "U1", "payments.transfer", Verdict.ALLOW, Reason.OK,
                 1_775_548_800_000, 1_775_548_810_000, "v1", 1, 2, 3, "")


def test_a_signed_decision_verifies_and_names_its_key() -> None:
    ring = parse_key_ring(K1)
    signed = sign(ALLOW, ring)
    assert signed.key_id == "k1" and len(signed.signature) == 32
    assert verify(signed, ring)


@pytest.mark.parametrize("name", SIGNED_FIELDS)
def test_changing_any_signed_field_breaks_the_signature(name: str) -> None:
    ring = parse_key_ring(K1 + "," + K2)
    signed = sign(ALLOW, ring)
    value = getattr(signed, name)
    if isinstance(value, Verdict):
        changed: Any = Verdict.DENY
    elif isinstance(value, Reason):
        changed = Reason.REVOKED
    elif isinstance(value, bool):
        changed = not value
    elif isinstance(value, int):
        changed = value + 1
    elif value is None:  # an optional demand, added
        changed = 0
    else:
        changed = "k2" if name == "key_id" else value + "x"
    assert not verify(replace(signed, **{name: changed}), ring)


def test_unsigned_forged_and_unknown_key_decisions_are_refused() -> None:
    ring = parse_key_ring(K1)
    assert not verify(ALLOW, ring)  # unsigned
    assert not verify(sign(ALLOW, parse_key_ring("k1:" + "b" * 32)), ring)  # other secret
    assert not verify(sign(ALLOW, parse_key_ring("k9:" + "a" * 32)), ring)  # unknown id
    signed = sign(ALLOW, ring)
    assert not verify(replace(signed, signature=signed.signature[:-1]), ring)


def test_rotation_old_and_new_keys_verify_the_first_signs() -> None:
    old, both, new = parse_key_ring(K1), parse_key_ring(K2 + "\n" + K1), parse_key_ring(K2)
    assert verify(sign(ALLOW, old), both) and verify(sign(ALLOW, both), both)
    assert sign(ALLOW, both).key_id == "k2"
    assert verify(sign(ALLOW, both), new) and not verify(sign(ALLOW, old), new)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=8), st.text(max_size=8), st.text(max_size=8), st.text(max_size=8))
def test_no_two_field_splits_share_canonical_bytes(a: str, b: str, c: str, d: str) -> None:
    first = replace(ALLOW, intent_id=a, session_id=b)
    second = replace(ALLOW, intent_id=c, session_id=d)
    if (a, b) != (c, d):
        assert canonical(first) != canonical(second)


@pytest.mark.parametrize("text", ["", "k1", "k1:short", "k1:hex:zz", f"{K1},{K1}", ":" + "a" * 32])
def test_bad_key_rings_are_refused(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_key_ring(text)


def test_evidence_is_not_signed_but_everything_acted_on_is() -> None:
    signed_or_evidence = set(SIGNED_FIELDS) | {"session_age_ms", "idle_ms", "reauth_age_ms",
                                               "dead_for_ms", "detail", "signature"}
    assert {f.name for f in fields(Decision)} == signed_or_evidence


def test_keys_come_from_a_file_and_settings_never_print_secrets(tmp_path: Any) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# current first\n{K2}\n{K1}\n")
    ring = Settings.from_env({"DOUBLELOCK_SIGNING_KEYS_FILE": str(keys)}).key_ring()
    assert ring is not None and ring.signing_key_id == "k2"
    out = subprocess.run([sys.executable, "-m", "workers.cli", "settings"], text=True,
                         capture_output=True, check=True,
                         env={"DOUBLELOCK_SIGNING_KEYS": K1, "PATH": ""}).stdout
    assert "k1" in out and "a" * 32 not in out


# -- lifecycle and user records -------------------------------------------------------

def test_a_signed_record_verifies_only_as_it_was_sent() -> None:
    ring = parse_key_ring(K1)
    header = sign_record("doublelock.sessions", b"S1", b"payload", ring)
    assert header.startswith(b"k1:")
    assert verify_record("doublelock.sessions", b"S1", b"payload", header, ring)
    for topic, key, value in (("doublelock.users", b"S1", b"payload"),
                              ("doublelock.sessions", b"S2", b"payload"),
                              ("doublelock.sessions", b"S1", b"payload!")):
        assert not verify_record(topic, key, value, header, ring)
    assert not verify_record("doublelock.sessions", b"S1", b"payload", None, ring)
    assert not verify_record("doublelock.sessions", b"S1", b"payload", b"k1:00", ring)
    other = parse_key_ring("k9:" + "a" * 32)
    assert not verify_record("doublelock.sessions", b"S1", b"payload", header, other)


def test_the_policy_can_require_signed_events() -> None:
    assert not load_policy().require_signed_events
    assert parse_policy(b"[events]\nrequire_signature = true\n").require_signed_events
    with pytest.raises(PolicyError, match="true or false"):
        parse_policy(b'[events]\nrequire_signature = "yes"\n')
