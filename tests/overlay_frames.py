"""Scanner screens through ``ceushud`` and back, for the pixel tests and the README frames.

Screens (RGB, with where their image areas and their own text are, from the renderers'
geometry, not from the element):

- ``simulator``: models/simulator's 640x480 screen (a convex sector, title, footer, depth
  marks, a contrast timer);
- ``renderer_b``: models/renderer_b's screens (convex / sector / linear, one or two views,
  texts, timer, grey bar, depth scale) at any size;
- ``pattern``: a plain moving test pattern (moving bars in a centred 4:3 box) with a static
  caption, at any size.

``run_overlay`` pushes the screen's frames through appsrc -> ceushud -> appsink while a real
ZeroMQ publisher sends ``messages``, and returns input and output frames once the element
shows them. ``python tests/overlay_frames.py OUTDIR`` writes the README's example frames.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ScreenSource:
    name: str
    width: int
    height: int
    frame: object  # t -> RGB (H, W, 3) uint8
    image: np.ndarray  # bool (H, W): the image areas
    text: np.ndarray  # bool (H, W): the scanner's own text and graphics
    roi: tuple[int, int, int, int]


def simulator_screen(seed: int = 3) -> ScreenSource:
    import cv2
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.scene import SECTOR_HALF_ANGLE, Layout, Scene
    from ceustream.models.simulator.screen import Screen

    scene = Scene(sample_case(seed, label=1), Layout(640, 480))
    screen = Screen(scene)
    L = scene.layout
    ax, ay = L.apex
    ys, xs = np.mgrid[0:L.height, 0:L.width].astype(np.float32)
    dist, ang = cv2.cartToPolar(ys - np.float32(ay), xs - np.float32(ax))
    ang = np.where(ang > np.pi, ang - np.float32(2 * np.pi), ang)
    image = (dist <= L.radius + 1) & (np.abs(ang) <= SECTOR_HALF_ANGLE + 0.01) & (ys >= ay - 1)
    text = screen._mask.copy() if hasattr(screen, "_mask") else np.zeros_like(image)
    s = screen.scale
    text[4:4 + int(26 * s), L.width - int(110 * s) - 30:L.width - 30] = True  # the timer
    text &= ~image
    return ScreenSource("simulator", L.width, L.height, lambda t: screen.render(20.0 + t).copy(),
                        image, text, tuple(int(v) for v in scene.roi()))


def renderer_b_screen(width: int = 1280, height: int = 720, seed: int = 11) -> ScreenSource:
    import cv2
    from ceustream.models.renderer_b.exam import sample_exam
    from ceustream.models.renderer_b.render import Screen
    from ceustream.models.renderer_b.screen import timer_text

    exam = sample_exam(seed, frame_size=(width, height))
    lay = exam.layout
    times = [exam.injection_s + 15 + k / 30 for k in range(120)]
    screen = Screen(exam, times)
    xs, ys = np.arange(width), np.arange(height)
    image = lay.ceus.mask(xs, ys)
    if lay.bmode is not None:
        image |= lay.bmode.mask(xs, ys)
    text = (screen.base != np.array(lay.background, np.uint8)).any(axis=2) & ~image
    if lay.timer is not None:
        t = lay.timer
        (tw, th), base = cv2.getTextSize("00:00:0", t.font, t.scale, t.thickness)
        text[max(t.y - th - 2, 0):t.y + base + 2, max(t.x - 2, 0):t.x + tw + 4] = True
    del timer_text
    return ScreenSource(f"renderer_b_{width}x{height}", width, height,
                        lambda t: screen.frame(times[int(t * 30) % len(times)]), image, text,
                        tuple(int(v) for v in exam.roi))


def pattern_screen(width: int = 1920, height: int = 1080) -> ScreenSource:
    """Moving diagonal bars in a centred 4:3 box, a static caption above it."""
    import cv2

    bh = int(height * 0.8)
    bw = bh * 4 // 3
    bx, by = (width - bw) // 2, (height - bh) // 2
    image = np.zeros((height, width), bool)
    image[by:by + bh, bx:bx + bw] = True
    base = np.zeros((height, width, 3), np.uint8)
    cv2.putText(base, "TEST PATTERN  MOVING BARS", (bx, max(by - int(0.03 * height), 20)),
                cv2.FONT_HERSHEY_SIMPLEX, height / 1500, (200, 200, 200), max(1, height // 540),
                cv2.LINE_AA)
    text = base.any(axis=2)
    yy, xx = np.mgrid[0:bh, 0:bw]

    def frame(t: float) -> np.ndarray:
        f = base.copy()
        phase = (xx + yy + int(t * 240)) // max(bh // 12, 1)
        f[by:by + bh, bx:bx + bw] = np.where((phase % 2)[..., None] == 0, 40, 210).astype(np.uint8)
        return f

    roi = (bx + bw // 3, by + bh // 3, bw // 5, bh // 5)
    return ScreenSource(f"pattern_{width}x{height}", width, height, frame, image, text, roi)


def _overlay_pipeline(src: ScreenSource, props: str, sink_props: str = ""):
    """(Gst, publisher, pipeline, appsrc, ceushud, appsink) playing: the screen's RGB frames
    through ceushud (BGRx) and back to RGB, the element subscribed to a test publisher."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_overlay import Publisher

    from ceustream.pipelines import gst

    gst.require("ceushud")
    Gst = gst.Gst
    pub = Publisher()
    w, h = src.width, src.height
    p = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},"
        f"framerate=30/1 ! videoconvert ! video/x-raw,format=BGRx ! ceushud name=hud "
        f"endpoint={pub.endpoint} stale-after=600 {props} ! videoconvert ! "
        f"video/x-raw,format=RGB ! appsink name=sink sync=false{sink_props}")
    p.set_state(Gst.State.PLAYING)
    return Gst, pub, p, p.get_by_name("src"), p.get_by_name("hud"), p.get_by_name("sink")


