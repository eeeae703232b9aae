"""ceusgate's kept past on real decoded video (x264 in Matroska, 25 fps, decoded by
GStreamer): the ring's bounds, the ``replay`` signal against the same gate run live, against
hand-computed frame times, against a brute-force nearest frame, and the kept crops against
the frames ffmpeg decodes from the same file."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from ceustream.engine.core.schedule import FRAME, Sampler, Schedule, nearest_brute_force
from ceustream.pipelines import gst

from media import H, ROI, W

NONE = (1 << 64) - 1
BIG = 1 << 40


def decode(path, props: str, fmt: str = "I420"):
    """Runs the file through ``ceusgate`` to the end; returns (gate, pipeline, the stream
    times in ns of the frames it passed)."""
    gst.require("ceusgate")
    Gst = gst.Gst
    p = Gst.parse_launch(f'filesrc location="{path}" ! decodebin ! videoconvert ! '
                         f"video/x-raw,format={fmt} ! ceusgate name=gate {props} ! "
                         "appsink name=s sync=false")
    sink, gate = p.get_by_name("s"), p.get_by_name("gate")
    p.set_state(Gst.State.PLAYING)
    out = []
    while True:
        smp = sink.try_pull_sample(30 * Gst.SECOND)
        if smp is None:
            break
        out.append(smp.get_segment().to_stream_time(Gst.Format.TIME, smp.get_buffer().pts))
    assert sink.is_eos()
    return gate, p, out


def replay(gate, epoch=1, frm=0, pre_from=NONE, mon=(0, 0, 0), last=NONE, slots=""):
    bl = gate.emit("replay", epoch, frm, pre_from, *mon, last, slots)
    return [bl.get(i) for i in range(bl.length())]


def ns(s: float) -> int:
    return int(round(s * 1e9))


KEEP = f"keep-roi={','.join(map(str, ROI))} keep-time={BIG} keep-max-bytes={BIG}"


def test_replayed_monitor_frames_are_the_live_ones_and_the_hand_computed_ones(coded_mkv25):
    start, stop, step = 4.3, 60.0, 0.125
    _, p1, live = decode(coded_mkv25.path, f"monitor-start={ns(start)} monitor-stop={ns(stop)} "
                                           f"monitor-interval={ns(step)}")
    p1.set_state(gst.Gst.State.NULL)
    gate, p2, passed = decode(coded_mkv25.path, KEEP)
    assert passed == []  # keeping passes nothing
    assert gate.get_property("kept-frames") == len(coded_mkv25.times)
    got = replay(gate, epoch=7, frm=ns(start), pre_from=ns(4.0), mon=(ns(start), ns(stop), ns(step)))
    p2.set_state(gst.Gst.State.NULL)
    chosen = [b.pts for b in got if b.offset == 1]
    context = [b.pts for b in got if b.offset == 0]
    # 25 fps: a frame every 40 ms. The first at or after 4.3 s is 4.32 s; the next one at least
    # 0.125 s later is 4.48 s (4.44 is 0.12 s on), and so on: every 0.16 s, up to 60 s.
    want = [4_320_000_000 + 160_000_000 * k for k in range(349)]
    assert want[-1] <= 60_000_000_000 < want[-1] + 160_000_000
    assert chosen == want == live
    assert context == [4_000_000_000 + 40_000_000 * k for k in range(8)]  # 4.00 .. 4.28
    assert all(b.get_size() == ROI[2] * ROI[3] for b in got)
    caps = gst.Gst.Caps.from_string("timestamp/x-ceus-epoch")
    assert {b.get_reference_timestamp_meta(caps).timestamp for b in got} == {7}


def test_replayed_slots_give_the_nearest_frames_and_ffmpegs_pixels(coded_mkv25):
    sched, t0 = Schedule(), coded_mkv25.arrival
    due = sched.times(t0)
    gate, p, _ = decode(coded_mkv25.path, KEEP)
    got = replay(gate, slots=",".join(f"{d:.6f}" for d in due))
    p.set_state(gst.Gst.State.NULL)
    pts = [b.pts / 1e9 for b in got]
    assert pts == sorted(pts) and len(got) <= 2 * len(due)
    every = list(coded_mkv25.times)
    ref = nearest_brute_force(every, sched, t0)
    s = Sampler(sched, t0)
    for b in got:
        s.offer(b.pts / 1e9, int(round(b.pts / 40_000_000)))
    s.close()
    assert [f.payload if f.source == FRAME else None for f in s.fills] == ref
    # the kept crops are the decoder's luma: ffmpeg decodes the same file, I420, crop by hand
    want = {int(round(b.pts / 40_000_000)): b for b in got}
    x, y, w, h = ROI
    size = W * H * 3 // 2
    proc = subprocess.Popen(["ffmpeg", "-v", "error", "-i", str(coded_mkv25.path), "-f",
                             "rawvideo", "-pix_fmt", "yuv420p", "-"], stdout=subprocess.PIPE)
    seen = 0
    for n in range(max(want) + 1):
        raw = proc.stdout.read(size)
        assert len(raw) == size
        if n in want:
            luma = np.frombuffer(raw[:W * H], np.uint8).reshape(H, W)[y:y + h, x:x + w]
            b = want[n]
            assert b.extract_dup(0, b.get_size()) == luma.tobytes(), n
            seen += 1
    proc.kill()
    proc.wait()
    assert seen == len(want) >= 30


def test_the_ring_is_bounded_by_time_and_bytes_and_keeps_only_luma(coded_mkv25):
    last = coded_mkv25.times[-1]
    gate, p, _ = decode(coded_mkv25.path, f"keep-roi={','.join(map(str, ROI))} "
                                          f"keep-time={ns(10.0)}")
    # frames at most 10 s before the newest: 10 s / 40 ms + the newest itself
    assert gate.get_property("kept-frames") == 251
    assert gate.get_property("kept-from") == ns(last) - ns(10.0)
    assert gate.get_property("kept-bytes") == 251 * ROI[2] * ROI[3]
    assert not gate.get_property("kept-limited")
    # a bad box is refused (a warning) and the kept past stays as it was
    gate.set_property("keep-roi", "1,2,x,4")
    assert gate.get_property("kept-frames") == 251 and gate.get_property("keep-roi") == \
        ",".join(map(str, ROI))
    gate.set_property("keep-roi", "")  # off: forgets
    assert gate.get_property("kept-frames") == 0 and gate.get_property("kept-bytes") == 0
    p.set_state(gst.Gst.State.NULL)

    crop = ROI[2] * ROI[3]
    gate, p, _ = decode(coded_mkv25.path, f"keep-roi={','.join(map(str, ROI))} "
                                          f"keep-max-bytes={100 * crop}")
    assert gate.get_property("kept-frames") == 100 and gate.get_property("kept-limited")
    assert gate.get_property("kept-from") == ns(last) - 99 * 40_000_000
    p.set_state(gst.Gst.State.NULL)

    # no 8-bit luma plane (RGB): nothing is kept, a late mark finds no past
    gate, p, _ = decode(coded_mkv25.path, f"keep-roi={','.join(map(str, ROI))}", fmt="RGB")
    assert gate.get_property("kept-frames") == 0
    assert gate.get_property("kept-from") == NONE
    p.set_state(gst.Gst.State.NULL)


@pytest.mark.parametrize("fmt", ["NV12", "YUY2", "GRAY8"])
def test_the_kept_box_is_the_same_luma_in_every_layout(coded_mkv25, fmt):
    """Planar, semi-planar and packed pictures give the same kept bytes as I420."""
    def kept(f):
        gate, p, _ = decode(coded_mkv25.path, f"keep-roi={','.join(map(str, ROI))} "
                                              f"keep-time={ns(1.0)}", fmt=f)
        got = replay(gate, frm=0, mon=(0, ns(1e6), 1))
        p.set_state(gst.Gst.State.NULL)
        return [(b.pts, b.extract_dup(0, b.get_size())) for b in got]

    ref = kept("I420")
    assert len(ref) == 26 and ref == kept(fmt)
