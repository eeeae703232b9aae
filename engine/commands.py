"""The commands beyond replay and demo: live runs, the control client, the overlay display,
QA over many recordings, the simulator, the journal, keys, training, export and TensorRT
engine builds. Each handler gets parsed arguments and returns an exit code."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .errors import InputError, UsageError
from .live import LiveEngine


def add_parsers(sub, common, zmq_opts, seconds, speed, positive, count) -> None:
    p = sub.add_parser("run", help="a live exam from a capture source")
    p.add_argument("--source", required=True, help="file, v4l2:///dev/videoN, decklink://N, "
                   "rtsp://..., test://PATTERN or sim://SEED?speed=S")
    p.add_argument("--roi", help="X,Y,W,H: start an exam at once with this ROI")
    p.add_argument("--exam", help="exam id for the first exam (default: random, opaque)")
    p.add_argument("--injection", type=seconds, help="mark the injection at this stream time")
    p.add_argument("--t0", type=seconds, help="mark contrast arrival at this stream time")
    p.add_argument("--control", help="ZeroMQ REP endpoint (default tcp://127.0.0.1:5557)")
    p.add_argument("--display", default="none", help="none (default), auto (window or MP4), "
                   "FILE.mp4 or a folder for PNG snapshots: the overlay drawn by ceushud")
    p.add_argument("--exit-after-exam", action="store_true",
                   help="stop when the first exam ends (scripts, tests)")
    p.add_argument("--json", action="store_true", help="print each result as a JSON line")
    p.add_argument("--no-journal", action="store_true")
    common(p)
    zmq_opts(p)

    p = sub.add_parser("control", help="send a command to a running engine")
    p.add_argument("command", choices=["start_exam", "mark_injection", "mark_arrival", "set_roi",
                                       "stop_exam", "status"])
    p.add_argument("--exam")
    p.add_argument("--roi", help="X,Y,W,H")
    p.add_argument("--t", type=seconds, help="stream time (default: now)")
    p.add_argument("--endpoint", default=None, help="default tcp://127.0.0.1:5557")
    p.add_argument("--config")
    p.add_argument("--debug", action="store_true")

    p = sub.add_parser("overlay", help="draw the engine's scores over a video source")
    p.add_argument("--source", required=True)
    p.add_argument("--engine", default=None, help="the engine's PUB endpoint "
                   "(default tcp://127.0.0.1:5556)")
    p.add_argument("--sink", default="auto", help="auto (window if there is a display, else "
                   "ceustream-overlay.mp4), FILE.mp4, or a folder for PNG snapshots")
    p.add_argument("--exam", help="show only this exam")
    p.add_argument("--keys", help="folder made by `ceustream keys` (CURVE)")
    p.add_argument("--duration", type=seconds, help="stop after this many seconds")
    p.add_argument("--config")
    p.add_argument("--debug", action="store_true")

    p = sub.add_parser("qa", help="replay many recorded exams; metrics and a report")
    p.add_argument("manifest", help="CSV with columns path,label,roi and t0 or injection")
    p.add_argument("--out", required=True, help="folder for results.jsonl, report.md, plots")
    p.add_argument("--threshold", type=float, default=None)
    common(p)

    p = sub.add_parser("simulate", help="write simulated CEUS exams (recordings or a cohort)")
    p.add_argument("--out", required=True, help="FILE (.mp4/.mkv/.avi/.ts) or, with --n, a folder")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--n", type=count, default=None, help="a cohort of N recordings + manifest.csv")
    p.add_argument("--label", choices=["HCC", "non-HCC"], help="force the class")
    p.add_argument("--fps", type=positive, default=30.0)
    p.add_argument("--size", default="640x480")
    p.add_argument("--output-size", default=None, help="upscale the screen, e.g. 1920x1080")
    p.add_argument("--duration", type=positive, default=None,
                   help="seconds (default: until 180 s after contrast arrival, plus a margin)")
    p.add_argument("--keyint", type=positive, default=2.0, help="seconds between keyframes")
    p.add_argument("--preset", default="superfast", help="x264 speed preset")
    p.add_argument("--debug", action="store_true")

    p = sub.add_parser("journal", help="exams journaled on this machine")
    p.add_argument("action", choices=["list", "show", "rescore"])
    p.add_argument("exam", nargs="?")
    p.add_argument("--json", action="store_true")
    common(p)

    p = sub.add_parser("keys", help="create CURVE keys for off-loopback use")
    p.add_argument("folder")
    p.add_argument("--debug", action="store_true")

    p = sub.add_parser("train", help="train a network (needs the train extra: torch)")
    p.add_argument("--network", default="cnn3d",
                   choices=["cnn3d", "res3d", "dense3d", "vgg", "resnet", "densenet"])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cohort", help="N[:SEED] simulated patients (balanced classes)")
    src.add_argument("--data", help="folder of clips (*.npy, 30x64x64 uint8) with labels.csv "
                     "(id,label) or of recordings with manifest.csv (path,label,roi,t0|injection)")
    p.add_argument("--epochs", type=int, default=100, help="default 100 (the paper)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--no-expand", action="store_true", help="skip the minority-class expansion")
    p.add_argument("--out", required=True, help="folder for checkpoints, model.onnx, report")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--debug", action="store_true")

    p = sub.add_parser("export", help="checkpoint → ONNX (+ FP16) with metadata")
    p.add_argument("checkpoint", help="checkpoint.pt written by `ceustream train`")
    p.add_argument("--out", required=True, help="model.onnx")
    p.add_argument("--trained-on", default="real", choices=["real", "simulated", "untrained"])
    p.add_argument("--debug", action="store_true")

    p = sub.add_parser("engine", help="TensorRT engine plans")
    p.add_argument("action", choices=["build", "info"])
    p.add_argument("--onnx", help="the model (default: the shipped 3D-CNN)")
    p.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    p.add_argument("--cache", help="plan folder (default ~/.cache/ceustream/trt)")
    p.add_argument("--debug", action="store_true")


# -- run ---------------------------------------------------------------------------------
def cmd_run(args) -> int:
    import zmq

    from ceustream.pipelines.live import LiveReader
    from ceustream.pipelines.overlay import hud_description, sink_description

    from . import security
    from .cli import Progress, _cfg
    from .control import ControlServer
    from .publisher import Publisher
    from .replay import load_model_and_backend
    from .roi import Roi

    cfg = _cfg(args)
    if args.control:
        cfg["zmq"]["control"] = args.control
    roi = Roi.parse(args.roi) if args.roi else None
    if (args.injection is not None or args.t0 is not None) and roi is None:
        raise UsageError("--injection/--t0 need --roi (they mark the first exam)")
    prog = Progress(not args.json)
    ctx = zmq.Context.instance()
    endpoints = [cfg["zmq"]["control"]] + ([] if args.no_publish else [cfg["zmq"]["pub"]])
    curve = security.curve_for(ctx, cfg, endpoints)
    loaded = load_model_and_backend(None, cfg["model"]["backend"], cfg)
    prog(f"backend: {loaded[1].describe()['name']} ({loaded[2]})")
    branch = None
    if args.display != "none":
        out, where = sink_description(args.display)
        branch = f"{hud_description(cfg['zmq']['pub'])} ! {out}"
        prog(f"overlay: {where}")
    reader = LiveReader(args.source, branch)
    pub = None if args.no_publish else Publisher(cfg["zmq"]["pub"], cfg, ctx, curve)
    done: list[dict] = []

    def on_done(r: dict) -> None:
        done.append(r)
        if args.json:
            print(json.dumps(r, separators=(",", ":")), flush=True)
        else:
            from .cli import _print_result

            _print_result(r)

    eng = LiveEngine(reader, cfg, pub, loaded, journal=not args.no_journal, progress=prog,
                     on_score=prog.score, on_done=on_done)
    server = ControlServer(cfg["zmq"]["control"], eng.handle, cfg, ctx, curve)
    prog(f"control: {cfg['zmq']['control']}  scores: "
         f"{'off' if pub is None else cfg['zmq']['pub']}")
    try:
        reader.start()
        if getattr(reader, "sim", None) is not None:
            prog(f"simulated scanner: {json.dumps(reader.sim.truth)}")
        if roi is not None:
            with eng.lock:
                eng.start_exam(args.exam, roi.as_list())
                if args.t0 is not None:
                    eng.mark_arrival(args.t0)
                elif args.injection is not None:
                    _wait_for_stream(reader, args.injection)
                    eng.mark_injection(args.injection)
        keys = _Keyboard(eng, prog) if sys.stdin.isatty() else None
        while True:
            if args.exit_after_exam and done:
                break
            if keys is not None and keys.quit:
                break
            if not eng.busy():
                try:
                    reader._check_bus()
                    if reader.sink.is_eos():
                        prog("the source ended")
                        break
                except Exception as e:
                    prog(f"source error: {e}")
                    break
            time.sleep(0.1)
    finally:
        if eng.busy():
            with eng.lock:
                eng.stop_exam()
        server.close()
        reader.close()
        if pub is not None:
            pub.close()
    return 0 if not done or all(r["final"] for r in done) else 4


def _wait_for_stream(reader, t: float, timeout_s: float = 600) -> None:
    """Scripted marks (--injection) wait for the stream to get there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = reader.stream_time()
        if st is not None and st >= t:
            return
        time.sleep(0.02)


