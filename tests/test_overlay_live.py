"""A live exam looked at as frames (issue 20, "done when"): the real engine (`ceustream run`)
scores a live scanner-like source while ``ceushud`` (layout=auto) draws its messages over
the same source; the drawn frames are read back by independent readers:

- the image region is found from the source's own frames, without the overlay: the pixels
  that change over time (the scanner's picture, here a box of live noise); the scanner's own
  text is the static caption around it (GStreamer's textoverlay);
- no overlay pixel lies inside the image region except the ROI's corner marks (under the
  noise, which changes every frame, drawing is what stays alike over several frames), and
  none over the scanner's caption (equal to the source there);
- tesseract reads the state, the score or the outside-domain headline the engine's newest
  score message implies, and the disclaimer, whole.

320x240 (the `test://` default size), 1280x720 and 1920x1080."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from livekit import Engine, wait_until

HERE = Path(__file__).resolve().parent

# (frame W, H), the image box (x, y, w, h) in it, the caption's font size
SCREENS = {
    "320x240": ((320, 240), (48, 16, 224, 168), 8),
    "720p": ((1280, 720), (80, 60, 720, 540), 14),
    "1080p": ((1920, 1080), (120, 90, 1080, 810), 20),
}
CAPTION = "C5-2 CEUS MI 0.08 12cm"


def source_line(size, box, font_px) -> str:
    """A scanner-like live screen as a GStreamer launch line: live noise in the image box on
    black, a static caption at the bottom left."""
    (w, h), (x, y, bw, bh) = size, box
    return (f"videotestsrc is-live=true pattern=snow ! video/x-raw,format=I420,width={bw},"
            f"height={bh},framerate=30/1 ! videobox fill=black left={-x} top={-y} "
            f"right={-(w - x - bw)} bottom={-(h - y - bh)} ! textoverlay text=\"{CAPTION}\" "
            f"halignment=left valignment=bottom shaded-background=false auto-resize=false "
            f"xpad=8 ypad=4 font-desc=\"Sans Bold {font_px}px\" ! video/x-raw,width={w},"
            f"height={h}")


def grab(Gst, desc: str, n: int = 0, hud_name: str | None = None, ready=None,
         pts: set | None = None, timeout_s: float = 120.0) -> list[tuple[int, np.ndarray]]:
    """(pts, RGB frame) from ``desc ! ... ! appsink``: ``n`` consecutive ones once
    ``ready(element)`` holds (a live pipeline, late frames dropped at the sink), or, with
    ``pts``, every frame in order until those are all seen (the source run on its own)."""
    drop = "true" if pts is None else "false"
    p = Gst.parse_launch(f"{desc} ! videoconvert ! video/x-raw,format=RGB ! appsink "
                         f"name=sink sync=false max-buffers=3 drop={drop}")
    sink = p.get_by_name("sink")
    el = p.get_by_name(hud_name) if hud_name else None
    p.set_state(Gst.State.PLAYING)
    frames: list[tuple[int, np.ndarray]] = []
    deadline = time.monotonic() + timeout_s
    # frames already queued at the sink when ready() turns true were drawn before it
    queued = 4 if ready is not None else 0
    try:
        while len(frames) < (n if pts is None else len(pts)):
            assert time.monotonic() < deadline, "no frames in time"
            sample = sink.emit("try-pull-sample", 5 * Gst.SECOND)
            assert sample is not None, "no frame came out"
            if ready is not None and not frames and not ready(el):
                continue
            if queued:
                queued -= 1
                continue
            buf = sample.get_buffer()
            if pts is not None and buf.pts not in pts:
                continue
            caps = sample.get_caps().get_structure(0)
            w, h = caps.get_value("width"), caps.get_value("height")
            ok, m = buf.map(Gst.MapFlags.READ)
            assert ok
            stride = len(m.data) // h
            frames.append((buf.pts, np.frombuffer(m.data, np.uint8).reshape(h, stride)
                           [:, :w * 3].reshape(h, w, 3).copy()))
            buf.unmap(m)
    finally:
        p.set_state(Gst.State.NULL)
    return frames


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", list(SCREENS))
def test_a_live_exam_covers_no_image_and_no_scanner_text_and_reads_whole(env, name, tmp_path):
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract-ocr is missing (make system installs it)")
    sys.path.insert(0, str(HERE))
    import overlay_frames as of
    from ceustream.pipelines import gst

    gst.require("ceushud")
    Gst = gst.Gst
    size, box, font_px = SCREENS[name]
    (w, h), (bx, by, bw, bh) = size, box
    src = source_line(size, box, font_px)

    roi = [bx + bw // 3, by + bh // 3, bw // 4, bh // 4]
    eng = Engine(env, f"gst:{src}")
    try:
        wait_until(lambda: eng.stream_time() > 0.5, 90, "video in the engine")
        assert eng.cmd("start_exam", exam=f"ov{name}", roi=roi)["ok"]
        assert eng.cmd("mark_injection")["ok"]
        assert eng.cmd("mark_arrival")["ok"]
        wait_until(lambda: eng.alive_or_fail() and eng.sub.of("score"), 90,
                   "a score from the engine")

        def ready(hud):
            # the newest message drawn, for the screen learnt (an event, not a sleep)
            s = hud.get_property("shown")
            s = json.loads(s) if s else {}
            return (hud.get_property("drawn-seq") > 0 and s.get("score") not in (None, "--")
                    and (s.get("screen_learnt") or s.get("where") == "beside"
                         or s.get("layout") == "over"))

        drawn = grab(Gst, f"{src} ! videoconvert ! ceushud name=hud layout=auto "
                     f"endpoint={eng.pub} stale-after=600", 8, "hud", ready)
        scores = eng.sub.of("score")  # the frames show one of these (the newest may be later)
    finally:
        eng.stop()
    out = [f for _, f in drawn]
    for k, f in enumerate(out):  # what a reviewer looks at
        from PIL import Image

        Image.fromarray(f).save(tmp_path / f"live_{name}_{k}.png")

    # the source on its own (no overlay): the image region (the pixels that change over
    # time) and the caption (static, not black, outside it), from 8 frames
    import cv2

    stack = np.stack([f.astype(int) for _, f in grab(Gst, src, 8)])
    changing = ((stack.max(axis=0) - stack.min(axis=0)).max(axis=2) > 24).astype(np.uint8)
    # a region, not its grains: the few noise pixels that happened to stay alike are inside
    image = cv2.morphologyEx(changing, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8)) > 0
    caption = (stack.min(axis=0).max(axis=2) > 60) & ~image
    assert image[by + 4:by + bh - 4, bx + 4:bx + bw - 4].mean() > 0.95  # the box, found
    assert caption.sum() > 50  # the caption is there
    oh, ow = out[0].shape[:2]
    # the video's place: its own, or the left of a wider canvas, centred in height (even)
    vx, vy = (0, 0) if (ow, oh) == (w, h) else (0, ((oh - h) // 2) & ~1)
    video = np.stack([f[vy:vy + h, vx:vx + w].astype(int) for f in out])
    # drawn inside the image: the noise spans ~220 grey levels over 8 frames in one of R, G,
    # B at least; under drawing of alpha >= 0.7 the span is < 90 in all three along a stroke
    # (3 pixels in a row or a column: a lone noise pixel that stayed alike is not one), under
    # see-through drawing (alpha >= 1/2) a 4x4 neighbourhood's mean span shrinks to < 100
    rng = (video.max(axis=0) - video.min(axis=0)).max(axis=2).astype(np.float32)
    low = (rng < 90).astype(np.uint8)
    strokes = (cv2.morphologyEx(low, cv2.MORPH_OPEN, np.ones((1, 3), np.uint8))
               | cv2.morphologyEx(low, cv2.MORPH_OPEN, np.ones((3, 1), np.uint8))) > 0
    drawn_in = strokes | (cv2.blur(rng, (4, 4)) < 100)
    inner = np.zeros((h, w), bool)  # the image less a 3-pixel rim (chroma at its edges)
    inner[by + 3:by + bh - 3, bx + 3:bx + bw - 3] = True
    rx, ry, rw, rh = roi
    band = max(4, int(0.006 * oh) + 3)  # the ROI's corner marks: a band around its edges
    roi_zone = np.zeros((h, w), bool)
    roi_zone[max(ry - band, 0):ry + rh + band, max(rx - band, 0):rx + rw + band] = True
    roi_zone[ry + band:ry + rh - band, rx + band:rx + rw - band] = False
    inside = drawn_in & image & inner & ~roi_zone
    assert inside.sum() == 0, f"{inside.sum()} overlay pixels inside the image ({name})"
    assert (drawn_in & image & roi_zone).sum() > 20  # the ROI is marked: the check sees it
    # over the caption: every drawn frame equals the source there
    over = (np.abs(video - stack[0][None]).max(axis=3) > 24).any(axis=0) & caption
    assert over.sum() == 0, f"{over.sum()} overlay pixels over the scanner's caption ({name})"

    # what the engine said, read back whole by tesseract
    # the noise is no text: blanked (where the source changes) so tesseract reads the rest
    page = out[-1].copy()
    page[vy:vy + h, vx:vx + w][image] = 0
    text = _words(of.ocr(page, scale=2.0 if oh < 600 else 1.0))
    for word in ("PROVISIONAL", "SIMULATED", "DIAGNOSIS"):
        assert word in text, f"tesseract did not read {word!r} at {name} in: {text}"

    def outside(m):
        return (m.get("domain") or {}).get("state") == "out" \
            or "out_of_distribution" in (m.get("flags") or [])

    numbers = {f"{m['score']:.2f}" for m in scores if not outside(m)}
    if "OUTSIDE MODEL DOMAIN" in text:
        assert any(outside(m) for m in scores), text
        # no confident label of its own
        assert not re.search(r"(?<![\w(\[{])(HCC|non-HCC)(?![\w)\]}])", text), text
    else:
        assert numbers & set(text.split()), f"no score of {sorted(numbers)} read at {name}: {text}"
