"""The Python API an integrator uses (README "Python API"): ``import ceustream`` is cheap and
exports what it documents; ``replay_file`` scores a real recording with the default settings;
the typed ``Subscriber`` receives a real publisher's messages over loopback, validates them
against the bundled schema (unknown fields allowed, as the compatibility policy says) and
counts what it refuses; the bundled schemas agree with the shipped files resolved through a
registry (jsonschema + referencing, an independent resolver)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time

import jsonschema
import pytest
import zmq
from referencing import Registry, Resource

import ceustream
from ceustream.engine.core import config
from ceustream.engine.wire import messages
from ceustream.engine.wire.publisher import Publisher

from media import ROI


def test_import_is_cheap_and_every_export_is_documented():
    code = ("import sys, ceustream; print(sorted(m for m in ('gi', 'onnxruntime', 'zmq', 'cv2') "
            "if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr
    assert ceustream.__version__ and "simulated" in ceustream.DISCLAIMER
    for name in ceustream.__all__:
        obj = getattr(ceustream, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), f"ceustream.{name} has no docstring"
    with pytest.raises(AttributeError):
        ceustream.no_such_name  # noqa: B018


def test_replay_file_with_the_default_settings(coded_mp4):
    from test_replay import offline_score

    seen = []
    r = ceustream.replay_file(coded_mp4.path, roi=ROI, t0=coded_mp4.arrival, on_score=seen.append)
    assert isinstance(r, ceustream.Result)
    assert r.final and r.slots_filled == r.slots_total == 30
    ref, _ = offline_score(coded_mp4.path, ceustream.Roi(*ROI), coded_mp4.arrival)
    # the network's own P(HCC) is the offline one; ``score`` is it inside the model's domain
    assert r.score_network == pytest.approx(ref, abs=1e-6)
    if r.score_basis == "network":
        assert r.score == r.score_network
    assert r.label in ("HCC", "non-HCC", "indeterminate") and r.label == r.raw["label"]
    assert r.domain == ceustream.Domain.from_json(r.raw.get("domain"))
    assert "simulated" in r.disclaimer
    assert [s.slots_filled for s in seen] == list(range(1, 31))
    assert [s.final for s in seen] == [False] * 29 + [True]
    assert isinstance(seen[-1].features, ceustream.TicReading) and seen[-1].features.summary
    assert seen[-1].score == pytest.approx(r.score, abs=1e-6)
    assert isinstance(r.features, ceustream.TicReading)
    assert r.features == ceustream.TicReading.from_json(r.raw["features"])
    # the test file's synthetic blocks are no CEUS exam: the model says it is outside its
    # domain, and the headline is then the TIC reading, never the network's score
    if "out_of_distribution" in r.flags:
        assert r.outside_domain and r.label == "indeterminate"
        assert r.domain is not None and r.domain.state == "out"
        phys = f", physiology P(HCC) {r.score:.3f}" if r.score_basis == "physiology" else ""
        assert r.headline() == (f"outside model domain: TIC: {r.features.category} "
                                f"({r.features.summary}), TIC P(HCC) {r.features.p_hcc:.3f}"
                                f"{phys}; 30/30 slots")
    else:
        assert r.headline() == f"P(HCC) {r.score:.3f} {r.label}; 30/30 slots"


def test_replay_file_refuses_bad_input_in_one_line(coded_mp4, tmp_path):
    with pytest.raises(ceustream.UsageError, match="--t0 S .* or --injection S"):
        ceustream.replay_file(coded_mp4.path, roi=ROI)
    with pytest.raises(ceustream.InputError, match="missing.mp4"):
        ceustream.replay_file(tmp_path / "missing.mp4", roi=ROI, t0=1.0)
    with pytest.raises(ceustream.UsageError):
        ceustream.replay_file(coded_mp4.path, roi="1,2,three,4", t0=1.0)


def test_a_result_outside_the_model_domain_shows_the_tic_reading():
    feats = {"category": "LR-5-like", "summary": "APHE ✓ · washout late, mild", "p_hcc": 0.71}
    base = {"exam": "e1", "score": 0.8, "final": True, "slots_filled": 30, "slots_total": 30,
            "flags": [], "features": feats, "disclaimer": ceustream.DISCLAIMER}
    out = ceustream.Result.from_json({**base, "label": "indeterminate",
                                      "flags": ["out_of_distribution"],
                                      "domain": {"state": "out", "distance": 4.2,
                                                 "threshold": 3.0, "method": "mahalanobis"}})
    assert out.outside_domain and out.domain == ceustream.Domain("out", 4.2, 3.0, "mahalanobis")
    assert out.headline() == ("outside model domain: TIC: LR-5-like (APHE ✓ · washout late, "
                              "mild), TIC P(HCC) 0.710; 30/30 slots")
    # the score of an exam outside the domain is the physiology reading's: it says so
    phys = ceustream.Result.from_json({**base, "label": "indeterminate", "score": 0.952,
                                       "score_network": 0.31, "score_basis": "physiology",
                                       "flags": ["out_of_distribution"]})
    assert phys.headline() == ("outside model domain: TIC: LR-5-like (APHE ✓ · washout late, "
                               "mild), TIC P(HCC) 0.710, physiology P(HCC) 0.952; 30/30 slots")
    assert phys.score_network == 0.31
    old = ceustream.Result.from_json({**base, "label": "HCC"})  # before `domain` existed
    assert old.domain is None and not old.outside_domain
    assert old.headline() == "P(HCC) 0.800 HCC; 30/30 slots"


# -- the subscriber and the schemas --------------------------------------------------------------
def registry_validators() -> dict[str, jsonschema.Draft202012Validator]:
    docs = {n: json.loads(messages.schema_text(n)) for n in messages.SCHEMAS}
    reg = Registry().with_resources([(d["$id"], Resource.from_contents(d))
                                     for d in docs.values()])
    return {n: jsonschema.Draft202012Validator(docs[n], registry=reg)
            for n in ("score", "status", "command")}


def refs(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values()
                                                               for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


@pytest.fixture(scope="module")
def published(coded_mp4, tmp_path_factory):
    """A real replay's messages, received by the typed subscriber (validating) over loopback."""
    from ceustream.engine.app.replay import ReplayOptions, replay

    from conftest import free_port

    cfg = config.load(env={})
    cfg["journal"]["dir"] = str(tmp_path_factory.mktemp("journal"))
    ep = f"tcp://127.0.0.1:{free_port()}"
    sub = ceustream.Collector(ep, keep_frames=True)
    pub = Publisher(ep, cfg)
    try:
        assert pub.wait_for_subscriber(10)
        res = replay(coded_mp4.path, ReplayOptions(roi=ceustream.Roi(*ROI),
                                                   t0=coded_mp4.arrival, exam="api1"), cfg, pub)
    finally:
        pub.close()
    assert sub.drain(pub.sequences(), 20), "not every message arrived"
    sub.close()
    return res, sub, sum(pub.sequences().values())


