"""Per-frame cost of ceustream's GStreamer elements at 1080p, each against `identity` in the
same run.

- ceusgate (issue 2: "measure what a dropped frame costs"): a 1080p frame the schedule does
  not need, dropped in C, against passing it through `identity`, and against dropping it in a
  Python pad probe (what the gate exists to avoid).
- ceushud (issue 4): 1080p60 with a live score drawn, against `identity`: CPU per frame
  (goal <= 1 ms on one core) and frames of added latency (goal 0).
- ceushud (issue 20): the same at 2160p30, and a 4:3 1440x1080 picture widened to a
  1920x1080 canvas (layout=auto: the video copied beside the panels); the screen analysis
  runs only over the first frames (its cost is inside these averages); the panels are laid
  out from the first frame (its look at the screen) and stay when the screen is learnt.

Costs are CPU time of a one-thread pipeline (videotestsrc ! ELEMENT ! fakesink, no queues)
divided by its frames, minus the same pipeline with `identity`; best of 5 runs.

    python -m ceustream.benchmarks.frame_cost [--frames 1500] [--reps 5]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time


from .common import summary, table, write

STEADY = 40  # frames: the screen analysis looks at the first 32 (the panels stay where they are)


def run_pipeline(Gst, desc: str, setup=None, skip: int = 0, ready=None) -> float:
    """CPU seconds (this process) to run ``desc`` to EOS; with ``skip``, from the moment the
    sink got its ``skip``-th buffer (the overlay's steady state: screen learnt, drawn)."""
    p = Gst.parse_launch(desc)
    if setup:
        setup(p)
    bus = p.get_bus()
    t = [time.process_time()]
    if skip:
        count = [0]

        def mark(pad, info):
            count[0] += 1
            if count[0] == skip:
                # the overlay laid out for the learnt screen before counting (the renderer's
                # one-off work at start is not a per-frame cost)
                deadline = time.monotonic() + 5.0
                while ready and not ready(p) and time.monotonic() < deadline:
                    time.sleep(0.02)
                t[0] = time.process_time()
            return Gst.PadProbeReturn.OK

        sink = p.get_by_name("out")
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, mark)
    p.set_state(Gst.State.PLAYING)
    msg = bus.timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    cpu = time.process_time() - t[0]
    p.set_state(Gst.State.NULL)
    if msg.type == Gst.MessageType.ERROR:
        raise SystemExit(msg.parse_error()[0].message)
    return cpu


