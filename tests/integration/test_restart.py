"""The changelog is the source of truth: a worker started on an empty data dir, in
the same consumer group, recovers every session before it decides anything."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from doublelock.events import Intent, LoggedOut, SessionCreated
from workers.client import DecisionReader, Publisher

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_state_survives_a_restart_on_an_empty_data_dir(start_worker: Any) -> None:
    first = start_worker()
    run = uuid.uuid4().hex[:6]
    alive, gone = f"alive-{run}", f"gone-{run}"
    publisher = Publisher(first.settings)
    at = now_ms()
    for sid in (alive, gone):
        publisher.lifecycle(SessionCreated(sid, at, "U1", at, 2, "192.0.2.7", "D1"))
    publisher.lifecycle(LoggedOut(gone, at + 1))
    publisher.flush()
    reader = DecisionReader(first.settings)
    check = Intent(f"before-{run}", gone, "U1", "report.view", "r", now_ms(), "192.0.2.7",
                   "D1", "ui", "console")
    publisher.intent(check)  # decided after the logout: the state is in the changelog
    publisher.flush()
    assert reader.wait_for([check.intent_id], 20)[check.intent_id].reason.value == "revoked"
    first.stop()

    second = start_worker(like=first)
    assert second.settings.data_dir != first.settings.data_dir
    intents = {
        sid: Intent(f"after-{sid}", sid, "U1", "report.view", "r", now_ms(), "192.0.2.7", "D1",
                    "ui", "console") for sid in (alive, gone)
    }
    for intent in intents.values():
        publisher.intent(intent)
    publisher.flush()
    got = reader.wait_for([i.intent_id for i in intents.values()], 20)
    publisher.close()
    reader.close()
    assert (got[f"after-{alive}"].verdict.value, got[f"after-{alive}"].reason.value) == (
        "allow", "ok")
    assert (got[f"after-{gone}"].verdict.value, got[f"after-{gone}"].reason.value) == (
        "deny", "revoked")
