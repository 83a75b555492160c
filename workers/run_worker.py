"""Runs the enforcement worker: topics, ClickHouse schema, then the Faust app."""

from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import replace

from rocksdict import AccessType, Options, Rdict

from dashboards.serve import attach
from dashboards.store import Store
from doublelock.policy import load_policy
from streams.app import build_app
from workers.settings import Settings
from workers.topics import changelog_ends, ensure_topics

log = logging.getLogger(__name__)

# Where Faust's RocksDB store keeps each partition's changelog offset.
OFFSET_KEY = b"__faust\0offset__"


def stale_cache(settings: Settings) -> str | None:
    """Why the local table cache cannot be used, or None: a changelog is missing, or
    a partition's cache has read further than its changelog now holds (the broker's
    data was reset, then the topic made again)."""
    ends = changelog_ends(settings)
    if ends is None:
        return f"no changelogs on {settings.bootstrap} for {settings.app_id}"
    for path in settings.worker_dir.glob("**/tables/*-*.db"):
        table, _, partition = path.stem.rpartition("-")
        end = ends.get((table, int(partition))) if partition.isdigit() else None
        try:
            db = Rdict(str(path), options=Options(raw_mode=True),
                       access_type=AccessType.read_only())
            try:
                read = db.get(OFFSET_KEY)
            finally:
                db.close()
        except Exception as exc:  # unreadable: a cache is never worth a doubt
            return f"{path.name} cannot be read: {exc}"
        if read is not None and (end is None or int(read) >= end):
            return f"{path.name} has read to offset {int(read)}, its changelog ends at {end}"
    return None


def run_worker(settings: Settings) -> None:
    policy = load_policy(settings.policy or None)
    counts = ensure_topics(settings)
    # Existing topics decide: the table and the partition check follow them.
    settings = replace(settings, partitions=counts[settings.topics.intents])
    stale = stale_cache(settings) if settings.worker_dir.exists() else None
    if stale:
        # The changelogs are the source of truth and the local store their cache: a
        # cache ahead of its changelog would stop Faust's recovery cold.
        log.warning("removing the table cache %s (%s); state is recovered from the "
                    "changelogs", settings.worker_dir, stale)
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
