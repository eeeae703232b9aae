"""Training and test clips from either renderer, the same way for both: the cohorts the shipped
model and the cross-renderer evaluation are made of.

- renderer ``A`` (``models/simulator``): each patient drawn with ``augment.Variation``
  (another operator's ROI: lesion / ROI 0.3-0.9 and off-centre; another frame rate; a t0
  error) unless ``varied=False`` (the renderer's own ROI and 30 fps);
- renderer ``B`` (``models/renderer_b``): its exams already vary screen, ROI, frame rate,
  colour map, gain and dynamic range; ``varied`` adds the t0 error.

Patient ``p`` of cohort seed ``s`` is case ``s * 1_000_003 + p`` in both renderers, so cohorts
from different seeds never share a patient. Classes alternate (balanced). Deterministic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

RENDERERS = ("A", "B")


@dataclass
class Clips:
    renderer: str
    seed: int
    clips: np.ndarray       # (N, 30, 64, 64) uint8
    labels: np.ndarray      # (N,) 1 = HCC
    patterns: np.ndarray    # enhancement pattern names (the renderer's words)
    washouts: np.ndarray    # washout names (the renderer's words)

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, renderer=self.renderer, seed=self.seed, clips=self.clips,
                            labels=self.labels, patterns=self.patterns, washouts=self.washouts)

    @classmethod
    def load(cls, path: str | Path) -> "Clips":
        d = np.load(path)
        return cls(str(d["renderer"]), int(d["seed"]), d["clips"], d["labels"], d["patterns"],
                   d["washouts"])

    def head(self, n: int) -> "Clips":
        return Clips(self.renderer, self.seed, self.clips[:n], self.labels[:n],
                     self.patterns[:n], self.washouts[:n])


def make(renderer: str, n: int, seed: int, varied: bool = True,
         progress: Callable[[int, int], None] | None = None,
         variations: tuple[str, ...] | None = None) -> Clips:
    """``n`` patients of ``renderer`` (half HCC, alternating). ``variations``: which
    render-time variations (``augment.RENDER_LEVEL``) to draw (default: all when ``varied``)."""
    from .augment import RENDER_LEVEL

    on = tuple(variations) if variations is not None else (RENDER_LEVEL if varied else ())
    if renderer not in RENDERERS:
        raise ValueError(f"renderer {renderer!r}: one of {', '.join(RENDERERS)}")
    rng = np.random.default_rng([seed, 0xC0])
    clips = np.empty((n, 30, 64, 64), np.uint8)
    labels = np.empty(n, np.int64)
    patterns, washouts = [], []
    for i in range(n):
        label = int(i % 2 == 0)
        case_seed = seed * 1_000_003 + i
        if renderer == "A":
            from .augment import Variation
            from .simulator.clips import simulate_clip
            from .simulator.physiology import sample_case

            case = sample_case(case_seed, label)
            clips[i] = simulate_clip(case, variation=Variation.sample(rng, on) if on else None)
            patterns.append(case.pattern)
            washouts.append(case.washout)
        else:
            from .renderer_b import render_clip, sample_exam

            exam = sample_exam(case_seed, label=label)
            err = float(rng.uniform(-1.5, 1.5)) if "t0_error" in on else 0.0
            clips[i] = render_clip(exam, t0_error_s=err)
            patterns.append(exam.pattern)
            washouts.append(exam.washout)
        labels[i] = label
        if progress and (i + 1) % 100 == 0:
            progress(i + 1, n)
    return Clips(renderer, seed, clips, labels, np.array(patterns), np.array(washouts))


def cached(work: Path, renderer: str, n: int, seed: int, varied: bool = True,
           variations: tuple[str, ...] | None = None) -> Clips:
    """``make``, kept in ``work`` (``<renderer>_<seed>_<n>[_plain|_<variations>].npz``)."""
    tag = "" if variations is None and varied else (
        "_plain" if variations is None else "_" + ("-".join(variations) or "none"))
    path = Path(work) / f"{renderer}_{seed}_{n}{tag}.npz"
    if path.exists():
        return Clips.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("rendering %d patients with renderer %s (seed %d)", n, renderer, seed)
    c = make(renderer, n, seed, varied,
             progress=lambda i, k: log.info("  renderer %s: %d/%d", renderer, i, k),
             variations=variations)
    tmp = path.with_name(path.name + ".tmp.npz")
    c.save(tmp)
    tmp.replace(path)
    return c


def join(*parts: Clips) -> tuple[np.ndarray, np.ndarray]:
    """(clips, labels) of several cohorts together."""
    return (np.concatenate([p.clips for p in parts]), np.concatenate([p.labels for p in parts]))
