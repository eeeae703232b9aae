"""ZeroMQ on loopback, for real: sequence numbers and heartbeats, the control socket's
commands and refusals, CURVE (an unauthorised peer gets nothing), no identifiers in
messages."""

from __future__ import annotations

import json
import time

import pytest
import zmq
import zmq.auth

from ceustream.engine.core import config
from ceustream.engine.wire import messages
from ceustream.engine.wire.control import ControlServer, request
from ceustream.engine.wire.publisher import Publisher
from ceustream.engine.wire.security import CurveServer, create_keys, is_loopback

from conftest import replay_published


def receive(sock, until, timeout_s: float = 20.0) -> list[dict]:
    """Messages from ``sock`` until ``until(messages)`` holds (or fails after ``timeout_s``)."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while not until(out):
        assert time.monotonic() < deadline, f"timed out; got {out}"
        if sock.poll(50):
            out.append(messages.decode(sock.recv_multipart())[1])
    return out


def sub(ctx, endpoint, topic=b""):
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, topic)
    s.connect(endpoint)
    return s


def status_of(exam: str):
    return lambda: messages.status(
        exam, phase="video_phase", slots_filled=3, slots_total=30, next_slot=3,
        next_slot_due_s=10.0, next_slot_in_s=1.0, speed=1.0, t0_s=4.0, injection_s=None,
        warnings=[], roi=[1, 2, 3, 4], frame_size=[10, 10], model=None, backend=None)


def test_heartbeats_let_a_subscriber_tell_loss_from_a_stall(port):
    cfg = config.load(env={})
    cfg["zmq"]["heartbeat_s"] = 0.2
    ep = f"tcp://127.0.0.1:{port}"
    ctx = zmq.Context()
    s = sub(ctx, ep)
    pub = Publisher(ep, cfg, ctx)
    assert pub.wait_for_subscriber(10)
    pub.watch("ex1", status_of("ex1"))
    pub.publish("score", {"v": 1, "type": "score", "exam": "ex1", "score": 0.5})
    got = receive(s, lambda ms: sum(m["type"] == "status" for m in ms) >= 3)
    beats = [m for m in got if m["type"] == "status"]
    assert all(m["heartbeat"] for m in beats) and all(m["exam"] == "ex1" for m in got)
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap: nothing lost
    # the engine stalls on ex1 (heartbeats stop, which is what "stale" means) while ex2 goes
    # on: three of ex2's heartbeats pass, and not one ex1 message comes between them
    pub.unwatch("ex1")
    pub.watch("ex2", status_of("ex2"))
    got = receive(s, lambda ms: sum(m["exam"] == "ex2" for m in ms) >= 3)
    ex1_late = [m for m in got if m["exam"] == "ex1"]
    assert len(ex1_late) <= 1  # at most the one heartbeat that was already queued
    tail = got[got.index(next(m for m in got if m["exam"] == "ex2")):]
    assert all(m["exam"] == "ex2" for m in tail)
    pub.close()
    s.close()
    ctx.term()


def test_control_commands_and_refusals(port):
    cfg = config.load(env={})
    ep = f"tcp://127.0.0.1:{port}"
    seen = []

    def handler(req):
        seen.append(req)
        if req["cmd"] == "stop_exam":
            raise ValueError("no exam running: send start_exam first")
        return {"echo": req["cmd"]}

    srv = ControlServer(ep, handler, cfg, zmq.Context.instance())
    try:
        assert request(ep, {"cmd": "status"}) == {"ok": True, "echo": "status"}
        assert request(ep, {"cmd": "start_exam", "roi": [1, 2, 30, 40]})["ok"]
        r = request(ep, {"cmd": "stop_exam"})
        assert r == {"ok": False, "error": "no exam running: send start_exam first"}
        r = request(ep, {"cmd": "launch_missiles"})
        assert not r["ok"] and "unknown command" in r["error"]
        r = request(ep, {"cmd": "set_roi", "roi": [1, 2, 0, 4]})
        assert not r["ok"] and "roi" in r["error"]
        r = request(ep, {"cmd": "start_exam", "exam": "Jane Doe"})
        assert not r["ok"] and "exam id" in r["error"]
        r = request(ep, {"cmd": "mark_injection", "t": -3})
        assert not r["ok"]
        # raw garbage: still a one-line answer, the server keeps serving
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.REQ)
        s.connect(ep)
        s.send(b"\xff\xfe not json")
        ans = json.loads(s.recv())
        s.close()
        assert ans["ok"] is False and "JSON" in ans["error"]
        assert request(ep, {"cmd": "status"})["ok"]
    finally:
        srv.close()
    assert [r["cmd"] for r in seen] == ["status", "start_exam", "stop_exam", "status"]


def test_curve_unauthorised_peer_gets_nothing(tmp_path, port):
    keys = create_keys(str(tmp_path / "keys"))
    cfg = config.load(env={})
    cfg["zmq"]["curve_secret_key"] = keys["server_secret"]
    cfg["zmq"]["curve_authorized_dir"] = keys["authorized_dir"]
    ctx = zmq.Context()
    curve = CurveServer(ctx, keys["server_secret"], keys["authorized_dir"])
    ep = f"tcp://127.0.0.1:{port}"
    pub = Publisher(ep, cfg, ctx, curve)
    spub, _ = zmq.auth.load_certificate(keys["server_public"])
    cpub, csec = zmq.auth.load_certificate(keys["client_secret"])
    good = ctx.socket(zmq.SUB)
    good.curve_serverkey, good.curve_publickey, good.curve_secretkey = spub, cpub, csec
    good.setsockopt(zmq.SUBSCRIBE, b"")
    good.connect(ep)
    stranger_pub, stranger_sec = zmq.curve_keypair()
    bad = ctx.socket(zmq.SUB)
    bad.curve_serverkey, bad.curve_publickey, bad.curve_secretkey = spub, stranger_pub, stranger_sec
    bad.setsockopt(zmq.SUBSCRIBE, b"")
    bad.connect(ep)
    plain = ctx.socket(zmq.SUB)
    plain.setsockopt(zmq.SUBSCRIBE, b"")
    plain.connect(ep)
    assert pub.wait_for_subscriber(10)  # only an authenticated peer's subscription arrives
    for i in range(5):
        pub.publish("score", {"v": 1, "type": "score", "exam": "ex9", "score": 0.1 * i})
    got = receive(good, lambda ms: len(ms) >= 5)
    assert [m["seq"] for m in got] == [1, 2, 3, 4, 5]
    # everything was sent and delivered to the authorised peer; the others hold nothing
    assert not bad.poll(500) and not plain.poll(100)
    assert pub.subscriptions == 1
    for s in (good, bad, plain):
        s.close()
    pub.close()
    curve.stop()
    ctx.term()


def test_loopback_detection():
    assert is_loopback("tcp://127.0.0.1:5556") and is_loopback("tcp://localhost:1")
    assert is_loopback("ipc:///tmp/x") and is_loopback("tcp://[::1]:5")
    assert not is_loopback("tcp://0.0.0.0:5556") and not is_loopback("tcp://10.1.2.3:5")


def test_messages_carry_no_identifier():
    with pytest.raises(ValueError):
        messages.check_exam_id("Doe, Jane")
    with pytest.raises(ValueError):
        messages.check_exam_id("x" * 65)
    assert messages.check_exam_id("r3f9a-01") == "r3f9a-01"


def test_replay_messages_hold_no_path(coded_mp4, tmp_path, port):
    """A recording named after a patient must not leak the name into any message."""
    import shutil

    from ceustream.engine.app.replay import ReplayOptions
    from ceustream.engine.core.roi import Roi

    from media import ROI

    named = tmp_path / "DOE_JANE_1961-04-02.mp4"
    shutil.copy(coded_mp4.path, named)
    cfg = config.load(env={})
    cfg["journal"]["dir"] = str(tmp_path / "j")
    res, frames = replay_published(named, ReplayOptions(roi=Roi(*ROI), t0=coded_mp4.arrival),
                                   cfg, port)
    raw = [b"".join(f) for f in frames]
    assert len(raw) >= 30
    blob = b"".join(raw)
    assert b"DOE" not in blob and b"JANE" not in blob  # (digits of a birth date can occur in any number)
    assert "DOE" not in json.dumps(res)
    journal = json.dumps([p.read_text() for p in (tmp_path / "j").rglob("*.json*")])
    assert "DOE" not in journal