class _Keyboard:
    """i = injection, a = arrival, s = stop the exam, q = quit (each followed by Enter)."""

    def __init__(self, eng, prog):
        import threading

        self.quit = False
        self.eng, self.prog = eng, prog
        prog("keys: i = injection now, a = contrast arrival now, s = stop exam, q = quit")
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        cmds = {"i": "mark_injection", "a": "mark_arrival", "s": "stop_exam"}
        for line in sys.stdin:
            k = line.strip().lower()[:1]
            if k == "q":
                self.quit = True
                return
            if k in cmds:
                try:
                    self.eng.handle({"cmd": cmds[k]})
                except Exception as e:
                    self.prog(f"refused: {e}")


# -- control -----------------------------------------------------------------------------
def cmd_control(args) -> int:
    from . import config
    from .control import request
    from .roi import Roi

    cfg = config.load(args.config)
    req: dict = {"cmd": args.command}
    if args.exam:
        req["exam"] = args.exam
    if args.roi:
        req["roi"] = Roi.parse(args.roi).as_list()
    if args.t is not None:
        req["t"] = args.t
    ans = request(args.endpoint or cfg["zmq"]["control"], req)
    print(json.dumps(ans))
    if not ans.get("ok"):
        raise UsageError(f"{args.command}: {ans.get('error')}")
    return 0