def test_the_subscriber_types_and_validates_a_real_replay(published):
    res, sub, sent = published
    assert sub.invalid == 0, sub.last_error
    assert sub.gaps == 0 and sub.received == sent == len(sub.messages)
    scores = sub.of("score", "api1")
    assert all(isinstance(m, ceustream.ScoreMessage) for m in scores)
    assert [m.slots_filled for m in scores] == list(range(1, 31))
    final = scores[-1]
    assert final.final and final.score == pytest.approx(res["score"], abs=1e-6)
    assert final.label == res["label"] and final.features.summary
    assert all(isinstance(m, ceustream.StatusMessage) for m in sub.of("status"))
    assert all(m.received_mono_ns > 0 for m in sub.messages)


def test_bundled_schemas_have_no_ref_and_agree_with_the_registry(published):
    _, sub, _ = published
    strict = registry_validators()
    for name in ("score", "status", "command"):
        b = ceustream.bundled_schema(name)
        jsonschema.Draft202012Validator.check_schema(b)
        assert refs(b) == [], name
    bundled_strict = {n: jsonschema.Draft202012Validator(ceustream.bundled_schema(n, False))
                      for n in ("score", "status")}
    consumer = {n: jsonschema.Draft202012Validator(ceustream.bundled_schema(n))
                for n in ("score", "status")}
    samples = [m.raw for m in sub.messages]
    bad = []
    for m in samples[:40]:
        k = m["type"]
        assert strict[k].is_valid(m) and bundled_strict[k].is_valid(m) and consumer[k].is_valid(m)
        wrong = copy.deepcopy(m)
        wrong["slots_filled"] = -1
        bad.append(wrong)
        extra = {**copy.deepcopy(m), "field_added_later": {"x": 1}}
        # a field added within v1: the shipped (producer) files refuse it, consumers must not
        assert not strict[k].is_valid(extra) and not bundled_strict[k].is_valid(extra)
        assert consumer[k].is_valid(extra)
    for m in bad:
        k = m["type"]
        assert not strict[k].is_valid(m) and not bundled_strict[k].is_valid(m)
        assert not consumer[k].is_valid(m)
    cmd = {"cmd": "start_exam", "exam": "e1", "roi": [1, 2, 3, 4]}
    cv = jsonschema.Draft202012Validator(ceustream.bundled_schema("command"))
    assert cv.is_valid(cmd) and strict["command"].is_valid(cmd)
    assert not cv.is_valid({**cmd, "extra": 1})  # the engine refuses unknown keys


