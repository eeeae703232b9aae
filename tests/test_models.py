"""Models: the paper's metrics (reproducing its tables), the simulator's physiology and
determinism, training and export with their error handling, FP16 safety of the shipped model."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnxruntime as ort
import pytest

from ceustream.engine.core import config
from ceustream.engine.core.arrival import ArrivalDetector
from ceustream.engine.core.modelmeta import read, shipped_model_path
from ceustream.models import metrics
from ceustream.models.simulator.clips import simulate_clip
from ceustream.models.simulator.physiology import HCC, NON_HCC, sample_case
from ceustream.models.simulator.scene import Scene

from conftest import last_json, one_line_error, run_cli



def test_metrics_reproduce_the_papers_tables():
    for name, cm in metrics.PAPER_CONFUSIONS.items():
        got = metrics.table_row(cm)
        want = metrics.PAPER_TABLES[name]
        for k in want:
            assert round(got[k], 2) == pytest.approx(want[k], abs=0.006), (name, k, got[k])


def test_the_papers_auc_column_is_balanced_accuracy():
    """The published AUC column equals (SE + SP) / 2 of the published SE and SP in every row
    (a one-point ROC of hard labels), which is why README calls it balanced accuracy."""
    for name, row in metrics.PAPER_TABLES.items():
        assert row["AUC"] == pytest.approx((row["SE"] + row["SP"]) / 2, abs=0.01), name


def test_roc_auc_is_the_ranking_probability():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.random(300) + 0.3 * y
    pos, neg = s[y == 1], s[y == 0]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert metrics.roc_auc(y, s) == pytest.approx(brute)
    assert metrics.roc_auc([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_evaluate_gives_bootstrap_intervals_and_plots(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.clip(0.5 * y + rng.normal(0.25, 0.2, 200), 0, 1)
    ev = metrics.evaluate(y, s, n_boot=300)
    lo, hi = ev["ci95"]["ROC_AUC"]
    assert lo < ev["metrics"]["ROC_AUC"] < hi
    assert metrics.plot_roc({"x": (y, s)}, tmp_path / "r.png").stat().st_size > 1000
    cm = metrics.Confusion(**ev["confusion"])
    assert metrics.plot_confusion(cm, tmp_path / "c.png").stat().st_size > 1000


def test_simulator_is_deterministic_by_seed():
    a = simulate_clip(sample_case(5))
    assert np.array_equal(a, simulate_clip(sample_case(5)))
    assert not np.array_equal(a, simulate_clip(sample_case(6)))
    assert a.shape == (30, 64, 64) and a.dtype == np.uint8


def test_acquisition_variation_softens_speckle_but_keeps_the_patients():
    from ceustream.models.simulator.clips import Acquisition
    from ceustream.models.simulator.cohort import make_cohort

    case = sample_case(5)
    clean = simulate_clip(case).astype(float)
    soft = simulate_clip(case, acquisition=Acquisition(blur_px=1.0)).astype(float)
    # the time-intensity curve is kept (mean level per slot), the speckle is smoothed
    assert np.abs(clean.mean(axis=(1, 2)) - soft.mean(axis=(1, 2))).max() < 3.0
    assert soft[10].std() < 0.95 * clean[10].std()
    late = simulate_clip(case, acquisition=Acquisition(t0_error_s=1.0))
    assert not np.array_equal(late, clean)
    a, b = make_cohort(24, 77), make_cohort(24, 77, varied=True)
    assert np.array_equal(a.seeds, b.seeds) and np.array_equal(a.labels, b.labels)
    assert a.subtypes == b.subtypes and not np.array_equal(a.clips, b.clips)
    assert np.array_equal(b.clips, make_cohort(24, 77, varied=True).clips)  # deterministic


def test_simulator_follows_the_published_class_mixtures():
    hcc = [sample_case(s, HCC) for s in range(600)]
    non = [sample_case(10_000 + s, NON_HCC) for s in range(600)]
    hp, hw = Counter(c.pattern for c in hcc), Counter(c.washout for c in hcc)
    assert 0.82 < hp["nonrim"] / 600 < 0.92            # non-rim APHE in 85-90 % of HCC
    assert 0.52 < hw["late_mild"] / 600 < 0.64
    assert hw["early_mild"] and hw["marked"] and hw["none"]  # the real exceptions exist
    rim = sum(c.pattern == "rim" for c in non) / 600
    assert 0.2 < rim < 0.45
    # washout onset (computed from the curves): mostly >= 60 s for HCC, < 60 s for non-HCC
    h_on = [c.washout_onset() for c in hcc]
    n_on = [c.washout_onset() for c in non]
    late_h = np.mean([o is None or o - 0 >= 60 for o in h_on])
    early_n = np.mean([o is not None and o < 60 for o in n_on])
    assert late_h > 0.6 and early_n > 0.5
    # lesions fill 10-25 s after injection
    arr = np.array([c.lesion_arrival for c in hcc + non])
    assert np.percentile(arr, 5) > 8 and np.percentile(arr, 95) < 25
    # HCC-like non-HCC (combined HCC-ICC) exist: the classes overlap
    mimic = [c for c in non if c.pattern == "nonrim" and c.washout in ("late_mild", "none")]
    assert 0.05 < len(mimic) / 600 < 0.3


def test_arrival_detection_on_simulated_exams():
    cfg = config.load(env={})
    errs = []
    for seed in range(60):
        sc = Scene(sample_case(seed), injection_s=5.0)
        roi = sc.roi()
        det = ArrivalDetector.from_config(5.0, cfg["arrival"])
        t, res = 5.0, None
        while res is None and t < 60:
            res = det.offer(t, sc.render_luma(t, roi).mean())
            t += 0.125
        res = res or det.finish()
        assert res.method == "detected"
        errs.append(res.t0 - (5.0 + sc.case.lesion_arrival))
    errs = np.abs(errs)
    assert np.mean(errs <= 1.0) >= 0.9 and errs.max() < 2.5


def test_fp16_model_is_safe_on_a_simulated_cohort():
    """FP16 ONNX (precision in the graph) against FP32, in ONNX Runtime: the check that can be
    made without a GPU before TensorRT FP16 is trusted."""
    from ceustream.models.simulator.cohort import make_cohort

    m = read(shipped_model_path())
    assert m.fp16_path is not None
    co = make_cohort(200, 4242)
    x = co.clips[:, None].astype(np.float32) / 255.0
    s32 = ort.InferenceSession(str(m.path), providers=["CPUExecutionProvider"])
    s16 = ort.InferenceSession(str(m.fp16_path), providers=["CPUExecutionProvider"])
    assert s16.get_inputs()[0].type == "tensor(float)"  # FP32 I/O kept
    p32 = np.concatenate([s32.run(None, {"clip": x[i:i + 25]})[0][:, 1] for i in range(0, 200, 25)])
    p16 = np.concatenate([s16.run(None, {"clip": x[i:i + 25]})[0][:, 1] for i in range(0, 200, 25)])
    assert np.abs(p32 - p16).max() < 0.01
    assert np.mean((p32 >= 0.5) == (p16 >= 0.5)) >= 0.99


def test_patient_split_never_leaks_and_expansion_stays_in_training():
    from ceustream.models.train import expand_minority, patient_split

    labels = np.array([1] * 100 + [0] * 16)
    sp = patient_split(labels, 0)
    parts = [set(sp.train), set(sp.val), set(sp.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == 116
    assert labels[sp.test].sum() == 20 and (labels[sp.test] == 0).sum() >= 3
    x = np.arange(len(sp.train) * 4, dtype=np.uint8).reshape(len(sp.train), 1, 2, 2)
    y = labels[sp.train]
    xe, ye = expand_minority(x, y, None, True)
    assert (ye == 0).sum() == 2 * (y == 0).sum() and (ye == 1).sum() == (y == 1).sum()


def test_ship_is_labelled_simulated_or_untrained():
    m = read(shipped_model_path())
    assert m.meta.trained_on in ("simulated", "untrained")
    assert m.path.stat().st_size < 20e6 and m.fp16_path.stat().st_size < 20e6


@pytest.mark.slow
def test_train_export_and_serve_a_small_model(tmp_path, env, coded_mp4):
    pytest.importorskip("torch")
    out = tmp_path / "run"
    p = run_cli(["train", "--cohort", "40:3", "--epochs", "1", "--out", str(out)], env,
                timeout=900)
    assert p.returncode == 0, p.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["expanded"] and rep["split"]["test"] >= 8
    assert "expansion (after the patient split)" in p.stderr
    m = read(out / "model.onnx")
    assert m.meta.trained_on == "simulated" and m.fp16_path is not None
    assert m.meta.provenance["weights_sha256"]
    # the engine serves it as it is
    from media import ROI

    r = run_cli(["replay", str(coded_mp4.path), "--roi", ",".join(map(str, ROI)), "--t0",
                 str(coded_mp4.arrival), "--model", str(out / "model.onnx"), "--json",
                 "--no-publish"], env)
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout)["model"]["sha256"] == m.sha256
    # export from the checkpoint matches PyTorch (FP32 1e-4, FP16 1e-2)
    e = run_cli(["export", str(out / "checkpoint.pt"), "--out", str(tmp_path / "x.onnx"),
                 "--trained-on", "simulated"], env)
    assert e.returncode == 0, e.stderr
    d = last_json(e.stdout)
    assert d["max_abs_diff_fp32"] < 1e-4 and d["max_abs_diff_fp16"] < 1e-2


def test_train_refuses_bad_clip_folders_listing_the_rows(tmp_path, env):
    pytest.importorskip("torch")
    data = tmp_path / "clips"
    data.mkdir()
    np.save(data / "a.npy", np.zeros((30, 64, 64), np.uint8))
    np.save(data / "b.npy", np.zeros((30, 32, 32), np.uint8))
    np.save(data / "c.npy", np.zeros((30, 64, 64), np.float32))
    (data / "labels.csv").write_text("id,label\na,HCC\nb,HCC\nc,non-HCC\nd,non-HCC\na,benign\n")
    out = tmp_path / "out"
    p = run_cli(["train", "--data", str(data), "--epochs", "1", "--out", str(out)], env)
    assert p.returncode == 3
    line = one_line_error(p)
    for row in ("row 3", "row 4", "row 5", "row 6"):
        assert row in line
    assert "shape" in line and "float32" in line and "not found" in line and "benign" in line
    assert not (out / "model.onnx").exists()


def test_export_refuses_what_is_not_a_checkpoint(tmp_path, env):
    pytest.importorskip("torch")
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"nope")
    p = run_cli(["export", str(bad), "--out", str(tmp_path / "m.onnx")], env)
    assert p.returncode == 3 and "checkpoint" in one_line_error(p)
    assert not (tmp_path / "m.onnx").exists()
