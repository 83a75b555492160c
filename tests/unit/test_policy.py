"""The policy file: durations, parsing, validation, version and action rules."""

from __future__ import annotations

import dataclasses
import hashlib
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doublelock.errors import PolicyError
from doublelock.events import DAY, HOUR, MINUTE, SECOND, Intent, SessionCreated
from doublelock.policy import (
    DEFAULT_POLICY_PATH,
    MAX_DURATION,
    ActionRule,
    Policy,
    load_policy,
    parse_duration,
    parse_policy,
)
from doublelock.session import apply
from doublelock.verdict import decide
from schemas.codec import Codec
from workers.decide import decision_json

# The example policy of the issue (and of docs/POLICY.md).
EXAMPLE: Final = b"""\
[session]
absolute_timeout = "8h"   # from login, never extended by anything
idle_timeout = "30m"      # from the last `activity`; heartbeats never count

[clock]
skew_tolerance = "2s"
intent_max_age = "30s"    # live mode: an intent older than this when decided is stale

[binding]
ip = "exact"              # exact | prefix24 | off
device = "exact"          # exact | off

[decision]
ttl = "10s"               # an allow is valid for at most this long

[[actions]]
match = ["account.delete", "payments.*"]
reauth_within = "5m"      # measured from auth_time, never from when an event arrived
min_auth_level = 2
"""

UNITS: Final = {"ms": 1, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY}


def settings_of(policy: Policy) -> dict[str, object]:
    """Everything a policy says, without its version."""
    return {f.name: getattr(policy, f.name) for f in dataclasses.fields(policy)
            if f.compare and f.name != "version"}


def rejected(source: str) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(source.encode())
    return str(info.value)


# -- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "millis"),
    [("30s", 30 * SECOND), ("15m", 15 * MINUTE), ("8h", 8 * HOUR), ("1d", DAY),
     ("1h30m", 90 * MINUTE), ("250ms", 250), ("90s", 90 * SECOND), ("1d2h3m4s5ms",
     DAY + 2 * HOUR + 3 * MINUTE + 4 * SECOND + 5), ("0s", 0), ("007m", 7 * MINUTE)],
)
def test_parse_duration(text: str, millis: int) -> None:
    assert parse_duration(text) == millis


@pytest.mark.parametrize(
    "text",
    ["", "5", "5x", "-1s", "1.5h", " 5s", "5s ", "5 s", "s", "ms", "1H", "+1s", "1e3ms",
     "1h-30m", "30sec", "5min", "m5"],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_duration(text)


@pytest.mark.parametrize("value", [5, 1.5, None, ["5s"], True])
def test_parse_duration_rejects_non_strings(value: object) -> None:
    with pytest.raises(PolicyError):
        parse_duration(value)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(UNITS))),
                min_size=1, max_size=5))
def test_parse_duration_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    total = sum(n * UNITS[unit] for n, unit in parts)
    if total > MAX_DURATION:
        with pytest.raises(PolicyError, match="longer than 3650 days"):
            parse_duration(text)
    else:
        assert parse_duration(text) == total


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12))
def test_parse_duration_raises_nothing_but_policy_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except PolicyError:
        return
    assert isinstance(value, int) and value >= 0
    assert text and text[0].isdigit() and text[-1] in "smhd"


# -- the policy file --------------------------------------------------------------------


def test_the_issue_example_parses() -> None:
    policy = parse_policy(EXAMPLE)
    assert (policy.absolute_timeout, policy.idle_timeout) == (8 * HOUR, 30 * MINUTE)
    assert (policy.skew_tolerance, policy.intent_max_age) == (2 * SECOND, 30 * SECOND)
    assert (policy.ip_binding, policy.device_binding) == ("exact", "exact")
    assert policy.decision_ttl == 10 * SECOND
    assert policy.actions == (ActionRule(("account.delete", "payments.*"), 5 * MINUTE, 2),)
    assert policy.version == hashlib.sha256(EXAMPLE).hexdigest()[:16]


def test_everything_has_a_default() -> None:
    policy = parse_policy(b"")
    assert settings_of(policy) == settings_of(Policy())
    assert policy.actions == ()


def test_the_bundled_default_policy_loads() -> None:
    policy = load_policy()
    assert policy.version == hashlib.sha256(DEFAULT_POLICY_PATH.read_bytes()).hexdigest()[:16]
    assert (policy.absolute_timeout, policy.idle_timeout) == (8 * HOUR, 30 * MINUTE)
    assert (policy.ip_binding, policy.device_binding) == ("exact", "exact")
    assert policy.decision_ttl == 10 * SECOND
    assert len(policy.actions) >= 1
    assert all(rule.match for rule in policy.actions)
    assert load_policy(DEFAULT_POLICY_PATH) == policy


