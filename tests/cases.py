"""The issues' cases, as scenario lines, shared by every test tier.

``CASES``: the end-to-end issue's eight, base date 2026-04-07. ``REVOCATION_CASES``:
the revocation issue's, base date 2026-05-12. UTC; absolute 8h, idle 30m, device
binding on unless said. An intent id decided a second time is expected under
``"<id>#2"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DAY = "2026-04-07"


def t(clock: str, day: str = DAY) -> str:
    """``"08:05"`` or ``"10:03:30"`` → an ISO-8601 UTC instant on the base date."""
    if clock.count(":") == 1:
        clock += ":00"
    return f"{day}T{clock}Z"


def policy(absolute: str = "8h", idle: str = "30m", actions: str = "") -> str:
    return f"""
[session]
absolute_timeout = "{absolute}"
idle_timeout = "{idle}"
[clock]
skew_tolerance = "2s"
intent_max_age = "30s"
[binding]
ip = "off"
device = "exact"
{actions}
"""


def created(sid: str, at: str, device: str = "D1", user: str = "U1",
            **extra: Any) -> dict[str, Any]:
    return {"type": "session.created", "at": at, "session_id": sid, "user_id": user,
            "auth_time": at, "auth_level": 2, "ip": "203.0.113.7", "device_id": device, **extra}


def event(kind: str, sid: str, at: str, **extra: Any) -> dict[str, Any]:
    return {"type": f"session.{kind}", "at": at, "session_id": sid, **extra}


def users_revoked(user: str, at: str, reason: str, **extra: Any) -> dict[str, Any]:
    return {"type": "user.sessions_revoked", "at": at, "user_id": user, "reason": reason,
            **extra}


def intent(iid: str, sid: str, action: str, at: str, device: str = "D1",
           user: str = "U1") -> dict[str, Any]:
    return {"type": "intent", "at": at, "intent_id": iid, "session_id": sid, "user_id": user,
            "action": action, "resource": f"res-{iid}", "ip": "203.0.113.7",
            "device_id": device, "channel": "ui", "app": "console", "attributes": {}}


@dataclass
class Case:
    name: str
    policy: str
    lines: list[dict[str, Any]]
    expected: dict[str, tuple[str, str]]  # intent_id (#n for the nth time) → (verdict, reason)
    rejected: list[int] = field(default_factory=list)  # 1-based lines to be rejected


def _case2() -> Case:
    lines = [created("S2", t("10:00")), event("activity", "S2", t("10:03"))]
    for second in range(3 * 60 + 30, 29 * 60 + 31, 30):  # 10:03:30 .. 10:29:30
        lines.append(event("heartbeat", "S2", t(f"10:{second // 60:02d}:{second % 60:02d}")))
    lines.append(intent("I2", "S2", "project.transfer_ownership", t("10:30")))
    return Case("2 heartbeats never extend", policy(idle="15m"), lines,
                {"I2": ("deny", "expired_idle")})


def _case3() -> Case:
    lines = [created("S3", t("07:00"))]
    for minute in range(10, 8 * 60 + 1, 10):  # every 10 minutes until 15:00
        at = t(f"{7 + minute // 60:02d}:{minute % 60:02d}")
        if at > t("14:59"):
            lines.append(intent("I3a", "S3", "report.view", t("14:59")))
        lines.append(event("activity", "S3", at))
    lines.append(intent("I3b", "S3", "role.edit", t("15:00:30")))
    return Case("3 activity never extends the absolute timeout", policy(), lines,
                {"I3a": ("allow", "ok"), "I3b": ("deny", "expired_absolute")})


REAUTH_REPO = """
[[actions]]
match = ["repo.delete"]
reauth_within = "10m"
"""


def _case7(auth_time: str, verdict: tuple[str, str], suffix: str) -> Case:
    sid = f"S7{suffix}"
    lines = [created(sid, t("13:00"))]
    lines += [event("activity", sid, t(at)) for at in ("13:25", "13:50", "14:15", "14:40")]
    lines.append(event("reauthenticated", sid, t("14:40"), auth_time=t(auth_time), auth_level=2))
    lines.append(intent(f"I7{suffix}", sid, "repo.delete", t("14:41")))
    return Case(f"7{suffix} re-auth freshness is measured from auth_time",
                policy(actions=REAUTH_REPO), lines, {f"I7{suffix}": verdict})


CASES: list[Case] = [
    Case("1 use after logout", policy(), [
        created("S1", t("08:00")),
        event("activity", "S1", t("08:05")),
        event("logged_out", "S1", t("08:20")),
        intent("I1", "S1", "workflow.delete", t("08:21")),
    ], {"I1": ("deny", "revoked")}),
    _case2(),
    _case3(),
    Case("4 absolute timeout without expires_at", policy(absolute="24h"), [
        created("S4", "2026-04-07T06:00:00Z"),
        intent("I4", "S4", "account.delete", "2026-04-08T06:00:01Z"),
    ], {"I4": ("deny", "expired_absolute")}),
    Case("5 one hour absolute, exactly at the boundary", policy(absolute="1h"), [
        created("S5", t("12:00")),
        event("activity", "S5", t("12:25")),
        event("activity", "S5", t("12:50")),
        intent("I5a", "S5", "invoice.send", t("12:59:59")),
        intent("I5b", "S5", "invoice.send", t("13:00:00")),
    ], {"I5a": ("allow", "ok"), "I5b": ("deny", "expired_absolute")}),
    Case("6 a timestamp without offset is malformed", policy(absolute="2h", idle="15m"), [
        created("S6", "2026-04-07T09:00:00Z"),
        event("activity", "S6", "2026-04-07T09:20:00"),
        intent("I6", "S6", "project.archive", "2026-04-07T09:30:00Z"),
    ], {"I6": ("deny", "expired_idle")}, rejected=[2]),
    _case7("13:00", ("step_up", "reauth_required"), "a"),
    _case7("14:40", ("allow", "ok"), "b"),
    Case("8 device binding, then logout", policy(), [
        created("S8", t("16:00")),
        event("activity", "S8", t("16:10"), device_id="D1"),
        intent("I8a", "S8", "data.export", t("16:12"), device="D2"),
        event("logged_out", "S8", t("16:15")),
        intent("I8b", "S8", "data.export", t("16:16"), device="D2"),
    ], {"I8a": ("deny", "context_mismatch"), "I8b": ("deny", "revoked")}),
]


def occurrence(intent_id: str, n: int) -> str:
    """The expected-decision key of the nth decision for ``intent_id``."""
    return intent_id if n == 1 else f"{intent_id}#{n}"


DAY2 = "2026-05-12"


def t2(clock: str) -> str:
    return t(clock, DAY2)


# Two session ids whose keys murmur2 to different partitions of 4 (checked in a test).
CASE_R4_SESSIONS = ("R4a", "R4b")

REVOCATION_CASES: list[Case] = [
    Case("R1 a rotated id never acts again; the new id carries the login on", policy(), [
        created("R1-S0", t2("09:00"), device="D2"),
        event("reauthenticated", "R1-S0", t2("09:05"), auth_time=t2("09:05"), auth_level=2,
              device_id="D1"),
        event("rotated", "R1-S0", t2("09:05"), new_session_id="R1-S1"),
        intent("R1a", "R1-S0", "project.delete", t2("09:06"), device="D2"),
        intent("R1b", "R1-S1", "project.delete", t2("09:06"), device="D1"),
        intent("R1c", "R1-S1", "project.delete", t2("09:06"), device="D2"),
    ], {"R1a": ("deny", "revoked"), "R1b": ("allow", "ok"),
        "R1c": ("deny", "context_mismatch")}),
    Case("R2 a repeated intent id is a duplicate, never a second allow", policy(), [
        created("R2-S", t2("09:00")),
        intent("T1", "R2-S", "payments.transfer", t2("09:10:00.000")),
        intent("T1", "R2-S", "payments.transfer", t2("09:10:00.400")),
    ], {"T1": ("allow", "ok"), "T1#2": ("deny", "duplicate_intent")}),
    Case("R4 a password reset kills the user's sessions on every partition", policy(), [
        created(CASE_R4_SESSIONS[0], t2("10:40"), user="U4"),
        created(CASE_R4_SESSIONS[1], t2("10:50"), user="U4", device="D2"),
        users_revoked("U4", t2("11:00"), "password_reset"),
        intent("R4a", CASE_R4_SESSIONS[0], "account.delete", t2("11:00:01"), user="U4"),
        intent("R4b", CASE_R4_SESSIONS[1], "account.delete", t2("11:00:01"), device="D2",
               user="U4"),
        created("R4c", t2("11:02"), user="U4"),
        intent("R4c", "R4c", "account.delete", t2("11:02:30"), user="U4"),
    ], {"R4a": ("deny", "revoked"), "R4b": ("deny", "revoked"), "R4c": ("allow", "ok")}),
    Case("R4x the session that reset the password lives on, under its new id too", policy(), [
        created("R4x-S", t2("10:45"), user="U4x"),
        created("R4x-T", t2("10:45"), user="U4x"),
        users_revoked("U4x", t2("11:00"), "password_reset", except_session_id="R4x-S"),
        event("rotated", "R4x-S", t2("11:00"), new_session_id="R4x-S2"),
        intent("R4xa", "R4x-S2", "account.delete", t2("11:00:01"), user="U4x"),
        intent("R4xb", "R4x-T", "account.delete", t2("11:00:01"), user="U4x"),
    ], {"R4xa": ("allow", "ok"), "R4xb": ("deny", "revoked")}),
    Case("R5 a child of a revoked parent is born revoked", policy(), [
        created("R5-P", t2("11:00")),
        event("revoked", "R5-P", t2("12:00"), reason="admin"),
        created("R5-C", t2("12:05"), parent_session_id="R5-P"),
        intent("R5", "R5-C", "project.delete", t2("12:06")),
    ], {"R5": ("deny", "revoked")}),
    Case("R5x revoking a parent revokes its descendants", policy(), [
        created("R5x-P", t2("11:00")),
        created("R5x-C", t2("11:10"), parent_session_id="R5x-P"),
        created("R5x-G", t2("11:20"), parent_session_id="R5x-C"),
        intent("R5xa", "R5x-G", "project.delete", t2("11:30")),
        event("revoked", "R5x-P", t2("12:00"), reason="admin"),
        intent("R5xb", "R5x-G", "project.delete", t2("12:01")),
        intent("R5xc", "R5x-C", "project.delete", t2("12:01")),
    ], {"R5xa": ("allow", "ok"), "R5xb": ("deny", "revoked"), "R5xc": ("deny", "revoked")}),
]
ALL_CASES: list[Case] = CASES + REVOCATION_CASES
