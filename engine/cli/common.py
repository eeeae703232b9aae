"""What every command shares: the parser that fails in one line, checked numbers, logging
(-v/-q), the configuration, the publisher, and printing a result.

Results go to stdout; diagnostics and progress go to the log on stderr, with timestamps.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import Any, Callable

from ceustream.engine import backends
from ceustream.engine.core import DISCLAIMER
from ceustream.engine.core.errors import EXIT_CODES, PLAIN_EXIT_CODES, PartialResult, UsageError

log = logging.getLogger("ceustream")


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:
        e = UsageError(message)
        e.prog = self.prog  # the CLI prints "<prog>: error: <message>", one prefix
        raise e


def exit_codes(*codes: int, scores: bool | None = None) -> str:
    """The epilog listing the exit codes a command can end with; a command that does not
    score (``scores`` false; by default: 4 is not among its codes) says "success" for 0."""
    scores = 4 in codes if scores is None else scores
    text = {**EXIT_CODES, **({} if scores else PLAIN_EXIT_CODES)}
    return "exit codes:\n" + "\n".join(f"  {k:>3}  {text[k]}" for k in codes)


def add_output_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """-v/-q/--debug; the top-level parser stores them under ``top_*`` so that a subcommand's
    own defaults cannot overwrite what was given before it (``ceustream -q journal list``)."""
    g = p.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="count", default=0, dest=f"{prefix}verbose",
                   help="more detail in the log (-vv: debug)")
    g.add_argument("-q", "--quiet", action="store_true", dest=f"{prefix}quiet",
                   help="only warnings and errors in the log")
    g.add_argument("--debug", action="store_true", dest=f"{prefix}debug",
                   help="show tracebacks of internal errors")


def command(sub, name: str, help: str, codes: tuple[int, ...] = (0, 1, 2, 3),
            description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand's parser with its exit codes in its help, and -v/-q/--debug."""
    p = sub.add_parser(name, help=help, description=description or help,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=exit_codes(*codes))
    add_output_options(p)
    return p


# -- numbers ---------------------------------------------------------------------------------
def number(text: str, cast, what: str, lowest: float, strict: bool, highest: float = 1e7):
    """An argparse value of type ``cast`` in range, else one line (NaN and infinities too)."""
    try:
        v = cast(text)
        if not math.isfinite(v):
            raise ValueError(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    if v < lowest or (strict and v == lowest):
        raise argparse.ArgumentTypeError(f"'{text}' must be {'>' if strict else '>='} {lowest:g}")
    if v > highest:
        raise argparse.ArgumentTypeError(f"'{text}' must be <= {highest:g}")
    return v


def positive(text: str) -> float:
    return number(text, float, "a number", 0, strict=True)


def count(text: str) -> int:
    return number(text, int, "a whole number", 1, strict=False)


def seconds(text: str) -> float:
    return number(text, float, "a number of seconds", 0, strict=False)


def probability(text: str) -> float:
    v = number(text, float, "a probability", 0, strict=True, highest=1.0)
    if v >= 1.0:
        raise argparse.ArgumentTypeError(f"'{text}' must be < 1")
    return v


def speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        return number(text, float, "a number", 0, strict=True, highest=1000)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"'{text}' must be a number in (0, 1000] or 'max'") from None