# -- overlay -----------------------------------------------------------------------------
def read_keys(folder: str | None) -> dict | None:
    if not folder:
        return None
    import zmq.auth

    base = Path(folder)
    try:
        spub, _ = zmq.auth.load_certificate(str(base / "server.key"))
        cpub, csec = zmq.auth.load_certificate(str(base / "client.key_secret"))
    except (OSError, ValueError) as e:
        raise InputError(f"--keys {folder}: {e}") from None
    return {"server_public": spub.decode(), "client_public": cpub.decode(),
            "client_secret": csec.decode()}


def cmd_overlay(args) -> int:
    from ceustream.pipelines import gst
    from ceustream.pipelines.overlay import display_pipeline

    from . import config

    cfg = config.load(args.config)
    desc, where = display_pipeline(args.source, args.engine or cfg["zmq"]["pub"], args.sink,
                                   args.exam, read_keys(args.keys))
    Gst = gst.Gst
    p = Gst.parse_launch(desc)
    bus = p.get_bus()
    p.set_state(Gst.State.PLAYING)
    print(f"overlay: {args.source} -> {where} (engine {args.engine or cfg['zmq']['pub']}); "
          "Ctrl-C to stop", file=sys.stderr)
    start = time.monotonic()
    code = 0
    try:
        while True:
            msg = bus.timed_pop_filtered(int(0.1e9), Gst.MessageType.EOS | Gst.MessageType.ERROR)
            if msg is not None:
                if msg.type == Gst.MessageType.ERROR:
                    print(f"ceustream: error: overlay: {gst.error_line(msg)}", file=sys.stderr)
                    code = 3
                break
            if args.duration and time.monotonic() - start > args.duration:
                break
    except KeyboardInterrupt:
        pass
    p.send_event(Gst.Event.new_eos())
    bus.timed_pop_filtered(int(5e9), Gst.MessageType.EOS | Gst.MessageType.ERROR)
    p.set_state(Gst.State.NULL)
    print(f"overlay written to {where}", file=sys.stderr)
    return code


