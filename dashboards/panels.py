"""The dashboard's panels: one SQL file each (``dashboards/panels/<name>.sql``), the
single source for the web dashboard, ``doublelock report`` and the Grafana dashboard.

Every query takes ClickHouse query parameters, never formatted SQL: the time range
``from``/``to``, ``app`` and ``action`` ('' for all), and the panel's own (thresholds,
windows, a limit) with the defaults below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

PANEL_SQL: Final = Path(__file__).parent / "panels"
MAX_LIMIT: Final = 10_000  # rows a panel returns at most
MAX_SECONDS: Final = 31 * 86_400  # the longest window, bucket or threshold


@dataclass(frozen=True, slots=True)
class Panel:
    name: str
    title: str
    # How it is drawn: "kpis" (one row of figures), "stacked" (x, series, value),
    # "bars" (x, value), "heatmap" (weekday, hour, value) or "table".
    chart: str
    about: str
    params: Mapping[str, Any] = field(default_factory=dict)
    x: str = ""
    series: str = ""
    value: str = ""
    # Rows that a detector turns into alerts: which column is the subject of one, and
    # the parameters it alerts with (stricter than what the panel shows).
    alert_key: str = ""
    alert_params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sql(self) -> str:
        return (PANEL_SQL / f"{self.name}.sql").read_text()


PANELS: Final = (
    Panel("totals", "Totals", "kpis", "Intents in the range by verdict."),
    Panel("blocks_over_time", "Blocks over time, by reason", "stacked",
          "Every blocked attempt, stacked by its reason.", {"bucket": 300},
          x="time", series="reason", value="blocked"),
    Panel("verdict_ratio", "Allow / deny by app and action", "table",
          "Where refusals concentrate.", {"limit": 20}),
    Panel("burst_sources", "Bursts from one source", "table",
          "One IP or /24 refused across many users in a short window: credential or "
          "cookie stuffing.", {"window": 300, "min_attempts": 10, "min_users": 5, "limit": 20},
          alert_key="source"),
    Panel("hijack_sessions", "Sessions seen from several places", "table",
          "One session from several IPs or devices.", {"limit": 20}),
    Panel("hijack_followups", "Context mismatch, then the user's other sessions", "table",
          "After a mismatch, attempts on other sessions of the same user: several stolen "
          "sessions in one hand.", {"follow": 600, "limit": 20}, alert_key="user_id"),
    Panel("stale_tabs", "The stale-tab habit", "table",
          "Users and apps blocked again and again for idleness.",
          {"min_repeats": 3, "limit": 20}),
    Panel("stale_tab_delay", "How long past the idle timeout", "bars",
          "When stale tabs try again.", x="past_timeout", value="blocks"),
    Panel("dead_session_use", "Use after logout or revocation", "table",
          "Attempts on dead sessions, and how long they had been dead.",
          {"min_attempts": 1, "limit": 20}, alert_key="user_id",
          alert_params={"min_attempts": 3}),  # one late click is a habit, three a pattern
    Panel("step_up_friction", "Step-up friction", "table",
          "How often each action asks for a step-up, and how often an allowed retry "
          "follows (friction) rather than nothing (a stop).", {"retry_window": 300, "limit": 20}),
    Panel("heatmap", "Blocks by hour of the week (UTC)", "heatmap",
          "When blocks happen.", x="hour", series="weekday", value="blocked"),
    Panel("top_users", "Top users", "table", "Most blocked users.", {"limit": 10}),
    Panel("top_ips", "Top IPs", "table", "Most blocked IPs.", {"limit": 10}),
    Panel("top_devices", "Top devices", "table", "Most blocked devices.", {"limit": 10}),
    Panel("top_actions", "Top actions", "table", "Most blocked actions.", {"limit": 10}),
    Panel("attempts", "Blocked attempts", "table",
          "Each attempt with its full evidence.",
          {"user": "", "ip": "", "device": "", "session": "", "reason": "", "limit": 100}),
)
BY_NAME: Final = {p.name: p for p in PANELS}
DETECTORS: Final = tuple(p for p in PANELS if p.alert_key)


@dataclass(frozen=True, slots=True)
class Window:
    """What every panel is filtered by."""

    start: datetime
    end: datetime
    app: str = ""
    action: str = ""

    def params(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end, "app": self.app, "action": self.action}


NICE_BUCKETS: Final = (60, 300, 900, 1800, 3600, 10800, 21600, 86400)  # as app.js's


def bucket_for(window: Window) -> int:
    """The finest bucket (seconds) that splits the window into at most 300."""
    seconds = (window.end - window.start).total_seconds()
    return next((b for b in NICE_BUCKETS if seconds / b <= 300), NICE_BUCKETS[-1])


def parameters(panel: Panel, window: Window, overrides: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """The query parameters: the window, the panel's defaults, then ``overrides`` for
    the panel's own parameters only (anything else is refused)."""
    unknown = set(overrides or {}) - set(panel.params)
    if unknown:
        raise ValueError(f"{panel.name} takes no parameter {', '.join(sorted(unknown))}")
    values = {**window.params(), **panel.params}
    if "bucket" in panel.params:  # as many buckets as a chart can show
        values["bucket"] = bucket_for(window)
    for key, value in (overrides or {}).items():
        default = panel.params[key]
        values[key] = type(default)(value)  # "10" from a URL becomes 10
        if isinstance(default, int):
            low = 0 if key.startswith("min_") else 1  # a zero window or limit is no view
            high = MAX_LIMIT if key == "limit" else MAX_SECONDS
            if not low <= values[key] <= high:
                raise ValueError(f"{key}={values[key]} is not within {low}..{high}")
    return values
