"""The developer command line of MyThoughts.

python -m devtools run                 # the whole system locally (what `make run` does)
python -m devtools seed                # (re)seed the demo users of a running system
python -m devtools load --thoughts N   # N generated thoughts and their authors' accounts
python -m devtools import-legacy ...   # copy the book's databases into ours
python -m devtools logs ID             # every service's log lines of one request or trace
python -m devtools observability generate  # rules, PrometheusRule, dashboards from code
python -m devtools gateway status      # the gateway's routes and servers (see devtools.gateway)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devtools import gateway, import_legacy, load, logs, observability
from devtools.run import default_var_dir, run
from devtools.seed import seed_demo
from devtools.stack import Ports, Stack


def _add_system_options(parser: argparse.ArgumentParser) -> None:
    defaults = Ports()
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=None,
        help="folder for keys, secrets and SQLite databases (default: ./var)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--thoughts-port", type=int, default=defaults.thoughts)
    parser.add_argument("--users-port", type=int, default=defaults.users)
    parser.add_argument("--frontend-port", type=int, default=defaults.frontend)
    parser.add_argument("--tasks-port", type=int, default=defaults.tasks)
    parser.add_argument(
        "--frontend-internal-port",
        type=int,
        default=defaults.frontend_internal,
        help="the frontend's metrics, docs and admin routes",
    )


def _stack(args: argparse.Namespace) -> Stack:
    return Stack(
        var_dir=(args.var_dir or default_var_dir()).resolve(),
        ports=Ports(
            args.thoughts_port,
            args.users_port,
            args.frontend_port,
            args.tasks_port,
            args.frontend_internal_port,
        ),
        host=args.host,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools", description="The developer command line of MyThoughts."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser(
        "run",
        help="run the whole system locally on SQLite (keys, migrations, demo data, all services)",
    )
    _add_system_options(run_parser)
    run_parser.add_argument("--no-seed", action="store_true", help="do not create the demo users")
    run_parser.add_argument(
        "--json-logs", action="store_true", help="show the services' JSON log lines untouched"
    )

    seed_parser = commands.add_parser("seed", help="create the demo users of a running system")
    _add_system_options(seed_parser)

    load_parser = commands.add_parser(
        "load",
        help="fill the users and thoughts databases with generated data (benchmarks)",
        description="Migrates both databases, creates the authors' accounts (one shared "
        "password) and adds generated thoughts until the table holds --thoughts of them. "
        "Safe to run again: it says what is there and adds only what is missing.",
    )
    load_parser.add_argument(
        "--var-dir", type=Path, default=None, help="folder of the default SQLite databases"
    )
    load.add_arguments(load_parser)

    import_parser = commands.add_parser(
        "import-legacy",
        help="copy the book's users and thoughts databases into ours (migrated to head)",
        description="Copies the book's user_model and thought_model into our users and "
        "thoughts databases: ids and times kept, passwords hashed with argon2id, texts indexed "
        "for search, sequences moved past the imported ids. Safe to run again (it says what is "
        "already there); --dry-run says what it would import and refuse.",
    )
    import_legacy.add_arguments(import_parser)

    logs_parser = commands.add_parser(
        "logs",
        help="every service's log lines of one request id or trace id, in time order",
        description="Finds the lines in the `make run` logs (var/logs/*.log), in saved "
        "`docker compose logs` or `kubectl logs` output, or on standard input (`-`).",
    )
    logs_parser.add_argument(
        "--var-dir", type=Path, default=None, help="folder of the `make run` logs (./var)"
    )
    logs.add_arguments(logs_parser)

    observability_parser = commands.add_parser(
        "observability",
        help="write (generate) or verify (check) the generated rules, PrometheusRule, dashboards",
    )
    observability_parser.add_argument("action", choices=["generate", "check"])

    gateway_parser = commands.add_parser(
        "gateway",
        help="the gateway at run time: status, weights, drain, ready, rolling-restart",
        description=gateway.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gateway.add_arguments(gateway_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "import-legacy":
        return import_legacy.main(args)
    if args.command == "gateway":
        return gateway.main(args)
    if args.command == "load":
        return load.main(args, (args.var_dir or default_var_dir()).resolve())
    if args.command == "logs":
        return logs.main(args, (args.var_dir or default_var_dir()).resolve())
    if args.command == "observability":
        return observability.main(args.action)
    stack = _stack(args)
    if args.command == "run":
        return run(stack, seed=not args.no_seed, json_logs=args.json_logs)
    if args.command == "seed":
        seed_demo(stack.url(stack.ports.users), stack.url(stack.ports.thoughts))
        return 0
    raise AssertionError(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
