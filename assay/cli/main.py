"""The ``assay`` command: run the server and workers, manage users, send files, read results.

Client commands (``ingest``, ``listen``, ``submit``) talk to a server when ``--server`` is given;
without it they work on the data directory directly, so they work whether or not a server runs
(analysis happens once ``assay serve`` or ``assay worker`` is running).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from assay.cli.common import CliError
from assay.config import ConfigError, Settings, load_settings

log = logging.getLogger("assay")

# Modules that add sub-commands: each has ``register(subparsers, common, client)`` and sets
# ``handler=`` on its parsers (a function of (args, settings) returning the exit code).
EXTENSIONS: tuple[str, ...] = ("assay.cli.intel",)


def _bounded(low: int, high: int | None = None) -> Any:
    """An argparse type: a whole number from ``low`` to ``high``, or a one-line usage error."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if number < low or (high is not None and number > high):
            wanted = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{number} must be {wanted}")
        return number

    return parse


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS, help="where the database and files live (./data)")
    common.add_argument("--config", default=argparse.SUPPRESS, help="a config.ini with your settings")
    return common


def _client_options() -> argparse.ArgumentParser:
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("--server", default=os.environ.get("ASSAY_SERVER"), help="server URL; omit to work locally")
    client.add_argument("--user", default=os.environ.get("ASSAY_USER", "admin"))
    client.add_argument("--apikey", default=os.environ.get("ASSAY_APIKEY"), help="KEYNAME:SECRET")
    client.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    return client


def build_parser() -> argparse.ArgumentParser:
    common, client = _common(), _client_options()
    parser = argparse.ArgumentParser(prog="assay", parents=[common], description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="log more and show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common], help="start the API server (and embedded workers)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=_bounded(1, 65535))
    serve.add_argument("--tls-cert")
    serve.add_argument("--tls-key")
    serve.add_argument(
        "--workers", type=_bounded(0, 64), help="embedded worker processes (default from [queue] workers)"
    )

    worker = commands.add_parser("worker", parents=[common], help="run analysis workers")
    worker.add_argument(
        "-c",
        "--concurrency",
        type=_bounded(1, 64),
        default=2,
        help="Celery worker processes, one analysis thread each (scale-out mode)",
    )
    worker.add_argument("--embedded", action="store_true", help="poll the database instead of using Celery")
    worker.add_argument("--worker-id", default=None)
    worker.add_argument("--supervisor-pid", type=int, default=None, help=argparse.SUPPRESS)

    user = commands.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", parents=[common], help="add a user")
    add.add_argument("name")
    add.add_argument("--role", choices=("viewer", "submitter", "intel_writer", "admin"), default="submitter")
    add.add_argument("--classification", help="the user's clearance, e.g. TLP:AMBER (default: the lowest level)")
    add.add_argument("--group", action="append", help="a group the user belongs to (REL TO); repeat for more")
    add.add_argument("--password", help="for web logins; API keys need none")
    user.add_parser("list", parents=[common], help="list users")

    apikey = commands.add_parser("apikey", help="manage API keys").add_subparsers(dest="action", required=True)
    create = apikey.add_parser("create", parents=[common], help="make a key; prints KEYNAME:SECRET last")
    create.add_argument("name")
    create.add_argument("keyname")

    ingest = commands.add_parser("ingest", parents=[common, client], help="ingest files and directories")
    ingest.add_argument("paths", nargs="+")
    ingest.add_argument("--nq", help="notification queue for the results")
    ingest.add_argument("--priority", type=int)
    ingest.add_argument("--ignore-cache", action="store_true")

    listen = commands.add_parser("listen", parents=[common, client], help="print results as they arrive")
    listen.add_argument("queue")
    listen.add_argument("--count", type=_bounded(1), help="exit after this many messages")
    listen.add_argument("--timeout", type=float, help="give up after this many seconds without a message")

    submit = commands.add_parser("submit", parents=[common, client], help="submit one file")
    submit.add_argument("file")
    submit.add_argument("--wait", action="store_true", help="wait for the result and print it")
    submit.add_argument("--timeout", type=float, default=600.0)

    safelist = commands.add_parser("safelist", help="known-good hashes and indicators").add_subparsers(
        dest="action", required=True
    )
    add_safe = safelist.add_parser("add", parents=[common], help="safelist hashes or indicators")
    add_safe.add_argument("values", nargs="+")
    add_safe.add_argument("--kind", help="md5, sha1, sha256, domain, ip, uri, email (guessed when omitted)")
    add_safe.add_argument("--source", default="cli")
    add_safe.add_argument("--reason", default="")
    import_safe = safelist.add_parser("import", parents=[common], help="import hashes from a CSV (e.g. NSRL)")
    import_safe.add_argument("csv")
    import_safe.add_argument("--source", default="import")
    remove_safe = safelist.add_parser("remove", parents=[common], help="take values off the safelist")
    remove_safe.add_argument("values", nargs="+")
    remove_safe.add_argument("--kind")
    list_safe = safelist.add_parser("list", parents=[common], help="print the safelist")
    list_safe.add_argument("--kind")

    yara = commands.add_parser("yara", help="YARA rule sets").add_subparsers(dest="action", required=True)
    add_yara = yara.add_parser("add", parents=[common], help="add or replace a rule set from a file")
    add_yara.add_argument("name")
    add_yara.add_argument("file")
    yara.add_parser("list", parents=[common], help="list rule sets")
    remove_yara = yara.add_parser("remove", parents=[common], help="remove a rule set")
    remove_yara.add_argument("name")

    db = commands.add_parser("db", help="database maintenance").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", parents=[common], help="apply migrations")
    for module_name in EXTENSIONS:
        module = importlib.import_module(module_name)
        module.register(commands, common, client)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.debug else logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        from assay.cli import commands

        handler = getattr(commands, f"cmd_{args.command}")
    try:
        return int(handler(args, settings_from(args)) or 0)
    except (CliError, ConfigError) as exc:
        print(f"assay: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"assay: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
