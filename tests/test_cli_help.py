"""Every command and option a user can type says what it does, and every command's help
lists its exit codes; `python -m ceustream` is the same program as `ceustream`."""

from __future__ import annotations

import argparse
import subprocess
import sys

from ceustream.engine.cli import COMMANDS, build_parser


def subparsers(ap: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out = {}
    for a in ap._actions:  # argparse keeps its subparsers there (no public accessor)
        if isinstance(a, argparse._SubParsersAction):
            for name, p in a.choices.items():
                out[name] = p
                out.update({f"{name} {k}": v for k, v in subparsers(p).items()})
    return out


def test_every_option_has_help_and_every_command_its_exit_codes():
    missing, no_codes = [], []
    for name, p in subparsers(build_parser()).items():
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not a.help or a.help == argparse.SUPPRESS:
                missing.append(f"{name}: {'/'.join(a.option_strings) or a.dest}")
        if "exit codes:" not in (p.epilog or ""):
            no_codes.append(name)
    assert not missing, missing
    assert not no_codes, no_codes
    assert set(COMMANDS) <= set(subparsers(build_parser()))


def test_python_m_ceustream_is_the_command():
    p = subprocess.run([sys.executable, "-m", "ceustream", "--version"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("ceustream "), p.stderr
    p = subprocess.run([sys.executable, "-m", "ceustream", "replay", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "exit codes:" in p.stdout and "--t0" in p.stdout
