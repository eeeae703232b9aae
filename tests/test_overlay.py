"""The ceushud element, headless and real: videotestsrc → ceushud → appsink with a real ZeroMQ
publisher in the test. Pixels are the evidence: the gauge moves with the score, "STALE"
appears when the engine goes quiet, bad messages change nothing, a restarted publisher is
picked up. An AddressSanitizer build of the plugin runs the same element."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from ceustream.pipelines import gst

ROOT = Path(__file__).resolve().parent.parent
W, H = 640, 360


def status(exam="ex1", **kw):
    m = {"v": 1, "type": "status", "exam": exam, "t_wall": time.time(), "phase": "video_phase",
         "slots_filled": 10, "slots_total": 30, "next_slot": None, "next_slot_in_s": None,
         "speed": 1.0, "roi": [200, 120, 120, 120], "frame_size": [W, H], "warnings": [],
         "slot_states": ["frame"] * 10 + [None] * 20, "flags": [],
         "model": {"name": "cnn3d", "trained_on": "simulated"},
         "backend": {"name": "onnxruntime", "precision": "fp32"}}
    m.update(kw)
    return m


def score(value, exam="ex1", **kw):
    m = {"v": 1, "type": "score", "exam": exam, "score": value, "final": False, "label": None,
         "slots_filled": 10, "slot_states": ["frame"] * 10 + [None] * 20, "flags": [],
         "threshold": 0.5, "model": {"name": "cnn3d", "trained_on": "simulated"},
         "backend": {"name": "onnxruntime", "precision": "fp32"}}
    m.update(kw)
    return m


class Bench:
    """A publisher and a headless display pipeline."""

    def __init__(self, port: int, fmt: str = "BGRx", props: str = ""):
        gst.require("ceushud")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.bind(self.endpoint)
        Gst = gst.Gst
        self.p = Gst.parse_launch(
            f"videotestsrc pattern=black is-live=true ! video/x-raw,format={fmt},width={W},"
            f"height={H},framerate=30/1 ! ceushud name=hud endpoint={self.endpoint} {props} ! "
            "videoconvert ! video/x-raw,format=RGB ! appsink name=sink max-buffers=1 drop=true "
            "sync=false")
        self.hud = self.p.get_by_name("hud")
        self.sink = self.p.get_by_name("sink")
        self.p.set_state(Gst.State.PLAYING)
        time.sleep(0.6)  # the subscriber connects

    def send(self, msg, topic=None):
        t = topic or f"{msg['type']}.{msg['exam']}"
        self.pub.send_multipart([t.encode(), json.dumps(msg).encode()])

    def frame(self, settle=0.4) -> np.ndarray:
        time.sleep(settle)
        self.sink.emit("pull-sample")  # drop the one queued before the settle
        s = self.sink.emit("pull-sample")
        b = s.get_buffer()
        return np.frombuffer(b.extract_dup(0, b.get_size()), np.uint8).reshape(H, W, 3).copy()

    def prop(self, name):
        return self.hud.get_property(name)

    def close(self):
        self.p.set_state(gst.Gst.State.NULL)
        self.pub.close()
        self.ctx.term()


def red(img):
    return int(((img[..., 0] > 150) & (img[..., 1] < 70) & (img[..., 2] < 70)).sum())


@pytest.fixture
def bench(port):
    b = Bench(port)
    yield b
    b.close()


def test_properties_are_documented_in_gst_inspect():
    out = subprocess.run(["gst-inspect-1.0", "ceushud"], capture_output=True, text=True,
                         env=dict(os.environ, GST_PLUGIN_PATH=str(gst.plugin_dirs()[0])))
    assert out.returncode == 0, out.stderr
    for prop in ("endpoint", "exam", "server-public-key", "stale-after", "messages-received"):
        assert prop in out.stdout


def test_before_any_message_it_says_so_and_shows_the_disclaimer(bench):
    img = bench.frame()
    assert img.any(), "nothing drawn"
    assert red(img) > 200  # the "NO ENGINE MESSAGES" banner
    assert bench.prop("messages-received") == 0


def test_gauge_follows_the_score(bench):
    bench.send(status())
    bench.send(score(0.2))
    a = bench.frame()
    bench.send(score(0.9))
    b = bench.frame()
    assert bench.prop("messages-received") == 3
    changed = np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 40
    assert changed.sum() > 500
    ys, xs = np.nonzero(changed)
    # only the score panel changed (right-hand side), not the lesion's ROI in the middle
    assert xs.min() > W * 0.45
    assert not changed[120:240, 200:320].any()
    bench.send(score(0.9, final=True, label="HCC", slots_filled=30,
                     slot_states=["frame"] * 30))
    c = bench.frame()
    assert np.abs(b.astype(int) - c.astype(int)).sum() > 0  # label and slots drawn


def test_stale_after_the_heartbeat_stops(port):
    b = Bench(port, props="stale-after=1.0")
    try:
        b.send(status())
        b.send(score(0.6))
        fresh = b.frame(0.3)
        time.sleep(1.5)
        stale = b.frame(0.3)
        assert red(stale) > red(fresh) + 300  # the STALE banner
        b.send(status())  # heartbeat back: banner gone
        again = b.frame(0.4)
        assert red(again) < red(stale) - 300
    finally:
        b.close()


def test_malformed_foreign_and_unknown_versions_change_nothing(port):
    b = Bench(port, props="exam=ex1 stale-after=60")
    try:
        b.send(status())
        b.send(score(0.42))
        before = b.frame()
        got = b.prop("messages-received")
        b.pub.send_multipart([b"score.ex1", b"{not json"])
        b.pub.send_multipart([b"score.ex1", json.dumps(dict(score(0.99), v=2)).encode()])
        b.pub.send_multipart([b"score.ex1", json.dumps([1, 2, 3]).encode()])
        b.pub.send_multipart([b"score.ex1", json.dumps(dict(score(0.99), score="high")).encode()])
        b.pub.send_multipart([b"score.ex1", b"\xff\xfe\xfd"])
        b.pub.send_multipart([b"score.ex1"])  # one part only
        b.send(score(0.99, exam="ex1b"))  # another exam (prefix-alike)
        after = b.frame(0.6)
        assert b.prop("messages-received") == got
        assert b.prop("messages-ignored") >= 6
        assert np.array_equal(before, after)
    finally:
        b.close()


def test_survives_the_publisher_restarting(port):
    b = Bench(port, props="stale-after=60")
    try:
        b.send(status())
        b.send(score(0.1))
        first = b.frame()
        b.pub.close()
        time.sleep(0.5)
        b.pub = b.ctx.socket(zmq.PUB)
        b.pub.bind(b.endpoint)
        time.sleep(1.0)  # ZeroMQ reconnects by itself
        b.send(status())
        b.send(score(0.95))
        second = b.frame(0.6)
        assert b.prop("messages-received") >= 4
        assert np.abs(first.astype(int) - second.astype(int)).sum() > 0
    finally:
        b.close()


@pytest.mark.parametrize("fmt", ["I420", "NV12", "RGBx", "BGRA"])
def test_draws_in_every_supported_format(port, fmt):
    b = Bench(port, fmt=fmt)
    try:
        b.send(status())
        b.send(score(0.7))
        img = b.frame()
        assert (img.sum(axis=2) > 300).sum() > 2000  # white text and gauge on black
    finally:
        b.close()


def _asan_runtime() -> str | None:
    out = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True)
    path = out.stdout.strip()
    return path if out.returncode == 0 and os.path.isabs(path) and os.path.exists(path) else None


@pytest.mark.slow
def test_address_sanitizer_build_runs_clean(tmp_path, port):
    """The plugin built with -fsanitize=address runs the element (gst-launch-1.0 with the
    sanitizer preloaded) through good, malformed and foreign messages with no report."""
    asan = _asan_runtime()
    if asan is None or shutil.which("cmake") is None:
        pytest.skip("gcc's libasan or cmake is missing")
    build = tmp_path / "asan"
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCEUS_ASAN=ON",
                    "-DSKBUILD_PROJECT_VERSION=0.1.0"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True)
    endpoint = f"tcp://127.0.0.1:{port}"
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(endpoint)
    stop = threading.Event()

    def publish():
        i = 0
        while not stop.is_set():
            pub.send_multipart([b"status.ex1", json.dumps(status()).encode()])
            pub.send_multipart([b"score.ex1", json.dumps(score((i % 10) / 10)).encode()])
            pub.send_multipart([b"score.ex1", b"{broken"])
            pub.send_multipart([b"score.zz", json.dumps(score(0.5, exam="zz")).encode()])
            i += 1
            time.sleep(0.05)

    t = threading.Thread(target=publish)
    t.start()
    env = dict(os.environ, LD_PRELOAD=asan, GST_PLUGIN_PATH=str(build),
               GST_REGISTRY=str(tmp_path / "registry.bin"),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1")
    try:
        results = []
        for fmt in ("BGRx", "I420", "NV12"):
            results.append(subprocess.run(
                ["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=120", "is-live=true", "!",
                 f"video/x-raw,format={fmt},width=1280,height=720,framerate=60/1", "!",
                 "ceushud", f"endpoint={endpoint}", "exam=ex1", "stale-after=0.5", "!",
                 "fakesink"], env=env, capture_output=True, text=True, timeout=120))
    finally:
        stop.set()
        t.join()
        pub.close()
        ctx.term()
    for r in results:
        assert "AddressSanitizer" not in r.stderr, r.stderr[-3000:]
        assert r.returncode == 0, r.stderr[-2000:]
