"""The web dashboard: an aiohttp app served by the process that owns the store (the
worker, for chdb), so that its queries never need a second owner.

    GET /                           the dashboard
    GET /api/panels                 the panels: name, title, chart, parameters
    GET /api/panels/<name>?from=…&to=…&app=…&action=…&<parameter>=…
                                    one panel's rows, as JSON
    GET /api/filters?from=…&to=…    the apps and actions seen, for the filters

Times are ISO 8601 (``2026-05-12T10:00:00Z``) or epoch milliseconds; the range defaults
to the last 24 hours. Queries run in a thread: the worker's loop never waits on them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from dashboards.panels import BY_NAME, PANELS, Window, parameters
from dashboards.store import QUERIES, Store
from doublelock.errors import ServiceError

log = logging.getLogger(__name__)

STATIC: Final = Path(__file__).parent / "static"
CHART_JS: Final = STATIC / "vendor" / "chart.umd.min.js"
DEFAULT_RANGE: Final = timedelta(hours=24)


def parse_time(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    try:
        if text.isdigit():
            parsed = datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{text[:40]!r} is not a time (ISO 8601 or epoch ms)") from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if not 2000 <= parsed.year < 2100:
        raise ValueError(f"{text[:40]!r} is outside 2000..2100")
    return parsed


def window_of(query: Mapping[str, str]) -> Window:
    end = parse_time(query.get("to"), datetime.now(UTC))
    start = parse_time(query.get("from"), end - DEFAULT_RANGE)
    if start >= end:
        raise ValueError("from must be before to")
    return Window(start, end, query.get("app", ""), query.get("action", ""))


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=value.tzinfo or UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return float(value)
    return value


def panel_rows(store: Store, name: str, query: Mapping[str, str]) -> dict[str, Any]:
    """The JSON body of one panel (raises KeyError or ValueError on bad input)."""
    panel = BY_NAME[name]
    window = window_of(query)
    own = {k: v for k, v in query.items() if k not in ("from", "to", "app", "action")}
    records, elapsed_ms = store.timed_records(panel.sql, parameters(panel, window, own))
    return {"panel": name, "from": jsonable(window.start), "to": jsonable(window.end),
            "elapsed_ms": round(elapsed_ms, 1),
            "rows": [{k: jsonable(v) for k, v in r.items()} for r in records]}


class Dashboard:
    def __init__(self, store: Store, host: str, port: int) -> None:
        self.store, self.host, self.port = store, host, port
        self.runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.add_routes([
            web.get("/", self.index),
            web.get("/api/panels", self.panels),
            web.get("/api/panels/{name}", self.panel),
            web.get("/api/filters", self.filters),
            web.static("/static", STATIC),
        ])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        if not CHART_JS.exists():
            log.error("%s is missing: run `make assets`; the charts will not draw", CHART_JS)
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # the OS picked one
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("dashboard at %s", self.url)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def panels(self, request: web.Request) -> web.Response:
        return web.json_response([
            {"name": p.name, "title": p.title, "chart": p.chart, "about": p.about,
             "params": dict(p.params), "x": p.x, "series": p.series, "value": p.value}
            for p in PANELS])

    async def panel(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in BY_NAME:
            return web.json_response({"error": f"no panel {name!r}"}, status=404)
        return await self._answer(panel_rows, name, dict(request.query))

    async def filters(self, request: web.Request) -> web.Response:
        def values(store: Store, _: str, query: dict[str, str]) -> dict[str, Any]:
            window = window_of(query)
            found = store.records((QUERIES / "filter_values.sql").read_text(),
                                  {"from": window.start, "to": window.end})
            return {"apps": [r["value"] for r in found if r["kind"] == "app"],
                    "actions": [r["value"] for r in found if r["kind"] == "action"]}

        return await self._answer(values, "", dict(request.query))

    async def _answer(self, run: Any, name: str, query: dict[str, str]) -> web.Response:
        try:
            body = await asyncio.to_thread(run, self.store, name, query)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except ServiceError as exc:
            log.warning("dashboard query failed: %s", exc)
            return web.json_response({"error": "the query failed"}, status=503)
        return web.json_response(body, headers={"Cache-Control": "no-store"})


@contextmanager
def serving(store: Store, host: str = "127.0.0.1", port: int = 0) -> Iterator[Dashboard]:
    """The dashboard on an event loop of its own thread, for callers without one
    (tests, benchmarks); stopped on exit."""
    loop = asyncio.new_event_loop()
    dashboard = Dashboard(store, host, port)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(dashboard.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="dashboard", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise ServiceError("the dashboard did not start in 30 s")
    try:
        yield dashboard
    finally:
        asyncio.run_coroutine_threadsafe(dashboard.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
