"""The Prometheus endpoint, scraped over real HTTP on loopback: what a real exam, a real
publisher and the batching scorer put in it; its own registry per engine; off by default,
loopback unless allowed."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families

from ceustream.engine import backends
from ceustream.engine.app.batching import BatchingScorer
from ceustream.engine.app.outputs import attach
from ceustream.engine.app.session import ExamSession
from ceustream.engine.app.telemetry import MetricsServer, Telemetry, parse_listen, serve
from ceustream.engine.core import config, modelmeta
from ceustream.engine.core.errors import UsageError
from ceustream.engine.core.roi import Roi
from ceustream.engine.wire.publisher import Publisher


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from the endpoint's text."""
    with urllib.request.urlopen(url, timeout=20) as r:
        assert r.status == 200
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def model():
    return modelmeta.read(modelmeta.shipped_model_path())


def test_a_real_exam_and_publisher_show_up_in_the_scrape(model, port):
    tel = Telemetry()
    server = MetricsServer(tel, "127.0.0.1:0")
    cfg = config.load(env={})
    ctx = zmq.Context()
    pub = Publisher(f"tcp://127.0.0.1:{port}", cfg, ctx)
    be, _ = backends.create("onnxruntime", model, threads=1)
    scorer = BatchingScorer(be, window_s=0.0)
    try:
        tel.add_source("scanner-a", lambda: {"frames_total": 1234, "fps": 29.97,
                                             "lag_s": 0.021, "up": True})
        tel.add_source("broken", lambda: 1 / 0)  # a failing probe never breaks a scrape
        tel.bind_publisher(pub)
        scorer.observe(tel.batch_observer("onnxruntime"))
        s = ExamSession(exam="m1", model=model, backend=scorer, roi=Roi(0, 0, 64, 64),
                        source="scanner-a")
        attach(s, publisher=pub)
        tel.watch(s)
        s.start()
        sampler = s.set_t0(0.0)
        s.set_warning("no_signal", True)
        s.set_warning("no_signal", False)
        s.set_warning("frozen_frame", True)
        rng = np.random.default_rng(3)
        for k in range(0, 2 * 182):
            s.add(sampler.offer(k * 0.5, rng.integers(0, 256, (64, 64), dtype=np.uint8),
                                time.monotonic_ns()))
        res = s.finish()
        assert res["final"]
        pub.close()  # every queued message sent: the count is final

        got = scrape(server.url)
        assert value(got, "ceustream_source_frames_total", source="scanner-a") == 1234
        assert value(got, "ceustream_source_fps", source="scanner-a") == pytest.approx(29.97)
        assert value(got, "ceustream_source_lag_seconds", source="scanner-a") == \
            pytest.approx(0.021)
        assert value(got, "ceustream_source_up", source="scanner-a") == 1.0
        assert value(got, "ceustream_source_frames_total", source="broken") is None
        assert value(got, "ceustream_slots_total", source="scanner-a", fill="frame") == 30
        assert value(got, "ceustream_scores_total", source="scanner-a", final="true") == 1
        assert value(got, "ceustream_scores_total", source="scanner-a", final="false") == 29
        # a count of latency observations (one per score), not a time
        assert value(got, "ceustream_score_latency_seconds_count", source="scanner-a") == 30
        assert value(got, "ceustream_warnings_total", source="scanner-a",
                     warning="no_signal") == 1
        assert value(got, "ceustream_warnings_active", source="scanner-a",
                     warning="no_signal") == 0
        assert value(got, "ceustream_warnings_active", source="scanner-a",
                     warning="frozen_frame") == 0  # the exam ended: nothing shows it now
        assert value(got, "ceustream_exams_started_total", source="scanner-a") == 1
        assert value(got, "ceustream_exams_ended_total", source="scanner-a",
                     phase="complete") == 1
        assert value(got, "ceustream_exams_active", source="scanner-a") == 0
        assert value(got, "ceustream_inference_batch_size_count", backend="onnxruntime") == \
            scorer.stats.calls == 30
        assert value(got, "ceustream_inference_seconds_count", backend="onnxruntime") == 30
        assert value(got, "ceustream_inference_seconds_sum", backend="onnxruntime") > 0
        assert value(got, "ceustream_messages_published_total") == pub.sent > 30
        assert value(got, "ceustream_messages_refused_total") == 0

        # one registry per engine: a second one starts from nothing
        other = Telemetry()
        assert b"scanner-a" not in other.scrape()
        # a removed source leaves the scrape
        tel.remove_source("scanner-a")
        assert value(scrape(server.url), "ceustream_source_fps", source="scanner-a") is None
    finally:
        server.close()
        scorer.close()
        ctx.term()
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(server.url, timeout=5)


