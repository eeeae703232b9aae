"""Helpers for the live-engine tests: the engine as a user runs it (`ceustream run` in a
subprocess), a subscriber collecting its messages on a thread, real senders (gst-launch-1.0
udpsink / srtsink, an RTSP server), and waiting on conditions instead of sleeping."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from ceustream.engine.wire.subscriber import Collector
from ceustream.engine.wire.control import request

from conftest import free_port

HERE = Path(__file__).resolve().parent


def wait_until(cond, timeout_s: float = 60.0, what: str = "condition", poll_s: float = 0.05):
    """Polls ``cond()`` until it is truthy (returns it) or fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)


class Engine:
    """`ceustream run` in a subprocess with its own control and PUB ports."""

    def __init__(self, env: dict, source: str, *extra: str, stdin=None):
        self.ctl = f"tcp://127.0.0.1:{free_port()}"
        self.pub = f"tcp://127.0.0.1:{free_port()}"
        self.sub = Sub(self.pub)
        self.p = subprocess.Popen(
            [sys.executable, "-m", "ceustream.engine.cli", "run", "--source", source,
             "--control", self.ctl, "--pub", self.pub, "--json", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=stdin)
        self._out: list[str] = []
        self._err: list[str] = []
        for stream, sink in ((self.p.stdout, self._out), (self.p.stderr, self._err)):
            threading.Thread(target=_drain, args=(stream, sink), daemon=True).start()
        wait_until(lambda: self.alive_or_fail() and self.cmd("status", timeout_s=1).get("ok"),
                   90, "the engine's control socket")

    def alive_or_fail(self) -> bool:
        if self.p.poll() is not None:
            raise AssertionError(f"engine exited {self.p.returncode}: {self.stderr[-3000:]}")
        return True

    def cmd(self, name: str, timeout_s: float = 10.0, **fields) -> dict:
        return request(self.ctl, {"cmd": name, **fields}, timeout_s=timeout_s)

    def status(self) -> dict:
        r = self.cmd("status")
        assert r.get("ok"), r
        return r

    def stream_time(self) -> float:
        return self.status()["source"]["stream_time_s"] or 0.0

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def results(self) -> list[dict]:
        return [json.loads(x) for x in self.stdout.splitlines() if x.startswith("{")]

    def wait_result(self, n: int = 1, timeout_s: float = 180) -> dict:
        wait_until(lambda: self.alive_or_fail() and len(self.results()) >= n, timeout_s,
                   f"result {n}")
        return self.results()[n - 1]

    def stop(self, timeout_s: float = 30) -> int:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self.sub.close()
        return self.p.returncode


def _drain(stream, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


class Sub:
    """A SUB socket on its own thread (ceustream's ``Collector``), keeping every decoded
    message as its JSON object."""

    def __init__(self, endpoint: str, topic: bytes = b""):
        self._c = Collector(endpoint, topics=(topic.decode(),), validate=False)

    @property
    def msgs(self) -> list[dict]:
        return [m.raw for m in list(self._c.messages)]

    def of(self, kind: str, exam: str | None = None) -> list[dict]:
        return [m.raw for m in self._c.of(kind, exam)]

    def close(self) -> None:
        self._c.close()


class Sender:
    """A real sender: a gst-launch-1.0 pipeline in its own process."""

    def __init__(self, pipeline: str):
        self.pipeline = pipeline
        self.p = subprocess.Popen(["gst-launch-1.0", "-q", *pipeline.split()],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)


def ts_udp_sender(port: int, pattern: str = "ball", still: bool = False) -> Sender:
    """A hardware encoder's stand-in: a live test pattern (``still``: one picture repeated,
    at a constant quantizer so every decoded frame is identical), H.264, MPEG-TS, UDP."""
    if still:
        src = (f"videotestsrc pattern={pattern} num-buffers=1 ! video/x-raw,width=320,"
               "height=240 ! imagefreeze is-live=true ! video/x-raw,framerate=30/1")
        enc = "pass=quant quantizer=20"
    else:
        src = (f"videotestsrc is-live=true pattern={pattern} ! "
               "video/x-raw,width=320,height=240,framerate=30/1")
        enc = ""
    return Sender(f"{src} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 "
                  f"{enc} ! mpegtsmux alignment=7 ! udpsink host=127.0.0.1 port={port} sync=true")


def file_udp_sender(path: Path, port: int) -> Sender:
    """A recording (MPEG-TS) streamed in real time over UDP."""
    return Sender(f"filesrc location={path} ! tsparse set-timestamps=true alignment=7 ! "
                  f"udpsink host=127.0.0.1 port={port} sync=true")


RTSP_SERVER = r'''
import sys, gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
port, launch = sys.argv[1], sys.argv[2]
srv = GstRtspServer.RTSPServer(); srv.set_service(port)
f = GstRtspServer.RTSPMediaFactory(); f.set_launch("( " + launch + " )"); f.set_shared(True)
srv.get_mount_points().add_factory("/cam", f); srv.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
'''


def rtsp_server(port: int, pattern: str = "ball") -> subprocess.Popen:
    """An RTSP server (GstRtspServer via PyGObject) at rtsp://127.0.0.1:PORT/cam."""
    launch = (f"videotestsrc is-live=true pattern={pattern} ! video/x-raw,width=320,height=240,"
              "framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 "
              "! rtph264pay name=pay0 pt=96")
    p = subprocess.Popen([sys.executable, "-c", RTSP_SERVER, str(port), launch],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    return p
