"""Issue 3: how fast the simulator is. Goals: one 30-slot clip <= 20 ms on one core; a 200 s
640x480 recording <= 30 s.

    python -m ceustream.benchmarks.sim_speed
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from .common import summary, table, write


def main(argv=None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    from ceustream.models.simulator.clips import simulate_clip
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.recording import write_exam
    from ceustream.models.simulator.scene import Scene, warm_atlases

    cv2.setNumThreads(1)  # one core
    warm_atlases()  # once per process, not per clip
    times = []
    for seed in range(1, 201):
        t = time.perf_counter()
        simulate_clip(sample_case(seed))
        times.append((time.perf_counter() - t) * 1000)
    clip = summary(times)
    cv2.setNumThreads(0)
    with tempfile.TemporaryDirectory() as d:
        t = time.monotonic()
        truth = write_exam(Scene(sample_case(3), injection_s=5.0), f"{d}/exam.mp4", fps=30.0,
                           duration_s=200.0)
        rec_s = time.monotonic() - t
    table("Simulator speed", ["what", "p50", "p99", "goal"],
          [["one 30-slot clip, one core (ms; 200 random cases)", clip["p50_ms"], clip["p99_ms"],
            "<= 20 ms"],
           ["200 s 640x480 30 fps H.264 recording, 2 cores (s)", rec_s, None, "<= 30 s"]])
    write("sim_speed", {"clip_ms": clip, "recording_200s_s": rec_s,
                        "recording_frames": truth["frames"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
