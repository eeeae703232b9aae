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


def sim_exam(size: tuple[int, int], seconds: float = 206.0, container: str = "mp4",
             keyint_s: float = 2.0) -> tuple[Path, dict]:
    """A simulated 30 fps H.264 exam (keyframe every ``keyint_s``) at ``size``: the
    simulator's screen scaled as a scanner's video output is; ``container`` mp4 or ts (MPEG-TS,
    as a hardware encoder sends it). Made once per machine, then reused."""
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.recording import write_exam
    from ceustream.models.simulator.scene import Scene

    media = out_dir() / "media"
    media.mkdir(exist_ok=True)
    name = f"exam{size[1]}p_{int(seconds)}s.{container}"
    path = media / name
    meta = Path(str(path) + ".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    print(f"recording the benchmark exam {path} ({size[1]}p30, {seconds:.0f} s; once) ...",
          flush=True)
    t = time.monotonic()
    extra = {"container": "ts"} if container == "ts" else {}
    truth = write_exam(Scene(sample_case(21), injection_s=6.0), path, fps=30.0,
                       duration_s=seconds, keyint_s=keyint_s, preset="veryfast",
                       output_size=size, **extra)
    print(f"  done in {time.monotonic() - t:.0f} s", flush=True)
    return path, truth


def exam_1080p(seconds: float = 206.0, keyint_s: float = 2.0) -> tuple[Path, dict]:
    """The 1080p30 MP4 exam of the replay benchmarks."""
    return sim_exam((1920, 1080), seconds, "mp4", keyint_s)


def free_port() -> int:
    """A TCP port free on the loopback now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


SITE_MODES = ("t0 given", "t0 detected")


def site_replays(folder: Path) -> dict[str, list[tuple[dict, dict]]]:
    """Every exam of a site sample (``manifest.csv`` as ``qa`` reads it) replayed through
    the engine with the shipped model, t0 given and t0 detected from the injection:
    {mode: [(manifest row, replay result), ...]}."""
    import csv

    from ceustream.engine.app.loading import load_model_and_backend
    from ceustream.engine.app.replay import ReplayOptions, replay
    from ceustream.engine.core import config
    from ceustream.engine.core.roi import Roi

    cfg = config.load(env={})
    loaded = load_model_and_backend(None, "onnxruntime", cfg)
    with open(folder / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, list[tuple[dict, dict]]] = {}
    for mode in SITE_MODES:
        given = mode == "t0 given"
        out[mode] = [(r, replay(folder / r["path"], ReplayOptions(
            roi=Roi.parse(r["roi"]), t0=float(r["t0"]) if given else None,
            injection=None if given else 0.0, journal=False), cfg, loaded=loaded))
            for r in rows]
    return out
