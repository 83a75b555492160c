"""The Grafana dashboard, made from the panels' SQL files (the one source of truth):

    python -m dashboards.grafana > dashboards/grafana/dashboards/doublelock.json

for the official ClickHouse data source (grafana-clickhouse-datasource). Query
parameters become Grafana's: the time range its ``$__fromTime_ms`` / ``$__toTime_ms``,
``app`` and ``action`` two text-box variables (empty: all), the time bucket
``$__interval_s``, and every other parameter its default, written in. A test checks that
the committed file is what this prints.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Final

from dashboards.panels import PANELS, Panel

DATASOURCE: Final = {"type": "grafana-clickhouse-datasource", "uid": "doublelock-clickhouse"}
PARAMETER: Final = re.compile(r"\{(\w+):([^{}]*(?:\([^()]*\))?)\}")


def grafana_sql(panel: Panel) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "from":
            return "$__fromTime_ms"
        if name == "to":
            return "$__toTime_ms"
        if name in ("app", "action"):
            return f"${{{name}:sqlstring}}"
        if name == "bucket":
            return "greatest($__interval_s, 60)"
        value = panel.params[name]
        return f"'{value}'" if isinstance(value, str) else str(int(value))

    body = "\n".join(line for line in panel.sql.splitlines() if not line.startswith("--"))
    return PARAMETER.sub(replace, body).strip()


def _wide(panel: Panel) -> bool:
    return panel.chart in ("kpis", "stacked", "heatmap") or panel.name == "attempts"


def _panel(panel: Panel, index: int, grid: dict[str, int]) -> dict[str, Any]:
    kinds = {"kpis": ("stat", "table"), "stacked": ("timeseries", "timeSeries"),
             "bars": ("barchart", "table"), "heatmap": ("table", "table"),
             "table": ("table", "table")}
    kind, query_type = kinds[panel.chart]
    spec: dict[str, Any] = {
        "id": index + 1, "type": kind, "title": panel.title, "description": panel.about,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "targets": [{"refId": "A", "datasource": DATASOURCE, "editorType": "sql",
                     "queryType": query_type, "rawSql": grafana_sql(panel)}],
        "options": {},
        "fieldConfig": {"defaults": {}, "overrides": []},
    }
    if kind == "timeseries":
        spec["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}}
        # One series per reason: the query's long rows, pivoted by Grafana.
        spec["transformations"] = [{"id": "prepareTimeSeries", "options": {"format": "multi"}}]
    if kind == "barchart":
        spec["options"] = {"xField": panel.x}
    if kind == "stat":
        spec["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                             "values": True}, "colorMode": "none"}
    return spec


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, half_open = 0, False  # two panels a row; wide ones take a row of their own
    for index, panel in enumerate(PANELS):
        h = 4 if panel.chart == "kpis" else 9
        if _wide(panel):
            y += 9 if half_open else 0
            grid, half_open = {"x": 0, "y": y, "w": 24, "h": h}, False
            y += h
        elif half_open:
            grid, half_open = {"x": 12, "y": y, "w": 12, "h": h}, False
            y += h
        else:
            grid, half_open = {"x": 0, "y": y, "w": 12, "h": h}, True
        panels.append(_panel(panel, index, grid))
    text = [{"type": "textbox", "name": name, "label": name, "query": "", "current":
             {"text": "", "value": ""}, "description": f"only this {name}; empty: all"}
            for name in ("app", "action")]
    return {
        "uid": "doublelock-blocked", "title": "doublelock · blocked attempts",
        "description": "Made by `python -m dashboards.grafana` from dashboards/panels/*.sql.",
        "tags": ["doublelock", "security"], "timezone": "utc", "schemaVersion": 39,
        "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": text}, "panels": panels,
    }


def main() -> None:
    json.dump(dashboard(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
