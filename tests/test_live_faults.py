"""The engine outlives its sources, with real senders started by the tests: MPEG-TS over UDP
(gst-launch-1.0 ... ! udpsink) killed, restarted and switched to a still picture; an RTSP
server (GstRtspServer) killed and restarted; SRT as caller and as listener; an integrator's
GStreamer launch line. Each waits on published messages and status answers, never on a
fixed sleep, and asserts no timings."""

from __future__ import annotations

import pytest

from conftest import free_port, one_line_error, run_cli
from livekit import Engine, Sender, rtsp_server, ts_udp_sender, wait_until

ROI = [120, 80, 64, 64]  # inside the senders' 320x240 frames


def warnings_seen(eng: Engine, exam: str) -> list[tuple[int, frozenset]]:
    """(seq, warnings) of every status the subscriber received for ``exam``."""
    return [(m["seq"], frozenset(m["warnings"])) for m in eng.sub.of("status", exam)]


def wait_warning(eng: Engine, exam: str, name: str, on: bool, after_seq: int = 0,
                 timeout_s: float = 60) -> int:
    """Waits for a published status of ``exam`` (newer than ``after_seq``) with warning
    ``name`` raised (``on``) or cleared; returns its seq. The control socket must answer
    meanwhile."""
    def seen():
        eng.status()  # the engine keeps answering whatever its source does
        for seq, w in warnings_seen(eng, exam):
            if seq > after_seq and (name in w) == on:
                return seq
        return None

    try:
        return wait_until(seen, timeout_s, f"{name} {'raised' if on else 'cleared'}", 0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}; engine log: {eng.stderr[-2500:]}") from None


def test_udp_source_killed_restarted_then_frozen(env):
    """The issue's 'done when': an MPEG-TS/UDP sender killed and restarted, then switched to a
    still picture. The engine keeps answering, publishes no_signal while the sender is gone,
    clears it when frames return, then publishes frozen_frame."""
    port = free_port()
    sender = ts_udp_sender(port)
    eng = Engine(env, f"udp://127.0.0.1:{port}")
    try:
        wait_until(lambda: eng.stream_time() > 0.5, 60, "video over UDP")
        assert eng.cmd("start_exam", exam="udp1", roi=ROI)["ok"]
        s0 = wait_warning(eng, "udp1", "no_signal", False)
        before = wait_until(lambda: eng.cmd("health")["sources"]["main"]["frames_total"], 30,
                            "frames counted")
        sender.stop()
        s1 = wait_warning(eng, "udp1", "no_signal", True, s0)
        assert eng.status()["status"]["phase"] == "waiting"  # the exam is still open
        # the stalled pipeline is given up and re-opened (with backoff) while nothing comes
        wait_until(lambda: eng.status()["source"]["reconnects"] >= 2, 60, "re-opens")
        sender = ts_udp_sender(port)
        s2 = wait_warning(eng, "udp1", "no_signal", False, s1)
        # the count goes on across the reconnects (one counter per source, never reset)
        wait_until(lambda: eng.cmd("health")["sources"]["main"]["frames_total"] > before + 10,
                   30, "frames counted across reconnects")
        sender.stop()
        sender = ts_udp_sender(port, pattern="smpte", still=True)  # a still picture
        wait_warning(eng, "udp1", "frozen_frame", True, s2, timeout_s=90)
        assert eng.status()["status"]["exam"] == "udp1"
        times = [m["stream_time_s"] for m in eng.sub.of("status", "udp1")]
        assert times == sorted(times)  # the exam clock never went back across the outages
    finally:
        sender.stop()
        eng.stop()


def test_slots_missed_while_the_source_is_gone_are_published(env):
    """A live exam over UDP whose sender dies mid-exam: the slots that go by are decided by
    the neighbour rule and published (slot_missed), the engine and the exam live on, and the
    exam continues when the sender is back."""
    port = free_port()
    sender = ts_udp_sender(port)
    eng = Engine(env, f"udp://127.0.0.1:{port}")
    try:
        wait_until(lambda: eng.stream_time() > 0.5, 60, "video over UDP")
        assert eng.cmd("start_exam", exam="miss1", roi=ROI)["ok"]
        assert eng.cmd("mark_arrival")["ok"]
        wait_until(lambda: eng.status()["status"]["slots_filled"] >= 2, 60, "two slots")
        sender.stop()
        seq = wait_warning(eng, "miss1", "slot_missed", True, 0, timeout_s=60)
        st = eng.status()["status"]
        assert "neighbour" in st["slot_states"] and st["phase"] == "video_phase"
        sender = ts_udp_sender(port)
        wait_warning(eng, "miss1", "slot_missed", False, seq, timeout_s=60)
        n = eng.status()["status"]["slots_filled"]
        wait_until(lambda: eng.status()["status"]["slots_filled"] > n + 1, 60, "more slots")
        statuses = eng.sub.of("status", "miss1")
        times = [m["stream_time_s"] for m in statuses if m["stream_time_s"] is not None]
        # between slots the gate passes nothing: the clock still never goes back when the
        # no_signal statuses start (it once fell back to the last slot frame's time)
        assert times == sorted(times) and len(times) > 5
        # a moving picture (test pattern 'ball') is never 'frozen_frames'
        assert "frozen_frames" not in statuses[-1]["flags"], statuses[-1]["flags"]
    finally:
        sender.stop()
        eng.stop()


