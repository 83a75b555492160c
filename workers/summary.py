"""The decision history read back from ClickHouse, as plain terminal tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from dashboards.store import Store, instant


def table(title: str, rows: Sequence[dict[str, Any]], out: TextIO) -> None:
    out.write(f"\n{title}\n")
    if not rows:
        out.write("  (none)\n")
        return
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    out.write("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + "\n")
    out.write("  " + "  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        cells = (str(row[c]).rjust(w) if isinstance(row[c], int) else str(row[c]).ljust(w)
                 for c, w in zip(columns, widths, strict=True))
        out.write("  " + "  ".join(cells) + "\n")


def print_summary(store: Store, out: TextIO, since: datetime | None = None,
                  limit: int = 5) -> None:
    since = since or instant(0)
    table("Decisions by verdict and reason", store.query("decisions_by_reason", since=since), out)
    for name, title in (("top_blocked_users", "Top blocked users"),
                        ("top_blocked_ips", "Top blocked source IPs"),
                        ("top_blocked_actions", "Top blocked actions")):
        table(title, store.query(name, since=since, limit=limit), out)
