"""The control socket and the publisher cannot be killed: a live engine (a simulated exam
running, scores flowing) is sent thousands of generated bad requests (hypothesis) over its
real REP socket — non-JSON, deep nesting, duplicate keys, multipart, oversized, NaN/±Infinity
and huge numbers, wrong types, unknown fields — and raw TCP garbage through plain sockets.
Every request is answered ``{"ok": false, "error": ...}`` or dropped, none changes the exam,
and afterwards ``status`` answers and scores keep coming. The publisher refuses a message it
cannot send (NaN) and keeps publishing."""

from __future__ import annotations

import json
import random
import socket

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ceustream.engine.core import config
from ceustream.engine.wire import messages
from ceustream.engine.wire.publisher import Publisher
from ceustream.models.simulator.scanner import SimScanner

from livekit import Engine, Sub, wait_until

SIM = "sim://11?speed=2&size=320x240&injection=6"
COMMANDS = list(messages.COMMANDS)


class Client:
    """A REQ socket that may send again after an unanswered request (a dropped one)."""

    def __init__(self, endpoint: str):
        self.ctx = zmq.Context()
        self.endpoint = endpoint
        self._new()

    def _new(self) -> None:
        self.sock = self.ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.REQ_RELAXED, 1)
        self.sock.setsockopt(zmq.REQ_CORRELATE, 1)
        self.sock.setsockopt(zmq.RCVTIMEO, 1500)
        self.sock.connect(self.endpoint)

    def send(self, frames: list[bytes]) -> dict | None:
        """The reply, or None when the request was dropped (then a fresh socket)."""
        self.sock.send_multipart(frames)
        try:
            reply = self.sock.recv()
        except zmq.Again:
            self.sock.close()
            self._new()
            return None
        return json.loads(reply)  # strict JSON: NaN in a reply would fail here

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CEUSTREAM_")}
    env["CEUSTREAM_JOURNAL_DIR"] = str(tmp_path_factory.mktemp("journal"))
    truth = SimScanner(SIM).truth
    eng = Engine(env, SIM)
    cl = Client(eng.ctl)
    try:
        assert eng.cmd("start_exam", exam="fuzz1", roi=truth["roi"])["ok"]
        wait_until(lambda: eng.stream_time() > 2.0, 60, "video")
        assert eng.cmd("mark_arrival")["ok"]
        wait_until(lambda: eng.sub.of("score", "fuzz1"), 60, "the first score")
        yield eng, cl
    finally:
        cl.close()
        eng.stop()


def exam_state(eng: Engine) -> tuple:
    s = eng.status()["status"]
    return s["exam"], s["injection_s"], s["t0_s"], tuple(s["roi"])


# -- what a bad request looks like ---------------------------------------------------------
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
json_value = st.recursive(json_scalar, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)), max_leaves=12)
bad_t = st.one_of(st.just(float("nan")), st.just(float("inf")), st.just(float("-inf")),
                  st.floats(min_value=1e7 + 1, allow_infinity=False),
                  st.floats(max_value=-1e-9, allow_infinity=False),
                  st.integers(min_value=10**7 + 1), st.integers(max_value=-1),
                  st.booleans(), st.text(max_size=10), st.lists(json_scalar, max_size=3),
                  st.dictionaries(st.text(max_size=5), json_scalar, max_size=2))
bad_roi = st.one_of(st.lists(st.integers(-5, 40000), min_size=0, max_size=6).filter(
    lambda r: len(r) != 4 or not all(0 <= v <= 32767 for v in r) or r[2] <= 0 or r[3] <= 0),
    json_scalar.filter(lambda v: v is not None), st.lists(st.floats(), min_size=4, max_size=4))
bad_exam = st.one_of(st.text(max_size=80).filter(lambda s: not messages.EXAM_ID.match(s)),
                     st.just("idle"), st.just("../../x"), st.just("DOE^JOHN MRN123456"),
                     st.integers(), st.lists(st.text(max_size=3), max_size=2))


@st.composite
def bad_command(draw) -> dict:
    """A request naming a real command with at least one bad field (or an unknown one)."""
    req = {"cmd": draw(st.sampled_from(COMMANDS))}
    kind = draw(st.sampled_from(["t", "roi", "exam", "extra", "cmd"]))
    if kind == "t":
        req["t"] = draw(bad_t)
    elif kind == "roi":
        req["roi"] = draw(bad_roi)
    elif kind == "exam":
        req["exam"] = draw(bad_exam)
    elif kind == "extra":
        key = draw(st.text(min_size=1, max_size=10).filter(
            lambda k: k not in messages.COMMAND_KEYS))
        req[key] = draw(json_value)
    else:
        req["cmd"] = draw(st.one_of(st.text(max_size=12).filter(lambda c: c not in COMMANDS),
                                    json_value.filter(lambda c: not isinstance(c, str))))
    return req


def encode_loose(req) -> bytes:
    """JSON as a careless or hostile client writes it (NaN, Infinity, huge numbers)."""
    return json.dumps(req, allow_nan=True).encode()


