"""Renderer B's archives: many recordings with balanced labels and the
``manifest.csv`` (path,label,roi,t0,injection) that ``ceustream qa`` reads.

``ceustream qa`` takes t0 *or* the injection time per row and refuses rows giving both,
so by default each row fills ``t0`` and leaves ``injection`` empty (``times``
'injection' does the reverse, 'both' fills both for other readers); the sidecar JSON of
every recording holds both anyway."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from .exam import CONTAINERS, sample_exam
from .record import write_recording

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
COLUMNS = ("path", "label", "roi", "t0", "injection")
EXTENSIONS = {"mp4": "mp4", "mkv": "mkv", "avi": "avi"}
TIMES = ("t0", "injection", "both")


def exam_seed(seed: int, i: int) -> int:
    """The seed of the archive's i-th exam (independent streams per exam)."""
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1, dtype=np.uint32)[0])


def balanced_labels(n: int, seed: int) -> list[int]:
    """n labels, half HCC (1) and half non-HCC (0) (the odd one drawn), shuffled."""
    rng = np.random.default_rng([int(seed), 0xB])
    labels = [1] * (n // 2) + [0] * (n // 2)
    if n % 2:
        labels.append(int(rng.random() < 0.5))
    rng.shuffle(labels)
    return labels


def check_args(n: int, seed: int, containers, times: str) -> tuple[str, ...] | None:
    """Validated containers for write_archive; ValueError naming the bad argument."""
    if times not in TIMES:
        raise ValueError(f"times must be one of {', '.join(TIMES)}, not {times!r}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    if containers is None:
        return None
    containers = tuple(containers)
    bad = [c for c in containers if c not in CONTAINERS]
    if not containers or bad:
        raise ValueError(f"containers must be among {', '.join(CONTAINERS)}, not {bad or 'nothing'}")
    return containers


def manifest_row(folder: Path, info: dict, times: str = "t0") -> list[str]:
    """One manifest row: path relative to the folder, label, "x,y,w,h", t0, injection
    (seconds from the first frame; the one ``times`` leaves out is empty)."""
    rel = Path(info["path"]).relative_to(folder).as_posix()
    t0 = f"{info['t0_s']:.3f}" if times in ("t0", "both") else ""
    inj = f"{info['injection_s']:.3f}" if times in ("injection", "both") else ""
    return [rel, info["label"], ",".join(str(v) for v in info["roi"]), t0, inj]


def write_archive(folder, n: int, seed: int, containers=None,
                  progress: Callable[[int, int, dict], None] | None = None, times: str = "t0") -> Path:
    """Write n recordings (labels balanced) and ``manifest.csv`` into ``folder``; rows
    are appended as recordings finish, so an interrupted archive stays usable.
    ``containers`` limits the containers used (None: each exam's own choice);
    ``progress(i, n, info)`` is called after each recording; ``times`` says which of
    t0 / injection the rows give ('t0', 'injection' or 'both'). Returns the manifest path."""
    containers = check_args(n, seed, containers, times)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = balanced_labels(n, seed)
    manifest = folder / MANIFEST
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for i, label in enumerate(labels):
            s = exam_seed(seed, i)
            exam = sample_exam(s, label)
            container = exam.container
            if containers is not None and container not in containers:
                container = containers[i % len(containers)]
            path = folder / f"b{i:04d}_{s:010d}.{EXTENSIONS[container]}"
            info = write_recording(exam, path, container)
            writer.writerow(manifest_row(folder, info, times))
            fh.flush()
            if progress is not None:
                progress(i + 1, n, info)
    log.info("%s: %d recordings", manifest, n)
    return manifest
