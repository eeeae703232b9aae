"""A live source in its own process: the source worker and the engine's end of it.

Each live source runs its GStreamer pipeline and its ``ceusgate`` in a worker process
(``python -m ceustream.pipelines.worker``), so that a native fault of a source (a capture
driver, a decoder, a network element that aborts or segfaults) ends that worker, never the
engine and its other sources. The engine talks to it through ``WorkerReader``, which has the
reader interface ``engine.app.live.SourceRunner`` drives (``LiveReader``'s): a crashed, hung
or silent worker is a source fault like a lost connection (``DamagedStream``): the runner
publishes ``no_signal``, logs the exit code or signal and starts a new worker with its
backoff. The other sources and the control socket never notice.

Between them, two ZeroMQ ``ipc://`` sockets in a private folder (0700):

- worker → engine (PUSH/PULL): ``[b"F", header, luma]`` for each frame the gate passes (the
  frames the schedule and the monitor ask for, and those a late mark asks of the kept past),
  ``[b"S", state]`` every ``STATE_EVERY_S`` (the gate's counters and clock: what the engine
  reads for its warnings, speed and metrics; also the worker's heartbeat), ``[b"E", error]``
  when the pipeline ended or failed (the worker then exits).
- engine → worker (PUSH/PULL): ``{"slots": [...]}``, ``{"pass_all": bool}``,
  ``{"frozen_after": n}``, ``{"monitor": [start, stop, interval] | null}``,
  ``{"crop": [x, y, w, h] | null}`` (the exam's ROI: a passed live frame carries only that
  box, a few kB, not the picture),
  ``{"keep": {"box": [x, y, w, h] | null, "horizon_s", "max_bytes"}}``,
  ``{"replay": {"epoch", "from_ns", "pre_from_ns", "monitor", "last_monitor_ns", "slots"}}``
  (``LiveReader.replay``), ``{"quit": true}``, applied to the gate in
  order (stream times in seconds). A replay's frames (the gate's kept past through its own
  selection rule) are sent as ``F`` messages with ``"past"`` set, before any later live frame;
  every ``F`` carries the gate's ``epoch``.

Frame stamps are CLOCK_MONOTONIC, the same clock in both processes. The worker ends itself
when the engine goes away (``PR_SET_PDEATHSIG``, and a check of its parent).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Any

import numpy as np
import zmq

from ceustream.engine.core.errors import InputError
from ceustream.engine.core.source import DamagedStream, EndOfStream, Frame

from .live import GateFrame
from .source import redact

log = logging.getLogger(__name__)

#: the worker's state message (its heartbeat) at least this often (seconds): the engine
#: reads the gate's silence as "quiet at the last report + time since it", so a slower report
#: does not delay ``no_signal``; 5 a second per source is what the speed meter needs
STATE_EVERY_S = 0.2
#: the longest the worker's loop waits for a frame before it looks at the engine's commands
#: again (a command is applied within this)
COMMAND_EVERY_S = 0.05
#: a running worker silent this long is hung: it is killed and the source re-opened (s)
HUNG_AFTER_S = 5.0
#: a worker that has not started its pipeline this long after it was started (Python and
#: GStreamer loading on a busy machine take seconds) is hung too
START_LIMIT_S = 30.0
#: frames queued between the worker and the engine at most (each side's high-water mark)
QUEUE_FRAMES = 30
#: a worker silent this long when it is closed (its heartbeat is every STATE_EVERY_S) is
#: not asked to quit: it is killed at once (a stopped or wedged process reads nothing)
SILENT_AT_CLOSE_S = 1.0
#: a worker given this long to end after ``quit`` (a recording is finalised) before SIGKILL
QUIT_WAIT_S = 8.0


def exit_text(code: int | None) -> str:
    """A process's end in words: ``signal SIGSEGV`` or ``exit code 134``."""
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


