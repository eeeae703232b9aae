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


# -- the CLI's edges (issue 22) -----------------------------------------------------------------
def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ceustream", *argv], capture_output=True,
                          text=True, timeout=120)


def test_quiet_and_verbose_work_before_the_subcommand(port):
    import logging

    from ceustream.engine.cli import main

    ep = f"tcp://127.0.0.1:{port}"
    assert main(["-q", "control", "status", "--endpoint", ep, "--timeout", "0.2"]) == 6
    assert logging.getLogger("ceustream").level == logging.WARNING
    assert main(["-vv", "control", "status", "--endpoint", ep, "--timeout", "0.2"]) == 6
    assert logging.getLogger("ceustream").level == logging.DEBUG
    # after the subcommand, as before
    assert main(["control", "status", "-q", "--endpoint", ep, "--timeout", "0.2"]) == 6
    assert logging.getLogger("ceustream").level == logging.WARNING


def test_a_usage_error_names_the_command_once():
    p = run_cli("replay", "exam.mp4", "--roi", "1,2,3")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("ceustream replay: error: ") and lines[0].count("ceustream") == 1


def test_control_without_an_engine_has_its_own_exit_code(port):
    p = run_cli("control", "status", "--endpoint", f"tcp://127.0.0.1:{port}", "--timeout", "0.3")
    assert p.returncode == 6, p.stderr
    assert p.stdout == ""
    assert p.stderr.strip() == (f"ceustream: error: no answer from tcp://127.0.0.1:{port} "
                                "within 0.3 s")
    help_text = run_cli("control", "--help").stdout
    assert "  6  no engine answered" in help_text


def test_a_refusal_names_the_command_once():
    from ceustream.engine.cli.control import refusal

    assert refusal("mark_injection", "mark_injection: t must be a finite number of seconds") \
        == "mark_injection: t must be a finite number of seconds"
    assert refusal("status", "unknown source 'x'") == "status: unknown source 'x'"


def test_only_commands_that_score_list_the_score_exit_codes():
    cmds = subparsers(build_parser())
    scoring = {"demo", "replay", "run", "qa", "journal"}
    for name in COMMANDS:
        epilog = cmds[name].epilog
        if name in scoring:
            assert "final score produced" in epilog and "partial result" in epilog, name
        else:
            assert "final score" not in epilog and "partial result" not in epilog, name
            assert "    0  success" in epilog, name


def test_export_says_simulated_unless_told_otherwise():
    args = build_parser().parse_args(["export", "ck.pt", "--out", "m.onnx"])
    assert args.trained_on == "simulated"


def test_no_benchmark_help_begins_with_an_issue_number():
    """A benchmark's --help says what it measures, not which issue asked for it (issue 22:
    the capacity benchmark's began "Issue 13 benchmark")."""
    import re
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "benchmarks"
    mods = sorted(p.stem for p in bench.glob("*.py") if "ArgumentParser(" in p.read_text())
    assert "capacity" in mods and "live_latency" in mods
    for m in mods:
        p = subprocess.run([sys.executable, "-m", f"ceustream.benchmarks.{m}", "--help"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (m, p.stderr[-500:])
        # the description: the first line after the usage block
        desc = p.stdout.split("\n\n")[1] if "\n\n" in p.stdout else ""
        assert not re.match(r"\s*issue \d+", desc, re.I), (m, desc[:200])
