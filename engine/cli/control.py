"""``ceustream control CMD``: one command to a running engine."""

from __future__ import annotations

import json
from pathlib import Path

from ceustream.engine.core.errors import NoAnswer, UsageError
from ceustream.engine.core.roi import Roi

from . import common

HELP = {
    "start_exam": "start an exam (needs --roi unless the engine has one; --exam names it)",
    "mark_injection": "the contrast injection happened now (or at --t): watch for arrival",
    "mark_arrival": "contrast arrived in the lesion now (or at --t): t0, overriding detection",
    "set_roi": "move the ROI (before arrival is being watched)",
    "stop_exam": "stop the running exam (journaled and published as stopped)",
    "status": "print the engine's status (of --source, or of every source)",
    "add_source": "add a live source at run time: --source NAME --uri URI (rtsp, udp, srt, "
                  "v4l2, decklink, test, sim)",
    "remove_source": "remove --source NAME (its running exam ends, partial)",
    "health": "every source's state, frame rate, lag and exam; the model; batches; messages",
    "reload_model": "a new ONNX model (--path) for exams that start from now on",
}


def add_parser(sub) -> None:
    p = common.command(sub, "control", "send a command to a running engine", codes=(0, 1, 2, 3, 6),
                       description="send a command to a running engine:\n" + "\n".join(
                           f"  {k:15s} {v}" for k, v in HELP.items()))
    p.add_argument("command", choices=list(HELP), metavar="COMMAND",
                   help="one of: " + ", ".join(HELP))
    p.add_argument("--exam", type=common.exam_id, help="exam id for start_exam (1-64 "
                   "letters, digits, - or _; never a patient name)")
    p.add_argument("--roi", help="X,Y,W,H for start_exam / set_roi, in the video's pixels")
    p.add_argument("--t", type=common.seconds, help="stream time in seconds for the marks "
                   "(default: now)")
    p.add_argument("--source", type=common.source_name, help="the source a command is for "
                   "(needed when the engine has several), or the name for add_source / "
                   "remove_source")
    p.add_argument("--uri", help="add_source: the source URI")
    p.add_argument("--path", help="reload_model: the ONNX file (as the engine's machine sees it)")
    p.add_argument("--endpoint", default=None, help="the engine's control (REP) endpoint "
                   "(default from the config: tcp://127.0.0.1:5557)")
    p.add_argument("--timeout", type=common.positive, default=3.0,
                   help="seconds to wait for the answer (default 3)")
    p.add_argument("--config", help="settings file (TOML) over the defaults")


def run(args) -> int:
    from ceustream.engine.core import config
    from ceustream.engine.wire.control import request

    cfg = config.load(args.config)
    req: dict = {"cmd": args.command}
    if args.exam:
        req["exam"] = args.exam
    if args.roi:
        req["roi"] = Roi.parse(args.roi).as_list()
    if args.t is not None:
        req["t"] = args.t
    if args.source:
        req["source"] = args.source
    if args.uri:
        req["uri"] = args.uri
    if args.path:
        req["path"] = str(Path(args.path).resolve())
    ans = request(args.endpoint or cfg["zmq"]["control"], req, args.timeout)
    if ans.get("answered") is False:
        raise NoAnswer(ans["error"])
    print(json.dumps(ans))
    if not ans.get("ok"):
        raise UsageError(refusal(args.command, str(ans.get("error"))))
    return 0


def refusal(command: str, error: str) -> str:
    """The engine's refusal as one line naming the command once (the engine's own text
    often names it already: ``mark_injection: t must be ...``)."""
    return error if error.startswith(f"{command}:") else f"{command}: {error}"

