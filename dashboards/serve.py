"""The dashboard and the detectors, run inside the process that owns the store: the
worker attaches them to its Faust app (a task serves the web app, a timer publishes
alerts); ``doublelock dashboard`` runs them on their own for a store nobody else owns.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from dashboards import alerts
from dashboards.store import Store
from dashboards.web import Dashboard
from schemas.codec import Codec
from workers.settings import Settings

log = logging.getLogger(__name__)


def attach(app: Any, store: Store, settings: Settings) -> Dashboard | None:
    """Serve the dashboard and run the detectors as part of the Faust ``app``."""
    codec = Codec()
    dashboard = None
    if settings.dashboard_port >= 0:
        dashboard = Dashboard(store, settings.dashboard_host, settings.dashboard_port)

        @app.task  # type: ignore[untyped-decorator]
        async def serve_dashboard() -> None:
            try:
                await dashboard.start()
            except OSError as exc:  # the port is taken: enforcement goes on without it
                log.error("dashboard not served on %s:%d: %s", settings.dashboard_host,
                          settings.dashboard_port, exc)
                return
            try:
                await asyncio.Event().wait()  # until Faust cancels its tasks at stop
            finally:
                await dashboard.stop()

    if settings.alert_interval_ms > 0:
        topic = app.topic(settings.topics.alerts, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")

        async def send(key: bytes, value: bytes) -> None:
            # Waits for the broker: a refused record raises here, not later.
            await (await topic.send(key=key, value=value, force=True))

        @app.timer(settings.alert_interval_ms / 1000)  # type: ignore[untyped-decorator]
        async def publish_alerts() -> None:
            try:
                await alerts.publish(store, codec, datetime.now(UTC), send, asyncio.to_thread)
            except Exception:  # the next round tries again; enforcement goes on
                log.exception("detectors failed")

    return dashboard


async def serve_alone(settings: Settings) -> None:
    """The dashboard over a store of its own (no detectors: they publish from a worker)."""
    store = Store(settings.dsn)
    store.migrate(settings.retention_days)
    dashboard = Dashboard(store, settings.dashboard_host, max(settings.dashboard_port, 0))
    await dashboard.start()
    print(f"dashboard: {dashboard.url} (Ctrl-C stops it)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await dashboard.stop()
        store.close()
