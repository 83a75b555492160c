"""Signed decisions: HMAC-SHA256 over a decision's canonical bytes, under a key id.

Anyone who can write to the decisions topic could otherwise forge an ``allow``. The
worker signs with the first key of its ring; a reader accepts a decision only if
its key id is in its ring and the signature matches. Rotation: add the new key
*after* the current one everywhere (readers accept both), then move it first in
the worker (it signs with it), then drop the old one once no decision signed with
it can still be acted on (``decision.ttl`` later).

Key rings are text, one key per entry, ``key_id:secret``, entries separated by
commas or new lines; secrets are at least 32 bytes (of text, or ``hex:`` / ``b64:``
encoded). They come from the environment or a file, never from code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass, replace
from typing import Final

from doublelock.errors import PolicyError
from doublelock.verdict import Decision

DOMAIN: Final = b"doublelock.decision.v1"
MIN_SECRET: Final = 32
# The fields a signature covers, in this order; the evidence is informative only.
SIGNED_FIELDS: Final = ("intent_id", "session_id", "user_id", "action", "verdict", "reason",
                        "decided_at", "valid_until", "policy_version", "redelivery",
                        "key_id", "max_auth_age_ms", "min_auth_level", "nonce")


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[tuple[str, bytes], ...]  # (key id, secret); the first one signs

    @property
    def signing_key_id(self) -> str:
        return self.keys[0][0]

    def secret(self, key_id: str) -> bytes | None:
        return next((secret for kid, secret in self.keys if kid == key_id), None)


def parse_key_ring(text: str) -> KeyRing:
    keys: list[tuple[str, bytes]] = []
    for entry in text.replace(",", "\n").splitlines():
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        key_id, sep, raw = entry.partition(":")
        if not sep or not key_id.strip():
            raise PolicyError("a signing key is written key_id:secret")
        secret = _secret(raw.strip())
        if len(secret) < MIN_SECRET:
            raise PolicyError(f"signing key {key_id.strip()!r} is shorter than "
                              f"{MIN_SECRET} bytes")
        if any(kid == key_id.strip() for kid, _ in keys):
            raise PolicyError(f"signing key id {key_id.strip()!r} appears twice")
        keys.append((key_id.strip(), secret))
    if not keys:
        raise PolicyError("the signing key ring is empty")
    return KeyRing(tuple(keys))


def _secret(raw: str) -> bytes:
    try:
        if raw.startswith("hex:"):
            return bytes.fromhex(raw[4:])
        if raw.startswith("b64:"):
            return base64.b64decode(raw[4:], validate=True)
    except ValueError as exc:
        raise PolicyError(f"a signing key is not valid {raw[:3]}") from exc
    return raw.encode()


def canonical(decision: Decision) -> bytes:
    """Every signed field, length-prefixed: no value can pass for another field."""
    parts = [DOMAIN]
    for name in SIGNED_FIELDS:
        value = getattr(decision, name)
        text = str(value.value if hasattr(value, "value") else value)
        parts.append(text.encode())
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def sign(decision: Decision, ring: KeyRing) -> Decision:
    unsigned = replace(decision, key_id=ring.signing_key_id, signature=b"")
    digest = hmac.new(ring.keys[0][1], canonical(unsigned), hashlib.sha256).digest()
    return replace(unsigned, signature=digest)


def verify(decision: Decision, ring: KeyRing) -> bool:
    """True only for a decision signed by a key of ``ring`` and unchanged since."""
    secret = ring.secret(decision.key_id)
    if secret is None or not decision.signature:
        return False
    expected = hmac.new(secret, canonical(replace(decision, signature=b"")),
                        hashlib.sha256).digest()
    return hmac.compare_digest(expected, decision.signature)


# -- lifecycle and user records, signed by the identity provider ----------------------

RECORD_DOMAIN: Final = b"doublelock.record.v1"
SIGNATURE_HEADER: Final = "doublelock-signature"


def _record_bytes(topic: str, key: bytes, value: bytes) -> bytes:
    parts = [RECORD_DOMAIN, topic.encode(), key, value]
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def sign_record(topic: str, key: bytes, value: bytes, ring: KeyRing) -> bytes:
    """The ``doublelock-signature`` header for a record: ``key_id:hex HMAC-SHA256``
    over the topic, the key and the value bytes (a record cannot move topic or key)."""
    key_id, secret = ring.keys[0]
    digest = hmac.new(secret, _record_bytes(topic, key, value), hashlib.sha256).hexdigest()
    return f"{key_id}:{digest}".encode()


def verify_record(topic: str, key: bytes, value: bytes, header: bytes | None,
                  ring: KeyRing) -> bool:
    if not header:
        return False
    key_id, _, digest = header.decode(errors="replace").partition(":")
    secret = ring.secret(key_id)
    if secret is None:
        return False
    expected = hmac.new(secret, _record_bytes(topic, key, value), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest)
