"""A real single-node Apache Kafka broker (KRaft) for laptops, tests and CI.

The jars come from Maven Central through ``workers/broker/pom.xml`` and are cached
under the cache dir; data and logs live under ``<data_dir>/kafka``.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from doublelock.errors import ServiceError
from workers.settings import Settings

log = logging.getLogger(__name__)

_HERE = Path(__file__).with_name("broker")


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path

    def __str__(self) -> str:
        state = f"running (pid {self.pid})" if self.running else "stopped"
        return f"kafka {state} at {self.bootstrap}, data in {self.data_dir}"


class Broker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.libs = settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"
        self.home = settings.kafka_dir
        self.pid_file = self.home / "kafka.pid"
        self.bootstrap = f"127.0.0.1:{settings.kafka_port}"

    # -- fetching ---------------------------------------------------------
    def fetch(self) -> Path:
        """Resolve the broker's jars from Maven Central once; later calls are free."""
        done = self.libs.parent / ".complete"
        if done.exists():
            return self.libs
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise ServiceError("the Kafka broker needs java (17+) and mvn on PATH")
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=self._mkdir(self.libs.parent)))
        log.info("fetching org.apache.kafka:kafka_2.13:%s from Maven Central",
                 self.settings.kafka_version)
        command = [
            "mvn", "-q", "-B", "-f", str(_HERE / "pom.xml"), "dependency:copy-dependencies",
            f"-Dkafka.version={self.settings.kafka_version}",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise ServiceError(f"mvn could not fetch Kafka:\n{result.stdout}{result.stderr}")
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        done.touch()
        return self.libs

    # -- running ----------------------------------------------------------
    def status(self) -> BrokerStatus:
        pid = self._pid()
        return BrokerStatus(pid is not None, pid, self.bootstrap, self.home)

    def up(self, timeout: float = 90.0) -> BrokerStatus:
        """Start the broker unless it runs; return once it accepts connections."""
        if self._pid() is not None:
            self._wait_ready(timeout)
            return self.status()
        if _port_open(self.settings.kafka_port):
            raise ServiceError(f"port {self.settings.kafka_port} is taken by another process")
        libs = self.fetch()
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            self._java("kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                       "-c", str(config), "--ignore-formatted")
        out = open(self.home / "stdout.log", "ab")  # noqa: SIM115 (the child owns it)
        process = subprocess.Popen(
            self._java_command(libs, "kafka.Kafka", str(config)),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the CLI that started it
        )
        self.pid_file.write_text(str(process.pid))
        log.info("kafka starting (pid %s), data in %s", process.pid, self.home)
        self._wait_ready(timeout, process)
        return self.status()

    def down(self, timeout: float = 60.0) -> None:
        pid = self._pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    # -- internals --------------------------------------------------------
    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    @staticmethod
    def _mkdir(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _write_config(self) -> Path:
        s = self.settings
        data = self._mkdir(self.home / "data")
        self._mkdir(self.home / "logs")
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{s.kafka_controller_port}",
            "listeners": (f"PLAINTEXT://127.0.0.1:{s.kafka_port},"
                          f"CONTROLLER://127.0.0.1:{s.kafka_controller_port}"),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(s.partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        return path

    def _java_command(self, libs: Path, main: str, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.settings.kafka_heap}", f"-Xms{self.settings.kafka_heap}",
            "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={_HERE / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp", f"{libs}/*", main, *args,
        ]

    def _java(self, main: str, *args: str) -> None:
        result = subprocess.run(self._java_command(self.fetch(), main, *args),
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(f"{main} failed:\n{result.stdout}{result.stderr}")

    def _wait_ready(self, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                tail = (self.home / "stdout.log").read_text(errors="replace")[-4000:]
                raise ServiceError(f"kafka exited with {process.returncode}:\n{tail}")
            if _port_open(self.settings.kafka_port):
                try:
                    admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                             request_timeout_ms=5000)
                    admin.list_topics()
                    admin.close()
                    return
                except KafkaError:
                    pass
            time.sleep(0.5)
        raise ServiceError(f"kafka did not become ready on {self.bootstrap} in {timeout:.0f}s; "
                           f"see {self.home / 'logs' / 'server.log'}")


def _cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