# -- the engine's end ----------------------------------------------------------------------
class WorkerReader:
    """One pipeline generation of a live source, run by a worker process; the interface of
    ``pipelines.live.LiveReader`` as the live engine uses it. ``pull`` is called by one
    thread (the source's); the gate's setters and the readers of numbers by any."""

    seekable = False

    def __init__(self, uri: str, branch: str | None = None, record: Any = None,
                 name: str = "source", entry: str = "ceustream.pipelines.worker",
                 nice: int = 0):
        from .source import kind, source_description

        if kind(uri) != "sim":
            source_description(uri)  # a bad URI fails here, in one line, as in-process
        self.uri = uri
        #: the module the worker process runs (``-m``): this one, or an upper layer's that
        #: gives it a frame generator (``engine.app.sourceworker``: the simulator)
        self.entry = entry
        self.branch = branch
        self.record = str(record) if record else None
        self.name = name
        #: how much nicer than the engine the worker runs (``live.worker_nice``)
        self.nice = int(nice)
        self.what = redact(uri)
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        #: frames held for the engine: the worker's appsink, and the queue between them
        self.max_buffers = 30 + 2 * QUEUE_FRAMES
        #: CLOCK_MONOTONIC (ns) when the worker reported its pipeline started; 0 before (the
        #: runner's open timeout counts from then)
        self.ready_ns = 0
        self._state: dict[str, Any] = {}
        self._last_msg = time.monotonic()
        self._ctx = zmq.Context.instance()
        self._dir: str | None = None
        self._data: zmq.Socket | None = None
        self._cmd: zmq.Socket | None = None
        self._cmd_lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []  # gate settings given before open()
        self._ended: BaseException | None = None
        self.exit: str | None = None              # how the worker ended, once it has

    # -- life ------------------------------------------------------------------------------
    def open(self) -> None:
        """Starts the worker and returns at once; frames (or its error) follow."""
        self._dir = tempfile.mkdtemp(prefix="ceustream-src-")
        os.chmod(self._dir, 0o700)
        data_ep = f"ipc://{self._dir}/data"
        cmd_ep = f"ipc://{self._dir}/cmd"
        self._data = self._ctx.socket(zmq.PULL)
        self._data.setsockopt(zmq.LINGER, 0)
        self._data.setsockopt(zmq.RCVHWM, QUEUE_FRAMES)
        self._data.bind(data_ep)
        self._cmd = self._ctx.socket(zmq.PUSH)
        self._cmd.setsockopt(zmq.LINGER, 0)
        self._cmd.setsockopt(zmq.SNDHWM, 1000)
        self._cmd.bind(cmd_ep)
        args = [sys.executable, "-m", self.entry, "--uri", self.uri,
                "--data", data_ep, "--cmd", cmd_ep, "--name", self.name,
                "--parent", str(os.getpid())]
        if self.nice:
            args += ["--nice", str(self.nice)]
        if self.branch:
            args += ["--branch", self.branch]
        if self.record:
            args += ["--record", self.record]
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        except OSError as e:
            self._close_sockets()
            raise InputError(f"{self.what}: cannot start the source worker ({e})") from None
        self.pid = self.proc.pid
        self._last_msg = time.monotonic()
        log.info("source %s: worker pid %d started", self.name, self.pid)
        with self._cmd_lock:
            pending, self._pending = self._pending, []
        for c in pending:
            self._send(c)

    def close(self) -> None:
        """Asks the worker to end (its recording finalised), then kills it if it does not.
        A worker silent for ``SILENT_AT_CLOSE_S`` (stopped, wedged: it would not read its
        quit either) is killed at once, and its end says so."""
        p = self.proc
        silent = self.silent_s()
        if p is not None and p.poll() is None and self.ready_ns and silent > SILENT_AT_CLOSE_S:
            log.warning("source %s: worker pid %d silent for %.1f s; killed", self.name, p.pid,
                        silent)
            p.kill()
            p.wait(5)
            self.exit = self.exit or f"hung ({silent:.1f} s silent), killed"
        if p is not None and p.poll() is None:
            self._send({"quit": True})
            deadline = time.monotonic() + QUIT_WAIT_S
            while p.poll() is None and time.monotonic() < deadline:
                self._drain()  # a worker blocked on a full queue reads its quit
                time.sleep(0.02)
            if p.poll() is None:
                log.warning("source %s: worker pid %d did not end; killed", self.name, p.pid)
                p.kill()
                p.wait(5)
        if p is not None:
            self.exit = self.exit or exit_text(p.returncode)
        self._close_sockets()

    def _drain(self) -> None:
        try:
            while self._data is not None and self._data.poll(0):
                self._data.recv_multipart()
        except zmq.ZMQError:
            pass

    def _close_sockets(self) -> None:
        for s in (self._data, self._cmd):
            if s is not None:
                s.close(0)
        self._data = self._cmd = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def silent_s(self) -> float:
        """Seconds since the worker's last message (its state is its heartbeat, sent every
        ``STATE_EVERY_S``)."""
        return time.monotonic() - self._last_msg

    # -- frames ----------------------------------------------------------------------------
    def pull(self, timeout_s: float = 0.25) -> Frame | None:
        """The next frame the gate passed; None when none came within ``timeout_s``. Raises
        ``EndOfStream`` / ``DamagedStream`` / ``InputError`` as the pipeline did, and
        ``DamagedStream`` when the worker died or hangs."""
        if self._ended is not None:
            raise self._ended
        deadline = time.monotonic() + timeout_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            if self._data is not None and self._data.poll(int(left * 1000) if left else 0):
                fr = self._message(self._data.recv_multipart())
                if fr is not None:
                    return fr
                continue
            self._check_alive()
            if time.monotonic() >= deadline:
                return None

    def _message(self, parts: list[bytes]) -> Frame | None:
        self._last_msg = time.monotonic()
        kind = parts[0]
        if not self.ready_ns and kind in (b"S", b"F"):
            self.ready_ns = time.monotonic_ns()
        if kind == b"S":
            self._state = json.loads(parts[1])
            self.max_buffers = int(self._state.get("max_buffers", 30)) + 2 * QUEUE_FRAMES
            return None
        if kind == b"F":
            h = json.loads(parts[1])
            self._state = h["state"]
            self.max_buffers = int(self._state.get("max_buffers", 30)) + 2 * QUEUE_FRAMES
            lh, lw = h["shape"]
            luma = np.frombuffer(parts[2], np.uint8).reshape(lh, lw)
            return GateFrame(h["pts_s"], luma, h["mono_ns"], h["width"], h["height"],
                             tuple(h["origin"]), epoch=int(h.get("epoch", 0)),
                             past=str(h.get("past", "")))
        if kind == b"E":
            e = json.loads(parts[1])
            err: BaseException
            if e["kind"] == "eos":
                err = EndOfStream(e["text"])
            elif e["kind"] == "input":
                err = InputError(e["text"])
            else:
                err = DamagedStream(e["text"], e.get("at_s"))
            self._ended = err
            raise err
        return None

    def _check_alive(self) -> None:
        p = self.proc
        if p is None:
            return
        code = p.poll()
        if code is not None:
            self.exit = exit_text(code)
            self._ended = DamagedStream(f"the source worker (pid {p.pid}) ended: {self.exit}")
            log.warning("source %s: worker pid %d ended: %s", self.name, p.pid, self.exit)
            raise self._ended
        silent = time.monotonic() - self._last_msg
        if silent > (HUNG_AFTER_S if self.ready_ns else START_LIMIT_S):
            p.kill()
            p.wait(5)
            self.exit = f"hung ({silent:.1f} s silent), killed"
            self._ended = DamagedStream(f"the source worker (pid {p.pid}) stopped answering "
                                        f"for {silent:.1f} s; killed")
            raise self._ended

    # -- the gate --------------------------------------------------------------------------
    def _send(self, cmd: dict[str, Any]) -> None:
        with self._cmd_lock:
            if self._cmd is None:
                if self.proc is None:
                    self._pending.append(cmd)
                return
            try:
                self._cmd.send(json.dumps(cmd).encode(), zmq.NOBLOCK)
            except zmq.ZMQError:  # a worker that does not read: it is ended by pull
                log.debug("source %s: a command to the worker was not sent", self.name)

    def set_slots(self, times_s: list[float]) -> None:
        self._send({"slots": [float(t) for t in times_s]})

    def set_pass_all(self, on: bool) -> None:
        self._send({"pass_all": bool(on)})

    def set_frozen_after(self, frames: int) -> None:
        self._send({"frozen_after": int(frames)})

    def set_monitor(self, start_s: float, stop_s: float, interval_s: float) -> None:
        self._send({"monitor": [float(start_s), float(stop_s), float(interval_s)]})

    def stop_monitor(self) -> None:
        self._send({"monitor": None})

    def set_crop(self, box: tuple[int, int, int, int] | None) -> None:
        self._send({"crop": list(box) if box else None})

    def set_keep(self, box: tuple[int, int, int, int] | None, horizon_s: float = 120.0,
                 max_bytes: int = 256_000_000) -> None:
        self._send({"keep": {"box": list(box) if box else None, "horizon_s": float(horizon_s),
                             "max_bytes": int(max_bytes)}})

    def replay(self, epoch: int, from_ns: int, pre_from_ns: int | None,
               monitor: tuple[float, float, float] | None, last_monitor_ns: int | None,
               slots_s: list[float]) -> None:
        """The worker's gate replays its kept past (``LiveReader.replay``); the frames come
        through ``pull`` before any later live frame."""
        self._send({"replay": {"epoch": int(epoch), "from_ns": int(from_ns),
                               "pre_from_ns": pre_from_ns, "last_monitor_ns": last_monitor_ns,
                               "monitor": None if monitor is None else list(monitor),
                               "slots": [float(t) for t in slots_s]}})

    def gate_silent_s(self) -> float | None:
        """How long the gate has seen no frame (None before any), as the worker measured it
        in its latest report, plus the time since that report unless newer ones wait unread
        (the engine behind on a busy machine is not a silent source)."""
        now, arrival = self._state.get("now_ns"), self._state.get("arrival_ns")
        if not now or not arrival:
            return None
        quiet = max(0, now - arrival) / 1e9
        try:  # reports waiting unread: the engine is behind, not the source
            waiting = self._data is not None and bool(self._data.poll(0))
        except zmq.ZMQError:
            waiting = False
        return quiet if waiting else quiet + max(0.0, time.monotonic() - self._last_msg)

    def kept(self) -> tuple[int | None, bool]:
        v = self._state.get("kept_from_ns")
        return (None if v is None else int(v)), bool(self._state.get("kept_limited", False))

    # -- numbers (the worker's latest state) -----------------------------------------------
    def counters(self) -> tuple[int, int]:
        return int(self._state.get("passed", 0)), int(self._state.get("dropped", 0))

    def frames_seen(self) -> int:
        passed, dropped = self.counters()
        return passed + dropped

    def arrival_ns(self) -> int:
        return int(self._state.get("arrival_ns", 0))

    def stream_ns(self) -> int | None:
        v = self._state.get("stream_ns")
        return None if v is None else int(v)

    def nominal_fps(self) -> float | None:
        return self._state.get("nominal_fps")

    def frozen(self) -> bool:
        return bool(self._state.get("frozen", False))

    def frame_size(self) -> tuple[int, int] | None:
        v = self._state.get("frame_size")
        return None if v is None else (int(v[0]), int(v[1]))


