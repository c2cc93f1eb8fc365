"""``assay intel ...``: run a job document, export and import threat intel, manage owners' members.

These commands run as the platform's operator, with the database's own credentials: they are not
held to the owner rule the API and batch worker apply (`assay.intel.owners`), and an export is of
everything unless ``--for-user`` names whose clearance it is made for.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from assay.config import Settings

JOB_KEYS = {
    "group": "group",
    "indicator": "indicator",
    "group_association": "group_association",
    "association": "association",
    "file_occurrence": "file_occurrence",
}
MAX_DOCUMENT = 1 << 30


def register(commands: Any, common: argparse.ArgumentParser, _client: argparse.ArgumentParser) -> None:
    intel = commands.add_parser("intel", help="the threat-intelligence store").add_subparsers(
        dest="action", required=True
    )
    process = intel.add_parser("process", parents=[common], help="run a Jobs or V2 batch JSON document")
    process.add_argument("document")
    process.add_argument("--owner", required=True)
    process.add_argument("--halt-on-error", action="store_true")
    process.add_argument("--delete", action="store_true", help="action Delete instead of Create")
    process.add_argument("--json", action="store_true", help="print the whole result as JSON")
    process.set_defaults(handler=cmd_process)
    export = intel.add_parser("export", parents=[common], help="export as STIX 2.1 or MISP")
    export.add_argument("--owner", required=True)
    export.add_argument("--format", choices=("stix", "misp"), default="stix")
    export.add_argument("--group", help="only this group (id, or xid within --owner) and its associations")
    export.add_argument("--submission", help="only what this submission published")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.add_argument("--for-user", help="only what this user's clearance may see, marked for them")
    export.set_defaults(handler=cmd_export)
    imported = intel.add_parser("import", parents=[common], help="import a STIX 2.1 bundle or a job document")
    imported.add_argument("file")
    imported.add_argument("--owner", required=True)
    imported.set_defaults(handler=cmd_import)
    _register_owner(intel, common)


def _register_owner(intel: Any, common: argparse.ArgumentParser) -> None:
    owner = intel.add_parser("owner", help="owners' members: the intel writers who may write an owner")
    actions = owner.add_subparsers(dest="owner_action", required=True)
    for name, text in (("add-member", "make USER a member of OWNER"), ("remove-member", "take USER off OWNER")):
        change = actions.add_parser(name, parents=[common], help=text)
        change.add_argument("owner")
        change.add_argument("user")
        change.set_defaults(handler=cmd_owner)
    listed = actions.add_parser("members", parents=[common], help="print OWNER's members")
    listed.add_argument("owner")
    listed.set_defaults(handler=cmd_owner)


def _engine(settings: Settings) -> Any:
    from assay.db.session import configure, get_engine, upgrade

    configure(settings)
    engine = get_engine(settings.database_url)
    upgrade(engine)
    return engine


def _read_json(path: str) -> Any:
    from assay.cli.common import CliError

    file = Path(path)
    if not file.is_file():
        raise CliError(f"{path}: no such file")
    if file.stat().st_size > MAX_DOCUMENT:
        raise CliError(f"{path}: larger than {MAX_DOCUMENT} bytes")
    try:
        return json.loads(file.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: not JSON ({exc})") from None


def print_result(result: Any, as_json: bool) -> int:
    data = result.to_dict()
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return int(result.exit_code)
    print(f"{'kind':18} {'submitted':>9} {'saved':>7} {'existing':>8} {'merged':>6} {'failed':>6} {'not_saved':>9}")
    for kind, counts in data["counts"].items():
        print(
            f"{kind:18} {counts['submitted']:>9} {counts['saved']:>7} {counts['existing']:>8} "
            f"{counts['merged']:>6} {counts['failed']:>6} {counts['not_saved']:>9}"
        )
    for error in data["errors"][:20]:
        print(f"error {error['code']} ({error['kind']}): {error['reason']}", file=sys.stderr)
    if len(data["errors"]) > 20:
        print(f"... and {len(data['errors']) - 20} more errors (use --json)", file=sys.stderr)
    print(f"exit code {result.exit_code}")
    return int(result.exit_code)


def cmd_process(args: argparse.Namespace, settings: Settings) -> int:
    from assay.cli.common import CliError
    from assay.intel import Job

    document = _read_json(args.document)
    if not isinstance(document, dict) or not any(key in document for key in JOB_KEYS):
        raise CliError(f"{args.document}: expected an object with any of {', '.join(JOB_KEYS)}")
    from assay.access.configured import engine_for

    try:
        job = Job(
            owner=args.owner,
            engine=_engine(settings),
            classification=engine_for(settings.classification),
            halt_on_error=args.halt_on_error,
            action="Delete" if args.delete else "Create",
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    for key, method in JOB_KEYS.items():
        items = document.get(key, [])
        if not isinstance(items, list):
            raise CliError(f"{args.document}: {key!r} must be a list")
        for item in items:
            getattr(job, method)(item)
    return print_result(job.process(), args.json)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from assay.cli.common import CliError
    from assay.intel import exchange

    engine = _engine(settings)
    reader = _reader(engine, settings, args.for_user) if args.for_user else None
    try:
        if args.group is not None:
            group: int | str = int(args.group) if args.group.isdigit() else args.group
            text = exchange.export_group(group, args.format, owner=args.owner, engine=engine, reader=reader)
        elif args.submission:
            sid = args.submission
            text = exchange.export_submission(sid, args.format, owner=args.owner, engine=engine, reader=reader)
        else:
            text = exchange.export_owner(args.owner, args.format, engine=engine, reader=reader)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.format} export to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _reader(engine: Any, settings: Settings, name: str) -> Any:
    """The reader an export for user `name` is made with: their clearance under this configuration."""
    from assay import users
    from assay.access import Clearance
    from assay.access.configured import engine_for
    from assay.access.visibility import Reader
    from assay.cli.common import CliError
    from assay.db.session import session_scope

    with session_scope(engine, readonly=True) as session:
        user = users.find_user(session, name)
        if user is None:
            raise CliError(f"no user named {name}")
        clearance = Clearance(user.classification, frozenset(user.groups or ()))
    return Reader(engine_for(settings.classification), clearance)


def cmd_owner(args: argparse.Namespace, settings: Settings) -> int:
    """``assay intel owner add-member|remove-member|members``: who may write an owner's intel."""
    from assay.cli.common import CliError
    from assay.intel import owners

    engine, platform = _engine(settings), settings.intel.owner
    try:
        with engine.begin() as conn:
            if args.owner_action == "add-member":
                done = owners.add_member(conn, args.owner, args.user, platform)
                print(f"{args.user} is {'now' if done else 'already'} a member of {args.owner.strip()}")
            elif args.owner_action == "remove-member":
                done = owners.remove_member(conn, args.owner, args.user)
                print(f"{args.user} {'is no longer' if done else 'was not'} a member of {args.owner.strip()}")
            else:
                for member in owners.members(conn, args.owner):
                    print(member)
    except owners.OwnerError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from assay.cli.common import CliError
    from assay.intel import exchange

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{args.file}: no such file")
    try:
        result = exchange.import_file(path, args.owner, engine=_engine(settings))
    except ValueError as exc:
        raise CliError(f"{args.file}: {exc}") from None
    return print_result(result, False)
