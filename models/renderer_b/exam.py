"""Renderer B's exams: the class mixtures (which lesion, which enhancement pattern,
which washout), lesion size and place, ROI, timing, and the assembly of every sampled
part into one frozen ``Exam``.

Mixtures (ceus.md section 1; [prior] marks the simulator settings proposed there):
- HCC: non-rim APHE 87 % (Kang 2022: 86.6 %), of which 7 points heterogeneous (mosaic);
  rim APHE 4 % (LR-M HCC), iso 6 %, hypo 3 %. Washout late-mild 58 %, early-mild 17 %,
  marked 7 % (Li 2014: 12 % marked; [prior] 5-10 %), none inside the window 18 %
  ([prior] 15-30 %); 21 % early (Li 2014: 16 %; Wang 2026: 24 % of washing-out HCC).
  Without washout the lesion is smaller (washout in only 20-30 % of 1-2 cm HCC).
- non-HCC: ICC 65 %, combined HCC-CCA 25 %, other rare types 10 % (paper, 1.1.1).
  ICC: rim 38 %, heterogeneous hyper 48 %, homogeneous non-rim 8 %, hypo 6 % (UMB 30-case
  and 21-case series; [prior] rim 30-50 %, heterogeneous 40-60 %); early washout 82 %,
  marked 70 % ([prior] 75-90 % / 60-80 %; Li 2014: 87.9 % early, 78.8 % marked).
  Combined HCC-CCA: 30 % mimic HCC (non-rim APHE, late-mild or no washout; Li CQ 2022:
  73.6 % LR-M; [prior] 25-35 %), the rest LR-M. Other: mostly LR-M (Zheng 2025: 93.3 %).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from .image import (Display, LesionShape, Motion, Tissue, Vessel, sample_display, sample_motion,
                    sample_tissue)
from .physiology import Physiology, sample_physiology
from .screen import Layout, Panel, sample_layout

log = logging.getLogger(__name__)

SUBTYPE_P = {"icc": 0.65, "combined": 0.25, "other": 0.10}
COMBINED_HCC_LIKE = 0.30
PATTERN_P = {
    "hcc": {"non-rim APHE": 0.80, "heterogeneous": 0.07, "rim APHE": 0.04, "iso": 0.06, "hypo": 0.03},
    "icc": {"rim APHE": 0.38, "heterogeneous": 0.48, "non-rim APHE": 0.08, "hypo": 0.06},
    "combined-lrm": {"rim APHE": 0.30, "heterogeneous": 0.40, "non-rim APHE": 0.30},
    "combined-hcclike": {"non-rim APHE": 0.85, "heterogeneous": 0.15},
    "other": {"rim APHE": 0.30, "heterogeneous": 0.35, "non-rim APHE": 0.20, "hypo": 0.15},
}
WASHOUT_P = {
    "hcc": {"late-mild": 0.58, "early-mild": 0.17, "late-marked": 0.03, "early-marked": 0.04, "none": 0.18},
    "icc": {"early-marked": 0.62, "early-mild": 0.20, "late-marked": 0.08, "late-mild": 0.07, "none": 0.03},
    "combined-lrm": {"early-marked": 0.45, "early-mild": 0.30, "late-marked": 0.25},
    "combined-hcclike": {"late-mild": 0.75, "none": 0.25},
    "other": {"early-marked": 0.50, "early-mild": 0.25, "late-marked": 0.10, "late-mild": 0.10, "none": 0.05},
}
#: (median mm, log-sd, min mm, max mm) of the lesion diameter (ceus.md section 3 sizes)
SIZE_MM = {"hcc": (32.0, 0.45, 10.0, 90.0), "hcc-small": (18.0, 0.35, 10.0, 40.0),
           "icc": (55.0, 0.4, 15.0, 110.0), "combined": (45.0, 0.45, 15.0, 100.0),
           "other": (45.0, 0.45, 15.0, 100.0)}
FPS_CHOICES = (4.0, 5.0, 6.0, 7.5, 8.0, 10.0, 12.5, 15.0)
FPS_P = (0.2, 0.15, 0.2, 0.1, 0.15, 0.1, 0.05, 0.05)
CONTAINERS = ("mp4", "mkv", "avi")
CONTAINER_P = (0.4, 0.3, 0.3)
#: seconds the recording runs past the last slot (t0 + 180 s), before a sampled extra
TAIL_S = 5.0


@dataclass(frozen=True)
class Exam:
    """One simulated CEUS exam: the truth, the physiology, the picture and the timing.
    Times ``injection_s``, ``t0_s`` and ``duration_s`` are seconds from the first frame;
    ``t0_s`` is when contrast appears in the lesion (2 % of its arterial peak, ~1-4 s
    after the bolus front, see Physiology.appearance_s), the schedule's origin;
    ``washout_onset_s`` is seconds after the injection (None: no washout in the window).
    ``roi`` is (x, y, w, h) on the screen, inside the CEUS image area; ``codec_quality``
    (0..1) sets the encoder's quality (x264 quantiser 38..24, JPEG quality 50..90)."""

    seed: int
    label: int
    subtype: str
    hcc_like: bool
    pattern: str
    washout: str
    washout_onset_s: float | None
    lesion_mm: float
    shape: str
    lesion: LesionShape
    vessels: tuple[Vessel, ...]
    tissue: Tissue
    physiology: Physiology
    display: Display
    motion: Motion
    layout: Layout
    injection_s: float
    t0_s: float
    fps: float
    duration_s: float
    container: str
    codec_quality: float
    roi: tuple[int, int, int, int]
    roi_ratio: float

    @property
    def size(self) -> tuple[int, int]:
        """Frame size (width, height)."""
        return (self.layout.width, self.layout.height)

    @property
    def frame_count(self) -> int:
        """Frames in the recording: k = 0 .. frame_count - 1 at k / fps seconds."""
        return int(math.floor(self.duration_s * self.fps)) + 1

    @property
    def label_name(self) -> str:
        """'HCC' or 'non-HCC', as manifests spell it."""
        return "HCC" if self.label == 1 else "non-HCC"

    def truth(self, container: str | None = None) -> dict:
        """The facts a recording's sidecar JSON carries."""
        return {
            "renderer": "B", "seed": self.seed, "label": self.label_name, "label_int": self.label,
            "subtype": self.subtype, "hcc_like": self.hcc_like, "pattern": self.pattern,
            "washout": self.washout,
            "washout_onset_s": None if self.washout_onset_s is None else round(self.washout_onset_s, 3),
            "lesion_mm": round(self.lesion_mm, 2), "shape": self.shape,
            "t0_s": round(self.t0_s, 4), "injection_s": round(self.injection_s, 4),
            "roi": list(self.roi), "roi_ratio": round(self.roi_ratio, 3), "fps": self.fps,
            "size": list(self.size), "frames": self.frame_count,
            "codec_quality": round(self.codec_quality, 3),
            "duration_s": round(self.duration_s, 4), "container": container or self.container,
            "colormap": self.display.colormap, "geometry": self.layout.ceus.kind,
            "dual_view": self.layout.bmode is not None,
        }


