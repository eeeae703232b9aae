"""The native elements, headless and real.

- ``ceushud``: a GStreamer pipeline (videotestsrc or appsrc → ceushud → appsink) with a real
  ZeroMQ publisher in the test. Every message is built by ``engine.wire.messages`` (as the
  engine builds it) and validated against the schema files before it is sent, so the Python
  and C sides cannot drift apart unseen. Evidence is the pixels and the element's ``shown``
  property (what the current overlay says, in words).
- The C reader's table against the same schema files (``hudcheck``, built by CMake for the
  tests): every field it reads exists with a compatible type, and what it reads from
  Python-built messages is what Python sent.
- The caps sequences that crashed the element (I420 → BGRx and NV12 → RGBx at the same size; a
  frame 40000 pixels wide) run in a child process, so a crash fails one test, not the session.
- Both elements built with AddressSanitizer, leak detection on (``make asan``).

Tests wait on events (a condition polled with a generous deadline); none asserts a duration.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

W, H = 640, 360
DEADLINE = 30.0
OFFSETS = [2.0 * i for i in range(25)] + [60.0, 90.0, 120.0, 150.0, 180.0]
MODEL = {"name": "cnn3d", "sha256": "5" * 64, "trained_on": "simulated"}
BACKEND = {"name": "onnxruntime", "precision": "fp32", "device": "cpu",
           "version": "1.20.0", "plan_key": None}


# -- messages: built by the engine's builders, checked against the schema files ----------

def _messages():
    from ceustream.engine.wire import messages
    return messages


def _validators():
    import jsonschema
    from referencing import Registry, Resource

    m = _messages()
    resources = []
    for name in m.SCHEMAS:
        doc = json.loads(m.schema_text(name))
        resources.append((doc["$id"], Resource.from_contents(doc)))
    registry = Registry().with_resources(resources)
    out = {}
    for name in ("score", "status"):
        doc = json.loads(m.schema_text(name))
        jsonschema.Draft202012Validator.check_schema(doc)
        out[name] = jsonschema.Draft202012Validator(doc, registry=registry)
    return out


_VALIDATORS = None


def validate(msg: dict) -> dict:
    """The message as the schema files define it, or the test fails naming the field."""
    global _VALIDATORS
    if _VALIDATORS is None:
        _VALIDATORS = _validators()
    _VALIDATORS[msg["type"]].validate(msg)
    return msg


def slot_states(n: int, total: int = 30) -> list:
    return ["frame"] * n + [None] * (total - n)


def features(n: int, summary: str = "APHE ✓ · washout late, mild", category="LR-5-like"):
    """A TIC reading of the first ``n`` slots: a lesion that washes in fast and washes out
    below the liver after 60 s (HCC-like), in dB over the exam's own baseline."""
    les = [40 * (1 - math.exp(-t / 6)) * math.exp(-t / 70) - 0.08 * max(0.0, t - 40)
           for t in OFFSETS]
    par = [25 * (1 - math.exp(-t / 20)) * math.exp(-t / 400) for t in OFFSETS]
    return {"times_s": OFFSETS,
            "lesion": [round(v, 3) if i < n else None for i, v in enumerate(les)],
            "parenchyma": [round(v, 3) if i < n else None for i, v in enumerate(par)],
            "units": "dB over baseline", "aphe": "nonrim" if n > 5 else None,
            "washout": "late" if n > 26 else None,
            "washout_onset_s": 75.0 if n > 26 else None,
            "washout_degree": "mild" if n > 26 else None,
            "category": category if n > 26 else None, "summary": summary,
            "p_hcc": 0.81}


def status(exam: str = "ex1", n: int = 10, **kw) -> dict:
    """A status message as ``ExamSession.status_fields()`` feeds ``messages.status``."""
    args = dict(phase="video_phase" if n < 25 else "late_phase", slots_filled=n,
                slots_total=30, next_slot=n if n < 30 else None,
                next_slot_due_s=(20.0 + OFFSETS[n]) if n < 30 else None,
                next_slot_in_s=1.5 if n < 30 else None, speed=1.0, t0_s=20.0,
                injection_s=5.0, warnings=[], roi=[200, 120, 120, 120],
                frame_size=[W, H], model=MODEL, backend=BACKEND,
                slot_states=slot_states(n), score=None, final=False, label=None,
                flags=["trained_on_simulated_data"], heartbeat=False, features=None,
                source="cam0", stream_time_s=20.0 + (OFFSETS[n] if n < 30 else 180.0) - 1.5,
                lag_s=0.02)
    args.update(kw)
    return _messages().status(exam, **args)


def score(value: float, exam: str = "ex1", n: int = 10, **kw) -> dict:
    """A score message as ``ExamSession.score_fields()`` feeds ``messages.score``."""
    args = dict(slot=max(n - 1, 0), slots_filled=n, slots_total=30, score=value, label=None,
                final=False, flags=["trained_on_simulated_data"], model=MODEL,
                backend=BACKEND, latency_ms=11.5, frame_mono_ns=123456789, t0_s=20.0,
                frame_times_s=[20.0 + t if i < n else None for i, t in enumerate(OFFSETS)],
                slot_states=slot_states(n), threshold=0.5, features=None, source="cam0")
    args.update(kw)
    return _messages().score(exam, **args)


def final_score(value: float = 0.87, label: str = "HCC", exam: str = "ex1", **kw) -> dict:
    return score(value, exam=exam, n=30, label=label, final=True, **kw)


class Publisher:
    """A real PUB socket that numbers and validates what it sends, as the engine's does."""

    def __init__(self, endpoint: str | None = None):
        import zmq

        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUB)
        if endpoint:
            self.sock.bind(endpoint)
            self.endpoint = endpoint
        else:
            port = self.sock.bind_to_random_port("tcp://127.0.0.1")
            self.endpoint = f"tcp://127.0.0.1:{port}"
        self.seq: dict[str, int] = {}
        self.lock = threading.Lock()

    def send(self, msg: dict) -> dict:
        m = _messages()
        with self.lock:
            msg = dict(msg)
            self.seq[msg["exam"]] = msg.get("seq") or self.seq.get(msg["exam"], 0) + 1
            msg["seq"] = self.seq[msg["exam"]]
            validate(msg)
            m.check_outgoing(msg)
            self.sock.send_multipart([m.topic(msg["type"], msg["exam"]), m.encode(msg)])
        return msg

    def raw(self, *frames: bytes) -> None:
        with self.lock:
            self.sock.send_multipart(list(frames))

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