def run_overlay(src: ScreenSource, messages, props: str = "", want=None, frames_max: int = 400):
    """(input frame, output frame, shown) once ``want(shown)`` holds (default: the newest
    message drawn and the screen learnt where the layout learns it)."""
    Gst, pub, p, appsrc, hud, sink = _overlay_pipeline(src, props, " max-buffers=2")
    sent = 0

    def shown():
        t = hud.get_property("shown")
        return json.loads(t) if t else None

    if want is None:
        def want(s):
            return (s and hud.get_property("drawn-seq") == hud.get_property("last-seq") > 0
                    and (s["screen_learnt"] or s["where"] != "corners"
                         or s["layout"] == "over"))
    try:
        steady = 0  # frames pulled since the wanted overlay was in place, unchanged
        last = None
        inputs = {}  # pts -> the frame pushed (the one pulled may be an earlier one)
        for k in range(frames_max):
            img = np.ascontiguousarray(src.frame(k / 30.0))
            buf = Gst.Buffer.new_wrapped(img.tobytes())
            buf.pts, buf.duration = k * 33_333_333, 33_333_333
            inputs[buf.pts] = img
            assert appsrc.emit("push-buffer", buf) == Gst.FlowReturn.OK
            sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
            assert sample is not None, "no frame came out"
            for old in [t for t in inputs if t < sample.get_buffer().pts]:
                del inputs[old]
            if k % 5 == 0 and sent < len(messages) * 40:
                for m in messages:  # repeated: ZeroMQ's slow joiner
                    pub.send(m)
                sent += len(messages)
            s = shown()
            steady = steady + 1 if (s == last and want(s)) else 0
            last = s
            # frames queued between appsrc and appsink may carry an older overlay: several
            # frames after it settled, this one went through the element with it
            if steady >= 6:
                caps = sample.get_caps().get_structure(0)
                ow, oh = caps.get_value("width"), caps.get_value("height")
                b = sample.get_buffer()
                a = np.frombuffer(b.extract_dup(0, b.get_size()), np.uint8)
                out = a.reshape(oh, a.size // oh)[:, :ow * 3].reshape(oh, ow, 3).copy()
                return inputs[b.pts], out, s
            time.sleep(0.005)
        raise AssertionError(f"the overlay never showed what was wanted: {shown()}")
    finally:
        appsrc.emit("end-of-stream")
        p.set_state(Gst.State.NULL)
        pub.close()


def run_from_first_frame(src: ScreenSource, messages, props: str = "", frames: int = 40):
    """[(input frame, output frame)] for every frame from the first on: the element has
    taken ``messages`` before the first frame is pushed, then ``frames`` frames go through
    one at a time (each pulled before the next is pushed), past the screen's learning."""
    Gst, pub, p, appsrc, hud, sink = _overlay_pipeline(src, props)
    out = []
    try:
        deadline = time.monotonic() + 30
        while hud.get_property("messages-received") < len(messages):  # ZeroMQ's slow joiner
            assert time.monotonic() < deadline, "the element never took the messages"
            for m in messages:
                pub.send(m)
            time.sleep(0.05)
        for k in range(frames):
            img = np.ascontiguousarray(src.frame(k / 30.0))
            buf = Gst.Buffer.new_wrapped(img.tobytes())
            buf.pts, buf.duration = k * 33_333_333, 33_333_333
            assert appsrc.emit("push-buffer", buf) == Gst.FlowReturn.OK
            sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
            assert sample is not None, "no frame came out"
            b = sample.get_buffer()
            assert b.pts == buf.pts
            caps = sample.get_caps().get_structure(0)
            ow, oh = caps.get_value("width"), caps.get_value("height")
            a = np.frombuffer(b.extract_dup(0, b.get_size()), np.uint8)
            out.append((img, a.reshape(oh, a.size // oh)[:, :ow * 3].reshape(oh, ow, 3).copy()))
        return out
    finally:
        appsrc.emit("end-of-stream")
        p.set_state(Gst.State.NULL)
        pub.close()

def ocr(img: np.ndarray, scale: float = 2.0) -> str:
    """Tesseract's reading of ``img`` (RGB), enlarged, in two standard preparations joined:
    light text made black on white (sparse text, --psm 11) and the inverted grey picture
    (one block, --psm 6: it also reads the dark words on amber tags)."""
    import subprocess
    import tempfile

    import cv2

    y = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    out = []
    for g, psm in ((np.where(y > 170, 0, 255).astype(np.uint8), "11"), (255 - y, "6")):
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        with tempfile.NamedTemporaryFile(suffix=".png") as f:
            cv2.imwrite(f.name, g)
            r = subprocess.run(["tesseract", f.name, "stdout", "--psm", psm],
                               capture_output=True, text=True, timeout=120)
        out.append(r.stdout)
    return "\n|\n".join(out)


def example_messages(src: ScreenSource, kind: str) -> list:
    """Messages for the README's frames: a final HCC score, or a final result outside the
    model's domain (issue 18's contract)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_overlay import features, final_score, status

    w, h = src.width, src.height
    if kind == "outside":
        f = features(30, summary="APHE ✓ (non-rim) · washout late, mild · LR-5-like")
        # the engine's score out of its domain is the physiology reading's P(HCC)
        dom = {"state": "out", "distance": 3.1, "threshold": 2.0, "method": "embedding"}
        return [status(n=30, phase="complete", score=0.81, final=True, label="indeterminate",
                       roi=list(src.roi), frame_size=[w, h], features=f,
                       warnings=["out_of_distribution"], score_basis="physiology"),
                final_score(0.81, "indeterminate", features=f, domain=dom,
                            score_basis="physiology",
                            flags=["trained_on_simulated_data", "out_of_distribution"])]
    return [status(n=30, phase="complete", score=0.87, final=True, label="HCC",
                   roi=list(src.roi), frame_size=[w, h], features=features(30),
                   warnings=["slot_late"]),
            final_score(0.87, "HCC", features=features(30))]


if __name__ == "__main__":
    import cv2

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/overlay-frames")
    out.mkdir(parents=True, exist_ok=True)
    for name, make, props, kind in (
            ("auto-480p", simulator_screen, "layout=auto", "final"),
            ("auto-720p", lambda: renderer_b_screen(1280, 720), "layout=auto", "final"),
            ("auto-1080p", lambda: pattern_screen(1920, 1080), "layout=auto", "final"),
            ("over-480p", simulator_screen, "layout=over", "final"),
            ("beside-720p", lambda: renderer_b_screen(1280, 720), "layout=beside", "final"),
            ("outside-720p", lambda: renderer_b_screen(1280, 720), "layout=auto", "outside")):
        src = make()
        _, img, s = run_overlay(src, example_messages(src, kind), props)
        path = out / f"overlay-{name}.png"
        cv2.imwrite(str(path), img[..., ::-1])
        print(path, s["where"], "x".join(map(str, s["canvas"])),
              "fits" if s["fits"] else "DOES NOT FIT")
