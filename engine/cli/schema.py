"""``ceustream schema [NAME]``: the v1 message schemas as a consumer needs them.

NAME (score, status, command) prints that message's bundled schema (every reference
inlined; score and status open to fields added within v1, commands strict); ``--out DIR``
writes all three; ``--path`` prints the folder of the installed schema files themselves."""

from __future__ import annotations

import json

from . import common

DESCRIPTION = """the v1 message schemas as a consumer needs them: NAME prints that message's
bundled JSON Schema (no $ref: every reference inlined), --out DIR writes all of them, --path
prints the folder of the installed schema files (which $ref each other by $id on
ceustream.invalid and so resolve only through a registry holding all four).

compatibility: within v1 fields are only ever added, never removed, renamed or given another
type or meaning; a consumer must ignore fields it does not know. The bundled score and status
schemas therefore allow unknown fields; the command schema is strict (the engine refuses
unknown keys)."""


def add_parser(sub) -> None:
    p = common.command(sub, "schema", "print the v1 message schemas (bundled, without $ref)",
                       description=DESCRIPTION)
    p.add_argument("name", nargs="?", choices=["score", "status", "command"], metavar="NAME",
                   help="score, status or command")
    p.add_argument("--out", metavar="DIR", help="write score/status/command.v1.json there")
    p.add_argument("--path", action="store_true",
                   help="print the folder of the installed schema files")


def run(args) -> int:
    from ceustream.engine.core.errors import InputError, UsageError
    from ceustream.engine.wire.schemas import bundle, schema_dir, write_bundled

    if args.path:
        print(schema_dir())
        return 0
    if args.out:
        try:
            for p in write_bundled(args.out):
                print(p)
        except OSError as e:
            raise InputError(f"--out {args.out}: cannot write there ({e.strerror})") from None
        return 0
    if not args.name:
        raise UsageError("give NAME (score, status or command), --out DIR or --path")
    print(json.dumps(bundle(args.name), indent=2, ensure_ascii=False))
    return 0
