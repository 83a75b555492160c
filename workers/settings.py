"""All configuration, from one frozen object built from the environment in one place.

Every setting has a default that runs on a laptop; ``doublelock settings`` prints them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from doublelock.errors import PolicyError
from doublelock.policy import parse_duration
from doublelock.signing import KeyRing, parse_key_ring


def _home_dir(env: str, fallback: str) -> Path:
    base = os.environ.get(env)
    return (Path(base) if base else Path.home() / fallback) / "doublelock"


@dataclass(frozen=True)
class Topics:
    intents: str
    sessions: str
    decisions: str
    deadletter: str
    users: str
    alerts: str

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        return cls(*(prefix + f.name for f in fields(cls)))


@dataclass(frozen=True)
class Settings:
    """Field ``x`` is read from ``DOUBLELOCK_X``; durations are written like ``250ms``."""

    bootstrap: str = ""  # empty means the local broker: 127.0.0.1:<kafka_port>
    topic_prefix: str = "doublelock."
    partitions: int = 4
    app_id: str = "doublelock-worker"
    policy: str = ""  # a policy file; empty means the bundled default policy
    data_dir: Path = field(default_factory=lambda: _home_dir("XDG_DATA_HOME", ".local/share"))
    cache_dir: Path = field(default_factory=lambda: _home_dir("XDG_CACHE_HOME", ".cache"))
    clickhouse_dsn: str = ""  # empty means chdb:///<data_dir>/clickhouse
    retention_days: int = 90  # ClickHouse keeps decisions and rejections this long; 0: for ever
    dashboard_port: int = 8600  # the worker serves the dashboard here; 0: any free port; -1: none
    dashboard_host: str = "127.0.0.1"
    alert_interval_ms: int = 60_000  # how often the detectors run; 0: never
    table_store: str = "auto"  # auto: rocksdb:// when rocksdict is installed, else memory://
    barrier_timeout_ms: int = 250
    grace_ms: int = 0  # a revoke appended up to this long after an intent still wins
    # Decision signing keys (doublelock/signing.py): inline, or a file; empty signs nothing.
    signing_keys: str = ""
    signing_keys_file: str = ""
    # The identity provider's keys for lifecycle and user events (policy [events]).
    event_keys: str = ""
    event_keys_file: str = ""
    flush_interval_ms: int = 500
    flush_rows: int = 1000
    max_payload_bytes: int = 64 * 1024
    report_interval_ms: int = 10_000
    kafka_version: str = "4.1.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "512m"
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"DOUBLELOCK_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            if f.name.endswith("_ms"):
                values[f.name] = parse_duration(raw) if not raw.isdigit() else int(raw)
            elif f.type == "int":
                values[f.name] = int(raw)
            elif f.type == "Path":
                values[f.name] = Path(raw).expanduser()
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __post_init__(self) -> None:
        if not self.bootstrap:
            object.__setattr__(self, "bootstrap", f"127.0.0.1:{self.kafka_port}")

    @property
    def topics(self) -> Topics:
        return Topics.with_prefix(self.topic_prefix)

    @property
    def dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{self.data_dir / 'clickhouse'}"

    @property
    def worker_dir(self) -> Path:
        return self.data_dir / "worker" / self.app_id

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"

    def key_ring(self) -> KeyRing | None:
        """The decision signing keys, or None when decisions go unsigned."""
        return _ring(self.signing_keys, self.signing_keys_file)

    def event_key_ring(self) -> KeyRing | None:
        """The keys lifecycle and user events are signed with, or None."""
        return _ring(self.event_keys, self.event_keys_file)

    def faust_store(self) -> str:
        if self.table_store != "auto":
            return self.table_store
        try:
            import rocksdict  # noqa: F401
        except ImportError:
            return "memory://"
        return "rocksdb://"


def _ring(inline: str, file: str) -> KeyRing | None:
    text = inline
    if file:
        try:
            text = Path(file).expanduser().read_text()
        except OSError as exc:
            raise PolicyError(f"cannot read {file}: {exc}") from exc
    return parse_key_ring(text) if text.strip() else None
