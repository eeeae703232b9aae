"""A live source's worker sends the exam's ROI of each passed frame, read straight out of the
decoder's luma plane: the same numbers GStreamer's own GRAY8 conversion gives (stretched from
studio range by the hand formula), a few kB a frame instead of the picture.

Real components: a worker process (``python -m ceustream.pipelines.worker``) running
``videotestsrc`` (a still SMPTE pattern) through ``ceusgate``, and, as the independent
reference, a separate ``videotestsrc ! videoconvert ! GRAY8 ! appsink`` pipeline."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ceustream.pipelines import gst


def reference_luma(w: int, h: int) -> np.ndarray:
    """The SMPTE pattern's luma as GStreamer's videoconvert writes GRAY8, stretched from
    studio range (16-235) to full range by hand."""
    gst.init()
    Gst = gst.Gst
    p = Gst.parse_launch(
        f"videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=I420,width={w},"
        f"height={h},framerate=30/1 ! videoconvert ! video/x-raw,format=GRAY8 ! "
        "appsink name=s sync=false")
    p.set_state(Gst.State.PLAYING)
    sample = p.get_by_name("s").emit("try-pull-sample", 10 * Gst.SECOND)
    assert sample is not None
    buf = sample.get_buffer()
    data = buf.extract_dup(0, buf.get_size())
    stride = len(data) // h
    y = np.frombuffer(data, np.uint8).reshape(h, stride)[:, :w].astype(np.float64)
    p.set_state(Gst.State.NULL)
    return np.clip(np.round((y - 16.0) * 255.0 / 219.0), 0, 255).astype(np.uint8)


def frames_until(reader, pred, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fr = reader.pull(0.5)
        if fr is not None and pred(fr):
            return fr
    raise AssertionError("no such frame came")


@pytest.fixture
def worker():
    from ceustream.pipelines.worker import WorkerReader

    r = WorkerReader("test://smpte", name="croptest")
    r.set_pass_all(True)
    r.open()
    yield r
    r.close()


def test_passed_frames_carry_the_roi_only_and_its_exact_luma(worker):
    first = frames_until(worker, lambda fr: True)
    assert first.origin == (0, 0)
    w, h = first.width, first.height
    ref = reference_luma(w, h)
    # the whole picture, before a crop is asked for: GStreamer's GRAY8, stretched
    assert first.luma.shape == (h, w)
    assert np.array_equal(first.luma, ref)
    box = (41, 27, 64, 48)  # odd corner: the luma plane has no chroma alignment to keep
    worker.set_crop(box)
    fr = frames_until(worker, lambda f: f.origin != (0, 0))
    assert fr.origin == (41, 27)
    assert fr.luma.shape == (48, 64)
    assert (fr.width, fr.height) == (w, h)  # the picture's size, not the crop's
    assert np.array_equal(fr.region(*box), ref[27:27 + 48, 41:41 + 64])


def test_a_box_reaching_past_the_picture_is_clipped_to_it(worker):
    first = frames_until(worker, lambda fr: True)
    w, h = first.width, first.height
    ref = reference_luma(w, h)
    # past the right edge (the colour bars), then past the bottom (left of the pattern's
    # moving noise patch, which is bottom right)
    for box, origin, shape in (((w - 20, 10, 64, 48), (w - 20, 10), (48, 20)),
                               ((10, h - 10, 64, 48), (10, h - 10), (10, 64))):
        worker.set_crop(box)
        fr = frames_until(worker, lambda f: f.origin == origin)
        assert fr.luma.shape == shape
        x, y = origin
        assert np.array_equal(fr.luma, ref[y:y + shape[0], x:x + shape[1]])
    worker.set_crop(None)  # the whole picture again
    fr = frames_until(worker, lambda f: f.origin == (0, 0))
    assert fr.luma.shape == (h, w)


@pytest.mark.parametrize("value,ok", [("0", True), ("4", True), ("19", True), ("20", False),
                                      ("-1", False), ("nan", False), ("x", False)])
def test_worker_nice_is_a_checked_setting(value, ok):
    from ceustream.engine.core import config
    from ceustream.engine.core.errors import UsageError

    env = {"CEUSTREAM_LIVE__WORKER_NICE": value}
    if ok:
        assert config.load(env=env)["live"]["worker_nice"] == int(value)
    else:
        with pytest.raises(UsageError, match="(?i)worker_nice"):
            config.load(env=env)


def test_a_worker_runs_as_much_nicer_as_it_was_told():
    """``live.worker_nice``: the worker process's own niceness, read from /proc (field 19 of
    its stat), is the engine's plus the setting."""
    import os

    from ceustream.pipelines.worker import WorkerReader

    def niceness(pid: int) -> int:
        stat = open(f"/proc/{pid}/stat").read()
        return int(stat[stat.rindex(")") + 2:].split()[16])

    r = WorkerReader("test://smpte", name="nicetest", nice=3)
    r.set_pass_all(True)
    r.open()
    try:
        frames_until(r, lambda fr: True)
        assert niceness(r.pid) == niceness(os.getpid()) + 3
    finally:
        r.close()
