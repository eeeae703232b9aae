"""The ``ceustream`` command. Every error a user can cause is one line on stderr and a
documented exit code (``ceustream --help`` lists them); never a traceback unless --debug."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from . import DISCLAIMER, __version__
from .errors import EXIT_CODES, CeusError, PartialResult, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(f"{self.prog}: {message}")


def _number(text: str, cast, what: str, lowest: float, strict: bool):
    """An argparse value of type ``cast``, above ``lowest`` (or at least it), else one line."""
    try:
        v = cast(text)
        if not math.isfinite(v):
            raise ValueError(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    if v < lowest or (strict and v == lowest):
        raise argparse.ArgumentTypeError(f"'{text}' must be {'>' if strict else '>='} {lowest:g}")
    return v


def _positive(text: str) -> float:
    return _number(text, float, "a number", 0, strict=True)


def _count(text: str) -> int:
    return _number(text, int, "a whole number", 1, strict=False)


def _seconds(text: str) -> float:
    return _number(text, float, "a number of seconds", 0, strict=False)


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        return _positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"'{text}' must be a number > 0 or 'max'") from None


class Progress:
    """Human progress on stderr; quiet with --json unless --verbose."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, line: str) -> None:
        if self.enabled:
            print(line, file=sys.stderr, flush=True)

    def score(self, s, session) -> None:
        if not self.enabled:
            return
        n = session.model.meta.frames
        st = session.status()
        nxt = ""
        if st["next_slot"] is not None:
            nxt = f" | next slot {st['next_slot'] + 1} due at {st['next_slot_due_s']:.1f} s"
        kind = f"FINAL {s.label}" if s.final else "provisional"
        if s.slot is None:
            kind = "partial (not final)"
        lat = f" | {s.latency_ms:.1f} ms" if s.latency_ms is not None else ""
        slot = f"slot {s.slot + 1:2d}/{n}" if s.slot is not None else f"slots {s.slots_filled}/{n}"
        print(f"{slot} | P(HCC) {s.score:.3f} {kind}{lat}{nxt}", file=sys.stderr, flush=True)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="settings file (TOML) over the defaults")
    p.add_argument("--model", help="ONNX model (default: the shipped 3D-CNN)")
    p.add_argument("--backend", default=None, choices=["auto", "onnxruntime", "tensorrt"],
                   help="inference backend (default from config: auto)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _add_zmq(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pub", help="ZeroMQ PUB endpoint (default tcp://127.0.0.1:5556)")
    p.add_argument("--no-publish", action="store_true", help="do not open the PUB socket")


