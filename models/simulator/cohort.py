"""Simulated cohorts: clips (and B-mode images) for many cases, deterministic in the seed.
Patient p of cohort seed s is case ``s * 1_000_003 + p``, so cohorts from different seeds never
share a patient."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .bmode import bmode_image
from .clips import Acquisition, simulate_clip
from .physiology import HCC, NON_HCC, Case, sample_case

PAPER_COHORT = {"n": 116, "hcc": 100}


@dataclass
class Cohort:
    seeds: np.ndarray      # (N,) case seeds (patient ids)
    labels: np.ndarray     # (N,) 1 = HCC
    clips: np.ndarray      # (N, 30, 64, 64) uint8
    bmode: np.ndarray | None  # (N, 112, 112, 3) uint8
    subtypes: list[str]
    patterns: list[str]
    washouts: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, seeds=self.seeds, labels=self.labels, clips=self.clips,
                            bmode=self.bmode if self.bmode is not None else np.zeros(0),
                            subtypes=np.array(self.subtypes), patterns=np.array(self.patterns),
                            washouts=np.array(self.washouts))

    @classmethod
    def load(cls, path: str | Path) -> "Cohort":
        d = np.load(path)
        bm = d["bmode"] if d["bmode"].size else None
        return cls(d["seeds"], d["labels"], d["clips"], bm, list(d["subtypes"]),
                   list(d["patterns"]), list(d["washouts"]))


def make_cohort(n: int, seed: int, n_hcc: int | None = None, bmode: bool = False,
                progress: Callable[[int, int], None] | None = None,
                varied: bool = False) -> Cohort:
    """``n`` patients; ``n_hcc`` of them HCC (default: half). ``varied``: each clip as a
    different recording would give it (``Acquisition.sample``: smoothing, codec loss, t0
    error), drawn from a generator of its own so the patients stay the same."""
    n_hcc = n // 2 if n_hcc is None else n_hcc
    rng = np.random.default_rng(seed)
    labels = np.array([HCC] * n_hcc + [NON_HCC] * (n - n_hcc))
    rng.shuffle(labels)
    seeds = np.array([seed * 1_000_003 + p for p in range(n)], np.int64)
    clips = np.empty((n, 30, 64, 64), np.uint8)
    bm = np.empty((n, 112, 112, 3), np.uint8) if bmode else None
    subtypes, patterns, washouts = [], [], []
    acq_rng = np.random.default_rng([seed, 0xACC])
    for i, (s, y) in enumerate(zip(seeds, labels)):
        case = sample_case(int(s), int(y))
        acq = Acquisition.sample(acq_rng) if varied else None
        clips[i] = simulate_clip(case, acquisition=acq)
        if bm is not None:
            bm[i] = bmode_image(case)
        subtypes.append(case.subtype)
        patterns.append(case.pattern)
        washouts.append(case.washout)
        if progress and (i + 1) % 50 == 0:
            progress(i + 1, n)
    return Cohort(seeds, labels, clips, bm, subtypes, patterns, washouts)


def expansion_views(case: Case, is_3d: bool, varied: bool = False) -> list[np.ndarray]:
    """The paper's extra copies of a minority-class patient: its clip shifted by -1 and +1 s
    (3D networks) or five more B-mode images (2D). ``varied``: each clip copy its own
    acquisition (its shift stands for the t0 error)."""
    if not is_3d:
        return [bmode_image(replace(case, seed=case.seed + 7 * k)) for k in range(1, 6)]
    rng = np.random.default_rng([case.seed, 0xE])
    return [simulate_clip(case, shift_s=shift, acquisition=replace(
                Acquisition.sample(rng), t0_error_s=0.0) if varied else None)
            for shift in (-1.0, 1.0)]
