"""Detectors that publish what they find: bursts from one source, a context mismatch
followed by the user's other sessions, use after logout or revocation.

Every interval the detectors' panels run over the last ``LOOKBACK``; each row becomes
an alert whose id is fixed by detector, subject and window, so that it is published
once (the ``alerts`` table remembers, across restarts) and consumers can de-duplicate
by ``alert_id`` all the same.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from dashboards.panels import BY_NAME, DETECTORS, Panel, Window, parameters
from dashboards.store import Store, instant
from doublelock.events import MINUTE, Millis
from schemas.codec import Codec

log = logging.getLogger(__name__)

LOOKBACK: Final = 15 * MINUTE
RECORD: Final = "doublelock.Alert"
EVIDENCE_IDS: Final = 20
# Ids and values come from intents: cut, so that an alert always fits in a record.
MAX_TEXT: Final = 200


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    detector: str
    subject: str
    window_start: Millis
    window_end: Millis
    summary: str
    evidence: Mapping[str, str]
    intent_ids: tuple[str, ...] = field(default=())


def _ms(value: Any) -> Millis:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else int(value)


def alert_of(panel: Panel, row: Mapping[str, Any], window: Window) -> Alert:
    """The alert a detector's row stands for; its id is the same every time the same
    incident is seen again."""
    subject = str(row[panel.alert_key])
    start = _ms(window.start)
    if panel.name == "burst_sources":
        start = _ms(row["window_start"])
        end = start + int(BY_NAME[panel.name].params["window"]) * 1000
        summary = (f"{row['attempts']} blocked attempts from {row['scope']} {subject} across "
                   f"{row['users']} users ({row['reasons']})")
    elif panel.name == "hijack_followups":
        start = _ms(row["mismatch_at"])
        end = start + int(BY_NAME[panel.name].params["follow"]) * 1000
        summary = (f"user {subject}: context mismatch on {row['mismatched_session']} from "
                   f"{row['from_ip']}, then {row['followups']} attempts on "
                   f"{row['other_sessions']} other sessions")
    else:  # dead_session_use: one alert per user and app per lookback window
        start = _ms(row["last_attempt"]) // LOOKBACK * LOOKBACK
        end = start + LOOKBACK
        summary = (f"user {subject} ({row['app']}): {row['attempts']} attempts on "
                   f"{row['sessions']} dead sessions")
        subject = f"{subject}@{row['app']}"
    digest = hashlib.sha256(f"{panel.name}\0{subject}\0{start}".encode()).hexdigest()[:32]
    evidence = {k: "" if v is None else str(v)[:MAX_TEXT] for k, v in row.items()}
    return Alert(digest, panel.name, subject[:MAX_TEXT], start, end, summary[:4 * MAX_TEXT],
                 evidence)


def detect(store: Store, now: datetime) -> list[Alert]:
    """What the detectors find over the last LOOKBACK, alerts already published left out."""
    window = Window(now - timedelta(milliseconds=LOOKBACK), now)
    found: dict[str, Alert] = {}
    for panel in DETECTORS:
        for row in store.records(panel.sql, parameters(panel, window, panel.alert_params)):
            alert = alert_of(panel, row, window)
            found.setdefault(alert.alert_id, alert)
    if not found:
        return []
    sent = {r["alert_id"] for r in store.records(
        "SELECT alert_id FROM alerts WHERE alert_id IN {ids:Array(String)}",
        {"ids": list(found)})}
    return [_with_evidence(store, a, window) for a in found.values() if a.alert_id not in sent]


def _with_evidence(store: Store, alert: Alert, window: Window) -> Alert:
    filters: dict[str, Any] = {"limit": EVIDENCE_IDS}
    if alert.detector == "burst_sources":
        if alert.evidence.get("scope") != "ip":
            return alert  # a subnet: its addresses differ, the summary says enough
        filters["ip"] = alert.subject
    else:
        filters["user"] = alert.evidence["user_id"]
    attempts = BY_NAME["attempts"]
    rows = store.records(attempts.sql, parameters(attempts, window, filters))
    return Alert(alert.alert_id, alert.detector, alert.subject, alert.window_start,
                 alert.window_end, alert.summary, alert.evidence,
                 tuple(r["intent_id"][:MAX_TEXT] for r in rows))


def encode(codec: Codec, alert: Alert, detected_at: Millis) -> bytes:
    return codec.encode_record(RECORD, {
        "alert_id": alert.alert_id, "detector": alert.detector, "subject": alert.subject,
        "window_start": alert.window_start, "window_end": alert.window_end,
        "detected_at": detected_at, "summary": alert.summary,
        "evidence": dict(alert.evidence), "intent_ids": list(alert.intent_ids)})


def remember(store: Store, alerts: list[Alert], detected_at: Millis) -> None:
    store.insert_alerts([[a.alert_id, a.detector, a.subject, instant(a.window_start),
                          instant(detected_at), a.summary] for a in alerts])


async def publish(store: Store, codec: Codec, now: datetime,
                  send: Callable[[bytes, bytes], Awaitable[None]],
                  in_thread: Callable[..., Awaitable[Any]]) -> int:
    """Run the detectors and publish what is new; the count published. ``in_thread``
    runs the store's calls off the event loop (``asyncio.to_thread``)."""
    alerts: list[Alert] = await in_thread(detect, store, now)
    detected_at = _ms(now)
    sent = []
    for alert in alerts:
        try:
            await send(alert.subject.encode(), encode(codec, alert, detected_at))
        except Exception:  # this one is tried again next round; the others go on
            log.exception("alert %s for %r not published", alert.detector, alert.subject)
            continue
        sent.append(alert)
        log.warning("alert %s: %r", alert.detector, alert.summary)  # repr: no forged lines
    if sent:
        await in_thread(remember, store, sent, detected_at)
    return len(sent)