def build_parser() -> argparse.ArgumentParser:
    epilog = "exit codes:\n" + "\n".join(f"  {k:>3}  {v}" for k, v in EXIT_CODES.items())
    ap = _Parser(prog="ceustream", formatter_class=argparse.RawDescriptionHelpFormatter,
                 description="Streaming CEUS inference: HCC vs non-HCC from a 30-slot clip. "
                 + DISCLAIMER, epilog=epilog)
    ap.add_argument("--version", action="version", version=f"ceustream {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    p = sub.add_parser("demo", help="simulate an exam, replay it through the real pipeline, "
                       "score, publish and draw the overlay")
    _add_common(p)
    _add_zmq(p)
    p.add_argument("--out", default=None, help="folder for the demo's files "
                   "(default ~/.cache/ceustream/demo)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    p.add_argument("--speed", type=_speed, default=8.0,
                   help="replay speed, a factor or 'max' (default 8: the exam in ~25 s)")
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay video")
    p.add_argument("--no-window", action="store_true",
                   help="no window even when there is a display (the MP4 is always written)")

    p = sub.add_parser("replay", help="score one recorded exam",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
    p.add_argument("file", help="the recording (any container/codec GStreamer decodes)")
    p.add_argument("--roi", required=True, help="X,Y,W,H in the recording's pixels")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--t0", type=_seconds, help="contrast arrival, seconds from the start")
    g.add_argument("--injection", type=_seconds,
                   help="injection time, seconds from the start; t0 is detected")
    p.add_argument("--speed", type=_speed, default=None, help="'max' (default) or a factor")
    p.add_argument("--seek", choices=["auto", "always", "never"], default=None,
                   help="seek to the slots (auto: at --speed max when the file allows)")
    p.add_argument("--exam", help="exam id (default: derived from the file's content)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (last line)")
    p.add_argument("--no-journal", action="store_true", help="do not journal the slots")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    _add_common(p)
    _add_zmq(p)
    from .commands import add_parsers

    add_parsers(sub, _add_common, _add_zmq, _seconds, _speed, _positive, _count)
    return ap


def _cfg(args) -> dict:
    from . import config

    cfg = config.load(getattr(args, "config", None))
    if getattr(args, "backend", None):
        cfg["model"]["backend"] = args.backend
    if getattr(args, "model", None):
        cfg["model"]["path"] = args.model
    if getattr(args, "pub", None):
        cfg["zmq"]["pub"] = args.pub
    return cfg


def _publisher(args, cfg):
    if getattr(args, "no_publish", False):
        return None
    from . import security
    from .publisher import Publisher

    import zmq

    ctx = zmq.Context.instance()
    curve = security.curve_for(ctx, cfg, [cfg["zmq"]["pub"]])
    return Publisher(cfg["zmq"]["pub"], cfg, ctx, curve)


def cmd_replay(args) -> int:
    from .replay import ReplayOptions, replay
    from .roi import Roi

    cfg = _cfg(args)
    roi = Roi.parse(args.roi)
    if args.seek:
        cfg["replay"]["seek"] = args.seek
    prog = Progress(not args.quiet and not args.json)
    pub = _publisher(args, cfg)
    try:
        opts = ReplayOptions(roi=roi, t0=args.t0, injection=args.injection, speed=args.speed,
                             backend=cfg["model"]["backend"], model_path=cfg["model"]["path"] or None,
                             exam=args.exam, seek=cfg["replay"]["seek"],
                             journal=not args.no_journal)
        result = replay(args.file, opts, cfg, pub, prog, prog.score)
    finally:
        if pub is not None:
            pub.close()
    return _finish(result, args.json, prog)


def _finish(result: dict[str, Any], as_json: bool, prog: Progress) -> int:
    if as_json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        _print_result(result)
    if not result["final"]:
        why = [f for f in result["flags"] if f in ("recording_ended_early", "recording_damaged",
                                                   "slots_missing", "stopped_early")]
        dmg = result.get("damage")
        extra = f"; damaged at {dmg['at_s']:.1f} s: {dmg['error']}" if dmg and dmg.get("at_s") \
            else (f"; {dmg['error']}" if dmg else "")
        raise PartialResult(f"partial result: {result['slots_filled']}/{result['slots_total']} "
                            f"slots ({', '.join(why) or 'incomplete'}){extra}")
    return 0


def _print_result(r: dict[str, Any]) -> None:
    label = r["label"] if r["final"] else "none (not final)"
    score = "n/a" if r["score"] is None else f"{r['score']:.3f}"
    t0 = "unknown" if r["t0"] is None else f"{r['t0']:.2f} s"
    print(f"exam {r['exam']}: P(HCC) = {score}, label {label}, "
          f"{r['slots_filled']}/{r['slots_total']} slots, t0 = {t0}")
    print(f"model {r['model']['name']} ({r['model']['sha256'][:12]}, trained on "
          f"{r['model']['trained_on']} data), backend {r['backend']['name']} "
          f"{r['backend']['precision']}")
    if r["flags"]:
        print("flags: " + ", ".join(r["flags"]))
    rp = r.get("replay")
    if rp:
        print(f"replay: {rp['mode']} mode, {rp['wall_s']:.2f} s wall, "
              f"{rp['exam_s_per_wall_s']}x real time, {rp['frames_passed']} frames to Python, "
              f"{rp['frames_dropped']} dropped in the pipeline, {rp['seeks']} "
              f"seek{'' if rp['seeks'] == 1 else 's'}")
    print(DISCLAIMER)


def cmd_demo(args) -> int:
    from . import demo

    return demo.run(args, _cfg(args))


COMMANDS = {"replay": cmd_replay, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        handler = COMMANDS.get(args.cmd)
        if handler is None:
            from . import commands

            handler = commands.get(args.cmd)
        return handler(args)
    except CeusError as e:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"ceustream: {'error: ' if e.exit_code != 4 else ''}{e}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
