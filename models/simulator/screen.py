"""The scanner's screen around the CEUS image: title bar, contrast timer, depth marks and a
permanent 'simulated' notice, drawn outside the sector so they never cover the lesion."""

from __future__ import annotations

import numpy as np

from .scene import GOLD, Scene


class Screen:
    def __init__(self, scene: Scene):
        import cv2

        self.scene = scene
        L = scene.layout
        self.frame = np.zeros((L.height, L.width, 3), np.uint8)
        self.scale = L.height / 480.0
        self._static = np.zeros_like(self.frame)
        s = self.scale
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(self._static, "CEUS  MI 0.08  C5-1  SIMULATOR", (int(8 * s), int(18 * s)),
                    font, 0.45 * s, (200, 200, 200), max(1, int(s)), cv2.LINE_AA)
        cv2.putText(self._static, "SIMULATED EXAM - NOT A PATIENT",
                    (int(8 * s), L.height - int(8 * s)), font, 0.4 * s, (160, 160, 160),
                    max(1, int(s)), cv2.LINE_AA)
        ax, ay = L.apex
        for cm in range(0, 17, 2):  # depth marks every 2 cm
            yy = int(ay + cm * 10 * L.px_per_mm)
            if yy < L.height - 20 * s:
                cv2.line(self._static, (L.width - int(22 * s), yy), (L.width - int(14 * s), yy),
                         (180, 180, 180), 1)
                cv2.putText(self._static, str(cm), (L.width - int(12 * s), yy + int(4 * s)), font,
                            0.3 * s, (180, 180, 180), 1, cv2.LINE_AA)
        self._mask = self._static.any(axis=2)
        self.frame[:] = self._static
        self._lut = GOLD.reshape(256, 1, 3)
        self._timer_cache: tuple[str, np.ndarray] | None = None
        self.box = L.sector_box

    def _timer(self, t: float) -> np.ndarray:
        import cv2

        tau = t - self.scene.injection_s
        text = "--:--" if tau < 0 else f"{int(tau) // 60:02d}:{int(tau) % 60:02d}"
        if self._timer_cache is None or self._timer_cache[0] != text:
            s = self.scale
            img = np.zeros((int(26 * s), int(110 * s), 3), np.uint8)
            cv2.putText(img, "CE " + text, (int(4 * s), int(19 * s)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.6 * s, (255, 230, 120), max(1, int(1.5 * s)), cv2.LINE_AA)
            self._timer_cache = (text, img)
        return self._timer_cache[1]

    def render(self, t: float) -> np.ndarray:
        """The whole screen (H x W x 3, RGB) at recording time ``t``. The returned array is
        reused by the next call."""
        import cv2

        f = self.frame
        x, y, w, h = self.box
        g = self.scene.render(t, self.box)
        f[y:y + h, x:x + w] = cv2.LUT(cv2.merge([g, g, g]), self._lut)
        np.copyto(f[y:y + h, x:x + w], self._static[y:y + h, x:x + w],
                  where=self._mask[y:y + h, x:x + w, None])
        tm = self._timer(t)
        W = self.scene.layout.width
        f[4:4 + tm.shape[0], W - tm.shape[1] - 30:W - 30] = tm
        return f