def test_metrics_are_off_by_default():
    assert serve(Telemetry(), config.load(env={})) is None


@pytest.mark.parametrize("listen", ["9108", ":9108", "127.0.0.1:", "127.0.0.1:http",
                                    "127.0.0.1:70000", "127.0.0.1:-1"])
def test_bad_listen_is_one_line(listen):
    with pytest.raises(UsageError) as e:
        parse_listen(listen)
    assert "metrics.listen" in str(e.value) and "\n" not in str(e.value)


def test_non_loopback_is_refused_unless_allowed(port):
    tel = Telemetry()
    with pytest.raises(UsageError, match="not a loopback address"):
        MetricsServer(tel, "0.0.0.0:0")
    cfg = config.load(env={"CEUSTREAM_METRICS__LISTEN": "0.0.0.0:0",
                           "CEUSTREAM_METRICS__ALLOW_REMOTE": "true"})
    server = serve(tel, cfg)
    try:
        got = scrape(f"http://127.0.0.1:{server.port}/metrics")
        assert value(got, "ceustream_messages_published_total") == 0
    finally:
        server.close()


def test_a_port_in_use_is_one_line(port):
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        with pytest.raises(UsageError, match="cannot listen"):
            MetricsServer(Telemetry(), f"127.0.0.1:{port}")


def test_slot_watch_makes_late_and_missed_slots_warnings_and_counts(model):
    """A slot decided while the engine is behind its source → slot_late on the exam (cleared
    by the next on-time slot); a neighbour-filled slot → slot_missed; both counted."""
    from ceustream.engine.app.overload import SlotWatch

    tel = Telemetry()
    be, _ = backends.create("onnxruntime", model, threads=1)
    s = ExamSession(exam="o1", model=model, backend=be, roi=Roi(0, 0, 64, 64), source="cam")
    watch = SlotWatch(late_s=0.5, telemetry=tel)
    s.subscribe(watch)
    sampler = s.set_t0(0.0)
    frame = np.zeros((64, 64), np.uint8)
    seen = []
    s.subscribe(lambda ev: seen.append(sorted(ev.session.warnings))
                if ev.kind == "status" else None)

    s.lag_s = 0.01
    s.add(sampler.offer(0.0, frame))          # slot 1 on time
    assert "slot_late" not in s.warnings
    s.lag_s = 1.5                               # the engine falls behind
    s.add(sampler.offer(2.0, frame))          # slot 2 decided late
    assert "slot_late" in s.warnings and watch.late == 1
    s.lag_s = 0.02
    s.add(sampler.offer(4.0, frame))          # slot 3 on time again: cleared
    assert "slot_late" not in s.warnings
    # frames 4.5 .. 9.5 never reach the engine: slots at 6 and 8 s have none within 1 s
    s.add(sampler.offer(9.9, frame))
    assert "slot_missed" in s.warnings and watch.missed >= 2
    assert any("slot_late" in w for w in seen)  # it was published, not only set
    got = {(smp.name, tuple(sorted(smp.labels.items()))): smp.value
           for f in text_string_to_metric_families(tel.scrape().decode()) for smp in f.samples}
    assert got[("ceustream_slots_late_total", (("source", "cam"),))] == 1
    assert got[("ceustream_slots_missed_total",
                (("cause", "overload"), ("source", "cam")))] == watch.missed
    be.close()
