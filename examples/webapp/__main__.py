"""One command: the broker, a worker with the example's policy, and the web app.

    python -m examples.webapp [--port 8400]

Serves until Ctrl-C, then stops the worker (the broker keeps running:
``doublelock kafka down`` stops it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from doublelock.policy import load_policy
from examples.webapp.app import ExampleApp
from sdk import Doublelock, Lifecycle
from workers.broker import Broker
from workers.client import wait_until_deciding
from workers.settings import Settings
from workers.topics import ensure_topics

POLICY = Path(__file__).parent / "policy.toml"


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a request waits for its decision; others go on meanwhile


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve(app: ExampleApp, host: str = "127.0.0.1", port: int = 8400) -> WSGIServer:
    """Serve ``app`` in a background thread; ``server.server_port`` tells the port."""
    server = make_server(host, port, app, server_class=ThreadingServer,
                         handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.webapp")
    parser.add_argument("--port", type=int, default=8400)
    args = parser.parse_args()
    settings = Settings.from_env()
    print(f"Kafka: {Broker(settings).up()}", flush=True)
    ensure_topics(settings)
    log = settings.data_dir / "example-worker.log"
    print(f"starting a worker with {POLICY} (log: {log}) ...", flush=True)
    worker = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker"],
                              env={**os.environ, "DOUBLELOCK_POLICY": str(POLICY)},
                              stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_until_deciding(settings, worker)
        with Doublelock("example-webapp", settings) as dl, Lifecycle(settings) as lifecycle:
            server = serve(ExampleApp(dl, lifecycle, load_policy(POLICY)), port=args.port)
            print(f"\nthe example app: http://127.0.0.1:{server.server_port}/  "
                  "(alice / wonderland; Ctrl-C stops it)", flush=True)
            # Both stop it, even when started in the background (which ignores SIGINT).
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
            server.shutdown()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
