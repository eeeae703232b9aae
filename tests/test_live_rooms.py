"""The live engine's rooms: the model never runs under a source's or the engine's lock (a
score held back inside the model while the control commands are answered), a hung source
worker (SIGSTOP) is that source's fault, the supervisor's backoff and stall rule by hand,
and the frame counters one count per source across reconnects, in ``health`` and in the
Prometheus metrics."""

from __future__ import annotations

import os
import re
import signal
import threading
import urllib.request

import pytest

from ceustream.engine.app.live import ExamContext, LiveEngine
from ceustream.engine.app.loading import load_model_and_backend
from ceustream.engine.app.supervisor import Backoff, stall_reason
from ceustream.engine.core import config
from ceustream.engine.core.errors import UsageError
from ceustream.pipelines.live import LiveReader

from conftest import free_port
from livekit import Engine, ts_udp_sender, wait_until

ROI = [120, 80, 64, 64]  # inside the 320x240 test pattern and senders


# -- the supervisor, by hand ---------------------------------------------------------------
def test_the_backoff_doubles_to_its_limit_and_restarts_after_frames():
    b = Backoff(0.5, 5.0)
    assert [b.delay(False) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert b.delay(True) == 0.5  # a pipeline that delivered frames: from the start again
    assert b.delay(False) == 1.0


@pytest.mark.parametrize("waited,has_clock,since,why", [
    (9.0, False, None, None),                       # still within the open timeout (10 s)
    (10.5, False, None, "no frame within 10 s of opening"),
    (60.0, True, 2.9, None),                        # frames came; silent for less than 3 s
    (60.0, True, 3.1, "no frame for 3 s"),
    (60.0, True, None, None),
])
def test_a_pipeline_is_given_up_by_the_stall_rule(waited, has_clock, since, why):
    assert stall_reason(waited, has_clock, since, 10.0, 3.0) == why


def test_the_exam_context_is_typed():
    """Every field of the context the exams share has a type (none is ``Any``)."""
    hints = ExamContext.__annotations__
    assert set(hints) >= {"cfg", "model", "backend", "publisher", "slot", "telemetry"}
    assert not [k for k, v in hints.items() if "Any" in str(v)], hints


# -- scoring holds no lock -----------------------------------------------------------------
class HeldScorer:
    """The real backend, whose ``infer`` waits (an Event) once ``hold`` is set: a score
    stays inside the model for as long as the test needs."""

    def __init__(self, backend):
        self.backend = backend
        self.hold = threading.Event()
        self.inside = threading.Event()
        self.release = threading.Event()

    def infer(self, x):
        if self.hold.is_set():
            self.inside.set()
            self.release.wait(120)
        return self.backend.infer(x)

    def describe(self):
        return self.backend.describe()

    def __getattr__(self, name):
        return getattr(self.backend, name)


def answered(fn, timeout_s: float = 30.0):
    """Runs ``fn`` on its own thread; its answer (or the error it raised), or a failure if
    it is still waiting after ``timeout_s`` (a lock held by the score)."""
    out: list = []

    def run():
        try:
            out.append(fn())
        except Exception as e:  # noqa: BLE001 (the refusal is the answer)
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout_s)
    assert out, "no answer while the model was scoring: a lock is held during inference"
    return out[0]


def test_commands_are_answered_while_a_score_is_inside_the_model(tmp_path):
    """A live source (videotestsrc through ceusgate, in the engine's process); the first
    slot's score is held inside the model. Meanwhile ``health`` and ``status`` answer, and
    so does a command that takes the source's own lock (``mark_injection``: refused in one
    line, nothing changed); the source's lock is free. Released, the score is published and
    the exam goes on."""
    cfg = config.load(env={"CEUSTREAM_JOURNAL_DIR": str(tmp_path)})
    model, backend, note = load_model_and_backend(None, "onnxruntime", cfg)
    held = HeldScorer(backend)
    scores: list = []
    eng = LiveEngine(ExamContext(cfg, model, held, note, journal=False,
                                 on_score=lambda s, session: scores.append(s)))
    eng.add_source("main", "test://ball", lambda gen: LiveReader("test://ball"))
    runner = eng.runner
    try:
        assert runner.wait_for_video(60)
        assert eng.handle({"cmd": "start_exam", "exam": "held1", "roi": ROI})["exam"] == \
            "held1"
        held.hold.set()
        eng.handle({"cmd": "mark_arrival"})
        assert held.inside.wait(60), "no score reached the model"
        h = answered(lambda: eng.handle({"cmd": "health"}))
        assert h["sources"]["main"]["exam"] == "held1" and h["exams_active"] == 1
        st = answered(lambda: eng.handle({"cmd": "status"}))
        # slot 0 is in the clip, its score not out yet
        assert st["status"]["exam"] == "held1" and st["status"]["slots_filled"] == 1
        assert st["status"]["score"] is None
        refused = answered(lambda: eng.handle({"cmd": "mark_injection"}))
        assert isinstance(refused, UsageError) and "already" in str(refused)

        def take_the_lock():
            got = runner.lock.acquire(timeout=20)
            if got:
                runner.lock.release()
            return got

        assert answered(take_the_lock) is True
        assert not scores  # still inside the model
        held.hold.clear()
        held.release.set()
        wait_until(lambda: scores, 60, "the held score")
        assert scores[0].slot == 0
        wait_until(lambda: eng.handle({"cmd": "status"})["status"]["slots_filled"] >= 2, 60,
                   "the exam going on")
        res = eng.handle({"cmd": "stop_exam"})["result"]
        assert res["exam"] == "held1" and not res["final"] and res["slots_filled"] >= 2
    finally:
        held.release.set()
        eng.close()