def pick(rng: np.random.Generator, table: dict[str, float]) -> str:
    """One key of a probability table."""
    keys = list(table)
    p = np.array(list(table.values()), dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def sample_class(rng: np.random.Generator, label: int) -> tuple[str, bool, str, str]:
    """(subtype, hcc_like, pattern, washout) for a label, per the mixtures above."""
    if label == 1:
        return "hcc", False, pick(rng, PATTERN_P["hcc"]), pick(rng, WASHOUT_P["hcc"])
    subtype = pick(rng, SUBTYPE_P)
    hcc_like = subtype == "combined" and rng.random() < COMBINED_HCC_LIKE
    key = {"icc": "icc", "other": "other"}.get(subtype, "combined-hcclike" if hcc_like else "combined-lrm")
    return subtype, hcc_like, pick(rng, PATTERN_P[key]), pick(rng, WASHOUT_P[key])


def sample_size_mm(rng: np.random.Generator, subtype: str, washout: str) -> float:
    """Lesion diameter (mm): HCC ~32 mm median (Kang 2022 mean 33.5), smaller without
    washout; ICC ~55 mm (Huang 2020: 6.3 +- 2.8 cm); combined/other ~45 mm."""
    key = "hcc-small" if subtype == "hcc" and washout == "none" else subtype
    med, sd, lo, hi = SIZE_MM[key]
    return float(np.clip(med * math.exp(rng.normal(0.0, sd)), lo, hi))


def sample_shape(rng: np.random.Generator, subtype: str, pattern: str, hcc_like: bool,
                 center: tuple[float, float], radius_px: float) -> tuple[str, LesionShape]:
    """Lesion outline and texture: HCC mostly round or lobulated with a halo in B-mode,
    ICC mostly irregular (ill-defined margin) and heterogeneous, necrotic when large."""
    p = {"hcc": (0.5, 0.35, 0.15)}.get("hcc" if subtype == "hcc" or hcc_like else subtype, (0.2, 0.3, 0.5))
    shape = ("round", "lobulated", "irregular")[int(rng.choice(3, p=p))]
    harmonics: list[tuple[float, float, float]] = []
    n_h = 0 if shape == "round" else int(rng.integers(2, 5))
    for k in range(n_h):
        phi = rng.uniform(0.0, 2 * math.pi)
        amp = rng.uniform(0.03, 0.14) / (1.0 + 0.4 * k)
        harmonics.append((amp, math.cos(phi), math.sin(phi)))
    warp = rng.uniform(0.08, 0.2) if shape == "irregular" else rng.uniform(0.0, 0.03)
    angle = rng.uniform(0.0, math.pi)
    heterogeneous = pattern == "heterogeneous"
    het_amp = rng.uniform(0.35, 0.6) if heterogeneous else rng.uniform(0.05, 0.18)
    necrosis = rng.uniform(0.3, 0.8) if heterogeneous and radius_px > 20 and rng.random() < 0.5 else 0.0
    hcc_look = subtype == "hcc" or hcc_like
    echo = (rng.choice([0.45, 0.9, 1.6], p=[0.5, 0.2, 0.3]) if hcc_look
            else rng.choice([0.45, 0.9, 1.5], p=[0.6, 0.15, 0.25])) * rng.uniform(0.85, 1.15)
    lesion = LesionShape(
        cx=float(center[0]), cy=float(center[1]), radius_px=radius_px, aspect=rng.uniform(0.75, 1.33),
        cos_a=math.cos(angle), sin_a=math.sin(angle), harmonics=tuple(harmonics), warp=warp,
        warp_px=max(radius_px * rng.uniform(0.35, 0.7), 3.0),
        edge_px=max(radius_px * (rng.uniform(0.08, 0.25) if shape == "irregular"
                                 else rng.uniform(0.03, 0.1)), 1.2),
        rim_frac=rng.uniform(0.12, 0.3) if pattern == "rim APHE" else 0.0,
        het_amp=het_amp, het_px=max(radius_px * rng.uniform(0.25, 0.6), 3.0), necrosis=necrosis,
        echo=float(echo), halo_frac=rng.uniform(0.06, 0.15) if hcc_look and rng.random() < 0.4 else 0.0,
        key=int(rng.integers(0, 2 ** 32)),
    )
    return shape, lesion


def roi_inside(panel: Panel, x: int, y: int, w: int, h: int) -> bool:
    """Whether every pixel of the rectangle is inside the panel's image area."""
    if w < 8 or h < 8 or x < panel.x or y < panel.y:
        return False
    return bool(panel.mask(np.arange(x, x + w), np.arange(y, y + h)).all())


def place_lesion(rng: np.random.Generator, layout: Layout, wall_cm: float, extent_px: float,
                 motion_px: float) -> tuple[float, float] | None:
    """A lesion centre below the abdominal wall, inside the CEUS image area with its
    whole extent (and breathing) imaged; None after 100 failed draws."""
    panel = layout.ceus
    depth = panel.depth_px
    wall_px = wall_cm * 10.0 * layout.px_per_mm
    lo = (wall_px + extent_px + motion_px) / depth
    hi = 0.92 - (extent_px + motion_px) / depth
    if lo >= hi:
        return None
    r = int(math.ceil(extent_px + motion_px))
    for _ in range(100):
        cx, cy = panel.point_at(rng.uniform(lo, hi), rng.uniform(-0.75, 0.75))
        if roi_inside(panel, int(cx) - r, int(cy) - r, 2 * r + 1, 2 * r + 1):
            return cx, cy
    return None


def sample_roi(rng: np.random.Generator, panel: Panel, center: tuple[float, float],
               extent_px: float) -> tuple[tuple[int, int, int, int], float] | None:
    """An operator's ROI around the lesion: lesion extent / the ROI's longer side
    0.3-0.9, the lesion off-centre but inside, the box inside the CEUS image area;
    (roi, ratio) or None if none fits."""
    for attempt in range(400):
        if attempt % 10 == 0:  # a few placements per size before drawing another size
            ratio = rng.uniform(0.3, 0.9)
            side = 2.0 * extent_px / ratio  # the ROI's longer side
            short = max(side * rng.uniform(0.8, 1.0), 2.0 * extent_px + 2.0)
            w, h = (side, short) if rng.random() < 0.5 else (short, side)
            w, h = int(math.ceil(w)), int(math.ceil(h))
        ox = rng.uniform(-1, 1) * max(w / 2.0 - extent_px, 0.0) * 0.9
        oy = rng.uniform(-1, 1) * max(h / 2.0 - extent_px, 0.0) * 0.9
        x = int(math.floor(center[0] - ox - w / 2.0))
        y = int(math.floor(center[1] - oy - h / 2.0))
        if roi_inside(panel, x, y, w, h):
            return (x, y, w, h), 2.0 * extent_px / max(w, h)
    return None


def sample_vessels(rng: np.random.Generator, panel: Panel, px_per_mm: float) -> tuple[Vessel, ...]:
    """0-3 large veins crossing the image: portal branches (3-7 mm, echogenic walls)
    and hepatic veins (2.5-5 mm)."""
    out = []
    for _ in range(int(rng.integers(0, 4))):
        kind = "portal" if rng.random() < 0.55 else "hepatic"
        radius = (rng.uniform(1.5, 3.5) if kind == "portal" else rng.uniform(1.25, 2.5)) * px_per_mm
        pts = tuple(panel.point_at(rng.uniform(0.25, 1.0), rng.uniform(-1.2, 1.2)) for _ in range(3))
        out.append(Vessel(kind, tuple((float(a), float(b)) for a, b in pts), radius))
    return tuple(out)


def sample_exam(seed: int, label: int | None = None, *, frame_size: tuple[int, int] | None = None,
                fps: float | None = None, duration_s: float | None = None,
                container: str | None = None) -> Exam:
    """The exam of a seed (same seed and arguments, same exam). ``label`` 1 = HCC,
    0 = non-HCC, None = either with probability 1/2. The keyword overrides (frame size,
    frame rate, recording duration, container) replace what the seed would choose after
    it has been drawn, so the rest of the exam stays that of the seed."""
    if label not in (None, 0, 1):
        raise ValueError(f"label must be 0, 1 or None, not {label!r}")
    if container is not None and container not in CONTAINERS:
        raise ValueError(f"container must be one of {', '.join(CONTAINERS)}, not {container!r}")
    rng = np.random.default_rng(int(seed))
    if label is None:
        label = int(rng.random() < 0.5)
    subtype, hcc_like, pattern, washout = sample_class(rng, label)
    phys, onset = sample_physiology(rng, subtype, pattern, washout)
    layout = sample_layout(rng, frame_size)
    ppm = layout.px_per_mm
    display = sample_display(rng, ppm)
    motion = sample_motion(rng, ppm)
    tissue = sample_tissue(rng, ppm)
    mm = sample_size_mm(rng, subtype, washout)
    panel = layout.ceus
    mm = min(mm, 0.5 * min(panel.depth_px, panel.w) / ppm)
    motion_px = 0.5 * motion.breath_px + motion.wander_px
    for _ in range(30):
        shape, lesion = sample_shape(rng, subtype, pattern, hcc_like, (0.0, 0.0), 0.5 * mm * ppm)
        center = place_lesion(rng, layout, display.wall_cm, lesion.extent_px, motion_px)
        if center is not None:
            lesion = replace(lesion, cx=float(center[0]), cy=float(center[1]))
            roi = sample_roi(rng, panel, center, lesion.extent_px)
            if roi is not None:
                break
        mm *= 0.85
        motion_px *= 0.7
    else:
        raise RuntimeError(f"seed {seed}: no lesion placement fits the {layout.width}x{layout.height} screen")
    vessels = sample_vessels(rng, panel, ppm)
    injection = rng.uniform(3.0, 15.0)
    t0 = injection + phys.appearance_s()
    chosen_fps = FPS_CHOICES[int(rng.choice(len(FPS_CHOICES), p=FPS_P))]
    chosen_container = CONTAINERS[int(rng.choice(len(CONTAINERS), p=CONTAINER_P))]
    duration = t0 + 180.0 + TAIL_S + rng.uniform(0.0, 6.0)
    quality = rng.uniform(0.0, 1.0)
    exam = Exam(
        seed=int(seed), label=label, subtype=subtype, hcc_like=hcc_like, pattern=pattern,
        washout=washout, washout_onset_s=onset, lesion_mm=mm, shape=shape, lesion=lesion,
        vessels=vessels, tissue=tissue, physiology=phys, display=display, motion=motion,
        layout=layout, injection_s=injection, t0_s=t0,
        fps=float(fps) if fps is not None else chosen_fps,
        duration_s=float(duration_s) if duration_s is not None else duration,
        container=container or chosen_container, codec_quality=quality, roi=roi[0], roi_ratio=roi[1],
    )
    log.debug("exam %d: %s %s %s %s, %.0f mm, %dx%d @ %.1f fps", seed, exam.label_name, subtype,
              pattern, washout, mm, layout.width, layout.height, exam.fps)
    return exam