def test_load_policy_reads_a_file_and_reports_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(EXAMPLE)
    assert load_policy(path).version == parse_policy(EXAMPLE).version
    assert load_policy(str(path)).actions == parse_policy(EXAMPLE).actions
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "missing.toml")


def test_prefix24_and_off_are_accepted() -> None:
    policy = parse_policy(b'[binding]\nip = "prefix24"\ndevice = "off"\n')
    assert (policy.ip_binding, policy.device_binding) == ("prefix24", "off")
    assert parse_policy(b'[binding]\nip = "off"\n').ip_binding == "off"


@pytest.mark.parametrize(
    "source",
    [
        "[sesion]\nidle_timeout = \"5m\"\n",
        "[session]\nidle = \"5m\"\n",
        "[clock]\nskew = \"1s\"\n",
        "[binding]\nmac = \"exact\"\n",
        "[decision]\nttl = \"1s\"\nmax = \"2s\"\n",
        "timeout = \"5m\"\n",
        "[[actions]]\nmatch = [\"a\"]\nreauth = \"5m\"\n",
        "[[actions]]\nmatch = [\"a\"]\n[actions.extra]\nx = 1\n",
    ],
    ids=["section", "session-key", "clock-key", "binding-key", "decision-key", "top-level-key",
         "action-key", "action-subtable"],
)
def test_unknown_sections_and_keys_are_rejected(source: str) -> None:
    assert "unknown" in rejected(source)


@pytest.mark.parametrize(
    "source",
    [
        '[binding]\nip = "subnet"\n',
        '[binding]\nip = "prefix16"\n',
        '[binding]\nip = "EXACT"\n',
        '[binding]\ndevice = "prefix24"\n',
        "[binding]\nip = 1\n",
        "[binding]\ndevice = true\n",
        "[binding]\nip = []\n",
    ],
)
def test_bad_binding_choices_are_rejected(source: str) -> None:
    assert "must be one of" in rejected(source)


@pytest.mark.parametrize(
    "source",
    [
        '[session]\nabsolute_timeout = "8 hours"\n',
        "[session]\nidle_timeout = 30\n",
        '[clock]\nskew_tolerance = "-2s"\n',
        '[clock]\nintent_max_age = "0.5m"\n',
        '[decision]\nttl = ""\n',
        '[[actions]]\nmatch = ["a"]\nreauth_within = 300\n',
        '[[actions]]\nmatch = ["a"]\nreauth_within = "5x"\n',
    ],
)
def test_bad_durations_are_rejected(source: str) -> None:
    assert "duration" in rejected(source)


@pytest.mark.parametrize(
    "source",
    ['[session]\nabsolute_timeout = "0s"\n', '[session]\nidle_timeout = "0m"\n',
     '[decision]\nttl = "0ms"\n'],
)
def test_zero_timeouts_are_rejected(source: str) -> None:
    assert "longer than 0" in rejected(source)


@pytest.mark.parametrize(
    "source",
    [
        "[[actions]]\nreauth_within = \"5m\"\n",
        "[[actions]]\nmatch = []\n",
        '[[actions]]\nmatch = [""]\n',
        "[[actions]]\nmatch = [1]\n",
        '[[actions]]\nmatch = ""\n',
        '[[actions]]\nmatch = ["a"]\nmin_auth_level = 0\n',
        '[[actions]]\nmatch = ["a"]\nmin_auth_level = 4\n',
        '[[actions]]\nmatch = ["a"]\nmin_auth_level = "2"\n',
        '[[actions]]\nmatch = ["a"]\nmin_auth_level = 2.0\n',
        '[[actions]]\nmatch = ["a"]\nmin_auth_level = true\n',
        'actions = {match = ["a"]}\n',
        'actions = ["a"]\n',
        'session = "8h"\n',
    ],
    ids=["no-match", "empty-match", "empty-pattern", "number-pattern", "empty-string-match",
         "level-0", "level-4", "level-string", "level-float", "level-bool", "actions-table",
         "actions-strings", "section-not-table"],
)
def test_bad_action_rules_and_shapes_are_rejected(source: str) -> None:
    rejected(source)


def test_a_single_match_string_is_a_list_of_one() -> None:
    policy = parse_policy(b'[[actions]]\nmatch = "data.export"\nmin_auth_level = 3\n')
    assert policy.actions == (ActionRule(("data.export",), None, 3),)


@pytest.mark.parametrize("source", [b"[session\n", b"a = = 1\n", b"\xff\xfe[session]\n"])
def test_invalid_toml_or_utf8_is_a_policy_error(source: bytes) -> None:
    with pytest.raises(PolicyError, match="not valid TOML"):
        parse_policy(source)


# -- version --------------------------------------------------------------------------------