# -- a hung worker is a source fault -------------------------------------------------------
def frames_metric(text: str, name: str) -> float | None:
    m = re.search(r'ceustream_source_frames_total\{source="%s"\} (\S+)' % name, text)
    return None if m is None else float(m.group(1))


def test_a_hung_worker_is_a_source_fault_and_its_counters_go_on(env):
    """Two sources, each in its own worker process; one worker is stopped (SIGSTOP: alive,
    silent, what a wedged driver looks like). Its exam gets no_signal, the log and health
    name the hang, the worker is killed and a new one takes over with the backoff; the other
    source's exam keeps scoring and the control socket answers throughout. The source's
    frame counter goes on from where it was (health and the metrics, for both sources)."""
    p1, p2, metrics = free_port(), free_port(), free_port()
    s1, s2 = ts_udp_sender(p1), ts_udp_sender(p2)
    eng = Engine(env, f"one=udp://127.0.0.1:{p1}", "--source", f"two=udp://127.0.0.1:{p2}",
                 "--metrics", f"127.0.0.1:{metrics}")
    stopped = None
    try:
        def src(name):
            return eng.cmd("health")["sources"][name]

        wait_until(lambda: src("one")["up"] and src("two")["up"], 60, "video on both sources")
        for name in ("one", "two"):
            assert eng.cmd("start_exam", source=name, exam=f"hang{name}", roi=ROI)["ok"]
            assert eng.cmd("mark_arrival", source=name)["ok"]
        wait_until(lambda: eng.cmd("status", source="two")["status"]["slots_filled"] >= 1,
                   60, "slot on two")
        one = src("one")
        pid, frames_before = one["worker"]["pid"], one["frames_total"]
        assert isinstance(pid, int) and pid not in (eng.p.pid, os.getpid())
        assert frames_before > 0
        n2 = eng.cmd("status", source="two")["status"]["slots_filled"]
        os.kill(pid, signal.SIGSTOP)
        stopped = pid

        def no_signal_on_one():
            eng.alive_or_fail()
            st = eng.cmd("status", source="one")  # the control socket answers meanwhile
            return "no_signal" in st["status"]["warnings"]

        wait_until(no_signal_on_one, 30, "no_signal on the hung source")

        def worker_one():
            w = src("one")["worker"]
            return w if w["last_exit"] is not None else None

        w = wait_until(worker_one, 60, "health naming the hang")
        assert w["last_exit"].startswith("hung") and "killed" in w["last_exit"], w
        assert "stopped answering" in (w["last_error"] or ""), w
        assert "stopped answering" in eng.stderr
        stopped = None  # SIGKILLed by the engine
        wait_until(lambda: src("one")["up"], 90, "one back with a new worker")
        one = src("one")
        assert one["worker"]["pid"] != pid and one["reconnects"] >= 1
        assert one["frames_total"] >= frames_before  # one count across the reconnect
        wait_until(lambda: src("one")["frames_total"] > frames_before + 10, 60,
                   "frames counted on from the old count")
        wait_until(lambda: eng.cmd("status", source="two")["status"]["slots_filled"] > n2 + 1,
                   60, "two keeps scoring")
        assert not any("no_signal" in m["warnings"] for m in eng.sub.of("status", "hangtwo"))
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=20
                                      ).read().decode()
        assert frames_metric(text, "one") >= frames_before + 10, text[:2000]
        assert frames_metric(text, "two") > 0, text[:2000]
        eng.alive_or_fail()
    finally:
        if stopped is not None:
            try:
                os.kill(stopped, signal.SIGKILL)
            except ProcessLookupError:
                pass
        s1.stop()
        s2.stop()
        eng.stop()
