"""Issue 2, benchmarks 1 and 3: what the engine costs on top of decoding, and how fast a
recorded exam replays.

1. Ingest overhead: CPU seconds of `ceustream replay --speed max` on a 206 s 1080p30 H.264 exam
   (keyframe every 2 s) against a bare `gst-launch-1.0 filesrc ! decodebin ! fakesink` of the
   same file, in the same run. Goal: ratio <= 1.25.
3. Replay speed: exam seconds per wall second at --speed max. Goal: >= 30x.
Both for t0 given (--t0), t0 detected (--injection), and decoding every frame (--seek never).

    python -m ceustream.benchmarks.ingest [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from .common import cpu_seconds_of, exam_1080p, table, write


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    path, truth = exam_1080p()
    roi = ",".join(map(str, truth["roi"]))
    cli = [sys.executable, "-m", "ceustream.engine.cli", "replay", str(path), "--roi", roi,
           "--no-publish", "--no-journal", "--quiet"]
    runs = {
        "bare decode (gst-launch decodebin ! fakesink)":
            (["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!", "decodebin", "!",
              "fakesink"], truth["duration_s"]),
        "replay --t0 (seek)": (cli + ["--t0", f"{truth['t0_s']:.3f}"], 180.0),
        "replay --injection (seek)":
            (cli + ["--injection", f"{truth['injection_s']:.3f}"],
             truth["t0_s"] + 180.0 - truth["injection_s"]),
        "replay --t0 --seek never (decode all)":
            (cli + ["--t0", f"{truth['t0_s']:.3f}", "--seek", "never"], 180.0),
    }
    res = {}
    for name, (cmd, exam_s) in runs.items():
        cpus, walls = [], []
        for _ in range(args.repeat):
            cpu, wall, code = cpu_seconds_of(cmd)
            if code != 0:
                raise SystemExit(f"{name}: exit {code}")
            cpus.append(cpu)
            walls.append(wall)
        res[name] = {"cpu_s": statistics.median(cpus), "wall_s": statistics.median(walls),
                     "exam_s": exam_s, "runs": {"cpu_s": cpus, "wall_s": walls}}
    bare = res["bare decode (gst-launch decodebin ! fakesink)"]["cpu_s"]
    rows = []
    for name, r in res.items():
        r["cpu_ratio_vs_bare"] = r["cpu_s"] / bare
        r["exam_s_per_wall_s"] = r["exam_s"] / r["wall_s"]
        rows.append([name, r["cpu_s"], r["cpu_ratio_vs_bare"], r["wall_s"], r["exam_s_per_wall_s"]])
    # the replay's own view (in-process wall time, without Python's start-up)
    inproc = subprocess.run(cli + ["--t0", f"{truth['t0_s']:.3f}", "--json"], capture_output=True,
                            text=True)
    inner = json.loads(inproc.stdout.strip().splitlines()[-1])["replay"]
    table(f"Ingest overhead and replay speed: {path.name} (1920x1080, 30 fps, H.264, "
          f"keyframe every 2 s, {truth['duration_s']:.0f} s), median of {args.repeat}",
          ["run", "CPU s", "CPU / bare", "wall s", "exam s per wall s"], rows)
    print(f"replay --t0, measured inside the process (no interpreter start-up): "
          f"{inner['wall_s']:.2f} s, {inner['exam_s_per_wall_s']}x real time, "
          f"{inner['frames_passed']} frames reached Python, {inner['frames_dropped']} dropped "
          f"in the pipeline, {inner['seeks']} seeks\n")
    write("ingest", {"file": path.name, "truth": {k: truth[k] for k in ("t0_s", "injection_s",
                                                                         "duration_s")},
                     "results": res, "replay_inside": inner,
                     "goals": {"cpu_ratio_max": 1.25, "exam_s_per_wall_s_min": 30}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