request_frames = st.one_of(
    bad_command().map(lambda r: [encode_loose(r)]),
    json_value.filter(lambda v: not (isinstance(v, dict) and v.get("cmd") in COMMANDS))
    .map(lambda v: [encode_loose(v)]),
    st.binary(max_size=300).map(lambda b: [b]),
    st.lists(st.binary(max_size=40), min_size=2, max_size=4),              # multipart
    st.integers(10, 2040).map(lambda n: [b"[" * n + b"]" * n]),            # deep nesting
    st.integers(10, 2030).map(lambda n: [b'{"cmd":"status","exam":' + b"[" * n + b"]" * n
                                         + b"}"]),
    st.just([b'{"cmd":"stop_exam","cmd":"status"}']),                      # duplicate keys
    st.just([b'{"cmd":"mark_injection","t":NaN}']),
    st.just([b'{"cmd":"mark_arrival","t":Infinity}']),
    st.just([b'{"cmd":"mark_arrival","t":1e308}']),
    st.just([b'{"cmd":"mark_arrival","t":' + b"9" * 600 + b"}"]),
)


def test_thousands_of_bad_requests_change_nothing_and_scores_keep_flowing(live):
    eng, cl = live
    before = exam_state(eng)
    count = {"answered": 0, "dropped": 0}

    @settings(max_examples=2000, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(request_frames)
    def one(frames):
        reply = cl.send(frames)
        if reply is None:
            count["dropped"] += 1
            return
        count["answered"] += 1
        assert reply["ok"] is False, (frames, reply)
        assert isinstance(reply["error"], str) and "\n" not in reply["error"]

    one()
    # oversized requests (ZMQ_MAXMSGSIZE): the connection is dropped, the server lives on
    for n in (messages.MAX_REQUEST_BYTES + 1, 64 * 1024, 4 * 1024 * 1024):
        reply = cl.send([b'{"cmd":"status","x":"' + b"a" * n + b'"}'])
        assert reply is None or reply["ok"] is False
    assert count["answered"] > 1000
    assert exam_state(eng) == before  # nothing changed the exam
    _scores_keep_flowing(eng)


def test_raw_tcp_garbage_does_not_kill_the_control_socket(live):
    eng, _ = live
    host, port = eng.ctl.replace("tcp://", "").rsplit(":", 1)
    rng = random.Random(7)
    blobs = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))
             for _ in range(200)]
    blobs += [b"\xff" + b"\x00" * 8 + b"\x7f", b"GET / HTTP/1.1\r\n\r\n", b"\x00" * 65536]
    for blob in blobs:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            try:
                s.sendall(blob)
            except OSError:
                pass  # the server may close a garbage connection mid-send
    before = exam_state(eng)
    assert eng.cmd("status")["ok"]
    assert exam_state(eng) == before
    _scores_keep_flowing(eng)


def _scores_keep_flowing(eng: Engine) -> None:
    seen = len(eng.sub.of("score", "fuzz1"))
    st_ = eng.status()["status"]
    if st_["phase"] in ("complete", "partial", "stopped"):
        pytest.fail(f"the exam ended during the fuzz: {st_['phase']}")
    wait_until(lambda: len(eng.sub.of("score", "fuzz1")) > seen, 90, "a new score")
    seqs = [m["seq"] for m in eng.sub.msgs if m["exam"] == "fuzz1"]
    assert seqs == sorted(seqs)


def test_publisher_refuses_nan_and_keeps_publishing(port):
    """A message that cannot be sent (NaN, a bad exam id) is logged and dropped; the
    publishing thread lives on and the next message goes out with the next seq."""
    cfg = config.load(env={})
    ep = f"tcp://127.0.0.1:{port}"
    sub = Sub(ep)
    pub = Publisher(ep, cfg)
    try:
        assert pub.wait_for_subscriber(10)
        good = lambda x: messages.status(  # noqa: E731
            "pub1", phase="video_phase", slots_filled=1, slots_total=30, next_slot=1,
            next_slot_due_s=x, next_slot_in_s=1.0, speed=1.0, t0_s=4.0, injection_s=None,
            warnings=[], roi=[1, 2, 3, 4], frame_size=[10, 10], model=None, backend=None)
        pub.publish("status", good(float("nan")))
        pub.publish("status", good(float("inf")))
        pub.publish("status", {**good(1.0), "exam": "../bad"})
        pub.publish("status", good(5.0))
        wait_until(lambda: sub.of("status", "pub1"), 10, "the good message")
        wait_until(lambda: pub.refused >= 3, 10, "refusals counted")
        got = sub.of("status", "pub1")
        assert len(got) == 1 and got[0]["next_slot_due_s"] == 5.0 and got[0]["seq"] == 1
        pub.publish("status", good(6.0))
        wait_until(lambda: len(sub.of("status", "pub1")) == 2, 10, "the next message")
        assert sub.of("status", "pub1")[1]["seq"] == 2
    finally:
        pub.close()
        sub.close()
