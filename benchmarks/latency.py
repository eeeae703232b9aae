"""Issue 2 benchmark 2 and issue 5 benchmark 2: where every millisecond goes, per stage.

Replays N exams of the 1080p30 benchmark recording in one process (one model, one publisher),
with a real ZeroMQ subscriber and a ceushud display pipeline (1080p60, live) subscribed to the
same engine, and follows each final score through its stages (CLOCK_MONOTONIC stamps carried
in the message):

  decoded -> slot filled       the 30th slot's frame leaves the decoder ... is in the clip
  clip complete -> score       inference on the completed clip
  score -> published           hand-off to the publisher thread, socket send
  published -> subscriber      ZeroMQ over loopback to a SUB socket
  decoded -> subscriber        the goal: p99 <= 50 ms on 2 CPU cores
  published -> drawn           until ceushud has drawn it into a video frame

    python -m ceustream.benchmarks.latency [--exams 50]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import zmq

from .common import exam_1080p, summary, table, write


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exams", type=int, default=50)
    ap.add_argument("--port", type=int, default=5796)
    ap.add_argument("--no-display", action="store_true", help="without the ceushud pipeline")
    args = ap.parse_args(argv)

    from ceustream.engine.core import config
    from ceustream.engine.wire.subscriber import Collector
    from ceustream.engine.wire.publisher import Publisher
    from ceustream.engine.app.loading import load_model_and_backend
    from ceustream.engine.app.replay import ReplayOptions, replay
    from ceustream.engine.core.roi import Roi
    from ceustream.pipelines import gst

    path, truth = exam_1080p()
    cfg = config.load(env={})
    ep = f"tcp://127.0.0.1:{args.port}"
    ctx = zmq.Context.instance()
    pub = Publisher(ep, cfg, ctx)
    sub = Collector(ep, topics=("score.",), validate=False)

    def got() -> list[tuple[dict, int]]:
        """Every score so far, with the time the subscriber received it."""
        return [(m.raw, m.received_mono_ns) for m in list(sub.messages)]

    hud = display = None
    if not args.no_display:
        gst.init()
        display = gst.Gst.parse_launch(
            "videotestsrc is-live=true pattern=black ! video/x-raw,format=I420,width=1920,"
            f"height=1080,framerate=60/1 ! ceushud name=hud endpoint={ep} ! fakesink sync=true")
        hud = display.get_by_name("hud")
        display.set_state(gst.Gst.State.PLAYING)
    time.sleep(0.5)
    loaded = load_model_and_backend(None, "onnxruntime", cfg)
    stages = {k: [] for k in ("decoded -> slot filled", "clip complete -> score",
                              "score -> published", "published -> subscriber",
                              "decoded -> subscriber (final)", "decoded -> subscriber (all 30)",
                              "published -> drawn by ceushud")}
    walls = []
    for i in range(args.exams):
        exam = f"lat{i:03d}"
        t0 = time.monotonic()
        res = replay(path, ReplayOptions(roi=Roi(*truth["roi"]), t0=truth["t0_s"], exam=exam,
                                         journal=False), cfg, pub, loaded=loaded)
        walls.append(time.monotonic() - t0)
        assert res["final"], res["flags"]
        deadline = time.monotonic() + 2
        final = None
        while time.monotonic() < deadline and final is None:
            final = next(((m, r) for m, r in got() if m["exam"] == exam and m["final"]), None)
            time.sleep(0.005)
        mine = [(m, r) for m, r in got() if m["exam"] == exam]
        for m, r in mine:
            stages["decoded -> subscriber (all 30)"].append((r - m["timing"]["frame_mono_ns"]) / 1e6)
        m, r = final
        tm = m["timing"]
        stages["decoded -> slot filled"].append((tm["filled_mono_ns"] - tm["frame_mono_ns"]) / 1e6)
        stages["clip complete -> score"].append((tm["scored_mono_ns"] - tm["filled_mono_ns"]) / 1e6)
        stages["score -> published"].append((tm["published_mono_ns"] - tm["scored_mono_ns"]) / 1e6)
        stages["published -> subscriber"].append((r - tm["published_mono_ns"]) / 1e6)
        stages["decoded -> subscriber (final)"].append((r - tm["frame_mono_ns"]) / 1e6)
        if hud is not None:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and hud.get_property("drawn-seq") < m["seq"]:
                time.sleep(0.002)
            if hud.get_property("drawn-seq") >= m["seq"]:
                stages["published -> drawn by ceushud"].append(
                    (hud.get_property("drawn-mono") - tm["published_mono_ns"]) / 1e6)
        if (i + 1) % 10 == 0:
            print(f"  {i + 1}/{args.exams} exams", file=sys.stderr, flush=True)
    sub.close()
    if display is not None:
        display.set_state(gst.Gst.State.NULL)
    pub.close()
    # the backend alone, for the engine-overhead goal (clip complete -> score vs bare inference)
    x = np.random.default_rng(0).random(loaded[0].meta.input_shape(1), dtype=np.float32)
    for _ in range(10):
        loaded[1].infer(x)
    bare = []
    for _ in range(100):
        s = time.perf_counter_ns()
        loaded[1].infer(x)
        bare.append((time.perf_counter_ns() - s) / 1e6)
    rows = [[k, *(summary(v)[c] for c in ("n", "p50_ms", "p99_ms", "max_ms"))] for k, v in stages.items()]
    rows.append(["backend alone (ONNX Runtime, batch 1)",
                 *(summary(bare)[c] for c in ("n", "p50_ms", "p99_ms", "max_ms"))])
    table(f"Latency per stage, {args.exams} replayed exams of {path.name} "
          f"({'with' if hud else 'without'} a 1080p60 ceushud display running)",
          ["stage", "n", "p50 ms", "p99 ms", "max ms"], rows)
    overhead = summary(stages["clip complete -> score"])["p50_ms"]
    budget = 1.2 * summary(bare)["p50_ms"] + 2.0
    print(f"engine overhead goal: clip complete -> score p50 {overhead:.2f} ms <= 1.2 x bare "
          f"inference p50 + 2 ms = {budget:.2f} ms: {'met' if overhead <= budget else 'NOT met'}")
    write("latency", {"file": path.name, "exams": args.exams,
                      "stages": {k: summary(v) for k, v in stages.items()},
                      "backend_alone": summary(bare), "replay_wall_s": summary(np.array(walls) * 1000),
                      "goals": {"decoded_to_subscriber_p99_ms": 50,
                                "clip_complete_to_score_le": "1.2 x bare + 2 ms"}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
