"""Live latency per stage, one 720p30 source at real time (the live-latency benchmark).

A simulated exam recorded at 1280x720, 30 fps (H.264, MPEG-TS; made once) is streamed in real
time by a real sender (`gst-launch-1.0 filesrc ! tsparse alignment=7 ! udpsink`) to `ceustream run
--source udp://...` (its own process, journal on, as deployed); the injection is marked on
time and a ZeroMQ subscriber in this process follows every score through the stage stamps
the message carries (CLOCK_MONOTONIC, shared by the processes of one machine):

  chosen frame decoded -> deciding frame decoded
        the slot's nearest frame may be the one before the slot time; it is known to be the
        nearest only when the first frame after the slot time has been decoded (at 30 fps up
        to 33 ms later): the schedule's own wait, the same in any engine
  deciding frame decoded -> slot filled     the engine: gate, appsink, Python, sampler
  slot filled -> scored                     inference (ONNX Runtime) on the clip so far
  scored -> published                       hand-off to the publisher thread, socket send
  published -> subscriber                   ZeroMQ over loopback
  deciding frame decoded -> subscriber      the engine's latency (goal: p99 <= 50 ms)
  chosen frame decoded -> subscriber        the same plus the schedule's wait

Slots due inside the arrival window are decided when the window closes (from the 8 Hz
monitor frames kept for them): they are counted apart, not as latency. The machine's load
(os.getloadavg) is sampled during the run: the CPU is shared.

    python -m ceustream.benchmarks.live_latency [--duration 210]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


from .common import cpu_s, free_port, machine, out_dir, sim_exam, summary, table, write

STAGES = [
    ("chosen frame decoded -> deciding frame decoded", "frame_mono_ns", "decided_mono_ns"),
    ("deciding frame decoded -> slot filled", "decided_mono_ns", "filled_mono_ns"),
    ("slot filled -> scored", "filled_mono_ns", "scored_mono_ns"),
    ("scored -> published", "scored_mono_ns", "published_mono_ns"),
    ("published -> subscriber", "published_mono_ns", "received_mono_ns"),
    ("deciding frame decoded -> subscriber", "decided_mono_ns", "received_mono_ns"),
    ("chosen frame decoded -> subscriber", "frame_mono_ns", "received_mono_ns"),
]


def exam_720p_ts(seconds: float = 206.0) -> tuple[Path, dict]:
    """A 720p30 H.264 MPEG-TS exam, as a hardware encoder sends it (made once)."""
    return sim_exam((1280, 720), seconds, "ts")


def without_bframes(path: Path) -> Path:
    """The same exam re-encoded by an independent encoder (ffmpeg's libx264) without
    B-frames, as a low-latency hardware encoder sends it: the decoder then releases each frame
    as it arrives instead of in bursts. Made once."""
    out = path.with_name(path.stem + "_nobf.ts")
    if not out.exists():
        print(f"re-encoding {path.name} without B-frames (ffmpeg; once) ...", flush=True)
        tmp = out.with_suffix(".part.ts")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-c:v", "libx264",
                        "-preset", "veryfast", "-bf", "0", "-g", "60", "-f", "mpegts",
                        str(tmp)], check=True)
        tmp.rename(out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=None,
                    help="stop after this many seconds of stream (default: the whole exam)")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the engine at this nice value (negative: higher priority; "
                    "needs root), as a bedside deployment may (systemd Nice=)")
    ap.add_argument("--threads", type=int, default=None,
                    help="ONNX Runtime threads in the engine (default: the config's model.threads)")
    ap.add_argument("--no-bframes", action="store_true",
                    help="stream the exam re-encoded without B-frames (ffmpeg libx264 -bf 0), "
                    "as a low-latency hardware encoder sends it")
    args = ap.parse_args(argv)

    from ceustream.engine.wire.subscriber import Collector

    path, truth = exam_720p_ts()
    if args.no_bframes:
        path = without_bframes(path)
    udp, ctl, pub = free_port(), free_port(), free_port()
    sub = Collector(f"tcp://127.0.0.1:{pub}", topics=("score.",), validate=False)

    env = {k: v for k, v in os.environ.items() if not k.startswith("CEUSTREAM_")}
    env["CEUSTREAM_JOURNAL_DIR"] = str(out_dir() / "media" / "journal")
    if args.threads is not None:
        env["CEUSTREAM_MODEL__THREADS"] = str(args.threads)
    roi = ",".join(map(str, truth["roi"]))
    eng = subprocess.Popen([sys.executable, "-m", "ceustream.engine.cli", "run", "--source",
                            f"udp://127.0.0.1:{udp}", "--roi", roi, "--injection",
                            str(truth["injection_s"]), "--exit-after-exam", "--json", "-q",
                            "--control", f"tcp://127.0.0.1:{ctl}", "--pub",
                            f"tcp://127.0.0.1:{pub}"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=(lambda: os.nice(args.nice)) if args.nice else None)
    from ceustream.engine.wire.control import request

    deadline = time.monotonic() + 120  # the engine's start-up (model, sockets, its source)
    while not request(f"tcp://127.0.0.1:{ctl}", {"cmd": "status"}, 1.0).get("ok"):
        if eng.poll() is not None or time.monotonic() > deadline:
            print(eng.stderr.read()[-2000:], file=sys.stderr)
            return 1
    sender = subprocess.Popen(["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!",
                               "tsparse", "set-timestamps=true", "alignment=7", "!", "udpsink",
                               "host=127.0.0.1", f"port={udp}", "sync=true"])
    started = time.monotonic()
    loads = [os.getloadavg()[0]]
    cpu0 = cpu_s(eng.pid)
    cpu, cpu_wall = None, None
    limit = args.duration or (truth["duration_s"] + 30)
    try:
        while eng.poll() is None and time.monotonic() - started < limit:
            time.sleep(5.0)
            loads.append(os.getloadavg()[0])
            try:
                cpu, cpu_wall = cpu_s(eng.pid) - cpu0, time.monotonic() - started
            except (OSError, IndexError, ValueError):
                pass  # it has just ended
    finally:
        wall = time.monotonic() - started
        sender.kill()
        if eng.poll() is None:
            eng.terminate()
        out, err = eng.communicate(timeout=60)
        sub.close()
    got = []
    for m in list(sub.messages):  # each score stamped when the subscriber received it
        m.raw.setdefault("timing", {})["received_mono_ns"] = m.received_mono_ns
        got.append(m.raw)
    results = [json.loads(x) for x in out.splitlines() if x.startswith("{")]

    live, window = [], []
    for m in got:
        t = m.get("timing") or {}
        if m.get("slot") is None or t.get("decided_mono_ns") is None:
            continue
        gap = (t["filled_mono_ns"] - t["decided_mono_ns"]) / 1e6
        (window if gap > 1000 or (t["decided_mono_ns"] - t["frame_mono_ns"]) > 1e9
         else live).append(t)
    rows, stats = [], {}
    for name, a, b in STAGES:
        v = [(t[b] - t[a]) / 1e6 for t in live if t.get(a) is not None and t.get(b) is not None]
        s = summary(v)
        stats[name] = s
        rows.append([name, s["n"], s["p50_ms"], s["p99_ms"], s["max_ms"]])
    load = {"before": loads[0], "max": max(loads), "mean": sum(loads) / len(loads)}
    text = table(f"live latency, one 720p30 MPEG-TS/UDP source at real time "
                 f"({len(live)} slot scores; {len(window)} decided at the arrival window's "
                 f"close, not counted); load avg {load['mean']:.2f} (max {load['max']:.2f}) "
                 f"on {os.cpu_count()} cores",
                 ["stage", "n", "p50 ms", "p99 ms", "max ms"], rows)
    res = results[-1] if results else None
    cpu_pct = None if cpu is None else round(cpu / cpu_wall * 100, 1)
    print(f"engine CPU: {cpu_pct} % of a core (decode, gate, engine) over {wall:.0f} s; exam: "
          f"{None if res is None else (res['score'], res['final'], res['slots_filled'])}")
    if res is None:
        print(err[-2000:], file=sys.stderr)
    per_slot = [{"slot": m["slot"], "frame_s": (m.get("frame_times_s") or [None] * 30)[m["slot"]],
                 **{k: v for k, v in (m.get("timing") or {}).items()}}
                for m in got if m.get("slot") is not None]
    write("live_latency_nobf" if args.no_bframes else "live_latency", {
        "sender": "no B-frames (ffmpeg libx264 -bf 0)" if args.no_bframes else "x264 with B-frames",
        "stages": stats, "per_slot": per_slot, "load": load, "loads": loads,
                           "engine_cpu_pct": cpu_pct, "threads": args.threads, "nice": args.nice,
                           "wall_s": wall, "window_slots": len(window), "table": text,
                           "result": res, "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