def test_the_subscriber_skips_what_is_not_v1_and_keeps_what_is_added(published, port):
    _, sub0, _ = published
    score_frames = next(f for f, m in zip(sub0.frames, sub0.messages) if m.kind == "score")
    topic, msg = messages.decode(score_frames)
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(f"tcp://127.0.0.1:{port}")
    sub = ceustream.Subscriber(f"tcp://127.0.0.1:{port}", topics=("score.",))
    try:
        # the slow joiner: send until the subscription has arrived
        probe = json.dumps({**msg, "seq": 1}).encode()
        first = None
        deadline = time.monotonic() + 10
        while first is None and time.monotonic() < deadline:
            pub.send_multipart([topic.encode(), probe])
            first = sub.receive(0.1)
        assert first is not None and first.seq == 1
        while sub.receive(0.3) is not None:  # the probes still in flight
            pass
        sub.gaps = 0
        sent = [
            {**msg, "seq": 2, "score": 1.5},  # not a probability
            {**msg, "seq": 3, "domain": {"state": "out", "distance": 5.0, "threshold": 3.0,
                                         "method": "m"}, "label": "indeterminate",
             "later_field": [1, 2]},
            {**msg, "seq": 9},  # five lost in between
        ]
        for m in sent:
            pub.send_multipart([topic.encode(), json.dumps(m).encode()])
        pub.send_multipart([topic.encode(), b"\xff not json"])
        pub.send_multipart([b"score.x", b"{}", b"a third frame"])
        got = [sub.receive(5.0), sub.receive(5.0)]
        assert sub.receive(0.5) is None
    finally:
        sub.close()
        pub.close(0)
    assert [m.seq for m in got] == [3, 9]
    assert got[0].domain == ceustream.Domain("out", 5.0, 3.0, "m") and got[0].outside_domain
    assert got[0].raw["later_field"] == [1, 2]
    assert got[0].headline().startswith("outside model domain: ")
    assert sub.invalid == 3
    assert sub.gaps == 6  # seq 2 (refused) and 4-8 (never sent) are missing from the sequence


