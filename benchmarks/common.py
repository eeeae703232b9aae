"""Shared by the benchmarks: a results folder, tables on stdout, JSON files, percentiles,
the machine's description, and the benchmark recordings (made once, then reused)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

RESULTS = Path(os.environ.get("CEUSTREAM_BENCH_DIR", "benchmarks/results"))


def out_dir() -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def pct(values, q) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def summary(values_ms) -> dict:
    v = np.asarray(values_ms, dtype=float)
    return {"n": int(v.size), "p50_ms": pct(v, 50), "p99_ms": pct(v, 99),
            "mean_ms": float(v.mean()) if v.size else None, "max_ms": float(v.max()) if v.size else None}


def table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [header] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    lines = [title, "  ".join(str(h).ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in cells[1:]]
    text = "\n".join(lines)
    print(text + "\n", flush=True)
    return text


def _fmt(c) -> str:
    if isinstance(c, float):
        return f"{c:.3f}" if abs(c) < 100 else f"{c:.1f}"
    return "n/a" if c is None else str(c)


def write(name: str, data: dict) -> Path:
    p = out_dir() / f"{name}.json"
    data = {"benchmark": name, "machine": machine(), **data}
    p.write_text(json.dumps(data, indent=1, default=float))
    print(f"wrote {p}", flush=True)
    return p


def exam_1080p(seconds: float = 206.0, keyint_s: float = 2.0) -> tuple[Path, dict]:
    """A 1080p30 H.264 exam (keyframe every 2 s): the simulator's screen upscaled, as a
    scanner's HDMI output is. Made once per machine, then reused."""
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.recording import write_exam
    from ceustream.models.simulator.scene import Scene

    media = out_dir() / "media"
    media.mkdir(exist_ok=True)
    path = media / f"exam1080p_{int(seconds)}s.mp4"
    meta = Path(str(path) + ".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    print(f"recording the benchmark exam {path} (1080p30, {seconds:.0f} s; once) ...", flush=True)
    t = time.monotonic()
    truth = write_exam(Scene(sample_case(21), injection_s=6.0), path, fps=30.0,
                       duration_s=seconds, keyint_s=keyint_s, preset="veryfast",
                       output_size=(1920, 1080))
    print(f"  done in {time.monotonic() - t:.0f} s", flush=True)
    return path, truth


def cpu_seconds_of(cmd: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """(user+system CPU seconds, wall seconds, exit code) of a child process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, p.returncode