# -- the worker ----------------------------------------------------------------------------
def _die_with_parent() -> None:
    """SIGKILL when the engine process ends (Linux ``PR_SET_PDEATHSIG``)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:  # not Linux: the parent check in the loop still ends the worker
        pass


def _state(reader: Any) -> dict[str, Any]:
    passed, dropped = reader.counters()
    kept_from, limited = reader.kept()
    return {"passed": passed, "dropped": dropped, "arrival_ns": reader.arrival_ns(),
            "stream_ns": reader.stream_ns(), "frozen": reader.frozen(),
            "nominal_fps": reader.nominal_fps(), "frame_size": reader.frame_size(),
            "max_buffers": int(getattr(reader, "max_buffers", 30)),
            "kept_from_ns": kept_from, "kept_limited": limited,
            "now_ns": time.monotonic_ns()}


def _apply(reader: Any, cmd: dict[str, Any]) -> bool:
    """A command from the engine; False for ``quit``."""
    if cmd.get("quit"):
        return False
    if "slots" in cmd:
        reader.set_slots(cmd["slots"])
    if "pass_all" in cmd:
        reader.set_pass_all(cmd["pass_all"])
    if "frozen_after" in cmd:
        reader.set_frozen_after(cmd["frozen_after"])
    if "monitor" in cmd:
        if cmd["monitor"] is None:
            reader.stop_monitor()
        else:
            reader.set_monitor(*cmd["monitor"])
    if "crop" in cmd:
        reader.set_crop(cmd["crop"])
    if "keep" in cmd:
        k = cmd["keep"]
        reader.set_keep(k["box"], k["horizon_s"], k["max_bytes"])
    if "replay" in cmd:
        r = cmd["replay"]
        reader.replay(r["epoch"], r["from_ns"], r["pre_from_ns"],
                      None if r["monitor"] is None else tuple(r["monitor"]),
                      r["last_monitor_ns"], r["slots"])
    return True


def serve(args: argparse.Namespace,
          make_generator: Callable[[str], Any] | None = None) -> int:
    from .live import LiveReader

    ctx = zmq.Context.instance()
    data = ctx.socket(zmq.PUSH)
    data.setsockopt(zmq.LINGER, 2000)
    data.setsockopt(zmq.SNDHWM, QUEUE_FRAMES)
    data.connect(args.data)
    cmd = ctx.socket(zmq.PULL)
    cmd.setsockopt(zmq.LINGER, 0)
    cmd.connect(args.cmd)

    def error(kind: str, text: str, at_s: float | None = None) -> int:
        data.send_multipart([b"E", json.dumps({"kind": kind, "text": text,
                                                "at_s": at_s}).encode()])
        return 0

    sim = None
    try:
        if args.uri.startswith("sim://"):
            if make_generator is None:
                raise InputError(f"{args.uri}: a sim:// source needs the simulator's worker "
                                 "(python -m ceustream.engine.app.sourceworker)")
            sim = make_generator(args.uri)
        reader = LiveReader(args.uri, args.branch, generator=sim, record=args.record)
        reader.set_pass_all(True)
        reader.open()
    except InputError as e:
        return error("input", str(e))
    except Exception as e:  # a bug or a library's own error: still one line, a source fault
        return error("damaged", f"{redact(args.uri)}: cannot open ({e})")
    poller = zmq.Poller()
    poller.register(cmd, zmq.POLLIN)
    next_state = 0.0
    try:
        while True:
            while dict(poller.poll(0)).get(cmd):
                if not _apply(reader, json.loads(cmd.recv())):
                    return 0
            if os.getppid() != args.parent:
                return 0  # the engine is gone
            try:
                fr = reader.pull(COMMAND_EVERY_S)
            except EndOfStream as e:
                return error("eos", str(e) or "the source ended")
            except DamagedStream as e:
                return error("damaged", str(e), e.at_s)
            except InputError as e:
                return error("input", str(e))
            now = time.monotonic()
            if fr is not None:
                luma = np.ascontiguousarray(fr.luma)
                head = {"pts_s": fr.pts_s, "mono_ns": fr.mono_ns, "width": fr.width,
                        "height": fr.height, "origin": list(fr.origin),
                        "shape": list(luma.shape), "state": _state(reader),
                        "epoch": int(getattr(fr, "epoch", 0)), "past": getattr(fr, "past", "")}
                data.send_multipart([b"F", json.dumps(head).encode(), luma.data], copy=False)
                next_state = now + STATE_EVERY_S
            elif now >= next_state:
                data.send_multipart([b"S", json.dumps(_state(reader)).encode()])
                next_state = now + STATE_EVERY_S
    finally:
        reader.close()
        data.close()
        cmd.close(0)


def main(argv: list[str] | None = None,
         make_generator: Callable[[str], Any] | None = None) -> int:
    ap = argparse.ArgumentParser(description="ceustream's source worker (started by the "
                                 "live engine, one per live source)")
    ap.add_argument("--uri", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--cmd", required=True)
    ap.add_argument("--name", default="source")
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--branch")
    ap.add_argument("--record")
    ap.add_argument("--nice", type=int, default=0)
    args = ap.parse_args(argv)
    _die_with_parent()
    if args.nice > 0:  # live.worker_nice: the engine's scores before decoding
        try:
            os.nice(args.nice)
        except OSError:
            pass
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s worker {args.name}: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides when a worker ends
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return serve(args, make_generator)


if __name__ == "__main__":
    sys.exit(main())