def wait_for(cond, timeout: float = DEADLINE, what: str = "condition", step: float = 0.03):
    """Polls ``cond`` until it returns something truthy; fails naming ``what`` otherwise."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


# -- the element in a headless display pipeline ------------------------------------------

class Bench:
    """A publisher and a headless display pipeline: videotestsrc → ceushud → appsink."""

    def __init__(self, fmt: str = "BGRx", props: str = "", w: int = W, h: int = H,
                 pattern: str = "black"):
        from ceustream.pipelines import gst

        gst.require("ceushud")
        self.Gst = gst.Gst
        self.w, self.h = w, h
        self.pub = Publisher()
        self.endpoint = self.pub.endpoint
        self.p = self.Gst.parse_launch(
            f"videotestsrc pattern={pattern} is-live=true ! video/x-raw,format={fmt},width={w},"
            f"height={h},framerate=30/1 ! ceushud name=hud endpoint={self.endpoint} {props} ! "
            "videoconvert ! video/x-raw,format=RGB ! appsink name=sink max-buffers=1 drop=true "
            "sync=false")
        self.hud = self.p.get_by_name("hud")
        self.sink = self.p.get_by_name("sink")
        self.p.set_state(self.Gst.State.PLAYING)
        # the first overlay, once the screen is learnt where the layout learns it (auto at
        # the video's size: laid out from the first frame's look, kept when it is learnt)
        wait_for(lambda: (s := self.shown()) and (s["screen_learnt"] or s["where"] != "corners"
                                                  or s["layout"] == "over"),
                 what="the first overlay")

    # messages
    def send(self, msg: dict) -> dict:
        return self.pub.send(msg)

    def deliver(self, *msgs: dict) -> None:
        """Sends ``msgs`` and waits until the element has taken them all; the first delivery
        of a session repeats until the subscriber has connected (ZeroMQ's slow joiner)."""
        if self.prop("messages-received") == 0:
            def first():
                self.send(msgs[0])
                return self.prop("messages-received") > 0
            wait_for(first, what="the subscriber to connect", step=0.1)
            msgs = msgs[1:]
        base = self.prop("messages-received")
        for m in msgs:
            self.send(m)
        wait_for(lambda: self.prop("messages-received") >= base + len(msgs),
                 what="the messages to arrive")

    # what it shows
    def shown(self) -> dict | None:
        text = self.hud.get_property("shown")
        return json.loads(text) if text else None

    def wait_shown(self, pred, what: str = "the overlay", timeout: float = DEADLINE) -> dict:
        def ok():
            s = self.shown()
            return s if s and pred(s) else None
        return wait_for(ok, timeout, what)

    def current(self) -> dict:
        """Waits until the newest accepted message is drawn, and returns what is shown."""
        wait_for(lambda: self.prop("drawn-seq") == self.prop("last-seq"), what="the drawing")
        return self.shown()

    def frame(self) -> np.ndarray:
        """A frame that went through the element after the current overlay was in place."""
        s = None
        for _ in range(3):  # the one queued, the one in flight, then a fresh one
            s = self.sink.emit("try-pull-sample", 5 * self.Gst.SECOND)
            assert s is not None, "no frame came out"
        b = s.get_buffer()
        caps = s.get_caps().get_structure(0)
        w, h = caps.get_value("width"), caps.get_value("height")
        a = np.frombuffer(b.extract_dup(0, b.get_size()), np.uint8)
        return a.reshape(h, a.size // h)[:, :w * 3].reshape(h, w, 3).copy()  # rows padded

    def prop(self, name):
        return self.hud.get_property(name)

    def close(self):
        self.p.set_state(self.Gst.State.NULL)
        self.pub.close()


def red(img):
    return int(((img[..., 0] > 150) & (img[..., 1] < 70) & (img[..., 2] < 70)).sum())


def amber(img):
    return int(((img[..., 0] > 200) & (img[..., 1] > 120) & (img[..., 1] < 215)
                & (img[..., 2] < 110)).sum())


@pytest.fixture
def bench():
    b = Bench()
    yield b
    b.close()


def test_the_test_messages_are_what_the_schema_files_define():
    """The builders' output passes the schema (with seq, as the publisher adds it), and a
    field the schema does not know is refused: the strict files are really in force."""
    for msg in (status(), status(n=30, phase="complete", score=0.8, final=True, label="HCC",
                                 features=features(30), warnings=["slot_late"]),
                score(0.4, features=features(12)), final_score(features=features(30))):
        validate(dict(msg, seq=1))
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        validate(dict(status(), seq=1, countdown_s=3))
    with pytest.raises(jsonschema.ValidationError):
        validate(dict(score(0.4), seq=1, score=1.5))


def test_properties_are_documented_in_gst_inspect():
    from ceustream.pipelines import gst

    out = subprocess.run(["gst-inspect-1.0", "ceushud"], capture_output=True, text=True,
                         env=dict(os.environ, GST_PLUGIN_PATH=str(gst.plugin_dirs()[0])))
    assert out.returncode == 0, out.stderr
    for prop in ("endpoint", "exam", "server-public-key", "stale-after", "messages-received",
                 "messages-ignored", "disclaimer-position", "bottom-left", "bottom-center",
                 "shown", "layout", "beside", "output-width", "output-height"):
        assert prop in out.stdout, prop
    gate = subprocess.run(["gst-inspect-1.0", "ceusgate"], capture_output=True, text=True,
                          env=dict(os.environ, GST_PLUGIN_PATH=str(gst.plugin_dirs()[0])))
    assert gate.returncode == 0 and "frozen-after" in gate.stdout


def test_before_any_message_it_says_so_and_shows_the_disclaimer(bench):
    shown = bench.shown()
    assert shown["state"] == "none"
    assert shown["warnings"] == ["NO ENGINE MESSAGES"]
    assert shown["disclaimer"] == "bottom-left"
    img = bench.frame()
    assert red(img) > 200  # the "NO ENGINE MESSAGES" banner
    assert bench.prop("messages-received") == 0


def test_gauge_follows_the_score(bench):
    bench.deliver(status(), score(0.2))
    a = bench.frame()
    bench.deliver(score(0.9))
    assert bench.current()["score"] == "0.90"
    b = bench.frame()
    changed = np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 40
    assert changed.sum() > 300
    ys, xs = np.nonzero(changed)
    # only the score panel changed (right-hand side), not the lesion's ROI in the middle
    assert xs.min() > W * 0.45
    assert not changed[120:240, 200:320].any()


def test_a_provisional_score_looks_provisional_and_the_final_looks_final(bench):
    bench.deliver(status(n=13, score=0.61), score(0.61, n=13))
    prov = bench.current()
    assert (prov["kind"], prov["score"], prov["filled"], prov["label"]) == \
        ("provisional", "0.61", "13/30", "")
    a = bench.frame()
    bench.deliver(final_score(0.61, "HCC"))
    fin = bench.current()
    assert (fin["kind"], fin["score"], fin["label"]) == ("final", "0.61", "HCC")
    b = bench.frame()
    # same number, drawn differently: solid digits, the frame and the amber label
    assert np.abs(a.astype(int) - b.astype(int)).sum(axis=2).__gt__(40).sum() > 500
    assert amber(b) > amber(a) + 100


def test_the_countdown_counts_down_between_messages(bench):
    """Heartbeats repeating one status must not freeze it: the element counts down from the
    status's next_slot_in_s by its own clock (speed 0 = unknown counts as 1)."""
    bench.deliver(status(n=12, next_slot_in_s=20.0, speed=1.0))
    first = bench.current()["countdown"]
    assert 18 <= first <= 20
    later = bench.wait_shown(lambda s: 0 <= s["countdown"] < first - 1, "the countdown to move")
    assert "slot 13 in" in later["phase"]
    bench.deliver(status(n=12, next_slot_in_s=6.0, speed=0.0))  # unknown speed
    bench.wait_shown(lambda s: 0 <= s["countdown"] <= 4, "the countdown at unknown speed")
    bench.deliver(status(n=12, next_slot_in_s=-2.0))  # overdue
    due = bench.current()
    assert due["countdown"] == 0 and "due now" in due["phase"]


def test_after_a_normal_end_the_last_state_stays_not_stale():
    b = Bench(props="stale-after=0.5")
    try:
        b.deliver(status(n=20, score=0.7), score(0.7, n=20))
        # while the exam runs, silence is STALE ...
        b.wait_shown(lambda s: s["state"] == "stale", "STALE while the exam runs")
        # ... after the end it is not: the engine may stop sending (or exit)
        b.deliver(final_score(0.82, "HCC"),
                  status(n=30, phase="complete", score=0.82, final=True, label="HCC"))
        ended = b.current()
        assert ended["state"] == "ended" and ended["ended"]
        assert ended["phase"] == "EXAM ENDED - COMPLETE"
        last = time.monotonic()
        while time.monotonic() < last + 4 * 0.5:  # well past stale-after, still ended
            s = b.shown()
            assert s["state"] == "ended" and not any("STALE" in w for w in s["warnings"]), s
            time.sleep(0.1)
        # a partial end says it is not final
        b.deliver(status("ex2", n=22, phase="partial", score=0.4,
                         flags=["slots_missing", "trained_on_simulated_data"]))
        partial = b.current()
        assert (partial["state"], partial["kind"]) == ("ended", "not_final")
        assert partial["phase"] == "EXAM ENDED - PARTIAL - NOT FINAL"
    finally:
        b.close()


def test_stale_while_running_and_back_with_the_heartbeat():
    b = Bench(props="stale-after=1.0")
    try:
        b.deliver(status(), score(0.6))
        fresh = b.frame()
        assert b.current()["state"] == "running"
        b.wait_shown(lambda s: s["state"] == "stale", "STALE")
        stale = b.frame()
        assert red(stale) > red(fresh) + 300  # the STALE banner
        b.deliver(status(heartbeat=True))
        b.wait_shown(lambda s: s["state"] == "running", "the heartbeat to clear STALE")
        assert red(b.frame()) < red(stale) - 300
    finally:
        b.close()


def test_warnings_are_shown_in_words_and_cpu_fallback_is_a_note(bench):
    flags = ["cpu_fallback", "trained_on_simulated_data"]
    bench.deliver(status(n=14, score=0.58, flags=flags, warnings=[
        "no_signal", "frozen_frame", "baseline_contaminated", "journal_error", "slot_late",
        "model_tic_disagree", "out_of_distribution", "brand_new_thing"]),
        score(0.58, n=14, flags=flags))
    s = bench.current()
    assert set(s["warnings"]) == {"NO SIGNAL", "FROZEN IMAGE", "BASELINE HAD CONTRAST",
                                  "JOURNAL ERROR", "SLOT LATE", "MODEL/TIC DISAGREE",
                                  "BRAND NEW THING"}
    assert s["ood"] is True  # drawn next to the score, not among the banners
    assert s["cpu"] is True and not any("CPU" in w for w in s["warnings"])
    img = bench.frame()
    assert red(img) > 100  # NO SIGNAL is red


def test_the_tic_reading_is_drawn_under_the_score(bench):
    bench.deliver(status(n=27, score=0.77), score(0.77, n=27))
    plain = bench.frame()
    assert bench.current()["tic_points"] == 0
    f = features(27)
    bench.deliver(score(0.77, n=27, features=f))
    s = bench.current()
    assert s["summary"] == "APHE ✓ · washout late, mild"
    assert s["tic_points"] == 27
    drawn = bench.frame()
    # the lesion curve is amber, inside the panel
    assert amber(drawn[:, W // 2:]) > amber(plain[:, W // 2:]) + 50
    # a status without features yet (null) clears the reading
    bench.deliver(status(n=27, score=0.77, features=None))
    assert bench.current()["tic_points"] == 0


@pytest.mark.parametrize("position", ["bottom-left", "top-left", "bottom-right",
                                      "top-right", "bottom-center"])
def test_layout_over_puts_the_disclaimer_in_the_corner_chosen(position):
    """layout=over: the disclaimer in the chosen corner, its capitals at least 2 % of the
    frame height (22 px at 1080 lines: 6 mm on a 24-inch monitor), the panel elsewhere."""
    w, h = 1280, 720
    b = Bench(props=f"layout=over disclaimer-position={position}", w=w, h=h)
    try:
        b.deliver(status(n=10, score=0.3, roi=[560, 300, 160, 120], frame_size=[w, h]))
        s = b.current()
        assert s["disclaimer"] == position and s["where"] == "corners"
        img = b.frame()
        x, y, bw, bh = s["disclaimer_box"]
        px, py, pw, ph = s["panel_box"]
        assert x + bw <= px or px + pw <= x or y + bh <= py or py + ph <= y, s
        cx, cy = x + bw / 2, y + bh / 2
        want_x = {"left": cx < w / 2, "right": cx > w / 2, "center": abs(cx - w / 2) < 2}
        assert want_x[position.split("-")[1]], (position, s["disclaimer_box"])
        assert (cy > h / 2) == position.startswith("bottom")
        # measure the letters themselves: rows of white text inside the box
        box = img[y:y + bh, x:x + bw]
        rows = (box.min(axis=2) > 200).any(axis=1)
        runs, run = [], 0
        for r in rows:
            run = run + 1 if r else 0
            runs.append(run)
        assert max(runs) >= 0.0204 * h - 1, f"capitals {max(runs)} px of a {h}-line frame"
        lines = int(np.sum(np.diff(rows.astype(int)) == 1) + rows[0])
        assert lines >= 2
    finally:
        b.close()


def _bad_numbers():
    """Messages that are valid JSON but carry a number the element must not cast."""
    out = []

    def mutate(msg, path, value):
        m = copy.deepcopy(msg)
        o = m
        for k in path[:-1]:
            o = o[k]
        o[path[-1]] = value
        return m

    st, sc = status(), score(0.5, features=features(10))
    out += [mutate(st, ["slots_filled"], 1e308), mutate(st, ["next_slot"], -3),
            mutate(st, ["next_slot"], 2.5), mutate(st, ["roi"], [0, 0, 10 ** 12, 5]),
            mutate(st, ["speed"], -1.0), mutate(st, ["next_slot_in_s"], 1e300),
            mutate(st, ["frame_size"], [2 ** 63, 480]), mutate(sc, ["score"], 1.5),
            mutate(sc, ["slots_total"], 0), mutate(sc, ["features", "lesion", 3], 1e300),
            mutate(sc, ["features", "times_s", 0], -4.0), mutate(sc, ["seq"], -1)]
    return out


def test_malformed_foreign_unknown_versions_and_bad_numbers_change_nothing():
    b = Bench(props="exam=ex1 stale-after=60")
    try:
        still = dict(next_slot_in_s=None, score=0.42)  # no countdown: the picture stands still
        b.deliver(status(**still), score(0.42))
        before_shown = b.current()
        before = b.frame()
        got = b.prop("messages-received")
        ignored = b.prop("messages-ignored")
        m = _messages()
        bad = [(b"score.ex1", b"{not json"),
               (b"score.ex1", m.encode(dict(score(0.99), v=2, seq=9))),
               (b"score.ex1", json.dumps([1, 2, 3]).encode()),
               (b"score.ex1", m.encode(dict(score(0.99), score="high", seq=9))),
               (b"score.ex1", b"\xff\xfe\xfd"),
               (b"status.ex1", m.encode(dict(score(0.4), seq=9))),  # type != topic
               # numbers JSON itself cannot carry, as a careless publisher writes them
               (b"score.ex1", m.encode(dict(score(0.99), seq=9)).replace(b'"score":0.99',
                                                                         b'"score":NaN')),
               (b"status.ex1", m.encode(dict(status(), seq=9)).replace(b'"speed":1.0',
                                                                       b'"speed":1e400')),
               (b"status.ex1", m.encode(dict(status(), seq=9)).replace(
                   b'"next_slot":10', b'"next_slot":99999999999999999999999'))]
        for topic, payload in bad:
            b.pub.raw(topic, payload)
        b.pub.raw(b"score.ex1")  # one part only
        b.pub.raw(b"score.", b"")  # no exam id, an empty payload
        for msg in _bad_numbers():
            b.pub.raw(m.topic(msg["type"], "ex1"), json.dumps({"seq": 50, **msg}).encode())
        b.send(score(0.99, exam="ex1b"))  # another exam (prefix-alike): filtered
        total = len(bad) + 2 + len(_bad_numbers())
        wait_for(lambda: b.prop("messages-ignored") >= ignored + total,
                 what=f"{total} messages ignored")
        # a good one after them all is still taken, so nothing above was left half-read
        b.deliver(status(n=11, **still))
        assert b.prop("messages-received") == got + 1
        assert b.current()["filled"] == "11/30"
        b.deliver(status(**still))
        after = b.frame()
        assert b.current() == before_shown
        assert np.abs(before.astype(int) - after.astype(int)).max() <= 2
    finally:
        b.close()


def test_survives_the_publisher_restarting():
    b = Bench(props="stale-after=60")
    try:
        b.deliver(status(), score(0.1))
        first = b.frame()
        endpoint = b.endpoint
        b.pub.close()
        b.pub = Publisher(endpoint)
        # ZeroMQ reconnects by itself: resend until the element has taken one
        got = b.prop("messages-received")

        def again():
            b.send(score(0.95))
            return b.prop("messages-received") > got
        wait_for(again, what="the reconnection", step=0.2)
        assert b.current()["score"] == "0.95"
        assert np.abs(first.astype(int) - b.frame().astype(int)).sum() > 0
    finally:
        b.close()


@pytest.mark.parametrize("fmt", ["I420", "NV12", "RGBx", "BGRA", "RGBA", "BGRx"])
def test_draws_in_every_supported_format(fmt):
    b = Bench(fmt=fmt)
    try:
        b.deliver(status(), score(0.7))
        b.current()
        img = b.frame()
        assert (img.sum(axis=2) > 300).sum() > 2000  # white text and gauge on black
    finally:
        b.close()


def test_debug_categories_say_what_both_elements_do():
    """GST_DEBUG=ceusgate:6,ceushud:5 shows caps, frames passed and dropped (and why), and
    messages ignored (and why)."""
    from ceustream.pipelines import gst

    gst.require("ceusgate", "ceushud")
    pub = Publisher()
    stop = threading.Event()

    def publish():
        while not stop.is_set():
            pub.raw(b"status.ex1", b"{not json")
            stop.wait(0.05)

    t = threading.Thread(target=publish)
    t.start()
    env = dict(os.environ, GST_PLUGIN_PATH=str(gst.plugin_dirs()[0]),
               GST_DEBUG="ceusgate:6,ceushud:5", GST_DEBUG_NO_COLOR="1")
    try:
        # long enough (live, 3 s) for the subscriber to connect and hear the bad messages
        r = subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=90",
                            "is-live=true", "!", "video/x-raw,width=160,height=120,"
                            "framerate=30/1", "!", "ceusgate", "slots=0.5,1.0", "!", "ceushud",
                            f"endpoint={pub.endpoint}", "!", "fakesink"],
                           env=env, capture_output=True, text=True, timeout=120)
    finally:
        stop.set()
        t.join()
        pub.close()
    assert r.returncode == 0, r.stderr[-2000:]
    log = r.stderr
    assert "ceusgate" in log and "caps video/x-raw" in log
    assert "(first at or after a slot)" in log and "passed frame at stream time" in log
    assert "dropped frame at stream time" in log
    assert "passed the frame before slot 0" in log
    assert "message ignored: payload is not JSON" in log


# -- caps changes and huge frames (the crashes), in a child process -----------------------

def caps_scenario(steps: list[str]) -> dict:
    """Pushes frames of each ``FORMAT:WxH`` step through appsrc → ceushud → appsink while a
    real PUB socket sends valid score/status messages; reports per step how many frames came
    out and how many carried the overlay, and the element's warnings."""
    from ceustream.pipelines import gst

    gst.require("ceushud")
    from gi.repository import GstVideo

    Gst = gst.Gst
    pub = Publisher()
    stop = threading.Event()

    def publish():
        i = 0
        while not stop.is_set():
            pub.send(status(n=12, score=0.6, features=features(12)))
            pub.send(score(0.6, n=12, features=features(12)))
            i += 1
            stop.wait(0.05)

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    p = Gst.parse_launch(f"appsrc name=src format=time ! ceushud name=hud "
                         f"endpoint={pub.endpoint} stale-after=60 ! appsink name=sink sync=false "
                         "max-buffers=4")
    src, hud, sink = p.get_by_name("src"), p.get_by_name("hud"), p.get_by_name("sink")
    warnings, errors = [], []

    def on_message(bus, msg):
        if msg.type == Gst.MessageType.WARNING:
            warnings.append(msg.parse_warning()[0].message + " | " + msg.parse_warning()[1])
        elif msg.type == Gst.MessageType.ERROR:
            errors.append(msg.parse_error()[1])
        return True

    bus = p.get_bus()
    bus.enable_sync_message_emission()
    bus.connect("sync-message", on_message)
    p.set_state(Gst.State.PLAYING)
    wait_for(lambda: hud.get_property("messages-received") > 0, what="the engine's messages")
    report, pts = [], 0
    for step in steps:
        fmt, size = step.split(":")
        w, h = (int(v) for v in size.split("x"))
        caps = Gst.Caps.from_string(f"video/x-raw,format={fmt},width={w},height={h},"
                                    "framerate=30/1")
        info = GstVideo.VideoInfo.new_from_caps(caps)
        src.set_property("caps", caps)
        blank = bytes(info.size)
        out = drawn = 0
        end = time.monotonic() + DEADLINE
        # frames until the overlay shows in this format (at least 10), a deadline at most
        while out < 10 or (drawn == 0 and w <= 32767 and time.monotonic() < end):
            buf = Gst.Buffer.new_wrapped(blank)
            buf.pts, buf.duration = pts, 33_333_333
            pts += 33_333_333
            assert src.emit("push-buffer", buf) == Gst.FlowReturn.OK
            s = sink.emit("try-pull-sample", 10 * Gst.SECOND)
            if s is None:
                break
            b = s.get_buffer()
            data = b.extract_dup(0, b.get_size())
            out += 1
            drawn += data != blank
        report.append({"step": step, "out": out, "drawn": drawn})
    stop.set()
    t.join()
    p.set_state(Gst.State.NULL)
    pub.close()
    return {"steps": report, "warnings": warnings, "errors": errors}


def run_caps_scenario(steps: list[str], env: dict | None = None) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, __file__, "caps", *steps], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"rc {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("steps", [["I420:640x360", "BGRx:640x360"],
                                   ["NV12:640x360", "RGBx:640x360"],
                                   ["BGRx:640x360", "NV12:640x360", "RGBA:320x240",
                                    "I420:320x240"]])
