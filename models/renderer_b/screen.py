"""Renderer B's scanner screens: frame size, where the image areas lie and what shape
they have (convex, phased-array sector, linear), an optional side-by-side B-mode view,
text, timer, depth scale and grey bar overlays.

Overlays are only ever drawn outside the image areas' bounding boxes, and the ROI is
always inside the CEUS image area, so the ROI never holds an overlay pixel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: (width, height) of scanner video outputs, and how often each is drawn
FRAME_SIZES = ((640, 480), (800, 600), (1024, 768), (720, 576), (1280, 720))
FRAME_SIZE_P = (0.28, 0.2, 0.2, 0.16, 0.16)
GEOMETRIES = ("convex", "sector", "linear")
GEOMETRY_P = (0.6, 0.15, 0.25)
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX)


@dataclass(frozen=True)
class Panel:
    """One image area. Convex/sector: an annular sector of radii r0..r1 around an apex,
    half-opening ``half_angle_tan`` (as a tangent); linear: the rectangle itself.
    (x, y, w, h) is the bounding box on the screen."""

    kind: str
    x: int
    y: int
    w: int
    h: int
    apex_x: float = 0.0
    apex_y: float = 0.0
    r0: float = 0.0
    r1: float = 0.0
    half_angle_tan: float = 0.0

    @property
    def depth_px(self) -> float:
        """Image depth (skin line to the deepest row) in pixels."""
        return self.r1 - self.r0 if self.kind != "linear" else float(self.h)

    def mask(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Whether each pixel of the grid ``ys x xs`` (screen coordinates) is imaged."""
        xs = np.asarray(xs, dtype=np.float64)[None, :]
        ys = np.asarray(ys, dtype=np.float64)[:, None]
        inside = (xs >= self.x) & (xs < self.x + self.w) & (ys >= self.y) & (ys < self.y + self.h)
        if self.kind == "linear":
            return inside
        dx, dy = xs + 0.5 - self.apex_x, ys + 0.5 - self.apex_y
        r = np.sqrt(dx * dx + dy * dy)
        return inside & (r >= self.r0) & (r <= self.r1) & (np.abs(dx) <= dy * self.half_angle_tan)

    def depth(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Distance from the skin line along the beam, in pixels (float64 grid)."""
        xs = np.asarray(xs, dtype=np.float64)[None, :]
        ys = np.asarray(ys, dtype=np.float64)[:, None]
        if self.kind == "linear":
            return np.broadcast_to(ys + 0.5 - self.y, (ys.shape[0], xs.shape[1])).copy()
        dx, dy = xs + 0.5 - self.apex_x, ys + 0.5 - self.apex_y
        return np.sqrt(dx * dx + dy * dy) - self.r0

    def point_at(self, depth_frac: float, lateral_frac: float) -> tuple[float, float]:
        """Screen point at a fraction of the depth and of the half-width at that depth."""
        if self.kind == "linear":
            return (self.x + self.w * (0.5 + 0.5 * lateral_frac), self.y + self.h * depth_frac)
        r = self.r0 + depth_frac * (self.r1 - self.r0)
        s = lateral_frac * self.half_angle_tan / np.sqrt(1.0 + self.half_angle_tan ** 2)
        return (self.apex_x + r * s, self.apex_y + r * np.sqrt(1.0 - s * s))


@dataclass(frozen=True)
class Text:
    """A text overlay: string, bottom-left origin, font, scale, thickness, RGB colour."""

    text: str
    x: int
    y: int
    font: int
    scale: float
    thickness: int
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Layout:
    """Everything about the screen of one exam."""

    width: int
    height: int
    background: tuple[int, int, int]
    ceus: Panel
    bmode: Panel | None
    depth_cm: float
    texts: tuple[Text, ...]
    timer: Text | None
    timer_mode: str
    bar: tuple[int, int, int, int] | None
    scale_x: int | None
    panel_label_color: tuple[int, int, int]

    @property
    def px_per_mm(self) -> float:
        """Screen pixels per millimetre of tissue (same in both views)."""
        return self.ceus.depth_px / (10.0 * self.depth_cm)


def fit_panel(rng: np.random.Generator, kind: str, bx: int, by: int, bw: int, bh: int) -> Panel:
    """The largest image area of a geometry that fits the box (bx, by, bw, bh), a bit
    smaller by a sampled factor, centred horizontally and pushed to the box top."""
    shrink = rng.uniform(0.86, 1.0)
    valign = rng.uniform(0.0, 0.4)
    if kind == "linear":
        w = int(bw * shrink * rng.uniform(0.7, 1.0))
        h = int(min(bh * shrink, w * rng.uniform(0.8, 1.4)))
        return Panel("linear", bx + (bw - w) // 2, by + int((bh - h) * valign), w, h)
    narrow = bw < 0.9 * bh  # a half-screen view: a narrower fan fills more of the height
    if kind == "convex":
        theta = np.radians(rng.uniform(20.0, 28.0) if narrow else rng.uniform(25.0, 38.0))
        q = rng.uniform(0.3, 1.1)
    else:
        theta = np.radians(rng.uniform(28.0, 36.0) if narrow else rng.uniform(35.0, 45.0))
        q = rng.uniform(0.0, 0.06)
    s, c = np.sin(theta), np.cos(theta)
    depth = shrink * min(bh / (1.0 + q - q * c), bw / (2.0 * (1.0 + q) * s))
    r0, r1 = q * depth, (1.0 + q) * depth
    half_w = r1 * s
    apex_x = bx + bw / 2.0
    apex_y = by - r0 * c + (bh - (r1 - r0 * c)) * valign
    x0, x1 = int(np.floor(apex_x - half_w)), int(np.ceil(apex_x + half_w))
    y0, y1 = int(np.floor(apex_y + r0 * c)), int(np.ceil(apex_y + r1))
    return Panel(kind, x0, y0, x1 - x0, y1 - y0, apex_x, apex_y, r0, r1, float(np.tan(theta)))


def sample_layout(rng: np.random.Generator, frame_size: tuple[int, int] | None = None) -> Layout:
    """A scanner screen: size, background, one CEUS view or B-mode | CEUS side by side,
    the image geometry and the overlays around it."""
    idx = rng.choice(len(FRAME_SIZES), p=FRAME_SIZE_P)
    width, height = frame_size if frame_size is not None else FRAME_SIZES[idx]
    background = [(0, 0, 0), (0, 0, 0), (16, 16, 16), (8, 12, 22), (20, 18, 14)][rng.integers(5)]
    kind = GEOMETRIES[rng.choice(3, p=GEOMETRY_P)]
    dual = rng.random() < (0.6 if width / height > 1.5 else 0.3)
    header = int(height * rng.uniform(0.05, 0.11))
    footer = int(height * rng.uniform(0.02, 0.08))
    side_l = int(width * rng.uniform(0.03, 0.2))
    side_r = int(width * rng.uniform(0.03, 0.2))
    by, bh = header, height - header - footer
    if dual:
        gap = int(width * rng.uniform(0.01, 0.04))
        bw = (width - side_l - side_r - gap) // 2
        bmode = fit_panel(rng, kind, side_l, by, bw, bh)
        ceus = shift_panel(bmode, side_l + bw + gap - side_l)
    else:
        bmode = None
        ceus = fit_panel(rng, kind, side_l, by, width - side_l - side_r, bh)
    depth_cm = rng.uniform(12.0, 20.0)
    layout = Layout(width, height, background, ceus, bmode, depth_cm, (), None, "none", None, None,
                    (200, 200, 200))
    return add_overlays(rng, layout)


def shift_panel(p: Panel, dx: int) -> Panel:
    """The same panel moved right by ``dx`` pixels."""
    return Panel(p.kind, p.x + dx, p.y, p.w, p.h, p.apex_x + dx, p.apex_y, p.r0, p.r1, p.half_angle_tan)


def panels_box(layout: Layout) -> tuple[int, int, int, int]:
    """Union bounding box (x0, y0, x1, y1) of the image areas."""
    ps = [p for p in (layout.ceus, layout.bmode) if p is not None]
    return (min(p.x for p in ps), min(p.y for p in ps), max(p.x + p.w for p in ps),
            max(p.y + p.h for p in ps))


def free_areas(layout: Layout) -> dict[str, tuple[int, int, int, int]]:
    """Screen areas (x0, y0, x1, y1) that no image area touches: header, footer, sides."""
    x0, y0, x1, y1 = panels_box(layout)
    w, h = layout.width, layout.height
    return {"header": (2, 2, w - 2, y0 - 2), "footer": (2, y1 + 2, w - 2, h - 2),
            "left": (2, y0, x0 - 16, y1), "right": (x1 + 24, y0, w - 2, y1)}


def place_text(rng: np.random.Generator, area: tuple[int, int, int, int], text: str, font: int,
               scale: float, thick: int, used: list, color) -> Text | None:
    """Put a text in an area below the texts already placed there; None if it won't fit."""
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    x0, y0, x1, y1 = area
    y = y0 + th + 2 + sum(u for u in used)
    if x1 - x0 < tw + 4 or y + base > y1:
        return None
    right = rng.random() < 0.3
    x = x1 - tw - 2 if right else x0 + 2
    used.append(th + base + 4)
    return Text(text, int(x), int(y), font, scale, thick, color)


def add_overlays(rng: np.random.Generator, layout: Layout) -> Layout:
    """Texts (mode, probe, MI, gain, depth, frame rate), a timer, a grey bar and a depth
    scale, each placed only where there is room outside the image areas."""
    font = FONTS[rng.integers(len(FONTS))]
    scale = (0.32 + 0.28 * layout.height / 768.0) * rng.uniform(0.85, 1.15)
    if font == cv2.FONT_HERSHEY_PLAIN:
        scale *= 1.8
    thick = 1
    color = [(220, 220, 220), (240, 240, 180), (180, 220, 255), (200, 255, 200)][rng.integers(4)]
    areas = free_areas(layout)
    used = {k: [] for k in areas}
    mode = ["CEUS", "CPS", "CnTI", "CHI", "Contrast", "PI", "CCI"][rng.integers(7)]
    probe = ["C5-1", "4C1", "C1-6", "C5-2", "SC6-1", "6C1", "L9-3"][rng.integers(7)]
    lines = [f"{mode}  {probe}", f"MI {rng.uniform(0.04, 0.3):.2f}", f"Gn {rng.integers(30, 90)}",
             f"DR {rng.integers(40, 66)}", f"D {layout.depth_cm:.0f} cm", f"{rng.uniform(5, 25):.0f} Hz",
             ["Liver", "ABD", "Abdomen", "LIVER GEN"][rng.integers(4)]]
    texts = []
    for line in lines:
        if rng.random() < 0.2:
            continue
        order = list(areas)
        rng.shuffle(order)
        for name in order:
            t = place_text(rng, areas[name], line, font, scale, thick, used[name], color)
            if t is not None:
                texts.append(t)
                break
    timer_mode = ["injection", "injection", "start", "none"][rng.integers(4)]
    timer = None
    if timer_mode != "none":
        for name in ("footer", "header", "left", "right"):
            timer = place_text(rng, areas[name], "00:00:0", font, scale * 1.2, thick + 1, used[name], color)
            if timer is not None:
                break
        if timer is None:
            timer_mode = "none"
    bar = None
    x0, y0, x1, y1 = panels_box(layout)
    bar_w = int(rng.integers(7, 15))
    bar_h = int(min((y1 - y0) * rng.uniform(0.25, 0.5), 200))
    if rng.random() < 0.7 and layout.width - x1 > bar_w + 8:
        bar = (x1 + 4 + int(rng.integers(0, 4)), y0 + 4, bar_w, bar_h)
    scale_x = layout.ceus.x - 8 if rng.random() < 0.7 and layout.ceus.x >= 10 else None
    if layout.bmode is not None and scale_x is not None:
        scale_x = layout.bmode.x - 8 if layout.bmode.x >= 10 else None
    return Layout(layout.width, layout.height, layout.background, layout.ceus, layout.bmode,
                  layout.depth_cm, tuple(texts), timer, timer_mode, bar, scale_x, color)


def draw_static(canvas: np.ndarray, layout: Layout, colour_lut: np.ndarray) -> None:
    """Draw the overlays that never change (texts, grey bar, depth scale) in place."""
    for t in layout.texts:
        cv2.putText(canvas, t.text, (t.x, t.y), t.font, t.scale, t.color, t.thickness, cv2.LINE_AA)
    if layout.bar is not None:
        x, y, w, h = layout.bar
        idx = np.linspace(len(colour_lut) - 1, 0, h).astype(np.int64)
        canvas[y:y + h, x:x + w] = colour_lut[idx][:, None, :]
        cv2.rectangle(canvas, (x - 1, y - 1), (x + w, y + h), layout.panel_label_color, 1)
    if layout.scale_x is not None:
        ref = layout.bmode if layout.bmode is not None else layout.ceus
        px_per_cm = 10.0 * layout.px_per_mm
        top = ref.y if ref.kind == "linear" else ref.apex_y + ref.r0
        for i in range(int(layout.depth_cm) + 1):
            y = int(round(top + i * px_per_cm))
            if ref.y <= y < min(ref.y + ref.h, layout.height):
                size = 5 if i % 5 == 0 else 3
                cv2.line(canvas, (layout.scale_x - size, y), (layout.scale_x, y), layout.panel_label_color, 1)


def timer_text(layout: Layout, t_s: float, injection_s: float) -> str:
    """The timer's string at ``t_s``: mm:ss:d since the injection (00:00:0 before it) or
    since the first frame, as the scanner's timer mode says."""
    e = t_s - injection_s if layout.timer_mode == "injection" else t_s
    e = max(e, 0.0)
    tenths = int(e * 10.0)
    return f"{tenths // 600:02d}:{(tenths // 10) % 60:02d}:{tenths % 10}"


def draw_timer(canvas: np.ndarray, layout: Layout, t_s: float, injection_s: float) -> None:
    """Draw the timer for time ``t_s`` in place (nothing if this scanner shows none)."""
    t = layout.timer
    if t is None:
        return
    cv2.putText(canvas, timer_text(layout, t_s, injection_s), (t.x, t.y), t.font, t.scale,
                t.color, t.thickness, cv2.LINE_AA)
