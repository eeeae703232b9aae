"""The ``ceustream`` command: one module per subcommand (``add_parser`` + ``run``), shared
helpers in ``common``. Every error a user can cause is one line on stderr and a documented
exit code (each subcommand's ``--help`` lists its own); never a traceback unless --debug."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

from ceustream.engine.core import DISCLAIMER, __version__
from ceustream.engine.core.errors import EXIT_CODES, CeusError

from .common import Parser, add_output_options, setup_logging

log = logging.getLogger(__name__)

#: subcommand → module in this package (help order)
COMMANDS = {
    "demo": "demo", "replay": "replay", "run": "run", "control": "control",
    "overlay": "overlay", "qa": "qa", "simulate": "simulate", "journal": "journal",
    "keys": "keys", "train": "train", "export": "export", "engine": "engine",
    "install-plugin": "plugin", "adapt": "adapt", "plugin-path": "plugin_path",
    "schema": "schema", "listen": "listen",
}


def build_parser() -> argparse.ArgumentParser:
    epilog = "exit codes:\n" + "\n".join(f"  {k:>3}  {v}" for k, v in EXIT_CODES.items())
    ap = Parser(prog="ceustream", formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Streaming CEUS inference: HCC vs non-HCC from a 30-slot clip. "
                + DISCLAIMER, epilog=epilog)
    ap.add_argument("--version", action="version", version=f"ceustream {__version__}")
    add_output_options(ap, prefix="top_")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=Parser, metavar="COMMAND")
    for name, module in COMMANDS.items():
        import_module(f"{__name__}.{module}").add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        setup_logging(getattr(args, "verbose", 0) + args.top_verbose,
                      getattr(args, "quiet", False) or args.top_quiet)
        return import_module(f"{__name__}.{COMMANDS[args.cmd]}").run(args)
    except CeusError as e:
        if debug:
            import traceback

            traceback.print_exc()
        prog = getattr(e, "prog", "ceustream")
        print(f"{prog}: {'error: ' if e.exit_code != 4 else ''}{e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ceustream: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as e:  # a bug: one line, traceback only with --debug
        if debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else ""
        print(f"ceustream: internal error: {type(e).__name__}: {msg} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1
