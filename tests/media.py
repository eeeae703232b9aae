"""Recordings for the tests, made with GStreamer's own encoders (x264enc, jpegenc) through
ceustream's writer: real files in real containers, never mocks.

A "coded" recording carries its frame index as a barcode in the top-left corner and a
contrast-like curve in its ROI, so a test can check which frame the engine took for each
slot and where it put t0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

W, H = 160, 120
ROI = (56, 32, 64, 64)
BITS = 14
CELL = 8


@dataclass
class Coded:
    path: Path
    times: list[float]          # every frame's timestamp, as written
    injection: float
    arrival: float
    container: str

    @property
    def roi(self) -> str:
        return ",".join(map(str, ROI))


def curve(t: float, arrival: float) -> float:
    """ROI brightness: dark before arrival, a wash-in over 6 s, then a slow washout."""
    if t < arrival:
        return 30.0
    x = t - arrival
    return 30.0 + 170.0 * min(x / 6.0, 1.0) * np.exp(-max(x - 6.0, 0.0) / 200.0)


def frame(index: int, t: float, arrival: float) -> np.ndarray:
    rng = np.random.default_rng(index)
    img = np.full((H, W), 60, np.uint8)
    x, y, w, h = ROI
    level = curve(t, arrival)
    img[y:y + h, x:x + w] = np.clip(level + rng.normal(0, 6, (h, w)), 0, 255).astype(np.uint8)
    for b in range(BITS):
        v = 235 if (index >> b) & 1 else 20
        img[0:CELL, b * CELL:(b + 1) * CELL] = v
    return img


def read_index(luma: np.ndarray) -> int:
    """The frame index from a decoded frame's barcode."""
    out = 0
    for b in range(BITS):
        if luma[1:CELL - 1, b * CELL + 1:(b + 1) * CELL - 1].mean() > 128:
            out |= 1 << b
    return out


def write_coded(path: Path, *, fps: float = 30.0, duration: float | None = None,
                injection: float = 4.0, arrival: float = 19.0, container: str = "mp4",
                vfr: bool = False, keyint_s: float = 2.0, seed: int = 0) -> Coded:
    from ceustream.models.simulator.recording import VideoWriter

    if duration is None:
        duration = min(arrival, 60.0) + 186.0
    if vfr:
        rng = np.random.default_rng(seed)
        gaps = rng.uniform(0.5, 1.5, int(duration * fps * 1.2)) / fps
        times = np.cumsum(np.concatenate([[0.0], gaps]))
        times = [float(round(t, 4)) for t in times if t < duration]
    else:
        times = [k / fps for k in range(int(duration * fps))]
    wr = VideoWriter(path, W, H, fps, container, keyint_s, "ultrafast", quantizer=18,
                     variable_rate=vfr, fmt="GRAY8")
    for i, t in enumerate(times):
        dur = (times[i + 1] - t) if i + 1 < len(times) else 1.0 / fps
        wr.push(frame(i, t, arrival), t, dur)
    wr.close()
    c = Coded(path, times, injection, arrival, container)
    Path(str(path) + ".json").write_text(json.dumps({"times": times, "injection": injection,
                                                     "arrival": arrival}))
    return c