def test_rtsp_server_killed_and_restarted(env):
    port = free_port()
    srv = rtsp_server(port)
    eng = Engine(env, f"rtsp://127.0.0.1:{port}/cam")
    try:
        wait_until(lambda: eng.stream_time() > 0.5, 60, "video over RTSP")
        assert eng.cmd("start_exam", exam="rtsp1", roi=ROI)["ok"]
        s0 = wait_warning(eng, "rtsp1", "no_signal", False)
        srv.kill()
        srv.wait(10)
        s1 = wait_warning(eng, "rtsp1", "no_signal", True, s0)
        srv = rtsp_server(port)
        wait_warning(eng, "rtsp1", "no_signal", False, s1, timeout_s=90)
        assert eng.status()["source"]["reconnects"] >= 1
    finally:
        srv.kill()
        srv.wait(10)
        eng.stop()


@pytest.mark.parametrize("engine_mode", ["listener", "caller"])
def test_srt_source(env, engine_mode):
    """SRT (MPEG-TS): the engine listens and the sender calls, or the other way round."""
    port = free_port()
    sender_mode = "caller" if engine_mode == "listener" else "listener"
    host = "127.0.0.1"
    pipeline = ("videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
                "framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast "
                f"key-int-max=15 ! mpegtsmux ! srtsink uri=srt://{host}:{port}?mode={sender_mode}"
                " wait-for-connection=false")
    # the engine first: an SRT caller gives up after its 3 s connect timeout, and the
    # engine's source worker may take longer than that to start listening on a busy machine
    eng = Engine(env, f"srt://{host}:{port}?mode={engine_mode}")
    sender = Sender(pipeline)
    try:
        wait_until(lambda: eng.stream_time() > 0.5, 90, "video over SRT")
        assert eng.status()["source"]["state"] == "playing"
    finally:
        sender.stop()
        eng.stop()


def test_gst_launch_line_source(env):
    eng = Engine(env, "gst:videotestsrc is-live=true pattern=ball ! "
                      "video/x-raw,width=320,height=240,framerate=30/1")
    try:
        wait_until(lambda: eng.stream_time() > 0.5, 60, "video from the launch line")
        assert eng.cmd("start_exam", exam="gst1", roi=ROI)["ok"]
    finally:
        eng.stop()


@pytest.mark.parametrize("uri,words", [
    ("udp://127.0.0.1", "HOST:PORT"),
    ("udp://127.0.0.1:99999", "port"),
    ("srt://127.0.0.1:7000?mode=sideways", "mode="),
    ("gst:nosuchelement ! videoconvert", "launch line"),
    ("ftp://example/x", "unknown scheme"),
])
def test_bad_source_uris_fail_in_one_line(env, uri, words):
    p = run_cli(["run", "--source", uri, "--no-publish"], env, timeout=60)
    assert p.returncode == 2, p.stderr
    assert words in one_line_error(p)


def _runner():
    from ceustream.engine.app.live import ExamContext, SourceRunner
    from ceustream.engine.core import config

    ctx = ExamContext(cfg=config.defaults(), model=None, backend=None, note="")
    return SourceRunner("main", "test://", lambda generation: None, ctx)


def _offer(r, t: float) -> None:
    import numpy as np

    from ceustream.engine.core.source import Frame

    r._frame(Frame(t, np.zeros((4, 4), np.uint8), None, 4, 4))


def test_a_lone_frame_far_back_in_time_does_not_move_the_exam_clock():
    """A decoder fed a damaged UDP stream put out a frame 1.2 s back in time, then the
    stream went on (seen under load). The frame is skipped; the exam clock is unmoved."""
    r = _runner()
    for k in range(31):
        _offer(r, 8.0 + k / 30)
    assert r.last_us == 1_000_000
    _offer(r, 8.0 + 1.0 - 1.2)
    assert r.last_us == 1_000_000
    _offer(r, 8.0 + 31 / 30)
    assert r.last_us == 1_033_333  # the next frame in order, on the same clock


def test_a_sender_that_restarts_its_clock_is_followed_after_three_frames():
    """Frames far back in time three in a row, each after the one before: a new timeline.
    The exam clock goes on (never backwards) from the third."""
    r = _runner()
    for k in range(31):
        _offer(r, 50.0 + k / 30)
    _offer(r, 0.0)
    _offer(r, 1 / 30)
    assert r.last_us == 1_000_000  # not confirmed yet
    _offer(r, 2 / 30)
    assert r.last_us > 1_000_000
    before = r.last_us
    _offer(r, 3 / 30)
    assert r.last_us == before + 33_333


