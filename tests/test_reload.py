"""reload_model on real ONNX files: a second model (the shipped one renamed) serves exams
that start after it while a running exam keeps the model it started with; a corrupt file, a
file without metadata, a graph ONNX Runtime cannot load and a missing file are refused with
one line and the old model stays."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from ceustream.engine.app.modelslot import ModelSlot
from ceustream.engine.app.session import ExamSession
from ceustream.engine.core import config, modelmeta
from ceustream.engine.core.errors import ModelError
from ceustream.engine.core.roi import Roi


@pytest.fixture(scope="module")
def shipped():
    return modelmeta.read(modelmeta.shipped_model_path())


def renamed_copy(src, dst, name: str):
    """The shipped model with another metadata name (a real, valid second model)."""
    m = onnx.load(str(src))
    for p in m.metadata_props:
        if p.key == modelmeta.META_KEY:
            meta = json.loads(p.value)
            meta["name"] = name
            p.value = json.dumps(meta, sort_keys=True)
    onnx.save(m, str(dst))
    return dst


@pytest.fixture
def slot(shipped):
    s = ModelSlot.open(shipped, "onnxruntime", config.load(env={}))
    yield s
    s.close()


def run_exam(lease, exam: str):
    s = ExamSession(exam=exam, model=lease.model, backend=lease.backend,
                    roi=Roi(0, 0, 64, 64), backend_note=lease.note)
    return s, s.set_t0(0.0)


def feed(s, sampler, start_s: float, until_s: float):
    """Frames every 0.5 s in [start_s, until_s); each frame depends on its time only."""
    for k in range(int(start_s * 2), int(until_s * 2)):
        frame = np.random.default_rng(k).integers(0, 256, (64, 64), dtype=np.uint8)
        s.add(sampler.offer(k * 0.5, frame))


def test_reload_serves_new_exams_and_never_a_running_one(slot, shipped, tmp_path):
    second = renamed_copy(shipped.path, tmp_path / "second.onnx", "cnn3d-second")
    running = slot.lease()
    s, sampler = run_exam(running, "before")
    feed(s, sampler, 0.0, 20.0)  # the exam is under way when the model changes
    old_generation = running.generation

    answer = slot.reload(str(second))
    assert answer["model"]["name"] == "cnn3d-second"
    assert answer["replaced"]["name"] == shipped.meta.name
    assert answer["running_exams_keep_old"] == 1

    feed(s, sampler, 20.0, 190.0)  # the running exam finishes on its own model
    res = s.finish()
    assert res["final"] and res["model"]["name"] == shipped.meta.name
    assert all(sc.score == sc.score for sc in s.scores)
    assert not old_generation.closed  # still leased
    running.release()
    assert old_generation.closed  # closed with its last exam
    running.release()  # idempotent

    with slot.lease() as after:
        assert after.model.meta.name == "cnn3d-second"
        s2, sampler2 = run_exam(after, "after")
        feed(s2, sampler2, 0.0, 190.0)
        res2 = s2.finish()
        assert res2["final"] and res2["model"]["name"] == "cnn3d-second"
        # another file (its own sha256) with the same weights: the same frames score the same
        assert res2["model"]["sha256"] != res["model"]["sha256"]
        assert res2["score"] == res["score"]
    assert slot.describe()["reloads"] == 1 and slot.describe()["generation"] == 2


def no_metadata(src, dst):
    m = onnx.load(str(src))
    del m.metadata_props[:]
    onnx.save(m, str(dst))
    return dst


def broken_graph(src, dst):
    """Valid protobuf and metadata, but a graph with no nodes: ONNX Runtime refuses it."""
    m = onnx.load(str(src))
    del m.graph.node[:]
    onnx.save(m, str(dst))
    return dst


def corrupt(src, dst):
    data = bytearray(src.read_bytes()[:5000])
    data[100:200] = b"\xff" * 100
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("make,expect", [
    (corrupt, "not a readable ONNX file|metadata|cannot load"),
    (no_metadata, "no 'ceustream' metadata"),
    (broken_graph, "cannot load"),
    (lambda src, dst: dst, "file not found"),
    (lambda src, dst: (dst.write_bytes(b""), dst)[1], "metadata|not a readable"),
])
def test_a_bad_file_is_refused_in_one_line_and_the_old_model_stays(slot, shipped, tmp_path,
                                                                     make, expect):
    before = slot.describe()
    bad = make(shipped.path, tmp_path / "bad.onnx")
    with pytest.raises(ModelError, match=expect) as e:
        slot.reload(str(bad))
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)
    assert str(bad) in str(e.value) or "bad.onnx" in str(e.value)
    after = slot.describe()
    assert after["sha256"] == before["sha256"] and after["generation"] == before["generation"]
    assert after["reloads_refused"] == before["reloads_refused"] + 1
    with slot.lease() as lease:  # and it still scores
        p = lease.backend.infer(np.zeros(shipped.meta.input_shape(1), np.float32))
        assert 0.0 <= float(p[0]) <= 1.0


@pytest.mark.parametrize("path", [None, 5, "", "   ", ["a.onnx"]])
def test_a_bad_path_value_is_refused(slot, path):
    with pytest.raises(ModelError, match="path"):
        slot.reload(path)
    assert slot.describe()["generation"] == 1


def test_the_same_file_twice_is_a_plain_reload(slot, shipped, tmp_path):
    copy = shutil.copy(shipped.path, tmp_path / "same.onnx")
    slot.reload(copy)
    assert slot.describe()["generation"] == 2 and slot.describe()["sha256"] == shipped.sha256


@pytest.mark.parametrize("path,expect", [
    ("/dev/zero", "not a regular file"),
    ("/tmp", "not a regular file"),
])
def test_a_device_or_folder_is_refused_before_reading(slot, path, expect):
    with pytest.raises(ModelError, match=expect) as e:
        slot.reload(path)
    assert "\n" not in str(e.value)
    assert slot.describe()["generation"] == 1 and slot.describe()["reloads_refused"] == 1


def test_a_fifo_is_refused_without_opening_it(slot, tmp_path):
    """Opening a FIFO for reading would block until a writer comes: it is never opened."""
    import os

    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ModelError, match="not a regular file"):
        slot.reload(str(fifo))


def test_a_file_over_the_size_limit_is_refused_before_reading(shipped, tmp_path):
    cfg = config.load(env={"CEUSTREAM_ENGINE__MAX_MODEL_MB": "0.001"})  # 1000 bytes
    s = ModelSlot.open(shipped, "onnxruntime", cfg)
    try:
        big = tmp_path / "big.onnx"
        with open(big, "wb") as f:  # sparse: 2 GB that are never read
            f.truncate(2_000_000_000)
        with pytest.raises(ModelError, match=r"2000\.0 MB, more than engine.max_model_mb"):
            s.reload(str(big))
        assert s.describe()["generation"] == 1
    finally:
        s.close()
