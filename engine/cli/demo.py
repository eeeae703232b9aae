"""``ceustream demo``: the whole system on a fresh machine in about a minute."""

from __future__ import annotations

from pathlib import Path

from ceustream.engine.core import DISCLAIMER

from . import common


def add_parser(sub) -> None:
    p = common.command(sub, "demo", "simulate an exam, replay it through the real pipeline, "
                       "score, publish and draw the overlay", codes=(0, 1, 2, 3, 4))
    p.add_argument("--out", default=None, help="folder for the demo's files "
                   "(default ~/.cache/ceustream/demo)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    p.add_argument("--speed", type=common.speed, default=8.0,
                   help="replay speed, a factor or 'max' (default 8: the exam in ~25 s)")
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay video")
    p.add_argument("--no-window", action="store_true",
                   help="no window even when there is a display (the MP4 is always written)")
    common.add_model_options(p)
    common.add_zmq_options(p)


def run(args) -> int:
    from ceustream.engine.app import demo

    cfg = common.load_config(args)
    common.log.info("ceustream demo - %s", DISCLAIMER)
    pub = common.make_publisher(args, cfg)
    try:
        d = demo.run(cfg, pub, out=Path(args.out) if args.out else None, seed=args.seed,
                     speed=args.speed, overlay=not args.no_overlay, window=not args.no_window,
                     on_score=common.progress_scores(not args.quiet))
    finally:
        if pub is not None:
            pub.close()
    result, truth = d.result, d.truth
    err = result["t0"] - truth["t0_s"] if result["t0"] is not None else None
    print(f"simulated truth: {truth['label']} ({truth['case']['subtype']}, "
          f"{truth['case']['pattern']} enhancement, {truth['case']['washout']} washout); "
          f"t0 {truth['t0_s']:.2f} s, detected "
          + (f"{result['t0']:.2f} s ({err:+.2f} s)" if err is not None else "nothing"))
    if d.listener is not None:
        print(f"ZeroMQ {cfg['zmq']['pub']}: a subscriber received {len(d.listener.of('score'))} "
              f"score and {len(d.listener.of('status'))} status messages, {d.listener.gaps} "
              "sequence gaps")
    code = common.finish(result, False)
    if d.overlay_path is not None and d.overlay_path.exists():
        print(f"overlay video: {d.overlay_path}")
    return code
