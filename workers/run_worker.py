"""Runs the enforcement worker: topics, ClickHouse schema, then the Faust app."""

from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import replace

from dashboards.serve import attach
from dashboards.store import Store
from doublelock.policy import load_policy
from streams.app import build_app
from workers.settings import Settings
from workers.topics import changelogs_exist, ensure_topics

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    policy = load_policy(settings.policy or None)
    counts = ensure_topics(settings)
    # Existing topics decide: the table and the partition check follow them.
    settings = replace(settings, partitions=counts[settings.topics.intents])
    if settings.worker_dir.exists() and not changelogs_exist(settings):
        # The changelogs are the source of truth and the local store their cache: a
        # cache that outlived its broker's data would stop Faust's recovery cold.
        log.warning("no changelogs on %s for %s: removing the stale table cache %s",
                    settings.bootstrap, settings.app_id, settings.worker_dir)
        shutil.rmtree(settings.worker_dir)
    settings.worker_dir.parent.mkdir(parents=True, exist_ok=True)
    store = Store(settings.dsn)
    store.migrate(settings.retention_days)
    worker = build_app(settings, policy, store, users_partitions=counts[settings.topics.users])
    attach(worker.app, store, settings)  # the dashboard and the detectors: it owns the store
    log.info("doublelock worker %s: policy %s (%s), topics %s, ClickHouse %s",
             settings.app_id, settings.policy or "default", policy.version, counts, store.dsn)
    from faust.worker import Worker as FaustWorker

    # Faust owns the event loop, logging and signals from here; SIGTERM stops it cleanly.
    faust_worker = FaustWorker(worker.app, loglevel=settings.log_level, quiet=True)
    try:
        faust_worker.execute_from_commandline()
    finally:
        worker.sink.close()
        store.close()
        sys.stdout.flush()
