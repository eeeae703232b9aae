"""QA over an archive, run as a user runs it (the CLI in a subprocess): bad rows listed and the
rest scored, worker processes and a local Ray instance giving the same results as one
process, resuming, disk errors, the self-contained report, and the paired comparison of two
runs (DeLong, McNemar) checked against hand-computed examples."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from ceustream.engine.app import compare

from conftest import one_line_error, run_cli
from media import ROI

ROI_S = ",".join(map(str, ROI))


@pytest.fixture(scope="module")
def archive(tmp_path_factory, coded_mp4, coded_mkv25, coded_avi15, short_mp4):
    """Five recordings (one too short: partial), a missing file, a duplicate, a bad ROI and
    a row with both t0 and injection (t0 is used)."""
    d = tmp_path_factory.mktemp("archive")
    for c, name in ((coded_mp4, "a.mp4"), (coded_mkv25, "b.mkv"), (coded_avi15, "c.avi"),
                    (short_mp4, "short.mp4")):
        shutil.copy(c.path, d / name)
    (d / "manifest.csv").write_text(
        "path,label,roi,t0,injection\n"
        f"a.mp4,HCC,\"{ROI_S}\",{coded_mp4.arrival},\n"                          # row 2
        f"b.mkv,non-HCC,\"{ROI_S}\",,{coded_mkv25.injection}\n"                  # row 3
        f"c.avi,HCC,\"{ROI_S}\",{coded_avi15.arrival},{coded_avi15.injection}\n"  # row 4
        f"short.mp4,non-HCC,\"{ROI_S}\",{short_mp4.arrival},\n"                  # row 5 partial
        f"missing.mp4,HCC,\"{ROI_S}\",19,\n"                                     # row 6 bad
        f"a.mp4,HCC,\"{ROI_S}\",{coded_mp4.arrival},\n"                          # row 7 dup
        "b.mkv,non-HCC,\"1,2,3\",10,\n"                                          # row 8 bad
        f"a.mp4,non-HCC,\"{ROI_S}\",20.5,\n")                                    # row 9
    return d


def records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def scores(out: Path) -> dict[str, float | None]:
    return {r["key"]: r["score"] for r in records(out) if r.get("key")}


@pytest.fixture(scope="module")
def run1(archive, tmp_path_factory):
    """The archive scored in one process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEUSTREAM_")}
    out = tmp_path_factory.mktemp("qa") / "run1"
    p = run_cli(["qa", str(archive / "manifest.csv"), "--out", str(out), "--jobs", "1"], env,
                timeout=600)
    return p, out


def test_bad_rows_are_listed_and_the_rest_run(run1):
    p, out = run1
    assert p.returncode == 4, p.stderr  # rows failed: exit 4, not a refusal
    assert "Traceback" not in p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["exams"] == 5 and summary["scored_final"] == 4
    assert summary["bad_rows"] == 2 and summary["duplicates"] == 1
    assert 0.0 <= summary["ROC_AUC"] <= 1.0
    recs = {r["row"]: r for r in records(out)}
    assert recs[6]["status"] == "bad_row" and "missing.mp4 not found" in recs[6]["error"]
    assert recs[7]["status"] == "duplicate" and recs[7]["duplicate_of"] == 2
    assert recs[8]["status"] == "bad_row" and "roi" in recs[8]["error"]
    assert recs[5]["status"] == "partial" and not recs[5]["final"]
    # both t0 and injection: t0 is used, the injection kept as information
    assert recs[4]["t0"] == pytest.approx(21.1) and recs[4]["injection_info"] == 4.0
    assert "t0_from_injection" not in recs[4]["flags"]
    assert "t0_from_injection" in recs[3]["flags"]
    rep = json.loads((out / "report.json").read_text())
    assert rep["evaluation"]["metrics"]["ROC_AUC"] == summary["ROC_AUC"]
    assert {b["row"] for b in rep["bad"]} == {6, 7, 8}
    html = (out / "report.html").read_text()
    assert "missing.mp4" in html and "not found" in html and "duplicate of row 2" in html
    assert "trained on simulated data" in html.lower() or "simulated data only" in html
    assert html.count("data:image/png;base64,") == 2  # ROC and confusion, embedded
    assert html.count("data:image/jpeg;base64,") >= 4  # a filmstrip per scored exam
    assert "<svg" in html and "addEventListener('click'" in html  # TIC, sortable headers
    # the TIC has axes (time from t0, grey level and their ranges) and a key; the table
    # scrolls rather than cutting its last column, the filmstrip scales down
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert svg.count("<line") == 2 and "time from t0 (s)" in svg and ">grey<" in svg
    assert 'class="key">' in svg and "<polyline" in svg
    assert "<div class='wide'><table class='sortable'>" in html and "overflow-x:auto" in html
    assert "img.strip{image-rendering:pixelated;max-width:300px" in html
    assert "src='http" not in html and 'src="http' not in html  # self-contained


