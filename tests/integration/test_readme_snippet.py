"""The README's "use it from your application" snippet works as written."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from doublelock.events import LoggedOut
from workers.client import Publisher

pytestmark = pytest.mark.integration

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_snippet_gets_an_allow(start_worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = start_worker()
    snippet = re.search(r"## Use it from your application.*?```python\n(.*?)```", README,
                        flags=re.S)
    assert snippet is not None
    for name in ("TOPIC_PREFIX", "BOOTSTRAP"):
        monkeypatch.setenv(f"DOUBLELOCK_{name}", str(getattr(worker.settings, name.lower())))
    # The snippet logs the session in itself (a fresh login at level 2: account.delete
    # needs a re-authentication within 5 min, and level 2).
    deleted: list[int] = []
    scope: dict[str, Any] = {"session_id": "readme-S", "user_id": "alice",
                             "client_ip": "198.51.100.20", "device_id": "L1",
                             "delete_account": deleted.append}
    try:
        exec(snippet.group(1), scope)
        assert deleted == [7] and "blocked" not in scope
        # The same subject after a logout: the body does not run.
        publisher = Publisher(worker.settings)
        publisher.lifecycle(LoggedOut("readme-S", time.time_ns() // 1_000_000)).get(timeout=10)
        publisher.close()
        scope["dl"].close()
        exec(snippet.group(1), scope)
        assert deleted == [7]
        assert (scope["decision"].verdict.value, scope["decision"].reason.value) == (
            "deny", "revoked")
    finally:
        if "dl" in scope:
            scope["dl"].close()