# -- source workers: a native fault of one source is that source's fault -------------------
def short_ts(path) -> str:
    """A 6 s MPEG-TS file from ffmpeg's own test source and H.264 encoder."""
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=30", "-t", "6", "-c:v", "libx264", "-g", "15",
                    "-pix_fmt", "yuv420p", "-f", "mpegts", str(path)], check=True, timeout=120)
    return str(path)


def ffmpeg_srt(ts: str, url: str):
    import subprocess

    return subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-i", ts, "-c", "copy", "-f",
                             "mpegts", url], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("engine_mode", ["listener", "caller"])
def test_an_srt_sender_that_leaves_is_a_source_fault_not_the_engines(env, tmp_path,
                                                                        engine_mode):
    """The issue's SRT cases: ffmpeg (libsrt) sends a short file and leaves; the engine (as
    listener: exit 134 once; as caller: exit 139) now lives on, the source re-opens, and a
    second send is received."""
    ts = short_ts(tmp_path / "short.ts")
    port = free_port()
    host = "127.0.0.1"
    ff_mode = "caller" if engine_mode == "listener" else "listener"
    url = f"srt://{host}:{port}?mode={ff_mode}" + ("&pkt_size=1316" if ff_mode == "caller"
                                                   else "")
    eng = Engine(env, f"srt://{host}:{port}?mode={engine_mode}")
    ff = ffmpeg_srt(ts, url)
    try:
        wait_until(lambda: eng.stream_time() > 0.5, 90, "video over SRT from ffmpeg")
        assert eng.cmd("start_exam", exam="srt1", roi=ROI)["ok"]
        ff.wait(60)  # the file ended: ffmpeg leaves
        # the source is lost and re-opened (a new worker) while the engine answers
        wait_until(lambda: eng.alive_or_fail() and eng.status()["source"]["reconnects"] >= 2,
                   60, "re-opens after the sender left")
        h = eng.cmd("health")
        assert h["ok"] and h["sources"]["main"]["exam"] == "srt1"
        before = eng.stream_time()
        ff = ffmpeg_srt(ts, url)
        wait_until(lambda: eng.alive_or_fail() and eng.stream_time() > before + 0.5, 90,
                   "video from a second send")
        assert eng.status()["status"]["exam"] == "srt1"
    finally:
        ff.kill()
        ff.wait(10)
        rc = eng.stop()
    assert rc in (0, 4), eng.stderr[-3000:]  # a clean stop (the open exam: partial)


def test_a_worker_killed_by_sigsegv_is_a_source_fault(env):
    """Two sources, each in its own worker process; one worker is killed with SIGSEGV (what
    a crashing decoder or capture driver does). Its exam gets no_signal, health names the
    signal, a new worker takes over; the other source's exam keeps scoring throughout."""
    import os
    import signal

    p1, p2 = free_port(), free_port()
    s1, s2 = ts_udp_sender(p1), ts_udp_sender(p2)
    eng = Engine(env, f"one=udp://127.0.0.1:{p1}", "--source", f"two=udp://127.0.0.1:{p2}")
    try:
        def playing(name):
            return eng.cmd("health")["sources"][name]["up"]

        wait_until(lambda: playing("one") and playing("two"), 60, "video on both sources")
        for name in ("one", "two"):
            assert eng.cmd("start_exam", source=name, exam=f"seg{name}", roi=ROI)["ok"]
            assert eng.cmd("mark_arrival", source=name)["ok"]
        wait_until(lambda: eng.cmd("status", source="two")["status"]["slots_filled"] >= 1,
                   60, "slot on two")
        pid = eng.cmd("health")["sources"]["one"]["worker"]["pid"]
        assert isinstance(pid, int) and pid not in (eng.p.pid, os.getpid())
        n2 = eng.cmd("status", source="two")["status"]["slots_filled"]
        os.kill(pid, signal.SIGSEGV)
        wait_warning(eng, "segone", "no_signal", True, 0, timeout_s=30)

        def worker_one():
            w = eng.cmd("health")["sources"]["one"]["worker"]
            return w if w["last_exit"] is not None else None

        w = wait_until(worker_one, 30, "health naming the worker's end")
        assert w["last_exit"] == "signal SIGSEGV", w
        assert "SIGSEGV" in eng.stderr
        # a new worker for one; two scored on meanwhile and still does
        wait_until(lambda: eng.cmd("health")["sources"]["one"]["up"], 60, "one back")
        new = eng.cmd("health")["sources"]["one"]["worker"]["pid"]
        assert new != pid
        wait_until(lambda: eng.cmd("status", source="two")["status"]["slots_filled"] > n2 + 1,
                   60, "two keeps scoring")
        assert not any("no_signal" in m["warnings"] for m in eng.sub.of("status", "segtwo"))
        eng.alive_or_fail()
    finally:
        s1.stop()
        s2.stop()
        eng.stop()