def test_jobs_2_gives_the_same_results_and_resumes(archive, run1, env, tmp_path):
    _, out1 = run1
    out = tmp_path / "run2"
    p = run_cli(["qa", str(archive), "--out", str(out), "--jobs", "2"], env, timeout=600)
    assert p.returncode == 4, p.stderr
    assert "2 worker process(es)" in p.stderr
    assert scores(out) == scores(out1)
    n = len(records(out))
    # resume: nothing scored again, the same report
    p = run_cli(["qa", str(archive), "--out", str(out), "--jobs", "2"], env, timeout=600)
    assert p.returncode == 4 and "to score" not in p.stderr
    assert len(records(out)) == n
    # an interrupted run's cut line does not break the next one
    with open(out / "results.jsonl", "a") as fh:
        fh.write('{"row": 2, "key": "cut sho')
    p = run_cli(["qa", str(archive), "--out", str(out), "--jobs", "1"], env, timeout=600)
    assert p.returncode == 4 and json.loads(p.stdout.splitlines()[-1])["scored_final"] == 4


def test_ray_on_a_local_instance_gives_the_same_results(archive, run1, env, tmp_path,
                                                        monkeypatch):
    """A local Ray instance started here (token authentication, the token in the
    environment rather than the user's ~/.ray), the CLI connecting to it as a driver."""
    import secrets

    _, out1 = run1
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    for k, v in auth.items():  # before ray is imported: it reads its mode once
        monkeypatch.setenv(k, v)
    ray = pytest.importorskip("ray", reason="the ray extra is not installed "
                              "(pip install 'ceustream[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        out = tmp_path / "ray"
        p = run_cli(["qa", str(archive), "--out", str(out), "--ray", address, "--jobs", "2"],
                    dict(env, **auth), timeout=900)
    finally:
        ray.shutdown()
    assert p.returncode == 4, p.stderr
    assert f"Ray {address}: 2 actor(s)" in p.stderr
    assert scores(out) == scores(out1)
    assert json.loads((out / "report.json").read_text())["workers"]["ray"] == address


def test_a_folder_without_manifest_and_disk_errors_get_one_line(archive, env, tmp_path):
    p = run_cli(["qa", str(tmp_path), "--out", str(tmp_path / "o")], env)
    assert p.returncode == 3 and "is a folder" in one_line_error(p)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    p = run_cli(["qa", str(archive), "--out", str(blocker / "out")], env)
    assert p.returncode == 3 and "cannot be created" in one_line_error(p)
    full = tmp_path / "full"
    full.mkdir()
    (full / "results.jsonl").symlink_to("/dev/full")  # a disk with no space left
    p = run_cli(["qa", str(archive), "--out", str(full), "--jobs", "1"], env)
    assert p.returncode == 3
    assert "results.jsonl" in one_line_error(p) and "space" in one_line_error(p)


# -- the comparison ------------------------------------------------------------------------
def test_delong_matches_a_hand_computed_example():
    """HCC scores A (0.9, 0.8, 0.4), B (0.7, 0.5, 0.2); non-HCC A (0.3, 0.6), B (0.1, 0.6).
    By hand: V10_A = (1, 1, 1/2), V01_A = (1, 2/3): AUC_A = 5/6; V10_B = (1, 1/2, 1/2),
    V01_B = (1, 1/3): AUC_B = 2/3. S10 = [[1/12, 1/24], [1/24, 1/12]] (over 3 - 1),
    S01 = [[1/18, 1/9], [1/9, 2/9]] (over 2 - 1); var A = 1/12/3 + 1/18/2 = 1/18,
    var B = 1/36 + 1/9 = 5/36, cov = 1/72 + 1/18 = 5/72; var(A - B) = 1/18, so
    z = (1/6) / sqrt(1/18) = sqrt(2)/2 and p = erfc(1/2) = 0.4795."""
    y = [1, 1, 1, 0, 0]
    d = compare.delong(y, [0.9, 0.8, 0.4, 0.3, 0.6], [0.7, 0.5, 0.2, 0.1, 0.6])
    assert d["auc_a"] == pytest.approx(5 / 6) and d["auc_b"] == pytest.approx(2 / 3)
    assert d["var_a"] == pytest.approx(1 / 18) and d["var_b"] == pytest.approx(5 / 36)
    assert d["cov"] == pytest.approx(5 / 72)
    assert d["z"] == pytest.approx(math.sqrt(2) / 2)
    assert d["p"] == pytest.approx(math.erfc(0.5)) and d["p"] == pytest.approx(0.4795, abs=1e-4)
    # identical scores: no difference, p = 1
    same = compare.delong(y, [0.9, 0.8, 0.4, 0.3, 0.6], [0.9, 0.8, 0.4, 0.3, 0.6])
    assert same["difference"] == 0 and same["p"] == 1.0


def test_mcnemar_exact_for_small_counts_and_chi_square_above():
    # b = 1, c = 4: two-sided exact binomial 2 * (C(5,0) + C(5,1)) / 2^5 = 12/32
    assert compare.mcnemar(1, 4) == {"b": 1, "c": 4, "method": "exact binomial", "p": 0.375}
    m = compare.mcnemar(30, 10)  # (|30 - 10| - 1)^2 / 40 = 9.025
    assert m["method"].startswith("chi-square") and m["chi2"] == pytest.approx(9.025)
    assert m["p"] == pytest.approx(0.002663, abs=1e-5)
    assert compare.mcnemar(0, 0)["p"] == 1.0


def test_qa_compare_two_runs(archive, run1, env, tmp_path):
    _, out1 = run1
    scored = [r for r in records(out1) if r.get("status") == "scored"]
    below = [r for r in scored if r["score"] < 0.5]
    if below:  # a threshold under every score: each exam non-HCC at 0.5 is HCC in run two
        thr, changed, to = min(r["score"] for r in scored) / 2, below, "HCC"
    else:  # over every score: each exam HCC at 0.5 is non-HCC
        thr, changed, to = (max(r["score"] for r in scored) + 1.0) / 2, scored, "non-HCC"
    strict = tmp_path / "strict"
    p = run_cli(["qa", str(archive), "--out", str(strict), "--jobs", "1", "--threshold",
                 repr(thr)], env, timeout=600)
    assert p.returncode == 4, p.stderr
    c = run_cli(["qa", "compare", str(out1), str(strict), "--out", str(tmp_path / "cmp")], env)
    assert c.returncode == 0, c.stderr
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert res["paired"] == 4 and res["same_manifest"]
    assert res["delong"]["p"] == 1.0  # the same scores: the AUCs cannot differ
    assert len(res["label_changed"]) == len(changed) > 0
    assert all(x["label_b"] == to for x in res["label_changed"])
    assert res["mcnemar"]["method"] == "exact binomial"
    assert "DeLong" in c.stdout and "McNemar" in c.stdout
    bad = run_cli(["qa", "compare", str(out1)], env)
    assert bad.returncode == 2 and "two run folders" in one_line_error(bad)


def test_a_manifest_ref_roi_column(tmp_path):
    """The optional ``ref_roi`` column (the TIC reading's parenchyma box): parsed per row,
    a malformed one makes that row bad with a reason naming it, an empty one is no box."""
    from ceustream.engine.core.manifest import check_manifest
    from ceustream.engine.core.roi import Roi

    (tmp_path / "a.mp4").write_bytes(b"x")
    m = tmp_path / "m.csv"
    m.write_text('path,label,roi,t0,ref_roi\na.mp4,1,"10,10,40,40",3,"60,10,30,30"\n'
                 'a.mp4,0,"10,12,40,40",3,\na.mp4,0,"10,14,40,40",3,"1,2,3"\n')
    got = check_manifest(m)
    assert [r.ref_roi for r in got.rows] == [Roi(60, 10, 30, 30), None]
    assert len(got.bad) == 1 and "ref_roi" in got.bad[0].reason
