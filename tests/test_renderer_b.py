"""Renderer B (ceustream.models.renderer_b): determinism, the clip contract (the ROI-only
render equals the engine's view of the full screen), LI-RADS directions of the curves,
class mixtures, recordings decoded back with GStreamer, the archive and its CLI."""

from __future__ import annotations

import csv
import json
from collections import Counter

import cv2
import numpy as np
import pytest

# submodules, not the package namespace: they import even before an editable install
# has learnt about the new package
from ceustream.models.renderer_b import archive as archive_mod
from ceustream.models.renderer_b.__main__ import main as cli_main
from ceustream.models.renderer_b.archive import write_archive
from ceustream.models.renderer_b.exam import PATTERN_P, SUBTYPE_P, WASHOUT_P, sample_exam
from ceustream.models.renderer_b.physiology import ratio_db
from ceustream.models.renderer_b.record import write_recording
from ceustream.models.renderer_b.render import (SLOT_OFFSETS_S, nearest_frame, region, render_clip,
                                                render_frame, slot_frames)

#: a lesion counts as washed out when 0.5 dB below the liver (physiology.VISIBLE_WASHOUT_DB)
VISIBLE = 0.51


def engine_view(frame: np.ndarray, roi, size=(64, 64)) -> np.ndarray:
    """What the engine makes of a full RGB frame, computed by hand: ROI crop, BT.601
    full-range luma rounded half up, area resize (bilinear when the ROI is smaller)."""
    x, y, w, h = roi
    c = frame[y:y + h, x:x + w].astype(np.float64)
    luma = np.floor(0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2] + 0.5).astype(np.uint8)
    interp = cv2.INTER_AREA if h >= size[1] and w >= size[0] else cv2.INTER_LINEAR
    return cv2.resize(luma, size, interpolation=interp)


def test_package_exports():
    import ceustream.models.renderer_b as rb

    if getattr(rb, "__file__", None) is None:
        pytest.skip("stale editable install: ceustream.models.renderer_b is seen as a namespace")
    for name in ("Exam", "sample_exam", "render_frame", "render_clip", "write_recording",
                 "write_archive", "SLOT_OFFSETS_S"):
        assert hasattr(rb, name)


def test_same_seed_same_exam_clip_and_frame():
    a, b = sample_exam(123), sample_exam(123)
    assert a == b
    assert render_clip(a).tobytes() == render_clip(b).tobytes()
    t = a.t0_s + 10.0
    assert render_frame(a, t).tobytes() == render_frame(b, t).tobytes()


def test_different_seeds_differ():
    a, b = sample_exam(1, label=1), sample_exam(2, label=1)
    assert a != b
    assert not np.array_equal(render_clip(a), render_clip(b))


def test_clip_shape_and_dtype():
    exam = sample_exam(5)
    clip = render_clip(exam)
    assert clip.shape == (30, 64, 64) and clip.dtype == np.uint8
    assert render_clip(exam, size=(48, 32)).shape == (30, 32, 48)
    assert len(SLOT_OFFSETS_S) == 30


@pytest.mark.parametrize("seed", [17])
def test_roi_clip_equals_crop_of_full_frames(seed):
    """Every slot of the ROI-only clip equals the engine's view of render_frame at the
    nearest frame's timestamp k / fps."""
    exam = sample_exam(seed)
    clip = render_clip(exam)
    for i, k in enumerate(slot_frames(exam)):
        frame = render_frame(exam, k / exam.fps)
        assert frame.shape == (exam.size[1], exam.size[0], 3) and frame.dtype == np.uint8
        np.testing.assert_array_equal(clip[i], engine_view(frame, exam.roi), err_msg=f"slot {i}")


@pytest.mark.parametrize("seed", [3, 8, 40])
def test_roi_clip_equals_crop_other_screens(seed):
    """The same on other screens (sizes, geometries, dual view), a few slots each, and
    with a t0 error."""
    exam = sample_exam(seed)
    clip = render_clip(exam, t0_error_s=-1.3)
    frames = slot_frames(exam, -1.3)
    for i in (0, 7, 26):
        frame = render_frame(exam, frames[i] / exam.fps)
        np.testing.assert_array_equal(clip[i], engine_view(frame, exam.roi), err_msg=f"slot {i}")


