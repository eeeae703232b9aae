"""A simulated scanner: the video output of one simulated CEUS exam as a frame generator
(``sim://SEED?speed=S&size=WxH&injection=T&fps=F``). The live engine pushes its frames into
a GStreamer ``appsrc`` as a live source (``ceustream.pipelines.live``), paced at ``speed``
times real time, so a whole exam can be run live without a scanner."""

from __future__ import annotations

import math
from typing import Iterator
from urllib.parse import parse_qs, urlparse

import numpy as np

from ceustream.engine.core.errors import UsageError

from .physiology import sample_case
from .scene import Layout, Scene
from .screen import Screen


class SimScanner:
    def __init__(self, uri: str):
        u = urlparse(uri)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        usage = f"--source {uri}: expected sim://SEED?speed=S&size=WxH&injection=T&fps=F"
        try:
            self.seed = int(u.netloc or "7")
            self.speed = float(q.get("speed", "1"))
            w, h = (int(x) for x in q.get("size", "640x480").split("x"))
            self.injection = float(q.get("injection", "6"))
            self.fps = float(q.get("fps", "30"))
        except ValueError:
            raise UsageError(usage) from None
        if not all(math.isfinite(v) for v in (self.speed, self.injection, self.fps)) or not (
                0 < self.speed <= 100 and 160 <= w <= 4096 and 120 <= h <= 2160
                and 0 < self.fps <= 240 and 0 <= self.injection <= 3600):
            raise UsageError(f"--source {uri}: speed 0-100, fps 0-240, injection 0-3600 s, "
                             "size 160x120 to 4096x2160")
        self.scene = Scene(sample_case(self.seed), Layout(w, h), self.injection)
        self.screen = Screen(self.scene)
        self.size = (w, h)
        self.duration = self.injection + max(200.0, self.scene.case.lesion_arrival + 185.0)

    @property
    def truth(self) -> dict:
        return {"roi": list(self.scene.roi()), "injection_s": self.injection,
                "t0_s": self.injection + self.scene.case.lesion_arrival,
                "label": "HCC" if self.scene.case.label == 1 else "non-HCC"}

    def frames(self, start_s: float = 0.0) -> Iterator[tuple[float, np.ndarray]]:
        """(exam time, RGB frame) at ``fps`` from ``start_s`` to the end of the exam."""
        k = int(math.ceil(start_s * self.fps - 1e-9))
        while True:
            t = k / self.fps
            if t > self.duration:
                return
            yield t, self.screen.render(t)
            k += 1
