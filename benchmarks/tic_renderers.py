"""The TIC reading's rim APHE on the project's two renderers, whose exams know their pattern.

``python -m ceustream.benchmarks.tic_renderers [--n 30] [--seed 100]``

For ``n`` exams of each renderer (renderer A: ``models.simulator``, renderer B:
``models.renderer_b``; labels alternate), the frame around the exam's ROI is rendered at the
30 slot times (A: the scene's luma; B: the full screen, BT.601 luma, as a recording gives it)
and the ROI and that frame are resized as the engine does (``roi.region_for``: a band of half
the ROI's side). The reading runs twice: with the ROI's own ring as the parenchyma and with
the band around the ROI. Reported: how often ``aphe == "rim"`` agrees with the renderer's
truth (rim vs any other pattern), per renderer and reference. Prints a table and writes
``benchmarks/results/tic_renderers.json``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .common import table, write

RIM = ("rim", "rim APHE")


def view_of(frames, region, roi, height: int = 64, width: int = 64):
    """(clip, tic.View) from frames of ``region``, as ``app.session.Around`` builds them."""
    from ceustream.engine.core import tic
    from ceustream.engine.core.roi import resize, within

    fy, fx = height / roi.h, width / roi.w
    size = (max(1, int(round(region.h * fy))), max(1, int(round(region.w * fx))))
    clip = np.stack([resize(np.ascontiguousarray(f[within(region, roi)]), height, width)
                     for f in frames])
    px = np.stack([resize(f, *size) for f in frames])
    box = (int(round((roi.y - region.y) * fy)), int(round((roi.x - region.x) * fx)), height,
           width)
    return clip, tic.View(px, box)


def exam_a(seed: int):
    from ceustream.engine.core.modelmeta import PAPER_OFFSETS_S
    from ceustream.engine.core.roi import Roi, region_for
    from ceustream.models.simulator.clips import slot_times
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.scene import Layout, Scene

    case = sample_case(seed, label=seed % 2)
    layout = Layout()
    scene = Scene(case, layout, 5.0)
    roi = Roi(*scene.roi())
    region = region_for(roi, layout.width, layout.height)
    frames = [scene.render_luma(t, tuple(region.as_list()))
              for t in slot_times(scene, PAPER_OFFSETS_S, 30.0, 0.0)]
    return (*view_of(frames, region, roi), case.pattern, case.lesion_arrival)


def exam_b(seed: int):
    from ceustream.engine.core.roi import Roi, region_for, rgb_to_luma
    from ceustream.models.renderer_b import render
    from ceustream.models.renderer_b.exam import sample_exam

    ex = sample_exam(seed, label=seed % 2)
    times = [render.frame_time(ex, k) for k in render.slot_frames(ex, 0.0)]
    roi = Roi(*ex.roi)
    region = region_for(roi, ex.layout.width, ex.layout.height)
    frames = [np.ascontiguousarray(rgb_to_luma(render.render_frame(ex, t))[
        region.y:region.y + region.h, region.x:region.x + region.w]) for t in times]
    return (*view_of(frames, region, roi), ex.pattern, ex.t0_s - ex.injection_s)


def main(argv: list[str] | None = None) -> int:
    from ceustream.engine.core import tic
    from ceustream.engine.core.modelmeta import PAPER_OFFSETS_S

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=30, help="exams per renderer (default 30)")
    ap.add_argument("--seed", type=int, default=100, help="first seed (default 100)")
    a = ap.parse_args(argv)
    started = time.monotonic()
    exams, rows, summary = [], [], {}
    for name, make in (("A", exam_a), ("B", exam_b)):
        counts = {}
        for seed in range(a.seed, a.seed + a.n):
            clip, view, pattern, delay = make(seed)
            rec = {"renderer": name, "seed": seed, "pattern": pattern}
            for ref, v in (("ring", None), ("band", view)):
                rd = tic.read(clip, np.ones(len(clip), bool), PAPER_OFFSETS_S,
                              arrival_delay_s=delay, view=v)
                rec[ref] = {"aphe": rd.aphe, "rim_index": rd.rim_index,
                            "reference": rd.reference}
                c = counts.setdefault(ref, {"rim": [0, 0], "other": [0, 0]})
                truth = "rim" if pattern in RIM else "other"
                c[truth][0] += (rd.aphe == "rim") == (truth == "rim")
                c[truth][1] += 1
            exams.append(rec)
        for ref, c in counts.items():
            agree = c["rim"][0] + c["other"][0]
            summary[f"{name}/{ref}"] = {"agree": agree, "n": a.n, "rim_read_rim": c["rim"],
                                        "other_read_not_rim": c["other"]}
            rows.append([name, ref, f"{agree}/{a.n}", f"{c['rim'][0]}/{c['rim'][1]}",
                         f"{c['other'][0]}/{c['other'][1]}"])
    table(f"rim APHE on the project's renderers ({a.n} exams each, seeds {a.seed}.."
          f"{a.seed + a.n - 1})", ["renderer", "reference", "rim vs not: agree",
                                   "rim lesions read rim", "others read not rim"], rows)
    write("tic_renderers", {"n": a.n, "seed": a.seed, "summary": summary, "exams": exams,
                            "wall_s": round(time.monotonic() - started, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