def best(Gst, desc, n, setup=None, reps=5, skip: int = 0, ready=None) -> float:
    """microseconds of CPU per frame, best of ``reps`` (the first ``skip`` frames not counted)"""
    return min(run_pipeline(Gst, desc, setup, skip, ready) for _ in range(reps)) / (n - skip) * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=1500,
                    help="frames per pipeline run (each is run 5 times, the best kept)")
    ap.add_argument("--port", type=int, default=5797,
                    help="loopback port of the test publisher the overlay subscribes to")
    ap.add_argument("--reps", type=int, default=5,
                    help="runs of each overlay pipeline (the best kept)")
    args = ap.parse_args(argv)
    from ceustream.pipelines import gst

    gst.require("ceusgate", "ceushud")
    Gst = gst.Gst
    n = args.frames
    results = {}

    # -- the gate: a frame the schedule does not need -----------------------------------
    src = (f"videotestsrc num-buffers={n} pattern=black ! "
           "video/x-raw,format=I420,width=1920,height=1080,framerate=60/1")
    base = best(Gst, f"{src} ! identity ! fakesink", n)
    gate = best(Gst, f'{src} ! ceusgate slots="99999" ! fakesink', n)

    def py_probe(p):
        pad = p.get_by_name("i").get_static_pad("src")
        pad.add_probe(Gst.PadProbeType.BUFFER, lambda *a: Gst.PadProbeReturn.DROP)

    probe = best(Gst, f"{src} ! identity name=i ! fakesink", n, py_probe)
    results["ceusgate"] = {"identity_us_per_frame": base, "gate_drop_us_per_frame": gate,
                           "python_probe_drop_us_per_frame": probe,
                           "gate_minus_identity_us": gate - base,
                           "python_probe_minus_identity_us": probe - base}
    table("A 1080p frame the schedule does not need (CPU microseconds per frame, best of 5)",
          ["pipeline", "us/frame", "vs identity"],
          [["videotestsrc ! identity ! fakesink", base, 0.0],
           ["... ! ceusgate (drops it, in C) ! fakesink", gate, gate - base],
           ["... ! identity + Python pad probe (drops it) ! fakesink", probe, probe - base]])

    # -- the overlay: 1080p60 with a score on screen ------------------------------------
    import zmq

    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    ep = f"tcp://127.0.0.1:{args.port}"
    pub.bind(ep)
    stop = threading.Event()

    def publish():
        # the biggest panel the element draws: a provisional score with the TIC plot and
        # its summary, OUT OF DISTRIBUTION, two warning banners, the CPU note and a countdown
        from ceustream.engine.wire import messages as M

        offsets = [2.0 * k for k in range(25)] + [60.0, 90.0, 120.0, 150.0, 180.0]
        st = ["frame"] * 12 + ["neighbour"] + [None] * 17
        tic = {"times_s": offsets, "lesion": [10.0 + k for k in range(13)] + [None] * 17,
               "parenchyma": [5.0 + 0.5 * k for k in range(13)] + [None] * 17,
               "units": "dB over baseline", "aphe": "nonrim", "washout": None,
               "washout_onset_s": None, "washout_degree": None, "category": None,
               "summary": "APHE \u2713 \u00b7 washout not yet", "p_hcc": 0.7}
        model = {"name": "cnn3d", "sha256": "0" * 64, "trained_on": "simulated"}
        backend = {"name": "onnxruntime", "precision": "fp32", "device": "cpu"}
        flags = ["cpu_fallback", "trained_on_simulated_data"]
        i = 0
        while not stop.is_set():
            status = M.status("b1", phase="video_phase", slots_filled=13, slots_total=30,
                              next_slot=13, next_slot_due_s=46.0, next_slot_in_s=1.5,
                              speed=1.0, t0_s=20.0, injection_s=5.0,
                              warnings=["out_of_distribution", "slot_late", "frozen_frame"],
                              roi=[800, 400, 300, 300], frame_size=[1920, 1080], model=model,
                              backend=backend, slot_states=st, score=0.61, flags=flags,
                              features=tic, stream_time_s=44.5)
            score = M.score("b1", slot=12, slots_filled=13, slots_total=30, score=0.61,
                            label=None, final=False, flags=flags, model=model, backend=backend,
                            latency_ms=None, frame_mono_ns=None, t0_s=20.0,
                            frame_times_s=[20.0 + t if k < 13 else None
                                           for k, t in enumerate(offsets)],
                            slot_states=st, threshold=0.5, features=tic)
            for seq, msg in ((2 * i + 1, status), (2 * i + 2, score)):
                msg["seq"] = seq
                pub.send_multipart([M.topic(msg["type"], "b1"), M.encode(msg)])
            i += 1
            time.sleep(0.25)

    def learnt(p):
        import json

        shown = p.get_by_name("h").get_property("shown")
        j = json.loads(shown) if shown else {}
        return j.get("screen_learnt", False) or j.get("where") == "beside"

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    rows = []
    cases = [(fmt, 1920, 1080, 60, n) for fmt in ("I420", "BGRx", "NV12")]
    cases += [("I420", 3840, 2160, 30, max(n // 3, 100)), ("BGRx", 3840, 2160, 30, max(n // 3, 100)),
              ("I420", 1440, 1080, 60, n)]
    for fmt, w, h, fps, frames in cases:
        s2 = (f"videotestsrc num-buffers={frames} pattern=black ! "
              f"video/x-raw,format={fmt},width={w},height={h},framerate={fps}/1")

        def warm(p):  # the subscriber connects and renders before timing starts
            p.set_state(Gst.State.PAUSED)
            p.get_state(Gst.CLOCK_TIME_NONE)
            time.sleep(0.8)

        reps = args.reps
        ident = best(Gst, f"{s2} ! identity ! fakesink", frames, reps=reps)
        hud = best(Gst, f"{s2} ! ceushud endpoint={ep} ! fakesink", frames, warm, reps=reps)
        # steady state: after the screen is learnt (32 frames; the panels laid out at frame 1)
        ident_s = best(Gst, f"{s2} ! identity ! fakesink name=out", frames, reps=reps,
                       skip=STEADY)
        hud_s = best(Gst, f"{s2} ! ceushud name=h endpoint={ep} ! fakesink name=out", frames,
                     warm, reps=reps, skip=STEADY, ready=learnt)
        key = f"ceushud_{fmt}" if (w, h) == (1920, 1080) else f"ceushud_{fmt}_{w}x{h}p{fps}"
        results[key] = {"identity_us_per_frame": ident, "hud_us_per_frame": hud,
                        "hud_minus_identity_us": hud - ident, "size": [w, h], "fps": fps,
                        "canvas": w * 9 < h * 16,
                        "steady_identity_us_per_frame": ident_s,
                        "steady_hud_us_per_frame": hud_s,
                        "steady_hud_minus_identity_us": hud_s - ident_s}
        rows.append([f"{fmt} {w}x{h}@{fps}" + (" -> 1920x1080 canvas" if w * 9 < h * 16 else ""),
                     ident, hud, (hud - ident) / 1000.0, (hud_s - ident_s) / 1000.0])
    # per-frame distribution and in-flight frames, measured at the element's pads (the
    # streaming thread's own time: the renderer's thread draws off it)
    walls, thread_cpu = {}, {}
    maxin = [0]
    for fmt, w, h, fps in (("I420", 1920, 1080, 60), ("BGRx", 1920, 1080, 60),
                           ("I420", 3840, 2160, 30), ("BGRx", 3840, 2160, 30)):
        durs, cpus, inflight = [], [], [0]
        frames = n if w == 1920 else max(n // 3, 100)
        p = Gst.parse_launch(f"videotestsrc num-buffers={frames} pattern=black ! video/x-raw,"
                             f"format={fmt},width={w},height={h},framerate={fps}/1 ! ceushud "
                             f"name=h endpoint={ep} ! fakesink")
        el = p.get_by_name("h")
        start = {}

        def on_sink(pad, info, start=start, inflight=inflight):
            start[info.get_buffer().pts] = (time.perf_counter_ns(), time.thread_time_ns())
            inflight[0] += 1
            maxin[0] = max(maxin[0], inflight[0])
            return Gst.PadProbeReturn.OK

        def on_src(pad, info, start=start, inflight=inflight, durs=durs, cpus=cpus):
            s0 = start.pop(info.get_buffer().pts, None)
            if s0 is not None:
                durs.append((time.perf_counter_ns() - s0[0]) / 1e6)
                cpus.append((time.thread_time_ns() - s0[1]) / 1e6)
            inflight[0] -= 1
            return Gst.PadProbeReturn.OK

        el.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_sink)
        el.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_src)
        p.set_state(Gst.State.PAUSED)
        p.get_state(Gst.CLOCK_TIME_NONE)
        time.sleep(0.8)
        p.set_state(Gst.State.PLAYING)
        p.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE,
                                       Gst.MessageType.EOS | Gst.MessageType.ERROR)
        p.set_state(Gst.State.NULL)
        walls[f"{fmt} {w}x{h}@{fps}"] = summary(durs[STEADY:])  # after the screen is learnt
        thread_cpu[f"{fmt} {w}x{h}@{fps}"] = summary(cpus[STEADY:])
    stop.set()
    t.join()
    pub.close()
    ctx.term()
    results["ceushud_per_frame_wall"] = walls
    results["ceushud_per_frame_thread_cpu"] = thread_cpu
    results["ceushud_I420_per_frame_wall"] = walls["I420 1920x1080@60"]
    results["ceushud_frames_in_flight_max"] = maxin[0]
    table("ceushud with a live score (CPU per frame of the whole process, renderer thread "
          "included, best of %d; 'steady': from frame %d on, after the screen is learnt)"
          % (args.reps, STEADY),
          ["format and size", "identity us/frame", "ceushud us/frame", "added ms/frame",
           "steady added ms/frame"], rows)
    table("ceushud: time inside the element per frame, pad to pad (the streaming thread; "
          "after the screen is learnt)",
          ["format and size", "p50 ms", "p99 ms", "max ms"],
          [[k, d["p50_ms"], d["p99_ms"], d["max_ms"]] for k, d in walls.items()])
    table("ceushud: the streaming thread's CPU time inside the element per frame (not counting "
          "time it was preempted; after the screen is learnt)",
          ["format and size", "p50 ms", "p99 ms", "max ms"],
          [[k, d["p50_ms"], d["p99_ms"], d["max_ms"]] for k, d in thread_cpu.items()])
    print(f"frames inside the element at once: {maxin[0]} (in place: a frame leaves before the "
          "next enters, 0 frames of added latency)\n")
    write("frame_cost", {"frames": n, "reps": args.reps, "results": results,
                         "goals": {"ceushud_ms_per_frame_max": 1.0, "added_latency_frames": 0}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
