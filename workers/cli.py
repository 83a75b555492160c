"""The ``doublelock`` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace

from doublelock.errors import DoublelockError
from doublelock.policy import load_policy
from workers.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        bootstrap=getattr(args, "bootstrap", None),
        clickhouse_dsn=getattr(args, "clickhouse", None),
        policy=getattr(args, "policy", None),
        partitions=getattr(args, "partitions", None),
        topic_prefix=getattr(args, "topic_prefix", None),
    )


def _worker(args: argparse.Namespace) -> int:
    from workers.run_worker import run_worker

    run_worker(_settings(args))
    return 0


def _decide(args: argparse.Namespace) -> int:
    from workers.decide import run

    policy = load_policy(args.policy)
    if args.scenario == "-":
        run(sys.stdin, policy, sys.stdout, sys.stderr)
        return 0
    try:
        # surrogateescape: a line that is not UTF-8 is rejected alone, not the whole file
        source = open(args.scenario, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except OSError as exc:
        raise DoublelockError(f"cannot read scenario {args.scenario}: {exc.strerror}") from exc
    with source:
        run(source, policy, sys.stdout, sys.stderr)
    return 0


def _kafka(args: argparse.Namespace) -> int:
    from workers.broker import Broker

    broker = Broker(_settings(args))
    if args.action == "up":
        print(broker.up())
    elif args.action == "down":
        broker.down()
        print(broker.status())
    elif args.action == "fetch":
        print(broker.fetch())
    else:
        status = broker.status()
        print(status)
        return 0 if status.running else 3
    return 0


def _report(args: argparse.Namespace) -> int:
    from workers import report

    settings = _settings(args)
    try:
        w = report.window(args.since, args.start, args.end, args.app or "", args.action or "")
    except ValueError as exc:
        raise DoublelockError(str(exc)) from exc
    unknown = set(args.panel or ()) - set(report.REPORTED)
    if unknown:
        raise DoublelockError(f"no panel {', '.join(sorted(unknown))}; there are "
                         f"{', '.join(report.REPORTED)}")
    names = args.panel or report.REPORTED
    url = args.dashboard if args.dashboard is not None else (
        f"http://{settings.dashboard_host}:{settings.dashboard_port}/"
        if settings.dashboard_port > 0 else "")
    panels = report.from_dashboard(url, w, names) if url else None
    if panels is None:  # no worker serves it: read the store (chdb: nobody else may own it)
        panels = report.from_store(settings.dsn, w, names)
    if args.format == "json":
        print(report.as_json(panels, w))
    else:
        report.render(panels, w, sys.stdout, color=sys.stdout.isatty())
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from dashboards.serve import serve_alone

    settings = _settings(args)
    if args.port is not None:
        settings = replace(settings, dashboard_port=args.port)
    # Ctrl-C and SIGTERM stop it, even when started in the background (SIGINT ignored).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    asyncio.run(serve_alone(settings))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from workers.demo import run_demo

    return run_demo(_settings(args), users=args.users, seconds=args.seconds, rate=args.rate,
                    serve=not args.no_serve)


def _show_settings(args: argparse.Namespace) -> int:
    from dashboards.store import redacted
    from doublelock.policy import DEFAULT_POLICY_PATH

    settings = _settings(args)
    values: dict[str, object] = {
        k: v if isinstance(v, int) else str(v) for k, v in asdict(settings).items()}
    values["policy"] = settings.policy or str(DEFAULT_POLICY_PATH)
    values["clickhouse_dsn"] = redacted(settings.dsn)
    ring = settings.key_ring()  # secrets never printed: their ids only
    values["signing_keys"] = "" if ring is None else ", ".join(k for k, _ in ring.keys)
    print(json.dumps(values, indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="doublelock", description=__doc__)
    top.add_argument("--log-level", default=None, help="debug, info, warning (default info)")
    sub = top.add_subparsers(dest="command", required=True)

    def connected(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--bootstrap", help="Kafka bootstrap servers (DOUBLELOCK_BOOTSTRAP)")
        p.add_argument("--clickhouse", help="chdb:///path or http://host:8123/db "
                       "(DOUBLELOCK_CLICKHOUSE_DSN)")
        p.add_argument("--topic-prefix", help="topic name prefix (DOUBLELOCK_TOPIC_PREFIX)")
        p.add_argument("--partitions", type=int, help="partitions of new topics")
        return p

    w = connected(sub.add_parser("worker", help="run the enforcement worker"))
    w.add_argument("--policy", help="policy file (DOUBLELOCK_POLICY; default: bundled)")
    w.set_defaults(run=_worker)

    d = sub.add_parser("decide", help="replay a scenario file through the decision core")
    d.add_argument("--policy", help="policy file (default: bundled)")
    d.add_argument("scenario", help="JSON-lines scenario, or - for stdin")
    d.set_defaults(run=_decide)

    k = sub.add_parser("kafka", help="the local Kafka broker")
    k.add_argument("action", choices=["up", "down", "status", "fetch"])
    k.set_defaults(run=_kafka)

    r = connected(sub.add_parser("report", help="the dashboard's patterns in the terminal"))
    r.add_argument("--since", help="how far back, like 1h, 24h, 7d (default 24h)")
    r.add_argument("--from", dest="start", help="start, ISO 8601 (instead of --since)")
    r.add_argument("--to", dest="end", help="end, ISO 8601 (default now)")
    r.add_argument("--app", help="only this app")
    r.add_argument("--action", help="only this action")
    r.add_argument("--panel", action="append", help="only this panel (repeatable)")
    r.add_argument("--format", choices=["table", "json"], default="table")
    r.add_argument("--dashboard", help="a dashboard URL to read from (default: the "
                   "worker's, when it answers; '' reads the store itself)")
    r.set_defaults(run=_report)

    b = connected(sub.add_parser("dashboard", help="serve the dashboard over a store "
                                 "no worker owns (a ClickHouse server, or chdb at rest)"))
    b.add_argument("--port", type=int, help="default DOUBLELOCK_DASHBOARD_PORT (8600)")
    b.set_defaults(run=_dashboard)

    m = connected(sub.add_parser("demo", help="broker, worker and realistic traffic, end to end"))
    m.add_argument("--users", type=int, default=200, help="size of the user population")
    m.add_argument("--seconds", type=float, default=20.0, help="how long to send traffic")
    m.add_argument("--rate", type=float, default=40.0, help="stories started per second")
    m.add_argument("--no-serve", action="store_true",
                   help="stop at the end instead of serving the dashboard until Ctrl-C")
    m.set_defaults(run=_demo)

    sub.add_parser("settings", help="print the effective settings").set_defaults(
        run=_show_settings)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    level = (args.log_level or Settings.from_env().log_level).upper()
    if args.command != "worker":  # Faust configures logging for the worker itself
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        return int(args.run(args))
    except DoublelockError as exc:
        print(f"doublelock: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `doublelock decide ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