# -- simulate ----------------------------------------------------------------------------
def _size(text: str, what: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{what} {text}: expected WIDTHxHEIGHT") from None
    if w < 160 or h < 120 or w > 4096 or h > 2160:
        raise UsageError(f"{what} {text}: between 160x120 and 4096x2160")
    return w, h


def cmd_simulate(args) -> int:
    from ceustream.models.simulator.physiology import HCC, NON_HCC, sample_case
    from ceustream.models.simulator.recording import CONTAINERS, write_exam
    from ceustream.models.simulator.scene import Layout, Scene

    size = _size(args.size, "--size")
    out_size = _size(args.output_size, "--output-size") if args.output_size else None
    label = None if args.label is None else (HCC if args.label == "HCC" else NON_HCC)

    def one(seed: int, path: Path, lab, tag: str = "") -> dict:
        ext = path.suffix.lower().lstrip(".")
        if ext not in CONTAINERS:
            raise UsageError(f"--out {path}: use .mp4, .mkv, .avi or .ts")
        scene = Scene(sample_case(seed, lab), Layout(*size), injection_s=6.0)
        t = time.monotonic()
        truth = write_exam(scene, path, fps=args.fps, duration_s=args.duration, container=ext,
                           keyint_s=args.keyint, preset=args.preset, output_size=out_size)
        print(f"{tag}{path}: {truth['label']} ({truth['case']['subtype']}, "
              f"{truth['case']['pattern']}, {truth['case']['washout']} washout), "
              f"roi {','.join(map(str, truth['roi']))}, injection {truth['injection_s']:.1f} s, "
              f"t0 {truth['t0_s']:.2f} s, {truth['duration_s']:.0f} s in "
              f"{time.monotonic() - t:.1f} s", file=sys.stderr)
        return truth

    if args.n is None:
        truth = one(args.seed, Path(args.out), label)
        print(json.dumps({k: truth[k] for k in ("label", "roi", "injection_s", "t0_s", "duration_s")}))
        return 0
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,label,roi,injection"]
    for i in range(args.n):
        lab = label if label is not None else (HCC if i % 2 == 0 else NON_HCC)
        truth = one(args.seed * 1000 + i, folder / f"exam_{i:03d}.mp4", lab, f"[{i + 1}/{args.n}] ")
        rows.append(f"exam_{i:03d}.mp4,{truth['label']},\"{','.join(map(str, truth['roi']))}\","
                    f"{truth['injection_s']}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    print(f"{folder / 'manifest.csv'}: {args.n} exams", file=sys.stderr)
    return 0


# -- journal -----------------------------------------------------------------------------
def cmd_journal(args) -> int:
    from . import journal as jr
    from .cli import _cfg, _print_result

    cfg = _cfg(args)
    root = jr.default_dir(cfg)
    if args.action == "list":
        for e in jr.list_exams(root):
            res = root / e / "result.json"
            r = json.loads(res.read_text()) if res.exists() else None
            state = "no result (interrupted)" if r is None else (
                f"P(HCC) {r['score']:.3f} {'final ' + str(r['label']) if r['final'] else 'partial'}"
                if r["score"] is not None else "no score")
            print(f"{e}  {state}")
        return 0
    if not args.exam:
        raise UsageError(f"journal {args.action}: give the exam id")
    if args.action == "show":
        info, records, _ = jr.load(root, args.exam)
        print(json.dumps({"exam": info, "slots": [records[i] for i in sorted(records)]}, indent=1))
        return 0
    result = rescore(root, args.exam, cfg)
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        _print_result(result)
    return 0 if result["final"] else 4


def rescore(root: Path, exam: str, cfg: dict) -> dict:
    """Scores a journaled exam again from its stored ROI crops (any model, any backend)."""
    from . import journal as jr
    from .replay import load_model_and_backend
    from .roi import Roi
    from .schedule import FRAME, NEIGHBOUR, SlotFill
    from .session import ExamSession

    info, records, crops = jr.load(root, exam)
    model, be, note = load_model_and_backend(cfg["model"]["path"] or None,
                                             cfg["model"]["backend"], cfg)
    if info.get("t0") is None:
        raise InputError(f"journal: exam {exam} never reached t0; nothing to score")
    if list(model.meta.offsets_s) != list(info.get("offsets_s", model.meta.offsets_s)):
        raise InputError(f"journal: exam {exam} was sampled on another schedule than "
                         f"{model.meta.name}'s")
    s = ExamSession(exam, model, be, Roi(*info["roi"]), None, None, backend_note=note)
    sampler = s.set_t0(info["t0"])
    fills = []
    for i in sorted(records):
        r = records[i]
        if r["source"] == FRAME and i in crops:
            fills.append(SlotFill(i, r["due_s"], FRAME, r.get("pts_s"), payload=crops[i]))
        elif r["source"] == NEIGHBOUR and r.get("from_slot") in crops:
            fills.append(SlotFill(i, r["due_s"], NEIGHBOUR, from_slot=r["from_slot"],
                                  payload=crops[r["from_slot"]]))
    for f in fills:
        sampler.fills[f.index] = f
    sampler._next = len(sampler.due) if len(fills) == len(sampler.due) else \
        max([f.index for f in fills], default=-1) + 1
    s.add(fills)
    res = s.finish(None if len(fills) == len(sampler.due) else "slots_missing")
    res["rescored"] = True
    return res


# -- keys --------------------------------------------------------------------------------
def cmd_keys(args) -> int:
    from .security import create_keys

    k = create_keys(args.folder)
    print(f"server secret key: {k['server_secret']} (engine: zmq.curve_secret_key)")
    print(f"authorised clients: {k['authorized_dir']} (engine: zmq.curve_authorized_dir)")
    print(f"client keys: {k['client_secret']} (overlay: --keys {args.folder})")
    return 0


# -- QA, training, export, TensorRT: their own modules -------------------------------------
def cmd_qa(args) -> int:
    from .qa import run

    return run(args)


def cmd_train(args) -> int:
    from ceustream.models.cli import train

    return train(args)


def cmd_export(args) -> int:
    from ceustream.models.cli import export

    return export(args)


def cmd_engine(args) -> int:
    from .backends.tensorrt import cli_engine

    return cli_engine(args)


HANDLERS = {"run": cmd_run, "control": cmd_control, "overlay": cmd_overlay, "qa": cmd_qa,
            "simulate": cmd_simulate, "journal": cmd_journal, "keys": cmd_keys,
            "train": cmd_train, "export": cmd_export, "engine": cmd_engine}


def get(name: str):
    return HANDLERS[name]
