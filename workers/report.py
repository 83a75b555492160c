"""``doublelock report``: the dashboard's panels as terminal tables, or JSON.

The rows come from the process that owns the store when one serves the dashboard (a
running worker, for chdb: one owner at a time), else from the store itself.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from dashboards.panels import BY_NAME, PANELS, Window
from dashboards.store import Store
from dashboards.web import jsonable, panel_rows, parse_time
from doublelock.errors import ServiceError
from doublelock.policy import parse_duration

# The report leaves out the drill-down (it is the panels' evidence, row by row).
REPORTED = tuple(p.name for p in PANELS if p.name != "attempts")


def window(since: str | None, start: str | None, end: str | None, app: str = "",
           action: str = "") -> Window:
    """``since`` ("24h", "7d"), or ``start``/``end`` (ISO 8601)."""
    to = parse_time(end, datetime.now(UTC))
    frm = parse_time(start, to - timedelta(milliseconds=parse_duration(since or "24h")))
    if frm >= to:
        raise ValueError("the range is empty: from must be before to")
    return Window(frm, to, app, action)


def _query(w: Window) -> dict[str, str]:
    return {"from": jsonable(w.start), "to": jsonable(w.end), "app": w.app, "action": w.action}


def from_dashboard(url: str, w: Window, names: Iterable[str]) -> dict[str, Any] | None:
    """The panels from a running dashboard; None if none answers at ``url``."""
    found: dict[str, Any] = {}
    for name in names:
        target = f"{url.rstrip('/')}/api/panels/{name}?{urllib.parse.urlencode(_query(w))}"
        try:
            with urllib.request.urlopen(target, timeout=30) as answer:
                found[name] = json.load(answer)["rows"]
        except urllib.error.HTTPError as exc:
            raise ServiceError(f"{target}: {exc.code} {exc.read()[:200]!r}") from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if not found:
                return None  # nobody serves there: read the store itself
            raise
    return found


def from_store(dsn: str, w: Window, names: Iterable[str]) -> dict[str, Any]:
    try:
        store = Store(dsn)
    except ServiceError as exc:
        if "lock" in str(exc).lower():  # chdb: another process owns the store
            raise ServiceError(
                f"{exc}\nAnother process owns this store (a worker, or `doublelock "
                "dashboard`): ask its dashboard instead, with --dashboard URL.") from exc
        raise
    try:
        if store.sql("EXISTS TABLE decisions") != [(1,)]:
            raise ServiceError(f"no doublelock history in {store.dsn}: has a worker run on it?")
        return {name: panel_rows(store, name, _query(w))["rows"] for name in names}
    finally:
        store.close()


def render(panels: Mapping[str, list[dict[str, Any]]], w: Window, out: TextIO,
           color: bool = False) -> None:
    console = Console(file=out, width=160, force_terminal=color, no_color=not color)
    scope = "".join(f", {k} {v}" for k, v in (("app", w.app), ("action", w.action)) if v)
    console.print(f"[bold]doublelock report[/bold] {jsonable(w.start)} → {jsonable(w.end)}"
                  f"{scope}")
    for name, rows in panels.items():
        panel = BY_NAME[name]
        # Headed outside the table: a narrow table would wrap a long title.
        console.print(f"\n[bold]{panel.title}[/bold] ({len(rows)}): {panel.about}",
                      highlight=False)
        table = Table()
        if not rows:
            table.add_column("(nothing in this range)")
        else:
            for column in rows[0]:
                numeric = isinstance(rows[0][column], int | float)
                table.add_column(column.replace("_", " "), justify="right" if numeric else "left")
            for row in rows:
                table.add_row(*("-" if v is None else str(v) for v in row.values()))
        console.print(table)


def as_json(panels: Mapping[str, list[dict[str, Any]]], w: Window) -> str:
    return json.dumps({"from": jsonable(w.start), "to": jsonable(w.end), "app": w.app,
                       "action": w.action, "panels": panels}, indent=1)
