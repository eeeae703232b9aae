"""Scores that know their limits (issue 18): the out-of-distribution check on the network's
embedding (``core.domain``), the label rule out of domain, and site adaptation (``adapt``).

The out-of-domain exams are the site sample of ``../shared/site-sample`` (an independent
renderer the project did not write); the in-domain ones are the project's own simulated exams.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ceustream.engine.core import config, domain, modelmeta, physiology
from ceustream.engine.core.roi import Roi

from conftest import ROOT, last_json, one_line_error, run_cli, replay_published

SITE = ROOT.parent / "shared" / "site-sample"
needs_site = pytest.mark.skipif(not (SITE / "manifest.csv").is_file(),
                                reason="the site sample (../shared/site-sample) is not beside "
                                "this checkout")


def site_rows() -> list[dict]:
    return list(csv.DictReader(open(SITE / "manifest.csv")))


# -- the k-NN distance, by hand ------------------------------------------------------------
def test_knn_distance_is_the_kth_nearest_reference_row_in_standard_units():
    ref = {"mean": [1.0, 0.0], "std": [2.0, 1.0], "k": 2,
           "reference": [[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [6.0, 8.0]]}
    # (5, 0) standardises to (2, 0): distances 2, sqrt(1+16)=4.123, sqrt(4+1)=2.236, 8.944
    d = domain.knn_distances(np.array([[5.0, 0.0]]), ref)
    assert d[0] == pytest.approx(np.sqrt(5.0))
    # the reference's own rows, their zero distance skipped: row 0 -> 1.0 (row 2) then 5.0
    d_self = domain.knn_distances(np.array([[1.0, 0.0]]), ref, exclude_self=True)
    assert d_self[0] == pytest.approx(5.0)


def test_fit_knn_threshold_is_the_heldout_quantile_and_decide_says_in_or_out():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(400, 4))
    held = rng.normal(size=(200, 4))
    ref = domain.fit_knn(train, held, k=3, quantile=0.9)
    d = domain.knn_distances(held, ref)
    assert np.mean(d > ref["threshold"]) == pytest.approx(0.1, abs=0.01)
    far = domain.knn_distances(rng.normal(size=(50, 4)) + 6.0, ref)
    assert (far > ref["threshold"]).all()
    assert domain.decide(ref["threshold"] * 2, ref)["state"] == "out"
    assert domain.decide(ref["threshold"] / 2, ref)["state"] == "in"
    assert domain.decide(None, ref)["state"] == "unknown"
    assert domain.decide(float("nan"), ref)["state"] == "unknown"
    # a site added to the reference is inside it afterwards, threshold unchanged
    site = 0.1 * rng.normal(size=(12, 4)) + 6.0  # one renderer: a tight cluster far away
    ext = domain.extend_reference(ref, site, "site")
    assert ext["threshold"] == ref["threshold"]
    assert (domain.knn_distances(site, ext) <= ext["threshold"]).all()


def test_shipped_model_carries_the_embedding_output_and_its_reference():
    m = modelmeta.read(modelmeta.shipped_model_path())
    ood = m.meta.analysis["ood"]
    assert ood["method"] == domain.METHOD and ood["output"] == "embedding"
    assert len(ood["reference"]) >= 1000 and ood["threshold"] > 0
    import onnxruntime as ort

    s = ort.InferenceSession(str(m.path), providers=["CPUExecutionProvider"])
    assert [o.name for o in s.get_outputs()] == ["prob", "embedding"]
    x = np.zeros(m.meta.input_shape(2), np.float32)
    prob, emb = s.run(None, {m.meta.input_name: x})
    assert prob.shape == (2, 2) and emb.shape == (2, len(ood["mean"]))


# -- through the engine ------------------------------------------------------------------
@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    c = config.load(env={})
    c["journal"]["dir"] = str(tmp_path_factory.mktemp("journal"))
    return c


@needs_site
@pytest.mark.parametrize("mode", ["t0", "injection"])
def test_a_site_exam_is_outside_the_domain_and_gets_no_confident_label(mode, cfg, port):
    """An exam of a renderer the model never saw, t0 given and detected: the result and every
    late score say so; the final label is 'indeterminate', never HCC / non-HCC."""
    from ceustream.engine.app.replay import ReplayOptions

    r = site_rows()[1]
    opts = ReplayOptions(roi=Roi.parse(r["roi"]), t0=float(r["t0"]) if mode == "t0" else None,
                         injection=0.0 if mode == "injection" else None, journal=False)
    res, msgs = replay_published(SITE / r["path"], opts, cfg, port)
    assert res["final"]
    assert res["domain"]["state"] == "out", res["domain"]
    assert res["domain"]["distance"] > res["domain"]["threshold"]
    assert res["label"] == domain.INDETERMINATE
    assert "out_of_distribution" in res["flags"] and "out_of_distribution" in res["warnings"]
    assert res["features"]["category"]  # what still holds: the TIC reading
    # ... and the score stands on it: the physiology reading's P(HCC) of those features
    f = res["features"]
    assert res["score_basis"] == "physiology"
    assert res["score"] == pytest.approx(physiology.probability(f), abs=1e-6)
    assert res["score_network"] is not None
    scores = [json.loads(m[1]) for m in msgs if m[0].startswith(b"score.")]
    final = [s for s in scores if s["final"]]
    assert len(final) == 1 and final[0]["label"] == domain.INDETERMINATE
    assert final[0]["domain"]["state"] == "out"
    assert final[0]["score_basis"] == "physiology"
    assert final[0]["score"] == pytest.approx(res["score"], abs=1e-6)
    # the final score message carries the very reading it stands on
    assert final[0]["features"]["summary"] == f["summary"]
    # before enough slots the domain is not decided, and no score carries a label
    early = [s for s in scores if s["slots_filled"] < domain.MIN_SLOTS]
    assert early and all(s["domain"]["state"] == "unknown" and s["label"] is None
                         for s in early)
    assert not any(s["label"] in ("HCC", "non-HCC") for s in scores)


def test_an_exam_of_a_trained_renderer_is_inside_the_domain(sim_exam, cfg):
    from ceustream.engine.app.replay import ReplayOptions, replay

    path, truth = sim_exam
    r = replay(path, ReplayOptions(roi=Roi(*truth["roi"]), t0=truth["t0_s"], journal=False), cfg)
    assert r["final"] and r["domain"]["state"] == "in", r["domain"]
    assert r["label"] in ("HCC", "non-HCC")
    assert r["score_basis"] == "network" and r["score"] == r["score_network"]
    assert "out_of_distribution" not in r["flags"]


@needs_site
def test_replay_cli_says_outside_the_domain_in_words(env):
    r = site_rows()[0]
    p = run_cli(["replay", str(SITE / r["path"]), "--roi", r["roi"], "--t0", r["t0"],
                 "--speed", "max", "--no-publish", "-q"], env)
    assert p.returncode == 0, p.stderr
    assert "label indeterminate" in p.stdout
    assert "OUTSIDE THE MODEL'S DOMAIN" in p.stdout and "TIC reading:" in p.stdout


# -- adapt ---------------------------------------------------------------------------------
def write_manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "roi", "t0", "injection"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in ("path", "label", "roi", "t0", "injection")})
    return path


@needs_site
def test_adapt_refuses_too_few_exams_or_one_class_in_one_line(tmp_path, env):
    rows = [dict(r, path=str(SITE / r["path"])) for r in site_rows()]
    few = write_manifest(tmp_path / "few.csv", rows[:6])
    p = run_cli(["adapt", str(few), "--out", str(tmp_path / "a.onnx")], env)
    assert p.returncode == 3 and "at least 10" in one_line_error(p)
    one = write_manifest(tmp_path / "one.csv", [r for r in rows if r["label"] == "1"] * 2)
    p = run_cli(["adapt", str(one), "--out", str(tmp_path / "a.onnx")], env)
    assert p.returncode == 3, p.stderr
    assert "at least 10" in one_line_error(p) or "both classes" in one_line_error(p)
    uniq = [dict(r, t0=str(float(r["t0"]) + 0.01 * i)) for i, r in
            enumerate([r for r in rows if r["label"] == "1"] * 2)]
    one = write_manifest(tmp_path / "one.csv", uniq)
    p = run_cli(["adapt", str(one), "--out", str(tmp_path / "a.onnx")], env)
    assert p.returncode == 3 and "both classes" in one_line_error(p)
    p = run_cli(["adapt", str(one), "--out", str(tmp_path / "a.txt")], env)
    assert p.returncode == 2 and ".onnx" in one_line_error(p)
    assert not (tmp_path / "a.onnx").exists()


@needs_site
@pytest.mark.slow
def test_adapt_writes_a_model_that_says_what_it_was_adapted_on_and_puts_the_site_in_domain(
        tmp_path, env):
    work = tmp_path / "site"
    work.mkdir()
    for r in site_rows():
        shutil.copy(SITE / r["path"], work / r["path"])
    shutil.copy(SITE / "manifest.csv", work / "manifest.csv")
    out = tmp_path / "site.onnx"
    p = run_cli(["adapt", str(work / "manifest.csv"), "--out", str(out)], env, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    rep = last_json(p.stdout)
    cv = rep["cross_validation"]
    assert cv["method"] == "leave-one-out" and cv["n"] >= 10
    for k in ("network", "tic_model", "fusion"):
        lo, hi = cv[k]["ROC_AUC_ci95"]
        assert 0.0 <= lo <= cv[k]["ROC_AUC"] <= hi <= 1.0
    m = modelmeta.read(out)
    ad = m.meta.provenance["adapted"]
    import hashlib

    assert ad["count"] == cv["n"] and ad["manifest_sha256"] == hashlib.sha256(
        (work / "manifest.csv").read_bytes()).hexdigest()
    assert ad["base_model"]["sha256"] == modelmeta.read(modelmeta.shipped_model_path()).sha256
    assert "fusion" in m.meta.analysis and "tic" in m.meta.analysis
    # served like any model; the site is inside the adapted model's domain exactly when the
    # adapted score's leave-one-out AUC earned it
    extended = cv["fusion"]["ROC_AUC"] >= 0.70
    assert ad["domain_extended"] == extended
    assert (len(m.meta.analysis["ood"]["reference"]) > len(modelmeta.read(
        modelmeta.shipped_model_path()).meta.analysis["ood"]["reference"])) == extended
    r = site_rows()[1]
    q = run_cli(["replay", str(work / r["path"]), "--roi", r["roi"], "--t0", r["t0"],
                 "--speed", "max", "--json", "--no-publish", "--model", str(out), "-q"], env)
    assert q.returncode == 0, q.stderr
    res = last_json(q.stdout)
    if extended:
        assert res["domain"]["state"] == "in" and res["label"] in ("HCC", "non-HCC")
    else:
        assert res["domain"]["state"] == "out" and res["label"] == "indeterminate"
    assert res["model"]["name"] == m.meta.name
    # the adapted score is the fusion's, the network's own beside it
    assert res["score_network"] is not None