def test_a_caps_change_at_the_same_size_is_blended_by_the_new_format(steps):
    """Was a SIGSEGV: the blend took the format of the overlay rendered for the old caps."""
    res, _ = run_caps_scenario(steps)
    assert not res["errors"], res
    for step in res["steps"]:
        assert step["out"] >= 10, step
        assert step["drawn"] > 0, f"no overlay drawn after the change to {step['step']}"


def test_a_frame_too_wide_to_draw_passes_untouched_with_one_warning():
    """Was a SIGSEGV (cairo cannot hold 40000 px; NULL surface data was written)."""
    res, _ = run_caps_scenario(["BGRx:40000x4", "I420:640x360"])
    huge, normal = res["steps"]
    assert huge["out"] >= 10 and huge["drawn"] == 0  # every frame passed, untouched
    assert normal["drawn"] > 0  # back to a drawable size: the overlay returns
    too_big = [w for w in res["warnings"] if "larger than the overlay can draw" in w]
    assert len(too_big) == 1, res["warnings"]
    assert not res["errors"], res


# -- the C reader against the schema files (hudcheck) -------------------------------------

def _cmake_build(build: Path, *options: str, target: str | None = None) -> None:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is missing")
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCEUS_TESTS=ON",
                    "-DSKBUILD_PROJECT_VERSION=0.1.0", *options], check=True,
                   capture_output=True)
    cmd = ["cmake", "--build", str(build), "-j2"] + (["--target", target] if target else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.fixture(scope="module")
def hudcheck(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("hudcheck")
    _cmake_build(build, target="hudcheck")
    return build / "hudcheck"


def test_the_c_reader_reads_only_fields_the_schema_defines(hudcheck):
    r = subprocess.run([str(hudcheck), "schema", _messages().schema_dir()],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ", 0 problems" in r.stdout
    checked = int(r.stdout.strip().splitlines()[-1].split()[0])
    assert checked >= 60


def test_the_c_schema_check_breaks_when_python_renames_a_field(hudcheck, tmp_path):
    """Drift is caught: a renamed, retyped or widened field in the schema fails the C test."""
    schema = tmp_path / "schema"
    shutil.copytree(_messages().schema_dir(), schema)
    st = schema / "status.v1.json"
    st.write_text(st.read_text().replace('"next_slot_in_s"', '"next_slot_in"'))
    sc = schema / "score.v1.json"
    sc.write_text(sc.read_text().replace('"final": {\n      "type": "boolean"',
                                         '"final": {\n      "type": "string"'))
    common = schema / "common.v1.json"
    common.write_text(common.read_text().replace('"frame",', '"frame", "interpolated",')
                      .replace('"maximum": 1000\n', '"maximum": 100000\n'))
    r = subprocess.run([str(hudcheck), "schema", str(schema)], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout
    assert "status next_slot_in_s: the overlay reads it, the schema has no such field" in r.stdout
    assert "score final: the schema allows string" in r.stdout
    assert "slots_filled: the schema allows 0..100000" in r.stdout


def _parse(hudcheck: Path, msgs: list) -> list[dict]:
    """Each message (dict or (topic, raw payload)) through the C reader, in order."""
    m = _messages()
    lines = []
    for seq, msg in enumerate(msgs, 1):
        if isinstance(msg, dict):
            msg = validate(dict(msg, seq=seq))
            lines.append(json.dumps([m.topic(msg["type"], msg["exam"]).decode(),
                                     m.encode(msg).decode()]))
        else:
            lines.append(json.dumps([msg[0], msg[1]]))
    r = subprocess.run([str(hudcheck), "parse"], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_the_c_reader_reads_what_python_builds(hudcheck):
    f = features(27)
    out = _parse(hudcheck, [
        status(n=12, next_slot_in_s=3.25, speed=2.0, warnings=["slot_late", "no_signal"],
               flags=["cpu_fallback", "trained_on_simulated_data"]),
        score(0.61, n=12, features=f),
        status(n=30, phase="complete", score=0.87, final=True, label="HCC", features=f),
    ])
    assert [o["outcome"] for o in out] == ["applied"] * 3
    st, sc, end = out
    assert (st["phase"], st["next_slot"], st["next_slot_in_s"], st["speed"]) == \
        ("video_phase", 12, 3.25, 2.0)
    assert st["warnings"] == ["no_signal", "slot_late"]
    assert st["roi"] == [200, 120, 120, 120] and st["cpu_fallback"] is True
    assert st["slots"][:12] == [1] * 12 and st["slots"][12:] == [0] * 18
    assert (st["model"], st["trained_on"], st["backend"], st["precision"]) == \
        ("cnn3d", "simulated", "onnxruntime", "fp32")
    assert (sc["score"], sc["final"], sc["label"], sc["slots_filled"]) == (0.61, False, "", 12)
    tic = sc["features"]
    assert tic["summary"] == f["summary"] and tic["times_s"] == f["times_s"]
    assert tic["lesion"] == f["lesion"] and tic["parenchyma"] == f["parenchyma"]
    assert (tic["aphe"], tic["washout"], tic["washout_degree"], tic["category"]) == \
        ("nonrim", "late", "mild", "LR-5-like")
    assert (tic["washout_onset_s"], tic["p_hcc"]) == (75.0, 0.81)
    assert (end["score"], end["final"], end["label"], end["ended"]) == (0.87, True, "HCC", True)


def test_the_c_reader_refuses_bad_numbers_and_keeps_its_state(hudcheck):
    good = status(n=12)
    bad = _bad_numbers()
    m = _messages()
    raw = [("status.ex1", m.encode(dict(good, seq=1)).decode().replace('"speed":1.0',
                                                                       '"speed":1e400')),
           ("status.ex1", m.encode(dict(good, seq=1)).decode().replace('"speed":1.0',
                                                                       '"speed":NaN'))]
    lines = [good] + [(m.topic(b["type"], "ex1").decode(), json.dumps({"seq": 2, **b}))
                      for b in bad] + raw
    out = _parse(hudcheck, lines)
    assert out[0]["outcome"] == "applied"
    for o in out[1:]:
        assert o["outcome"] == "malformed", o
        assert o["why"], o
        keep = {k: v for k, v in o.items() if k not in ("outcome", "why")}
        assert keep == {k: v for k, v in out[0].items() if k not in ("outcome", "why")}
    whys = " ".join(o["why"] for o in out[1:])
    for field in ("slots_filled", "next_slot", "roi[2]", "speed", "frame_size[0]", "score",
                  "features.lesion[3]", "features.times_s[0]", "seq"):
        assert f"'{field}'" in whys, (field, whys)


# -- the view and the layout without cairo, the screen analysis (hudcheck) ----------------

def _view(hudcheck: Path, msgs: list, *geometry) -> list[dict]:
    """Each message through the C reader, then the view and its layout for ``geometry``
    (MODE W H [OW OH]) with a fixed-advance font: 0.6 em a character, 0.65 em bold."""
    m = _messages()
    lines = []
    for seq, msg in enumerate(msgs, 1):
        msg = validate(dict(msg, seq=seq))
        lines.append(json.dumps([m.topic(msg["type"], msg["exam"]).decode(),
                                 m.encode(msg).decode()]))
    r = subprocess.run([str(hudcheck), "view", *map(str, geometry)],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_the_view_says_provisional_final_and_outside_the_model_domain(hudcheck):
    f = features(30, summary="APHE ✓ (non-rim) · washout late, mild · LR-5-like")
    prov, fin, outside, outside_status = _view(hudcheck, [
        score(0.61, n=12),
        final_score(0.87, "HCC"),
        # the lead's contract (issue 18): label "indeterminate", out_of_distribution flagged
        final_score(0.87, "indeterminate", features=f,
                    flags=["trained_on_simulated_data", "out_of_distribution"]),
        status(n=30, phase="complete", score=0.87, final=True, label="indeterminate",
               features=f, warnings=["out_of_distribution"]),
    ], "auto", 1920, 1080)
    v = prov["view"]
    assert (v["title"], v["headline"], v["hollow"], v["detail"], v["label"]) == \
        ("P(HCC) - PROVISIONAL", "0.61", True, "12/30", "")
    assert v["gauge"] == 0.61
    v = fin["view"]
    assert (v["title"], v["headline"], v["hollow"], v["label"]) == \
        ("P(HCC) - FINAL", "0.87", False, "HCC")
    for o in (outside, outside_status):
        v = o["view"]
        # what still holds is the TIC reading; the network's number is small and grey
        assert v["headline"] == "OUTSIDE MODEL DOMAIN" and v["ood"] is True
        assert v["label"] == "" and v["tic_label"] == "TIC LR-5-like"
        assert v["detail"] == "CNN P(HCC) 0.87 - not valid here"
        assert v["gauge"] == -1  # no score bar
        assert v["summary"] == f["summary"]
        assert "OUTSIDE MODEL DOMAIN" not in v["warnings"]
        numbers = [i for i in o["items"] if i["kind"] == "number"]
        assert numbers == []  # no big confident number
        tags = " ".join(i["text"] for i in o["items"] if i["kind"] == "tag")
        assert "OUTSIDE MODEL DOMAIN" in tags  # wrapped, whole


def test_outside_the_domain_a_physiology_score_is_named_as_such(hudcheck):
    """Out of the domain the engine's ``score`` is the physiology reading's P(HCC)
    (``score_basis``: physiology): the screen names it so, never as the network's; a
    status without the field keeps the score's basis; a network-based score out of domain
    (an engine without the reading) keeps the grey "not valid here"."""
    f = features(30, summary="APHE ✓ (non-rim) · washout late, mild · LR-5-like")
    phys, phys_status, net = _view(hudcheck, [
        final_score(0.81, "indeterminate", features=f, domain=_domain("out", 3.1, 2.0),
                    score_basis="physiology"),
        status(n=30, phase="complete", score=0.81, final=True, label="indeterminate",
               features=f, warnings=["out_of_distribution"]),
        final_score(0.62, "indeterminate", exam="ex2", features=f,
                    domain=_domain("out", 3.1, 2.0), score_basis="network"),
    ], "auto", 1920, 1080)
    for o in (phys, phys_status):
        v = o["view"]
        assert v["headline"] == "OUTSIDE MODEL DOMAIN" and v["tic_label"] == "TIC LR-5-like"
        assert v["detail"] == "physiology P(HCC) 0.81"
        assert "CNN" not in " ".join(i.get("text", "") for i in o["items"])
    assert net["view"]["detail"] == "CNN P(HCC) 0.62 - not valid here"


def _domain(state: str, distance=None, threshold=None) -> dict:
    return {"state": state, "distance": distance, "threshold": threshold, "method": "embedding"}


def test_the_view_reads_the_messages_domain_object(hudcheck):
    """The score's ``domain`` (issue 18's contract) decides "outside" on its own, even with a
    label and no out_of_distribution flag; "in" and older messages without it keep the
    network's label; a final label whose check had nothing to go on says so."""
    f = features(30)
    out_alone, out_numbers, inside, unknown, status_keeps = _view(hudcheck, [
        final_score(0.87, "HCC", features=f, domain=_domain("out")),
        final_score(0.87, "indeterminate", features=f, domain=_domain("out", 3.1, 2.0)),
        final_score(0.87, "HCC", features=f, domain=_domain("in", 0.4, 2.0)),
        final_score(0.87, "HCC", features=f, domain=_domain("unknown")),
        # a status without the object keeps the last one's (the engine sends it once known)
        status(n=30, phase="complete", score=0.87, final=True, label="HCC", features=f),
    ], "auto", 1920, 1080)
    # an engine from before the check: no domain object anywhere
    older, = _view(hudcheck, [final_score(0.87, "HCC", features=f)], "auto", 1920, 1080)
    for o in (out_alone, out_numbers):
        v = o["view"]
        assert (v["headline"], v["ood"], v["label"], v["tic_label"]) == \
            ("OUTSIDE MODEL DOMAIN", True, "", "TIC LR-5-like")
        assert v["gauge"] == -1
        assert [i for i in o["items"] if i["kind"] == "number"] == []
    assert out_alone["view"]["domain"] == ""  # distance and threshold null: nothing invented
    # "%.2f > %.2f" of 3.1 and 2.0
    assert out_numbers["view"]["domain"] == "domain distance 3.10 > 2.00"
    texts = " ".join(i.get("text", "") for i in out_numbers["items"])
    assert "domain distance 3.10 > 2.00" in texts
    for o in (inside, older):
        v = o["view"]
        assert (v["headline"], v["ood"], v["label"], v["domain"]) == ("0.87", False, "HCC", "")
        assert "DOMAIN NOT CHECKED" not in v["warnings"]
    v = unknown["view"]
    assert (v["headline"], v["ood"], v["label"]) == ("0.87", False, "HCC")
    assert "DOMAIN NOT CHECKED" in v["warnings"]
    # the status after "unknown" has no domain object: the last one holds
    assert "DOMAIN NOT CHECKED" in status_keeps["view"]["warnings"]


def test_the_c_reader_refuses_a_bad_domain_object(hudcheck):
    good = final_score(0.87, "HCC", domain=_domain("in", 0.4, 2.0))
    m = _messages()
    lines = [good]
    for bad in ({"state": 5}, {"distance": -1.0}, {"threshold": 2e9}, {"method": 5}):
        lines.append((m.topic("score", "ex1").decode(),
                      json.dumps(dict(good, seq=2, domain=dict(good["domain"], **bad)))))
    out = _parse(hudcheck, lines)
    assert out[0]["outcome"] == "applied"
    for o in out[1:]:
        assert o["outcome"] == "malformed" and "domain" in o["why"], o


@pytest.mark.parametrize("mode,w,h,want", [
    # 4:3 in auto: 16:9 at its height (ceil(480 * 16 / 9) = 854, even), the video at the left
    ("auto", 640, 480, [854, 480, 0, 0, True, False]),
    ("auto", 1440, 1080, [1920, 1080, 0, 0, True, False]),
    # 16:9 in auto: its own size, the panels in its free space
    ("auto", 1920, 1080, [1920, 1080, 0, 0, False, False]),
    ("auto", 1280, 720, [1280, 720, 0, 0, False, False]),
    # over at 320x240 cannot be legible: a 854x480 canvas, the video centred in height
    ("over", 320, 240, [854, 480, 0, 120, True, True]),
    ("over", 640, 480, [640, 480, 0, 0, False, False]),
    # beside a 16:9 picture: 1280 + 0.42 * 720 = 1582.4 -> 1584 (even)
    ("beside", 1280, 720, [1584, 720, 0, 0, True, False]),
])
def test_the_output_geometry_by_layout(hudcheck, mode, w, h, want):
    out = _view(hudcheck, [status(frame_size=[w, h])], mode, w, h)
    assert out[0]["geometry"] == want


def test_an_asked_output_size_is_the_canvas(hudcheck):
    out = _view(hudcheck, [status()], "auto", 1440, 1080, 1920, 1080)
    assert out[0]["geometry"] == [1920, 1080, 0, 0, True, False]
    out = _view(hudcheck, [status()], "beside", 640, 480, 1920, 1080)
    assert out[0]["geometry"] == [1920, 1080, 0, 300, True, False]


def test_text_size_from_the_output_height_with_a_floor(hudcheck):
    """Body capitals: 2.04 % of the output's lines (22 px at 1080), never under 9 px;
    DejaVu's capitals are 0.73 em. The score is 3.2 x body, the largest thing."""
    for mode, w, h, body in (("auto", 1920, 1080, 0.0204 * 1080 / 0.73),
                             ("auto", 640, 480, 0.0204 * 480 / 0.73),
                             ("beside", 320, 240, 0.0204 * 480 / 0.73),  # a 480-line canvas
                             ("over", 640, 360, 9 / 0.73)):              # 7.3 px -> the floor
        out = _view(hudcheck, [status(frame_size=[w, h]), score(0.42)], mode, w, h)[-1]
        assert out["body_px"] == pytest.approx(body, rel=1e-6), (mode, w, h)
        assert out["fits"], (mode, w, h)
        number = [i for i in out["items"] if i["kind"] == "number"][0]
        assert number["text"] == "0.42"
        assert number["px"] == pytest.approx(3.2 * body, rel=1e-6)
        assert max(i["px"] for i in out["items"]) == number["px"]


def test_the_layout_keeps_panels_off_the_video_and_wraps_never_cuts(hudcheck):
    """640x480 in auto: the panels beside the video (x >= 640), inside the 854x480 canvas;
    the TIC line wraps at spaces into lines that fit, and every word is there."""
    summary = "APHE ✓ (non-rim) · washout late, mild · LR-5-like"
    out = _view(hudcheck, [status(n=27, score=0.77, warnings=["slot_late", "no_signal"]),
                           score(0.77, n=27, features=features(27, summary=summary))],
                "auto", 640, 480)[-1]
    b = out["body_px"]
    assert out["where"] == "beside" and out["fits"]
    for it in out["items"]:
        x, y, w, h = it["box"]
        if it["kind"] == "roi":
            continue
        assert x >= 640 and x + w <= 854 + 1e-6 and y >= 0 and y + h <= 480 + 1e-6, it
    # strip: x0 = 640 + 0.5 b, w = 854 - x0 - 0.5 b; text width: less 2 x 0.45 b of padding
    inner = 854 - (640 + 0.5 * b) - 0.5 * b - 0.9 * b
    per_line = int(inner // (0.6 * b))  # characters that fit, at 0.6 em each
    lines = [i["text"] for i in out["items"] if i["kind"] == "text" and i["text"]
             and i["text"].split()[0] in ("APHE", "washout", "LR-5-like")]
    assert " ".join(lines) == summary
    assert all(len(line) <= per_line for line in lines), (per_line, lines)
    assert len(lines) == 3  # by hand: 23 characters a line at 480 lines
    assert {"NO SIGNAL", "SLOT LATE"} <= {i["text"] for i in out["items"] if i["kind"] == "tag"}


def test_the_screen_analysis_finds_the_image_and_the_static_text(hudcheck):
    """A 320x240 screen: a 160x160 image area of moving noise at (80, 40), a static title
    (white, top-left) and a small changing timer (top-right). The area is found to within a
    cell (8 px); the title and the timer are static text; the rest is free."""
    w, h = 320, 240
    rng = np.random.default_rng(1)
    frames = []
    for k in range(40):
        f = np.full((h, w), 12, np.uint8)
        f[40:200, 80:240] = rng.integers(0, 256, (160, 160), dtype=np.uint8)
        f[6:14, 8:70] = 230  # the title
        f[6:14, 280:300] = 230 if (k // 4) % 2 else 60  # the timer ticks
        frames.append(f.tobytes())
    r = subprocess.run([str(hudcheck), "screen", str(w), str(h)], input=b"".join(frames),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["cell"] == 8 and out["background"] == 12
    assert len(out["areas"]) == 1, out["areas"]
    x, y, aw, ah = out["areas"][0]
    assert 72 <= x <= 80 and 32 <= y <= 40 and 240 <= x + aw <= 248 and 200 <= y + ah <= 208
    cells = out["cells"]
    assert cells[1][1:8] == "s" * 7  # the title
    assert cells[1][35:37] == "ss"  # the timer: it changes, but it is small
    assert cells[28][1] == "." and cells[28][38] == "."  # the corners are free
    assert cells[15][20] == "i"

    # the first look already had it all (the noise differs from the background): the learnt
    # screen is the provisional one, the panels placed at the first frame stay
    assert out["first"]["ready"] and out["same"]
    assert out["first"]["cells"] == cells


def _screen(hudcheck, frames, w=320, h=240):
    r = subprocess.run([str(hudcheck), "screen", str(w), str(h)],
                       input=b"".join(f.tobytes() for f in frames), capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_first_look_takes_a_dark_sector_interior_as_image(hudcheck):
    """The first frame alone: a 2-px rim (luma 200) around a 160x160 interior as dark as the
    background (12) at (80, 40), a title at the top left. The rim's samples (every 2 px from
    1) hit it on all four sides, so the connected blob's box, cells 10..29 x 5..24 (400
    cells, over 2 % of 40 x 30), is image: the interior is not free. The title (cells 1..8,
    rows 0..1: 16 cells) stays static text. Later frames fill the interior with noise: the
    learnt screen has the same cells."""
    w, h = 320, 240
    rng = np.random.default_rng(2)
    frames = []
    for k in range(40):
        f = np.full((h, w), 12, np.uint8)
        if k:
            f[42:198, 82:238] = rng.integers(0, 256, (156, 156), dtype=np.uint8)
        f[40:42, 80:240] = f[198:200, 80:240] = 200
        f[40:200, 80:82] = f[40:200, 238:240] = 200
        f[6:14, 8:70] = 230
        frames.append(f)
    out = _screen(hudcheck, frames)
    first = out["first"]
    assert first["ready"] and first["areas"] == [[80, 40, 160, 160]]
    cells = first["cells"]
    assert all(row[10:30] == "i" * 20 for row in cells[5:25])  # rim and dark interior
    assert cells[15][9] == "." and cells[15][30] == "." and cells[4][20] == "."
    assert cells[1][1:9] == "s" * 8 and cells[28][1] == "." and cells[28][38] == "."
    assert out["same"] and out["cells"] == cells


def test_what_the_first_look_could_not_see_is_added_when_learnt(hudcheck):
    """A first frame of plain background (the scanner's image not yet shown): the provisional
    screen is all free; the image that appears later is learnt (its box, to a cell) and the
    cells differ (the panels are laid out again, once)."""
    w, h = 320, 240
    rng = np.random.default_rng(3)
    frames = []
    for k in range(40):
        f = np.full((h, w), 12, np.uint8)
        if k:
            f[40:200, 80:240] = rng.integers(0, 256, (160, 160), dtype=np.uint8)
        frames.append(f)
    out = _screen(hudcheck, frames)
    assert out["first"]["ready"] and out["first"]["areas"] == []
    assert set("".join(out["first"]["cells"])) == {"."}
    assert not out["same"]
    x, y, aw, ah = out["areas"][0]
    assert 72 <= x <= 80 and 32 <= y <= 40 and 240 <= x + aw <= 248 and 200 <= y + ah <= 208
    assert out["cells"][15][20] == "i" and out["cells"][28][1] == "."

# -- pixels: simulated scanner screens through the element, read back by tesseract --------

def _need_tesseract():
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract-ocr is missing (make system installs it)")


def _screens():
    import overlay_frames as of
    return {"simulator_480p": of.simulator_screen,
            "renderer_b_720p": lambda: of.renderer_b_screen(1280, 720),
            "pattern_1080p": lambda: of.pattern_screen(1920, 1080)}


def _video_in(out: np.ndarray, w: int, h: int) -> tuple[int, int]:
    """Where the video must be in the output (the element's contract, not its report): at
    its own place, or at the left of a larger canvas, centred in height on even lines."""
    oh, ow = out.shape[:2]
    return (0, 0) if (ow, oh) == (w, h) else (0, ((oh - h) // 2) & ~1)


def _words(text: str) -> str:
    return " ".join(text.split())


def _final_hcc(src) -> list:
    """A complete exam's status and final HCC score for a screen (its ROI and size)."""
    return [status(n=30, phase="complete", score=0.87, final=True, label="HCC",
                   roi=list(src.roi), frame_size=[src.width, src.height],
                   features=features(30), warnings=["slot_late"]),
            final_score(0.87, "HCC", features=features(30))]


def _roi_zone(src, out_h: int) -> np.ndarray:
    """Where the ROI's corner brackets may draw on the screen: a band around the ROI's
    edges as wide as a thick line of an ``out_h``-line output."""
    rx, ry, rw, rh = src.roi
    band = max(4, int(0.006 * out_h) + 3)
    zone = np.zeros((src.height, src.width), bool)
    zone[max(ry - band, 0):ry + rh + band, max(rx - band, 0):rx + rw + band] = True
    zone[ry + band:ry + rh - band, rx + band:rx + rw - band] = False
    return zone


@pytest.mark.parametrize("name", ["simulator_480p", "renderer_b_720p", "pattern_1080p"])
def test_auto_covers_no_image_and_no_scanner_text_and_reads_right(name):
    """layout=auto on a simulated scanner screen: the output, compared pixel by pixel with
    the input, differs inside the image areas only at the ROI's corners and nowhere over
    the scanner's own text; tesseract reads the score, the label, the state and the
    disclaimer."""
    _need_tesseract()
    import overlay_frames as of

    src = _screens()[name]()
    w, h = src.width, src.height
    msgs = _final_hcc(src)
    inp, out, shown = of.run_overlay(src, msgs, "layout=auto")
    vx, vy = _video_in(out, w, h)
    video = out[vy:vy + h, vx:vx + w].astype(int)
    diff = np.abs(video - inp.astype(int)).max(axis=2) > 24
    roi_zone = _roi_zone(src, out.shape[0])
    inside = diff & src.image & ~roi_zone
    assert inside.sum() == 0, f"{inside.sum()} overlay pixels inside the image area"
    assert (diff & src.image & roi_zone).sum() > 20  # the ROI is marked
    over_text = diff & src.text
    assert over_text.sum() == 0, f"{over_text.sum()} overlay pixels over the scanner's text"
    text = _words(of.ocr(out))
    for want in ("0.87", "HCC", "FINAL", "EXAM ENDED", "COMPLETE", "SIMULATED", "DIAGNOSIS",
                 "SLOT LATE"):
        assert want in text, f"tesseract did not read {want!r} in: {text}"


@pytest.mark.parametrize("name", ["simulator_480p", "renderer_b_720p", "pattern_1080p"])
def test_auto_from_the_first_frame_covers_nothing_and_nothing_jumps(name):
    """Every output frame from the very first (before the screen is learnt, 32 frames, and
    after), compared with its input: no overlay pixel inside the image areas (but the ROI's
    corners) or over the scanner's text; the panels are drawn on the first frame already
    (tesseract reads the disclaimer and the score there) and every later frame is the same
    outside the image areas (nothing moves when the screen is learnt)."""
    _need_tesseract()
    import overlay_frames as of

    src = _screens()[name]()
    w, h = src.width, src.height
    msgs = _final_hcc(src)
    frames = of.run_from_first_frame(src, msgs, "layout=auto", 40)
    roi_zone = _roi_zone(src, frames[0][1].shape[0])
    first = frames[0][1]
    vx, vy = _video_in(first, w, h)
    outside = np.ones(first.shape[:2], bool)  # the output's pixels that show no image
    outside[vy:vy + h, vx:vx + w] = ~src.image & ~src.text
    for k, (inp, out) in enumerate(frames):
        video = out[vy:vy + h, vx:vx + w].astype(int)
        diff = np.abs(video - inp.astype(int)).max(axis=2) > 24
        assert (diff & src.image & ~roi_zone).sum() == 0, f"frame {k}: over the image"
        assert (diff & src.text).sum() == 0, f"frame {k}: over the scanner's text"
        assert np.array_equal(out[outside], first[outside]), f"frame {k}: the panels moved"
    drawn = np.abs(first[vy:vy + h, vx:vx + w].astype(int) - frames[0][0].astype(int))
    assert (drawn.max(axis=2) > 24).sum() > 2000 or first.shape[:2] != (h, w)
    text = _words(of.ocr(first))
    for want in ("0.87", "HCC", "FINAL", "SIMULATED", "DIAGNOSIS"):
        assert want in text, f"tesseract did not read {want!r} on the first frame: {text}"

@pytest.mark.parametrize("name", ["simulator_480p", "renderer_b_720p"])
def test_provisional_and_outside_domain_read_right(name):
    _need_tesseract()
    import overlay_frames as of

    src = _screens()[name]()
    w, h = src.width, src.height
    inp, out, _ = of.run_overlay(src, [
        status(n=12, score=0.61, roi=list(src.roi), frame_size=[w, h], next_slot_in_s=None),
        score(0.61, n=12)], "layout=auto")
    text = _words(of.ocr(out))
    for want in ("PROVISIONAL", "0.61", "12/30", "VIDEO PHASE", "SIMULATED", "DIAGNOSIS"):
        assert want in text, f"tesseract did not read {want!r} in: {text}"
    f = features(30, summary="APHE ✓ (non-rim) · washout late, mild · LR-5-like")
    inp, out, _ = of.run_overlay(src, [
        status(n=30, phase="complete", score=0.87, final=True, label="indeterminate",
               roi=list(src.roi), frame_size=[w, h], features=f,
               warnings=["out_of_distribution"]),
        final_score(0.87, "indeterminate", features=f,
                    flags=["trained_on_simulated_data", "out_of_distribution"])], "layout=auto")
    text = _words(of.ocr(out))
    for want in ("OUTSIDE", "DOMAIN", "LR-5-like", "washout", "not valid", "SIMULATED"):
        assert want in text, f"tesseract did not read {want!r} in: {text}"
    # no confident label: HCC only inside "P(HCC)", never a word of its own
    import re
    assert not re.search(r"(?<![\w(\[{])HCC(?![\w)\]}])", text), text


def test_the_domain_object_alone_reads_outside_the_model_domain():
    """A final score whose ``domain`` says "out" (no flag, no warning): tesseract reads the
    headline, the TIC category that still holds and the check's numbers, and no HCC."""
    _need_tesseract()
    import re

    import overlay_frames as of

    src = _screens()["renderer_b_720p"]()
    w, h = src.width, src.height
    f = features(30)
    dom = _domain("out", 3.1, 2.0)
    inp, out, _ = of.run_overlay(src, [
        status(n=30, phase="complete", score=0.87, final=True, label="indeterminate",
               roi=list(src.roi), frame_size=[w, h], features=f, domain=dom),
        final_score(0.87, "indeterminate", features=f, domain=dom)], "layout=auto")
    text = _words(of.ocr(out))
    for want in ("OUTSIDE", "DOMAIN", "LR-5-like", "distance 3.10", "not valid", "SIMULATED"):
        assert want in text, f"tesseract did not read {want!r} in: {text}"
    assert not re.search(r"(?<![\w(\[{])HCC(?![\w)\]}])", text), text


def test_over_at_320x240_warns_once_and_draws_on_a_larger_canvas():
    from ceustream.pipelines import gst

    gst.require("ceushud")
    r = subprocess.run(["gst-launch-1.0", "videotestsrc", "num-buffers=30", "!",
                        "video/x-raw,format=I420,width=320,height=240", "!", "ceushud",
                        "layout=over", "endpoint=tcp://127.0.0.1:1", "!", "fakesink"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, GST_PLUGIN_PATH=str(gst.plugin_dirs()[0])))
    assert r.returncode == 0, r.stderr[-2000:]
    log = r.stdout + r.stderr
    assert log.count("cannot hold text with capitals") == 1, log[-2000:]
    assert "drawing on a 854x480 canvas" in log
    b = Bench(props="layout=over", w=320, h=240)
    try:
        img = b.frame()  # the canvas comes out
        assert img.shape == (480, 854, 3)
        assert (img[:, 330:].max(axis=2) > 200).sum() > 500  # the panel beside the video
    finally:
        b.close()


# -- AddressSanitizer, both elements, leak detection on -----------------------------------

def _asan_runtime() -> str | None:
    out = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True)
    path = out.stdout.strip()
    return path if out.returncode == 0 and os.path.isabs(path) and os.path.exists(path) else None


@pytest.mark.slow
def test_address_sanitizer_build_runs_clean(tmp_path):
    """Both elements built with -fsanitize=address run (gst-launch-1.0 with the sanitizer
    preloaded, leak detection on) through good, malformed and foreign messages, every
    format, the gate's slots, monitor window and frozen detection, and the C reader through
    bad numbers: no error and no leak report. Suppressed: only one-time allocations of the
    libraries' own initialisation (plugins/lsan.supp)."""
    asan = _asan_runtime()
    if asan is None:
        pytest.skip("gcc's libasan is missing")
    build = tmp_path / "asan"
    _cmake_build(build, "-DCEUS_ASAN=ON")
    pub = Publisher()
    stop = threading.Event()

    def publish():
        i = 0
        m = _messages()
        while not stop.is_set():
            n = 5 + i % 25
            pub.send(status(n=n, score=(i % 10) / 10, features=features(n),
                            warnings=["slot_late"] if i % 3 else ["out_of_distribution"]))
            pub.send(score((i % 10) / 10, n=n, features=features(n)))
            if i % 7 == 0:
                pub.send(final_score(features=features(30)))
                pub.send(status(n=30, phase="complete", score=0.87, final=True, label="HCC"))
            pub.raw(b"score.ex1", b"{broken")
            pub.raw(b"status.ex1", m.encode(dict(status(), seq=1)).replace(b'"speed":1.0',
                                                                           b'"speed":1e400'))
            pub.send(score(0.5, exam="zz"))
            i += 1
            stop.wait(0.03)

    t = threading.Thread(target=publish)
    t.start()
    env = dict(os.environ, GST_PLUGIN_PATH=str(build), GST_REGISTRY=str(tmp_path / "reg.bin"),
               XDG_DATA_HOME=str(tmp_path / "data"))
    # the registry is scanned once without leak checks (other plugins' scanner leaks)
    subprocess.run(["gst-inspect-1.0", "ceushud"], env=dict(
        env, LD_PRELOAD=asan, ASAN_OPTIONS="detect_leaks=0"), capture_output=True, timeout=300)
    env.update(LD_PRELOAD=asan,
               ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:abort_on_error=1:"
                            "halt_on_error=1",
               LSAN_OPTIONS=f"suppressions={ROOT / 'plugins' / 'lsan.supp'}:print_suppressions=0")
    hud = ["ceushud", f"endpoint={pub.endpoint}", "stale-after=0.5"]
    runs = []
    try:
        for fmt in ("BGRx", "I420", "NV12", "RGBA"):
            runs.append(["videotestsrc", "num-buffers=90", "is-live=true", "!",
                         f"video/x-raw,format={fmt},width=1280,height=720,framerate=60/1", "!",
                         *hud, "exam=ex1", "!", "fakesink"])
        runs.append(["videotestsrc", "num-buffers=120", "!",
                     "video/x-raw,format=I420,width=320,height=240,framerate=30/1", "!",
                     "ceusgate", "slots=0.5,1.0,2.5,3.9", "monitor-interval=200000000",
                     "monitor-start=1000000000", "monitor-stop=3000000000", "!",
                     *hud, "disclaimer-position=bottom-center", "!", "fakesink"])
        runs.append(["videotestsrc", "num-buffers=90", "pattern=black", "!",
                     "video/x-raw,format=BGRx,width=320,height=240,framerate=30/1", "!",
                     "ceusgate", "frozen-after=5", "pass-all=true", "stamp=true", "!",
                     "fakesink"])
        # the caps sequences that crashed, one after the other through `concat`
        for first, then in (("I420,width=640,height=360", "BGRx,width=640,height=360"),
                            ("NV12,width=640,height=360", "RGBx,width=640,height=360"),
                            ("BGRx,width=40000,height=4", "I420,width=640,height=360")):
            runs.append(["concat", "name=c", "!", *hud, "!", "fakesink"]
                        + [x for caps in (first, then) for x in (
                            "videotestsrc", "num-buffers=45", "is-live=true", "!",
                            f"video/x-raw,format={caps},framerate=30/1", "!", "c.")])
        results = [subprocess.run(["gst-launch-1.0", "-q", *r], env=env, capture_output=True,
                                  text=True, timeout=300) for r in runs]
    finally:
        stop.set()
        t.join()
        pub.close()
    for r in results:
        assert "Sanitizer" not in r.stderr, r.stderr[-4000:]
        assert r.returncode == 0, r.stderr[-2000:]
    # the C reader under the sanitizer: good messages, then every bad number
    lines = [json.dumps(["status.ex1", json.dumps(dict(status(), seq=1))])]
    lines += [json.dumps([f"{b['type']}.ex1", json.dumps({"seq": 2, **b})])
              for b in _bad_numbers()]
    lines += [json.dumps(["status.ex1", "[" * 5000 + "]" * 5000]), "not a line", "[1, 2]"]
    r = subprocess.run([str(build / "hudcheck"), "parse"], input="\n".join(lines) + "\n",
                       env=env, capture_output=True, text=True, timeout=120)
    assert "Sanitizer" not in r.stderr and r.returncode == 0, r.stderr[-4000:]
    assert len(r.stdout.splitlines()) == len(lines)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "caps":
    print(json.dumps(caps_scenario(sys.argv[2:])))
