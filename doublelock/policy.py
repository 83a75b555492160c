"""The policy file: timeouts, clock tolerances, context binding and action classes."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final, Literal

from doublelock.errors import PolicyError
from doublelock.events import DAY, HOUR, MINUTE, SECOND, Millis

IpBinding = Literal["exact", "prefix24", "off"]
DeviceBinding = Literal["exact", "off"]

_UNITS: Final = {"ms": 1, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY}
_DURATION: Final = re.compile(r"(\d+)(ms|s|m|h|d)")

DEFAULT_POLICY_PATH: Final = Path(__file__).with_name("default_policy.toml")


# Longer than any sane timeout; it keeps every instant derived from one printable.
MAX_DURATION: Final = 3650 * DAY


def parse_duration(text: str) -> Millis:
    """``"90s"``, ``"15m"``, ``"1h30m"``, ``"1d"`` → milliseconds."""
    if not isinstance(text, str) or not text or _DURATION.sub("", text) != "":
        raise PolicyError(f"{text!r} is not a duration such as 30s, 15m, 8h or 1d")
    total = sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))
    if total > MAX_DURATION:
        raise PolicyError(f"{text!r} is longer than 3650 days")
    return total


@dataclass(frozen=True, slots=True)
class ActionRule:
    """A class of dangerous actions and what it demands beyond a live session."""

    match: tuple[str, ...]
    reauth_within: Millis | None = None
    min_auth_level: int | None = None


@dataclass(frozen=True)
class Policy:
    absolute_timeout: Millis = 8 * HOUR
    idle_timeout: Millis = 30 * MINUTE
    skew_tolerance: Millis = 2 * SECOND
    intent_max_age: Millis = 30 * SECOND
    ip_binding: IpBinding = "exact"
    device_binding: DeviceBinding = "exact"
    decision_ttl: Millis = 10 * SECOND
    dedupe_window: Millis = DAY
    # Lifecycle and user events must carry a valid identity-provider signature.
    require_signed_events: bool = False
    actions: tuple[ActionRule, ...] = ()
    version: str = "builtin"
    # Not an init field: dataclasses.replace() must not hand a copy the old rules' cache.
    _cache: dict[str, ActionRule | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def rule_for(self, action: str) -> ActionRule | None:
        """The first ``[[actions]]`` entry whose patterns match, or None.

        Case-insensitive: an application that treats ``Account.Delete`` as
        ``account.delete`` must not thereby skip the step-up.
        """
        try:
            return self._cache[action]
        except KeyError:
            name = action.lower()
            rule = next(
                (r for r in self.actions
                 if any(fnmatchcase(name, p.lower()) for p in r.match)),
                None,
            )
            if len(self._cache) < 10_000:  # bounded: action names come from outside
                self._cache[action] = rule
            return rule


_SECTIONS: Final[Mapping[str, frozenset[str]]] = {
    "session": frozenset({"absolute_timeout", "idle_timeout"}),
    "clock": frozenset({"skew_tolerance", "intent_max_age"}),
    "binding": frozenset({"ip", "device"}),
    "decision": frozenset({"ttl", "dedupe_window"}),
    "events": frozenset({"require_signature"}),
}
_ACTION_KEYS: Final = frozenset({"match", "reauth_within", "min_auth_level"})


def _section(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise PolicyError(f"[{name}] must be a table")
    unknown = set(table) - _SECTIONS[name]
    if unknown:
        raise PolicyError(f"[{name}] has unknown keys: {', '.join(sorted(unknown))}")
    return table


def _action_rule(index: int, entry: Any) -> ActionRule:
    where = f"[[actions]] #{index + 1}"
    if not isinstance(entry, dict):
        raise PolicyError(f"{where} must be a table")
    unknown = set(entry) - _ACTION_KEYS
    if unknown:
        raise PolicyError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    patterns = entry.get("match")
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise PolicyError(f"{where}: match must be a non-empty list of action patterns")
    level = entry.get("min_auth_level")
    if level is not None and (type(level) is not int or not 1 <= level <= 3):
        raise PolicyError(f"{where}: min_auth_level must be 1, 2 or 3")
    within = entry.get("reauth_within")
    return ActionRule(
        match=tuple(patterns),
        reauth_within=None if within is None else parse_duration(within),
        min_auth_level=level,
    )


def _choice(value: Any, allowed: tuple[str, ...], name: str) -> Any:
    if value not in allowed:
        raise PolicyError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def parse_policy(source: bytes) -> Policy:
    """Build a Policy from TOML text; its version is a hash of exactly these bytes."""
    try:
        doc = tomllib.loads(source.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"not valid TOML: {exc}") from exc
    unknown = set(doc) - set(_SECTIONS) - {"actions"}
    if unknown:
        raise PolicyError(f"unknown sections: {', '.join(sorted(unknown))}")
    session, clock = _section(doc, "session"), _section(doc, "clock")
    binding, decision = _section(doc, "binding"), _section(doc, "decision")
    events = _section(doc, "events")
    require_signature = events.get("require_signature", False)
    if not isinstance(require_signature, bool):
        raise PolicyError("[events] require_signature must be true or false")
    defaults = Policy()

    def duration(table: Mapping[str, Any], key: str, default: Millis) -> Millis:
        return parse_duration(table[key]) if key in table else default

    actions = doc.get("actions", [])
    if not isinstance(actions, list):
        raise PolicyError("actions must be an array of tables ([[actions]])")
    policy = Policy(
        absolute_timeout=duration(session, "absolute_timeout", defaults.absolute_timeout),
        idle_timeout=duration(session, "idle_timeout", defaults.idle_timeout),
        skew_tolerance=duration(clock, "skew_tolerance", defaults.skew_tolerance),
        intent_max_age=duration(clock, "intent_max_age", defaults.intent_max_age),
        ip_binding=_choice(binding.get("ip", "exact"), ("exact", "prefix24", "off"), "ip"),
        device_binding=_choice(binding.get("device", "exact"), ("exact", "off"), "device"),
        decision_ttl=duration(decision, "ttl", defaults.decision_ttl),
        dedupe_window=duration(decision, "dedupe_window", defaults.dedupe_window),
        require_signed_events=require_signature,
        actions=tuple(_action_rule(i, entry) for i, entry in enumerate(actions)),
        version=hashlib.sha256(source).hexdigest()[:16],
    )
    if min(policy.absolute_timeout, policy.idle_timeout, policy.decision_ttl,
           policy.dedupe_window) <= 0:
        # Zero would make every session dead on arrival, every allow expired, or
        # every retried intent a second decision.
        raise PolicyError("absolute_timeout, idle_timeout, decision ttl and dedupe_window "
                          "must be longer than 0")
    return policy


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy file; None reads the bundled default policy."""
    target = Path(path) if path is not None else DEFAULT_POLICY_PATH
    try:
        return parse_policy(target.read_bytes())
    except OSError as exc:
        raise PolicyError(f"cannot read policy {target}: {exc}") from exc
