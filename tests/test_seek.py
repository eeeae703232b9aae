"""Seeking that verifies itself, and times counted from the first frame, on files made by an
INDEPENDENT encoder: ffmpeg (Debian) writes barcoded frames (tests/media.py: each frame
carries its index) into MPEG-TS, MP4 with B-frames and an edit list, and MKV / MP4 / TS with
a 5 s start offset. Which frame landed in each slot is read off the barcode, so a seek that
lands elsewhere while its timestamps say otherwise cannot hide."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from ceustream.engine.app.replay import ReplayOptions, replay
from ceustream.engine.core import config
from ceustream.engine.core.modelmeta import PAPER_OFFSETS_S
from ceustream.engine.core.roi import Roi
from ceustream.pipelines import gst

from conftest import last_json, run_cli
from media import H, W, frame, read_index

FPS = 30
ARRIVAL = 19.0

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                reason="ffmpeg (Debian package) is the independent encoder")


def ffmpeg_coded(path: Path, *args: str, seconds: float = 210.0, fps: int = FPS) -> Path:
    """Barcoded GRAY frames at ``fps`` through ffmpeg's libx264 (its defaults: B-frames, GOP 250)
    into whatever container ``path`` names; ``args`` are extra output options."""
    if path.exists():
        return path
    cmd = ["ffmpeg", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "gray", "-s",
           f"{W}x{H}", "-r", str(fps), "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           *args, str(path)]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for i in range(int(seconds * fps)):
        p.stdin.write(frame(i, i / fps, ARRIVAL).tobytes())
    p.stdin.close()
    assert p.wait() == 0
    return path


FILES = {
    # ffmpeg's MPEG-TS: the first frame at pts 1.47 s (0.77 s on GStreamer's stream clock)
    "ts": ("ts.ts", ()),
    # MP4 with B-frames: an edit list hides the decoding delay
    "mp4_bframes_editlist": ("bf.mp4", ("-bf", "3")),
    # a 5 s start offset in three containers
    "mp4_offset5": ("off.mp4", ("-bf", "2", "-output_ts_offset", "5")),
    "mkv_offset5": ("off.mkv", ("-bf", "2", "-output_ts_offset", "5")),
    "ts_offset5": ("off.ts", ("-bf", "2", "-output_ts_offset", "5", "-g", "90")),
}


@pytest.fixture(scope="module")
def ff(tmp_path_factory):
    d = tmp_path_factory.mktemp("ffmpeg")
    return lambda name: ffmpeg_coded(d / FILES[name][0], *FILES[name][1])


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    c = config.load(env={})
    c["journal"]["dir"] = str(tmp_path_factory.mktemp("journal"))
    return c


def expected_frames(t0: str) -> list[int]:
    """The frame index each slot must take, in exact arithmetic: frame k is k / FPS seconds
    after the FIRST frame; the nearest to t0 + offset, ties to the earlier frame."""
    out = []
    for off in PAPER_OFFSETS_S:
        due = (Fraction(t0) + Fraction(str(off))) * FPS
        k = int(due)  # floor: the frame at or before
        out.append(k if due - k <= Fraction(1, 2) else k + 1)
    return out


def taken(path: Path, cfg: dict, mode: str, **times) -> tuple[dict, dict[int, int]]:
    """Replays with the full frame as ROI (so the barcode is in every slot's crop); returns
    the result and the barcode (frame index) of each slot's frame."""
    got: dict[int, int] = {}

    def on_slot(ev):
        if ev.kind == "slot" and ev.data[1] is not None:
            got[ev.data[0].index] = read_index(ev.data[1])

    r = replay(path, ReplayOptions(roi=Roi(0, 0, W, H), seek=mode, journal=False, **times),
               cfg, subscribers=(on_slot,))
    return r, got


@pytest.mark.parametrize("name", list(FILES))
def test_seek_and_stream_take_the_same_frames_counted_from_the_first_frame(name, ff, cfg):
    path = ff(name)
    t0 = "12.31"  # seconds from the first frame, not a tie
    want = expected_frames(t0)
    res = {}
    for mode in ("always", "never"):
        r, got = taken(path, cfg, mode, t0=float(t0))
        assert r["final"], r["flags"]
        assert r["clock"] == "first_frame" and r["first_frame_s"] >= 0
        assert r["t0"] == pytest.approx(12.31)
        # the frames are the ones exact arithmetic on the first-frame clock picks ...
        assert [got[i] for i in range(30)] == want, (mode, r["replay"])
        # ... and they report their own times (ms timebases round)
        assert [s["pts_s"] for s in r["slots"]] == pytest.approx([k / FPS for k in want],
                                                                 abs=1e-3)
        res[mode] = r
    assert res["always"]["score"] == res["never"]["score"]
    assert res["always"]["replay"]["mode"] == "seek"


def test_ts_first_frame_is_not_stream_zero(ff, cfg):
    r, got = taken(ff("ts"), cfg, "never", t0=0.0)
    assert r["first_frame_s"] > 0.5  # ffmpeg's TS: stream zero is 0.77 s before frame 0
    assert got[0] == 0 and r["slots"][0]["pts_s"] == 0.0


def test_a_seek_that_lands_elsewhere_falls_back_to_decoding_through(ff, cfg):
    """GStreamer 1.22's tsdemux, seeking ACCURATE to 121.2 s from the first frame of this
    file, delivers frames from 121.6 s under a segment that says 121.2 s. The reader sees
    the frames' own timestamps disagree with the segment, and decodes the file through."""
    path = ff("ts")
    t0 = "1.2333333"
    r_seek, got_seek = taken(path, cfg, "always", t0=float(t0))
    r_stream, got_stream = taken(path, cfg, "never", t0=float(t0))
    want = expected_frames(t0)
    assert [got_stream[i] for i in range(30)] == want
    assert [got_seek[i] for i in range(30)] == want, r_seek["replay"]
    assert r_seek["score"] == r_stream["score"]
    if gst.Gst.version()[:2] == (1, 22):  # the known case: it must be caught, and said
        assert "seek_fallback" in r_seek["flags"]
        assert "landed" in r_seek["replay"]["seek_fallback"]
    if "seek_fallback" in r_seek["flags"]:
        assert r_seek["replay"]["seek_fallback"]


def test_injection_on_ts_detects_the_same_arrival_in_every_mode(ff, cfg):
    path = ff("ts")
    out = {}
    for mode in ("always", "never"):
        r, got = taken(path, cfg, mode, injection=4.0)
        assert r["final"] and "t0_from_injection" in r["flags"]
        out[mode] = (r["t0"], [got[i] for i in range(30)], r["score"])
    assert out["always"] == out["never"]
    assert abs(out["never"][0] - ARRIVAL) < 1.0  # the curve rises at ARRIVAL s from frame 0


def test_cli_json_says_which_clock(ff, env):
    path = ff("mkv_offset5")
    p = run_cli(["replay", str(path), "--roi", f"0,0,{W},{H}", "--t0", "12.31", "--json",
                 "--no-publish", "--no-journal"], env)
    assert p.returncode == 0, p.stderr
    r = last_json(p.stdout)
    assert r["clock"] == "first_frame" and isinstance(r["first_frame_s"], float)
    h = run_cli(["replay", "--help"], env)
    assert "first frame" in h.stdout


def ffprobe_frame_times(path: Path) -> list[float]:
    """Every video frame's time per ffprobe, counted from the first frame."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=pts_time", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    times = sorted(float(x.strip(",")) for x in out.split() if x.strip(","))
    return [t - times[0] for t in times]


@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    """The issue's variable-rate file: a 10 fps ffmpeg recording with frames 3 (mod 7) and
    5 (mod 11) taken out by ffmpeg's select filter (gaps of 0.2 and 0.3 s), and its MKV."""
    d = tmp_path_factory.mktemp("vfr")
    src = ffmpeg_coded(d / "cfr10.mp4", "-bf", "2", fps=10)
    mp4, mkv = d / "vfr.mp4", d / "vfr.mkv"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(src), "-an", "-vf",
                    "select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,11)\\,5))'",
                    "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "superfast", "-bf", "2",
                    "-g", "50", str(mp4)], check=True)
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(mp4), "-c", "copy", str(mkv)],
                   check=True)
    return {"mp4": mp4, "mkv": mkv}


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_seek_on_vfr_never_reports_a_frame_time_the_file_lacks(container, vfr, cfg):
    """Slot 23 is due at 70.97 s; the file has frames at 70.8 and 71.1 s. An ACCURATE seek
    to 70.87 s made the decoder stamp the 70.8 s frame with 70.87 s, and that frame won the
    slot (issue 21). Every slot's time must be one ffprobe lists, and seeking must take the
    frames that decoding through takes."""
    path = vfr[container]
    real = ffprobe_frame_times(path)
    assert not any(abs(t - 70.87) < 1e-3 for t in real)  # the gap the issue found is there
    res = {}
    for mode in ("always", "never"):
        r, got = taken(path, cfg, mode, t0=24.97)
        assert r["final"], r["flags"]
        for s in r["slots"]:
            assert min(abs(s["pts_s"] - t) for t in real) < 1e-3, (mode, s)
        res[mode] = (r["score"], [got[i] for i in range(30)], [s["pts_s"] for s in r["slots"]])
    assert res["always"] == res["never"]
    assert res["never"][2][23] == pytest.approx(71.1, abs=1e-3)  # nearest to 70.97 s


@pytest.mark.parametrize("name", ["mp4_offset5", "mkv_offset5"])
def test_offset_files_report_the_first_frame_where_ffprobe_puts_it(name, ff, cfg):
    """ffmpeg -output_ts_offset 5: ffprobe's first frame is at 5.0 s in both containers
    (matroskademux maps it to stream time 0; the report must still say 5.0)."""
    path = ff(name)
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=pts_time", "-of", "csv=p=0", "-read_intervals", "%+#1",
                          str(path)], capture_output=True, text=True, check=True).stdout
    want = float(out.split()[0].strip(","))
    assert want == pytest.approx(5.0)
    for mode in ("always", "never"):
        r, got = taken(path, cfg, mode, t0=12.31)
        assert r["first_frame_s"] == pytest.approx(want, abs=1e-3), mode
        assert got[0] == expected_frames("12.31")[0]
