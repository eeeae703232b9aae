"""Issue 12: how fast ``ceustream qa`` works through an archive: exams per minute with one
process (``--jobs 1``), two worker processes (``--jobs 2``) and a local Ray instance
(``--ray local --jobs 2``), on the same simulated archive (made once, then reused), each run
into a fresh folder. The wall time is the whole command's (start-up, model loading, Ray's
start included); "in run" is the report's own (scoring only). The machine's load average is
recorded before each run: on a shared machine other work slows every mode alike.

    python -m ceustream.benchmarks.qa_throughput [--n 12] [--size 320x240] [--fps 15]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import out_dir, table, write


def archive(n: int, size: str, fps: float) -> Path:
    """A simulated archive of ``n`` recordings with its manifest (cached)."""
    d = out_dir() / "media" / f"qa_archive_{n}_{size}_{fps:g}"
    if (d / "manifest.csv").is_file():
        return d
    tmp = d.with_name(d.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [sys.executable, "-m", "ceustream.engine.cli", "simulate", "--n", str(n), "--out",
           str(tmp), "--size", size, "--fps", str(fps), "--quiet"]
    subprocess.run(cmd, check=True)
    tmp.rename(d)
    return d


def run_qa(manifest: Path, extra: list[str], env: dict) -> dict:
    out = Path(tempfile.mkdtemp(prefix="qa_bench_"))
    load = os.getloadavg()
    t = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "ceustream.engine.cli", "qa", str(manifest),
                        "--out", str(out / "run"), "--quiet", *extra], env=env,
                       capture_output=True, text=True)
    wall = time.monotonic() - t
    if p.returncode not in (0, 4):
        raise SystemExit(f"qa {' '.join(extra)}: exit {p.returncode}: {p.stderr[-2000:]}")
    rep = json.loads((out / "run" / "report.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "in_run_s": rep["wall_s"], "exams": rep["exams"],
            "scored_final": rep["scored_final"], "load_before": [round(x, 2) for x in load],
            "exams_per_min": 60.0 * rep["exams"] / wall,
            "exams_per_min_in_run": 60.0 * rep["exams"] / max(rep["wall_s"], 1e-9)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12, help="recordings in the archive")
    ap.add_argument("--size", default="320x240", help="their screen size")
    ap.add_argument("--fps", type=float, default=15.0, help="their frame rate")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    args = ap.parse_args(argv)
    d = archive(args.n, args.size, args.fps)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEUSTREAM_")}
    runs = {"--jobs 1": ["--jobs", "1"], "--jobs 2": ["--jobs", "2"]}
    if not args.no_ray:
        try:
            import ray  # noqa: F401

            runs["--ray local --jobs 2"] = ["--ray", "local", "--jobs", "2"]
            # a private token for the private cluster (nothing written to ~/.ray)
            env = dict(env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        except ImportError:
            print("ray is not installed: skipping the Ray run", flush=True)
    res = {name: run_qa(d / "manifest.csv", extra, env) for name, extra in runs.items()}
    rows = [[name, r["exams"], r["wall_s"], r["exams_per_min"], r["in_run_s"],
             r["exams_per_min_in_run"], " ".join(map(str, r["load_before"]))]
            for name, r in res.items()]
    table(f"QA throughput: {args.n} simulated exams ({args.size}, {args.fps:g} fps, "
          f"{os.cpu_count()} cores)",
          ["mode", "exams", "wall s", "exams/min", "in run s", "exams/min in run",
           "load avg before (1/5/15 min)"], rows)
    write("qa_throughput", {"archive": {"n": args.n, "size": args.size, "fps": args.fps},
                            "runs": res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
