"""``ceustream simulate --out FILE|DIR``: simulated CEUS exams as recordings (and a manifest)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ceustream.engine.core.errors import UsageError

from . import common

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = common.command(sub, "simulate", "write simulated CEUS exams (recordings, or an archive "
                       "with its manifest)")
    p.add_argument("--out", required=True, help="FILE (.mp4/.mkv/.avi/.ts) or, with --n, a folder")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    p.add_argument("--n", type=common.count, default=None,
                   help="an archive of N recordings + manifest.csv (classes alternate)")
    p.add_argument("--label", choices=["HCC", "non-HCC"], help="force the class")
    p.add_argument("--fps", type=common.positive, default=30.0, help="frame rate (default 30)")
    p.add_argument("--size", default="640x480", help="the scanner screen, WIDTHxHEIGHT "
                   "(default 640x480)")
    p.add_argument("--output-size", default=None, help="upscale the screen, e.g. 1920x1080")
    p.add_argument("--duration", type=common.positive, default=None,
                   help="seconds (default: until 180 s after contrast arrival, plus a margin)")
    p.add_argument("--keyint", type=common.positive, default=2.0,
                   help="seconds between keyframes (default 2)")
    p.add_argument("--preset", default="superfast", help="x264 speed preset (default superfast)")


def size(text: str, what: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{what} {text}: expected WIDTHxHEIGHT") from None
    if w < 160 or h < 120 or w > 4096 or h > 2160:
        raise UsageError(f"{what} {text}: between 160x120 and 4096x2160")
    return w, h


def run(args) -> int:
    from ceustream.models.simulator.physiology import HCC, NON_HCC, sample_case
    from ceustream.models.simulator.recording import CONTAINERS, write_exam
    from ceustream.models.simulator.scene import Layout, Scene

    screen = size(args.size, "--size")
    out_size = size(args.output_size, "--output-size") if args.output_size else None
    label = None if args.label is None else (HCC if args.label == "HCC" else NON_HCC)

    def one(seed: int, path: Path, lab, tag: str = "") -> dict:
        ext = path.suffix.lower().lstrip(".")
        if ext not in CONTAINERS:
            raise UsageError(f"--out {path}: use .mp4, .mkv, .avi or .ts")
        scene = Scene(sample_case(seed, lab), Layout(*screen), injection_s=6.0)
        t = time.monotonic()
        truth = write_exam(scene, path, fps=args.fps, duration_s=args.duration, container=ext,
                           keyint_s=args.keyint, preset=args.preset, output_size=out_size)
        log.info("%s%s: %s (%s, %s, %s washout), roi %s, injection %.1f s, t0 %.2f s, %.0f s "
                 "in %.1f s", tag, path, truth["label"], truth["case"]["subtype"],
                 truth["case"]["pattern"], truth["case"]["washout"],
                 ",".join(map(str, truth["roi"])), truth["injection_s"], truth["t0_s"],
                 truth["duration_s"], time.monotonic() - t)
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
    print(f"{folder / 'manifest.csv'}: {args.n} exams")
    return 0