def test_slot_frames_nearest_ties_to_earlier():
    exam = sample_exam(9, fps=4.0)
    ks = slot_frames(exam)
    for k, s in zip(ks, SLOT_OFFSETS_S):
        t = exam.t0_s + s
        assert abs(k / exam.fps - t) <= 0.5 / exam.fps + 1e-9
    exam = sample_exam(9, fps=5.0)
    assert nearest_frame(exam, 0.1) == 0  # exactly between frames 0 and 1: the earlier
    assert nearest_frame(exam, 0.1000001) == 1


def test_dark_before_injection_bright_at_arrival():
    exam = sample_exam(21, label=1)
    x, y, w, h = exam.roi
    before = render_frame(exam, 0.0)[y:y + h, x:x + w].mean()
    peak = render_frame(exam, exam.t0_s + 15.0)[y:y + h, x:x + w].mean()
    assert peak > before + 30


def test_maps_are_finite():
    """No NaN or Inf enters the tissue or screen maps (so none can reach a frame)."""
    for exam in exams(15, 700):
        x, y, w, h = exam.roi
        reg = region(exam, x, y, w, h, [exam.t0_s, exam.t0_s + 100.0])
        for name, m in {**reg.maps, **reg.screen}.items():
            assert np.isfinite(m).all(), (exam.seed, name)


def exams(n: int, start: int = 0, **kw):
    return [sample_exam(s, **kw) for s in range(start, start + n)]


def test_lirads_directions_on_noiseless_curves():
    checked = Counter()
    for exam in exams(120, 1000):
        ph = exam.physiology
        part = "rim" if exam.pattern == "rim APHE" else "core"
        if exam.pattern in ("non-rim APHE", "heterogeneous", "rim APHE"):
            c = ph.curves(ph.lesion_peak_s())  # APHE: brighter than the liver at the arterial peak
            assert ratio_db(c[part], c["parenchyma"]) > 1.0, exam.seed
            checked["aphe"] += 1
        if exam.washout.endswith("marked"):
            c = ph.curves(120.0)  # marked: punched out by 2 min
            assert ratio_db(c[part], c["parenchyma"]) < -6.0, exam.seed
            checked["marked"] += 1
        if exam.washout.startswith("early"):
            assert exam.washout_onset_s < 60.0, exam.seed
            checked["early"] += 1
        if exam.washout.startswith("late"):
            assert exam.washout_onset_s >= 60.0, exam.seed
            c = ph.curves(50.0)
            if exam.pattern != "hypo":
                assert ratio_db(c[part], c["parenchyma"]) > -VISIBLE, exam.seed
            checked["late"] += 1
        if exam.washout == "none" and exam.pattern != "hypo":
            t = np.arange(ph.lesion_peak_s(), exam.t0_s - exam.injection_s + 181.0, 1.0)
            c = ph.curves(t)
            assert ratio_db(c[part], c["parenchyma"]).min() > -VISIBLE, exam.seed
            checked["none"] += 1
    assert min(checked.values()) >= 5 and len(checked) == 5, checked


def test_class_mixtures_match_targets():
    sample = exams(400)
    labels = Counter(e.label for e in sample)
    assert abs(labels[1] / 400 - 0.5) < 0.075
    hcc = [e for e in sample if e.label == 1]
    non = [e for e in sample if e.label == 0]

    def close(items, attr, table, tol=0.075):
        got = Counter(getattr(e, attr) for e in items)
        for k, p in table.items():
            assert abs(got[k] / len(items) - p) < tol, (attr, k, got[k] / len(items), p)

    close(hcc, "pattern", PATTERN_P["hcc"])
    close(hcc, "washout", WASHOUT_P["hcc"])
    close(non, "subtype", SUBTYPE_P)
    icc = [e for e in non if e.subtype == "icc"]
    close(icc, "pattern", PATTERN_P["icc"], tol=0.1)
    early = sum(e.washout.startswith("early") for e in icc) / len(icc)
    assert abs(early - 0.82) < 0.1
    hcc_nonrim = sum(e.pattern in ("non-rim APHE", "heterogeneous") for e in hcc) / len(hcc)
    assert abs(hcc_nonrim - 0.87) < 0.06
    assert any(e.hcc_like for e in non)


def test_roi_inside_ceus_area_and_ratio():
    for exam in exams(40, 500):
        x, y, w, h = exam.roi
        assert exam.layout.ceus.mask(np.arange(x, x + w), np.arange(y, y + h)).all()
        assert 0.25 <= exam.roi_ratio <= 0.9 + 1e-9
        assert exam.t0_s - exam.injection_s == pytest.approx(exam.physiology.appearance_s())
        assert exam.physiology.appearance_s() >= exam.physiology.lesion_arrival_s()
        assert 3.0 <= exam.injection_s <= 15.0 and exam.duration_s >= exam.t0_s + 185.0
        assert 4.0 <= exam.fps <= 15.0