def exam_id(text: str) -> str:
    """An ``--exam`` (or run) id, checked as the control socket checks it: 1-64 letters,
    digits, '-' or '_' (an opaque id, never a patient name; no path can be made of it)."""
    from ceustream.engine.wire.messages import check_exam_id

    try:
        return check_exam_id(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def source_name(text: str) -> str:
    """A source name as the control socket checks it: 1-32 letters, digits, '-' or '_'."""
    from ceustream.engine.wire.messages import check_source_name

    try:
        return check_source_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# -- logging ---------------------------------------------------------------------------------
class _Formatter(logging.Formatter):
    """``HH:MM:SS.mmm message`` for progress; the level and logger name for the rest."""

    def __init__(self, detail: bool):
        super().__init__(datefmt="%H:%M:%S")
        self.detail = detail

    def format(self, record: logging.LogRecord) -> str:
        stamp = f"{self.formatTime(record, self.datefmt)}.{int(record.msecs):03d}"
        msg = record.getMessage()
        if record.exc_info and self.detail:
            msg += "\n" + self.formatException(record.exc_info)
        if self.detail or record.levelno >= logging.WARNING:
            return f"{stamp} {record.levelname.lower()} {record.name}: {msg}"
        return f"{stamp} {msg}"


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """stderr, timestamps; INFO by default, WARNING with -q, DEBUG with -vv."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(detail=verbose >= 1))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("ceustream").setLevel(level)


# -- configuration and outputs -----------------------------------------------------------------
def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and settings")
    g.add_argument("--config", help="settings file (TOML) over the defaults (engine/core/defaults.toml)")
    g.add_argument("--model", help="ONNX model with ceustream metadata (default: the shipped 3D-CNN)")
    g.add_argument("--backend", default=None, choices=backends.names(),
                   help="inference backend (default from the config: auto = the best one "
                   "that can run here)")


def add_reference_options(p: argparse.ArgumentParser) -> None:
    """The TIC reading's parenchyma reference (issue 18): a band around the ROI or a box."""
    g = p.add_argument_group("parenchyma reference (TIC reading)")
    g.add_argument("--ref-roi", default=None, help="X,Y,W,H: a box of liver parenchyma (same "
                   "depth as the lesion, no vessels) the TIC reading compares the lesion with "
                   "(default: a band around the ROI)")
    g.add_argument("--ref-band", type=band, default=0.5, help="width of the automatic "
                   "reference band around the ROI, x the ROI's side (default 0.5; 0: the "
                   "ROI's own border ring, as before)")


def band(text: str) -> float:
    return number(text, float, "a number", 0, strict=False, highest=2.0)


def ref_roi(args) -> Any:
    """``--ref-roi`` as a Roi (None when not given); a malformed one is a one-line error."""
    from ceustream.engine.core.roi import Roi

    if getattr(args, "ref_roi", None) is None:
        return None
    try:
        return Roi.parse(args.ref_roi)
    except UsageError as e:
        raise UsageError(str(e).replace("--roi", "--ref-roi")) from None


def add_zmq_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("messages")
    g.add_argument("--pub", help="ZeroMQ PUB endpoint for scores and status "
                   "(default tcp://127.0.0.1:5556)")
    g.add_argument("--no-publish", action="store_true", help="do not open the PUB socket")


def load_config(args) -> dict:
    """Defaults, the user's file and environment, then this command's options."""
    from ceustream.engine.core import config

    cfg = config.load(getattr(args, "config", None))
    if getattr(args, "backend", None):
        cfg["model"]["backend"] = args.backend
    if getattr(args, "model", None):
        cfg["model"]["path"] = args.model
    if getattr(args, "pub", None):
        cfg["zmq"]["pub"] = args.pub
    if cfg["model"]["backend"] not in backends.names():
        raise UsageError(f"setting model.backend={cfg['model']['backend']!r}: expected one of "
                         f"{', '.join(backends.names())}")
    return cfg


def make_publisher(args, cfg):
    """The PUB socket (None with --no-publish)."""
    if getattr(args, "no_publish", False):
        return None
    import zmq

    from ceustream.engine.wire import security
    from ceustream.engine.wire.publisher import Publisher

    ctx = zmq.Context.instance()
    curve = security.curve_for(ctx, cfg, [cfg["zmq"]["pub"]])
    return Publisher(cfg["zmq"]["pub"], cfg, ctx, curve)


def score_line(s: Any, session: Any) -> str:
    """One progress line per score, as a sonographer reads it."""
    n = session.model.meta.frames
    st = session.status_fields()
    nxt = ""
    if st["next_slot"] is not None:
        nxt = f" | next slot {st['next_slot'] + 1} due at {st['next_slot_due_s']:.1f} s"
    kind = f"FINAL {s.label}" if s.final else "provisional"
    if s.domain and s.domain.get("state") == "out":
        kind += " (outside the model's domain" + \
            (": from the TIC reading)" if getattr(s, "basis", None) == "physiology" else ")")
    if s.slot is None:
        kind = "partial (not final)"
    lat = f" | {s.latency_ms:.1f} ms" if s.latency_ms is not None else ""
    slot = f"slot {s.slot + 1:2d}/{n}" if s.slot is not None else f"slots {s.slots_filled}/{n}"
    return f"{slot} | P(HCC) {s.score:.3f} {kind}{lat}{nxt}"


def progress_scores(enabled: bool) -> Callable[[Any, Any], None] | None:
    """A score callback logging one line per score (None when not wanted)."""
    if not enabled:
        return None
    return lambda s, session: log.info("%s", score_line(s, session))


def print_result(r: dict[str, Any]) -> None:
    """A result in words, on stdout."""
    label = r["label"] if r["final"] else "none (not final)"
    score = "n/a" if r["score"] is None else f"{r['score']:.3f}"
    t0 = "unknown" if r["t0"] is None else f"{r['t0']:.2f} s"
    print(f"exam {r['exam']}: P(HCC) = {score}, label {label}, "
          f"{r['slots_filled']}/{r['slots_total']} slots, t0 = {t0}")
    dom = r.get("domain") or {}
    if dom.get("state") == "out":
        print(f"OUTSIDE THE MODEL'S DOMAIN (distance {dom['distance']:.2f} > "
              f"{dom['threshold']:.2f}, {dom['method']}): the network's label is not shown; "
              "the TIC reading below is what holds")
    if r.get("score_basis") == "physiology" and r.get("score_network") is not None:
        print(f"P(HCC) {score} is the physiology reading's (the TIC reading's LI-RADS features "
              f"weighed by published frequencies); the network said {r['score_network']:.3f}")
    print(f"model {r['model']['name']} ({r['model']['sha256'][:12]}, trained on "
          f"{r['model']['trained_on']} data), backend {r['backend']['name']} "
          f"{r['backend']['precision']}")
    f = r.get("features")
    if f and f.get("summary"):
        tic = "" if f.get("p_hcc") is None else f" (TIC model P(HCC) {f['p_hcc']:.3f})"
        print(f"TIC reading: {f['summary']}{tic}")
    if r["flags"]:
        print("flags: " + ", ".join(r["flags"]))
    rp = r.get("replay")
    if rp:
        print(f"replay: {rp['mode']} mode, {rp['wall_s']:.2f} s wall, "
              f"{rp['exam_s_per_wall_s']}x real time, {rp['frames_passed']} frames to Python, "
              f"{rp['frames_dropped']} dropped in the pipeline, {rp['seeks']} "
              f"seek{'' if rp['seeks'] == 1 else 's'}")
    print(DISCLAIMER)


def finish(result: dict[str, Any], as_json: bool) -> int:
    """Prints a result (JSON as the last line, or in words); a partial one ends in exit 4."""
    if as_json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        print_result(result)
    if not result["final"]:
        why = [f for f in result["flags"] if f in ("recording_ended_early", "recording_damaged",
                                                   "slots_missing", "slots_copied",
                                                   "stopped_early")]
        dmg = result.get("damage")
        extra = f"; damaged at {dmg['at_s']:.1f} s: {dmg['error']}" if dmg and dmg.get("at_s") \
            else (f"; {dmg['error']}" if dmg else "")
        raise PartialResult(f"partial result: {result['slots_filled']}/{result['slots_total']} "
                            f"slots ({', '.join(why) or 'incomplete'}){extra}")
    return 0