def test_version_is_the_hash_of_exactly_the_bytes() -> None:
    base = parse_policy(EXAMPLE)
    assert len(base.version) == 16 and int(base.version, 16) >= 0
    assert parse_policy(EXAMPLE).version == base.version
    assert parse_policy(EXAMPLE + b"\n").version != base.version
    assert parse_policy(EXAMPLE.replace(b"# exact | off", b"# only exact")).version != (
        base.version)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=20))
def test_a_comment_changes_the_version_and_nothing_else(comment: str) -> None:
    source = EXAMPLE + f"# {comment}\n".encode()
    policy, base = parse_policy(source), parse_policy(EXAMPLE)
    assert policy.version == hashlib.sha256(source).hexdigest()[:16]
    assert policy.version != base.version
    assert settings_of(policy) == settings_of(base)


# -- action rules -------------------------------------------------------------------------

RULES: Final = parse_policy(b"""
[[actions]]
match = ["account.delete", "payments.*", "role.*"]
reauth_within = "5m"
min_auth_level = 2

[[actions]]
match = ["*.delete", "*.publish", "data.export"]
reauth_within = "15m"
""")


@pytest.mark.parametrize(
    ("action", "rule"),
    [("payments.transfer", 0), ("payments.", 0), ("payments.a.b", 0), ("payment.x", None),
     ("payments", None), ("Payments.Transfer", 0), ("ACCOUNT.DELETE", 0), ("account.delete", 0),
     ("repo.delete", 1), ("blog.publish", 1), ("data.export", 1), ("data.exports", None),
     ("report.view", None), ("role.edit", 0), ("", None), (".delete", 1)],
)
def test_rule_for_is_the_first_match(action: str, rule: int | None) -> None:
    # Case-insensitive: an application treating Account.Delete as account.delete must not
    # thereby skip the step-up.
    expected = None if rule is None else RULES.actions[rule]
    assert RULES.rule_for(action) is expected
    assert RULES.rule_for(action) is expected  # cached: the same answer again


patterns = st.lists(st.text("aAb.*", min_size=1, max_size=4), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.lists(patterns, max_size=4), st.lists(st.text("aAb.", max_size=5), max_size=5))
def test_rule_for_agrees_with_a_first_match_scan(
    rules: list[list[str]], actions: list[str]
) -> None:
    policy = Policy(actions=tuple(ActionRule(tuple(p), min_auth_level=1) for p in rules))
    for action in actions * 2:  # twice: the cache must not change any answer
        expected = next((r for r in policy.actions
                         if any(fnmatchcase(action.lower(), p.lower()) for p in r.match)), None)
        assert policy.rule_for(action) is expected


def test_rule_for_stays_right_beyond_its_cache_bound() -> None:
    policy = Policy(actions=(ActionRule(("x.*",), min_auth_level=3),))
    for i in range(10_050):  # action names come from outside: the memo must stay bounded
        assert policy.rule_for(f"x.{i}") is policy.actions[0]
        assert policy.rule_for(f"y.{i}") is None
    assert len(getattr(policy, "_cache", ())) <= 10_000


def test_a_policy_derived_with_replace_uses_its_own_rules() -> None:
    strict = Policy(actions=(ActionRule(("payments.*",), min_auth_level=3),))
    assert strict.rule_for("payments.transfer") is strict.actions[0]
    relaxed = dataclasses.replace(strict, actions=())
    assert relaxed.rule_for("payments.transfer") is None
    stricter = dataclasses.replace(Policy(), actions=strict.actions)
    assert stricter.rule_for("payments.transfer") is strict.actions[0]


# -- durations no instant can hold ----------------------------------------------------------


@pytest.mark.parametrize("huge", ["3000000d", "99999999999999d"])
def test_a_duration_past_any_instant_is_rejected_or_harmless(huge: str) -> None:
    """An accepted policy must yield decisions that can be printed and sent."""
    source = (f'[session]\nabsolute_timeout = "{huge}"\nidle_timeout = "{huge}"\n'
              f'[decision]\nttl = "{huge}"\n[binding]\nip = "off"\ndevice = "off"\n').encode()
    try:
        policy = parse_policy(source)
    except PolicyError:
        return  # refusing such a policy is one acceptable fix
    login = 1_775_548_800_000  # 2026-04-07T08:00:00Z
    state = apply(None, SessionCreated("S1", login, "U1", login, 2, "ip", "D1"), policy)
    intent = Intent("I1", "S1", "U1", "a.b", "r", login + MINUTE, "ip", "D1", "ui", "app")
    decision = decide(state, intent, policy, login + MINUTE, live=False)
    assert decision.allowed
    assert decision_json(decision)["valid_until"]  # `doublelock decide` prints it
    assert Codec().decode(Codec().encode(decision)) == decision  # the worker sends it
