"""The shared batching scorer: several exams scoring at once get, to the last bit, the scores
they get alone (ONNX Runtime CPU, the shipped model), batches really form, a lone caller
never waits for the window, and one exam's bad clip never reaches another's batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ceustream.engine import backends
from ceustream.engine.app.batching import BatchingScorer
from ceustream.engine.app.session import ExamSession
from ceustream.engine.core import modelmeta
from ceustream.engine.core.roi import Roi

DEADLINE_S = 120.0


@pytest.fixture(scope="module")
def model():
    return modelmeta.read(modelmeta.shipped_model_path())


@pytest.fixture(scope="module")
def backend(model):
    be, _ = backends.create("onnxruntime", model, threads=1)
    be.warmup((1,))
    yield be
    be.close()


def clips(model, seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((n, *model.meta.input_shape(1)), dtype=np.float32)


def run_threads(n: int, target) -> list:
    """Starts ``n`` threads on ``target(i)``, waits for all (generous deadline), returns
    their results in order; a thread's exception fails the test."""
    out: list = [None] * n
    errors: list = []

    def body(i):
        try:
            out[i] = target(i)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
        assert not t.is_alive(), "a scoring thread did not finish"
    assert not errors, errors
    return out


@pytest.mark.parametrize("max_batch", [32, 3])
def test_concurrent_clips_score_bit_identical(model, backend, max_batch):
    n_threads, rounds = 6, 8
    data = [clips(model, 100 + i, rounds) for i in range(n_threads)]
    alone = [[backend.infer(d[r])[0] for r in range(rounds)] for d in data]
    scorer = BatchingScorer(backend, window_s=0.5, max_batch=max_batch)
    start = threading.Barrier(n_threads)

    def exam(i):
        got = []
        for r in range(rounds):
            start.wait(DEADLINE_S)  # every round, all exams ask at once
            got.append(scorer.infer(data[i][r])[0])
        return got

    batched = run_threads(n_threads, exam)
    for i in range(n_threads):
        for r in range(rounds):
            assert batched[i][r].tobytes() == alone[i][r].tobytes(), (i, r)
    assert scorer.stats.clips == n_threads * rounds
    assert scorer.stats.largest > 1, scorer.stats
    assert scorer.stats.largest <= max_batch
    assert scorer.stats.calls < n_threads * rounds


def test_sessions_share_a_scorer_and_keep_their_scores(model, backend):
    """ExamSessions (unchanged) holding the scorer as their backend: every score of every
    exam equals the same exam scored alone on the bare backend."""
    roi = Roi(0, 0, 96, 80)

    def run_exam(be, seed):
        s = ExamSession(exam=f"e{seed}", model=model, backend=be, roi=roi)
        sampler = s.set_t0(0.0)
        rng = np.random.default_rng(seed)
        for k in range(0, 2 * 185):
            t = k * 0.5
            frame = rng.integers(0, 256, (80, 96), dtype=np.uint8)
            s.add(sampler.offer(t, frame))
        s.finish()
        return [sc.score for sc in s.scores], s.result()

    seeds = [7, 8, 9, 10]
    alone = [run_exam(backend, sd) for sd in seeds]
    scorer = BatchingScorer(backend, window_s=0.05)
    together = run_threads(len(seeds), lambda i: run_exam(scorer, seeds[i]))
    for (a_scores, a_res), (b_scores, b_res) in zip(alone, together):
        assert len(a_scores) == 30 and a_res["final"]
        assert b_scores == a_scores  # floats compared exactly
        assert b_res["score"] == a_res["score"] and b_res["label"] == a_res["label"]
    assert scorer.stats.clips == 30 * len(seeds)


def test_alone_is_batch_one_and_never_waits_for_the_window(model, backend):
    scorer = BatchingScorer(backend, window_s=3600.0)  # a wait would hang the test
    done = threading.Event()
    x = clips(model, 1, 5)

    def alone():
        for r in range(5):
            scorer.infer(x[r])
        done.set()

    t = threading.Thread(target=alone, daemon=True)
    t.start()
    assert done.wait(DEADLINE_S), "a lone caller waited for the batch window"
    assert scorer.stats.sizes == {1: 5}


def test_a_bad_clip_is_refused_and_others_are_untouched(model, backend):
    scorer = BatchingScorer(backend, window_s=0.0)
    with pytest.raises(ValueError, match="does not match the model"):
        scorer.infer(np.zeros((1, 1, 29, 64, 64), np.float32))
    with pytest.raises(ValueError, match="at least one row"):
        scorer.infer(np.zeros((0, 1, 30, 64, 64), np.float32))
    assert scorer.stats.calls == 0
    # a NaN clip in a batch: the other rows stay exactly what they are alone
    good = clips(model, 5, 3).reshape(3, *model.meta.input_shape(1)[1:])
    bad = np.full((1, *model.meta.input_shape(1)[1:]), np.nan, np.float32)
    out = scorer.infer(np.concatenate([good[:2], bad, good[2:]]))
    assert out[[0, 1, 3]].tobytes() == np.array(
        [backend.infer(good[i:i + 1])[0] for i in range(3)]).tobytes()


def test_observers_see_every_batch_and_a_failing_one_is_harmless(model, backend):
    scorer = BatchingScorer(backend, window_s=0.0)
    seen = []
    scorer.observe(lambda size, spent, waits: seen.append((size, spent, len(waits))))
    scorer.observe(lambda *a: 1 / 0)
    scorer.infer(clips(model, 2, 1)[0])
    scorer.infer(clips(model, 3, 2).reshape(2, *model.meta.input_shape(1)[1:]))
    assert [s[0] for s in seen] == [1, 2] and all(s[1] >= 0 for s in seen)


def test_closed_scorer_refuses(model):
    be, _ = backends.create("onnxruntime", model, threads=1)
    scorer = BatchingScorer(be)
    assert scorer.describe()["name"] == "onnxruntime" and scorer.name == "onnxruntime"
    scorer.close()
    with pytest.raises(RuntimeError, match="closed"):
        scorer.infer(clips(model, 4, 1)[0])


@pytest.mark.parametrize("window", [float("nan"), float("inf"), -1.0])
def test_bad_window_refused(backend, window):
    with pytest.raises(ValueError, match="window"):
        BatchingScorer(backend, window_s=window)