def decode_gray(path):
    """(frame count, timestamps s, first frame) of a file decoded to GRAY8 by GStreamer."""
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    pipe = Gst.parse_launch("filesrc name=src ! decodebin ! videoconvert ! "
                            "video/x-raw,format=GRAY8 ! appsink name=sink sync=false")
    pipe.get_by_name("src").set_property("location", str(path))
    sink = pipe.get_by_name("sink")
    pipe.set_state(Gst.State.PLAYING)
    pts, first = [], None
    try:
        while True:
            sample = sink.emit("pull-sample")
            if sample is None:
                break
            buf = sample.get_buffer()
            pts.append(buf.pts / Gst.SECOND)
            if first is None:
                s = sample.get_caps().get_structure(0)
                first = (s.get_value("width"), s.get_value("height"))
    finally:
        pipe.set_state(Gst.State.NULL)
    return len(pts), pts, first


@pytest.mark.parametrize("container", ["mp4", "mkv", "avi"])
def test_short_recording_decodes_with_expected_frames(tmp_path, container):
    exam = sample_exam(31, frame_size=(320, 240), fps=4.0)
    path = tmp_path / f"short.{container}"
    info = write_recording(exam, path, container, duration_s=20.0)
    assert info["frames"] == 81 and info["container"] == container
    n, pts, size = decode_gray(path)
    assert n == 81 and size == (320, 240)
    np.testing.assert_allclose(pts, np.arange(81) / 4.0, atol=1e-3)
    truth = json.loads((tmp_path / f"short.{container}.json").read_text())
    for key in ("label", "subtype", "pattern", "washout", "t0_s", "injection_s", "roi", "fps",
                "size", "container", "renderer"):
        assert key in truth
    assert truth["renderer"] == "B" and truth["fps"] == 4.0 and truth["size"] == [320, 240]


def test_archive_manifest(tmp_path, monkeypatch):
    real = archive_mod.sample_exam
    monkeypatch.setattr(archive_mod, "sample_exam",
                        lambda s, label: real(s, label, frame_size=(320, 240), fps=4.0, duration_s=3.0))
    seen = []
    manifest = write_archive(tmp_path, 3, seed=4, containers=["avi"],
                             progress=lambda i, n, info: seen.append(i))
    assert seen == [1, 2, 3]
    text = manifest.read_text().splitlines()
    assert text[0] == "path,label,roi,t0,injection"
    rows = list(csv.DictReader(text))
    assert len(rows) == 3 and {r["label"] for r in rows} <= {"HCC", "non-HCC"}
    assert len({r["label"] for r in rows}) == 2
    for r, line in zip(rows, text[1:]):
        assert (tmp_path / r["path"]).is_file() and r["path"].endswith(".avi")
        assert f'"{r["roi"]}"' in line and len(r["roi"].split(",")) == 4
        truth = json.loads((tmp_path / (r["path"] + ".json")).read_text())
        assert float(r["t0"]) == pytest.approx(truth["t0_s"], abs=1e-3) and r["injection"] == ""
    try:  # the engine's own reader accepts it (t0 or injection per row, not both)
        from ceustream.engine.core.manifest import read_manifest
    except ImportError:
        return
    assert [row.t0 for row in read_manifest(manifest)] == [float(r["t0"]) for r in rows]


def test_archive_manifest_injection_times(tmp_path, monkeypatch):
    real = archive_mod.sample_exam
    monkeypatch.setattr(archive_mod, "sample_exam",
                        lambda s, label: real(s, label, frame_size=(320, 240), fps=4.0, duration_s=2.0))
    manifest = write_archive(tmp_path, 1, seed=5, containers=["mkv"], times="injection")
    (row,) = csv.DictReader(manifest.read_text().splitlines())
    assert row["t0"] == "" and float(row["injection"]) > 0
    with pytest.raises(ValueError, match="times"):
        write_archive(tmp_path, 1, seed=5, times="arrival")


def test_cli_bad_value_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["--n", "0", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--n" in err
    with pytest.raises(SystemExit):
        cli_main(["--containers", "mov", "--out", str(tmp_path)])
    assert "\n" not in capsys.readouterr().err.strip()