def test_the_api_reference_builds_from_the_docstrings(tmp_path):
    """`make docs`'s pdoc run (its module list read from the Makefile), into a temp folder."""
    import re
    import shlex
    from pathlib import Path

    pytest.importorskip("pdoc", reason="pdoc is installed by `make venv-test` / `make docs`")
    make = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    block = re.search(r"^API_MODULES := (.*?)(?<!\\)\n", make, re.S | re.M).group(1)
    modules = shlex.split(block.replace("\\\n", " "))
    p = subprocess.run([sys.executable, "-m", "pdoc", "-o", str(tmp_path), "--docformat",
                        "restructuredtext", *modules], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "Warn" not in p.stderr, p.stderr
    page = (tmp_path / "ceustream.html").read_text()
    for name in ceustream.__all__:
        assert f'id="{name}"' in page or f">{name}<" in page, name
    assert (tmp_path / "ceustream" / "engine" / "wire" / "subscriber.html").is_file()
    embed = (tmp_path / "ceustream" / "engine" / "app" / "embed.html").read_text()
    for method in ("start_exam", "mark_injection", "mark_arrival", "scores", "result", "close"):
        assert f'id="Engine.{method}"' in embed, method


def test_schema_command(tmp_path):
    def cli(*a):
        return subprocess.run([sys.executable, "-m", "ceustream", "schema", *a],
                              capture_output=True, text=True, timeout=120)

    p = cli("score")
    assert p.returncode == 0 and json.loads(p.stdout) == ceustream.bundled_schema("score")
    p = cli("--path")
    assert p.returncode == 0 and p.stdout.strip() == ceustream.schema_dir()
    assert {f.name for f in __import__("pathlib").Path(ceustream.schema_dir()).iterdir()
            if f.suffix == ".json"} >= {"score.v1.json", "status.v1.json", "common.v1.json"}
    p = cli("--out", str(tmp_path / "s"))
    assert p.returncode == 0 and sorted(f.name for f in (tmp_path / "s").iterdir()) == \
        ["command.v1.json", "score.v1.json", "status.v1.json"]
    p = cli()
    assert p.returncode == 2 and p.stderr.startswith("ceustream: error: give NAME")
    p = cli("alarm")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1


def test_engine_in_process_with_a_live_test_source(port):
    """``ceustream.Engine`` with GStreamer's live test pattern (real pipeline in a source
    worker, real ONNX Runtime): refused commands raise one line and change nothing; an
    exam marked now gets its first scores; a second client reads it over the control
    socket, a third receives the same scores from its PUB socket; stopping gives a flagged partial result; closing ends it for good."""
    from conftest import free_port

    ctl = f"tcp://127.0.0.1:{port}"
    pub = f"tcp://127.0.0.1:{free_port()}"
    cfg = config.load(env={})
    with pytest.raises(ceustream.UsageError, match="bogus"):
        ceustream.Engine({"cam": "bogus://x"}, config=cfg)
    with pytest.raises(ceustream.UsageError, match="source name"):
        ceustream.Engine({"bad name": "test://smpte"}, config=cfg)
    with ceustream.Engine({"cam": "test://smpte"}, config=cfg, control=ctl, publish=pub) as eng, \
            ceustream.Collector(pub) as sub:
        assert eng.wait_for_video(60), "no video from videotestsrc"
        with pytest.raises(ceustream.UsageError, match="no exam running"):
            eng.mark_arrival()
        with pytest.raises(ceustream.InputError, match="outside the video frame"):
            eng.start_exam(roi=(300, 200, 64, 64))  # the pattern is 320x240
        with pytest.raises(ceustream.UsageError, match="roi"):
            eng.start_exam(roi=(1, 2, 3))
        assert eng.status()["status"]["phase"] == "idle"  # nothing was started
        exam = eng.start_exam(roi="100,80,40,40", exam="emb1")
        assert exam == "emb1"
        with pytest.raises(ceustream.UsageError, match="running"):
            eng.start_exam(roi=(100, 80, 40, 40), exam="emb2")
        # another process's view of the same engine: the control socket
        answer = ceustream.control(ctl, {"cmd": "status"}, timeout_s=10)
        assert answer["ok"] and answer["status"]["exam"] == "emb1", answer
        # the published messages (a second client): the exam's status heartbeat first
        assert sub.wait_for(lambda m: m.exam == "emb1", 30), "no message on the PUB socket"
        t0 = eng.mark_arrival()
        assert t0 >= 0 and eng.stream_time() >= 0
        seen = []
        for s in eng.scores(timeout_s=60):
            seen.append(s)
            if len(seen) == 2:
                break
        assert [s.slots_filled for s in seen] == [1, 2] and not any(s.final for s in seen)
        assert all(s.exam == "emb1" and 0.0 <= s.score <= 1.0 for s in seen)
        got = sub.wait_for(lambda m: isinstance(m, ceustream.ScoreMessage)
                           and m.slots_filled == 2, 30)
        assert got and got.score == pytest.approx(seen[1].score, abs=1e-6)
        r = eng.stop_exam()
        assert isinstance(r, ceustream.Result) and r.exam == "emb1"
        assert not r.final and "stopped_early" in r.flags and 2 <= r.slots_filled < 30
        assert eng.result("emb1", timeout_s=5) == r and eng.results == [r]
        # the scores of an ended exam end
        assert [s.slots_filled for s in eng.scores("emb1", timeout_s=5)][:2] == [1, 2]
        assert eng.health()["sources"]["cam"]["state"] == "playing"
    with pytest.raises(ceustream.UsageError, match="closed"):
        eng.status()
