"""End to end on real files: GStreamer decoding, the ceusgate element, ONNX Runtime, ZeroMQ.

Recordings are made by GStreamer encoders at several frame rates and in several containers
(MP4/H.264 30 fps, MKV/H.264 25 fps, AVI/MJPEG 15 fps, MKV/H.264 variable frame rate)."""

from __future__ import annotations


import numpy as np
import onnxruntime as ort
import pytest

from ceustream.engine.core import config, modelmeta
from ceustream.engine.core.clip import normalise
from ceustream.engine.wire.publisher import Publisher
from ceustream.engine.wire.subscriber import Collector
from ceustream.engine.app.replay import ReplayOptions, replay
from ceustream.engine.core.roi import Roi, crop, resize, within
from ceustream.engine.core.schedule import Schedule, nearest_brute_force
from ceustream.pipelines.filesource import decode_all

from conftest import last_json, one_line_error, run_cli
from media import ROI, read_index


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    c = config.load(env={})
    c["journal"]["dir"] = str(tmp_path_factory.mktemp("journal"))
    return c


def offline_score(path, roi: Roi, t0: float) -> tuple[float, list[float]]:
    """The reference: decode every frame, pick the nearest per slot by brute force, preprocess
    and run the shipped model in a plain ONNX Runtime session."""
    model = modelmeta.read(modelmeta.shipped_model_path())
    frames = decode_all(path)
    pts = [f.pts_s for f in frames]
    idx = nearest_brute_force(pts, Schedule.from_meta(model.meta), t0)
    assert None not in idx
    imgs = np.stack([resize(crop(frames[i].luma, roi), model.meta.height, model.meta.width)
                     for i in idx])
    sess = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    prob = sess.run(None, {model.meta.input_name: normalise(imgs, model.meta)})[0]
    return float(prob[0, model.meta.positive_index]), [pts[i] for i in idx]


def test_replay_publishes_30_scores_in_order_and_final_equals_offline(coded_mp4, cfg, port):
    endpoint = f"tcp://127.0.0.1:{port}"
    pub = Publisher(endpoint, cfg)
    sub = Collector(endpoint)  # validates each message against the v1 schema
    assert pub.wait_for_subscriber(10)  # no message lost to ZeroMQ's slow joiner
    roi = Roi(*ROI)
    try:
        res = replay(coded_mp4.path, ReplayOptions(roi=roi, t0=coded_mp4.arrival, exam="e2e"),
                     cfg, pub)
    finally:
        pub.close()
        assert sub.drain(pub.sequences(), 20), "not every sent message arrived"
        sub.close()
    assert sub.invalid == 0 and sub.gaps == 0, sub.last_error
    scores = [m.raw for m in sub.of("score", "e2e")]
    assert [m["slot"] for m in scores] == list(range(30))
    assert [m["slots_filled"] for m in scores] == list(range(1, 31))
    assert all(not m["final"] and m["label"] is None for m in scores[:-1])
    # the synthetic test file may lie outside the model's domain: then no confident label
    want = ("indeterminate",) if scores[-1]["domain"]["state"] == "out" else ("HCC", "non-HCC")
    assert scores[-1]["final"] and scores[-1]["label"] in want
    seqs = [m.seq for m in sub.messages if m.exam == "e2e"]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a message was lost"
    for m in scores:
        assert m["v"] == 1 and m["model"]["sha256"] and m["backend"]["name"] == "onnxruntime"
        assert "simulated" in m["disclaimer"]
        assert m["timing"]["frame_mono_ns"] is not None  # stamped at decoder exit
    ref, ref_pts = offline_score(coded_mp4.path, roi, coded_mp4.arrival)
    # the network's own P(HCC) is the offline one; the published score is it inside the
    # model's domain, the physiology reading's outside it (``score_basis``)
    assert res["score_network"] == pytest.approx(ref, abs=1e-6) and res["final"]
    assert scores[-1]["score"] == pytest.approx(res["score"], abs=1e-6)
    assert scores[-1]["score_basis"] == res["score_basis"]
    if res["score_basis"] == "network":
        assert res["score"] == res["score_network"]
    assert [s["pts_s"] for s in res["slots"]] == pytest.approx(ref_pts, abs=1e-6)


@pytest.mark.parametrize("rec", ["coded_mp4", "coded_mkv25", "coded_avi15", "coded_vfr"])
def test_seek_and_stream_choose_the_same_frames(rec, request, cfg):
    c = request.getfixturevalue(rec)
    roi = Roi(*ROI)
    frames = decode_all(c.path)
    pts = [f.pts_s for f in frames]
    # timestamps come from the stream: for VFR they are the written ones, not k / fps
    assert pts == pytest.approx(c.times, abs=2e-3)
    assert [read_index(f.luma) for f in frames[:50]] == list(range(50))
    out = {}
    for mode in ("always", "never"):
        r = replay(c.path, ReplayOptions(roi=roi, t0=c.arrival, seek=mode, journal=False), cfg)
        out[mode] = r
        assert r["final"], r["flags"]
    a, b = out["always"], out["never"]
    diff = [(x, y) for x, y in zip(a["slots"], b["slots"]) if x.get("pts_s") != y.get("pts_s")]
    assert not diff, (diff, a["replay"], b["replay"])
    assert a["score"] == b["score"]
    want = nearest_brute_force(pts, Schedule(), c.arrival)
    assert [s["pts_s"] for s in a["slots"]] == pytest.approx([pts[i] for i in want], abs=1e-6)
    # seeking decoded far fewer frames than streaming
    assert a["replay"]["mode"] == "seek" and b["replay"]["mode"] == "stream"
    assert a["replay"]["frames_dropped"] < b["replay"]["frames_dropped"] / 2
    assert b["replay"]["frames_passed"] <= 2 * 30


@pytest.mark.parametrize("rec", ["coded_mp4", "coded_vfr"])
def test_injection_finds_contrast_arrival_the_same_way_in_every_mode(rec, request, cfg):
    c = request.getfixturevalue(rec)
    res = {}
    for mode, speed in (("always", None), ("never", None), ("never", 20.0)):
        r = replay(c.path, ReplayOptions(roi=Roi(*ROI), injection=c.injection, seek=mode,
                                         speed=speed, journal=False), cfg)
        assert r["final"] and "t0_from_injection" in r["flags"]
        assert abs(r["t0"] - c.arrival) < 1.0
        res[(mode, speed)] = r
    ref = res[("always", None)]
    for r in res.values():
        assert r["t0"] == ref["t0"] and r["score"] == ref["score"]
        assert [s.get("pts_s") for s in r["slots"]] == [s.get("pts_s") for s in ref["slots"]]


def test_no_rise_falls_back_to_a_documented_t0(media_dir, cfg):
    from media import write_coded

    c = write_coded(media_dir / "flat.mp4", duration=120, arrival=1e9)  # never enhances
    r = replay(c.path, ReplayOptions(roi=Roi(*ROI), injection=4.0, journal=False), cfg)
    assert "t0_fallback" in r["flags"] and r["t0"] == pytest.approx(4.0 + 18.0)
    assert r["arrival"]["method"] == "fallback"


def test_short_recording_gives_a_flagged_partial_result(short_mp4, env):
    p = run_cli(["replay", str(short_mp4.path), "--roi", short_mp4.roi, "--t0",
                 str(short_mp4.arrival), "--json", "--no-publish"], env)
    assert p.returncode == 4, p.stderr
    r = last_json(p.stdout)
    assert r["final"] is False and r["label"] is None
    assert "slots_missing" in r["flags"] and r["slots_filled"] == 26  # 25 video + 1 late
    assert "partial result" in one_line_error(p)


def test_simulator_clip_matches_the_engine_clip(sim_exam, cfg, tmp_path):
    from ceustream.engine.app import journal as jr
    from ceustream.models.simulator.clips import simulate_clip, slot_times
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.scene import Scene

    path, truth = sim_exam
    cfg = dict(cfg, journal={"dir": str(tmp_path)})
    r = replay(path, ReplayOptions(roi=Roi(*truth["roi"]), t0=truth["t0_s"], exam="sim"), cfg)
    assert r["final"]
    info, records, crops = jr.load(tmp_path, "sim")
    # the journal keeps the ROI with the parenchyma band around it (the TIC reading's
    # reference); the model's slot is the ROI part
    roi, region = Roi(*info["roi"]), Roi(*info["region"])
    assert region.w > roi.w and crops[0].shape == (region.h, region.w)
    engine = np.stack([resize(crops[i][within(region, roi)], 64, 64)
                       for i in range(30)]).astype(float)
    # the same slots (the simulator's nearest frames; a tie may go either way) ...
    want = slot_times(Scene(sample_case(11), injection_s=5.0))
    got = [records[i]["pts_s"] for i in range(30)]
    assert got == pytest.approx(want, abs=1 / 60 + 1e-3), (got, want)
    assert sum(abs(a - b) > 1e-3 for a, b in zip(got, want)) <= 1, (got, want)
    # ... and the same ROI content up to codec loss
    sim = simulate_clip(sample_case(11), injection_s=5.0, times=got).astype(float)
    level = np.abs(engine.mean(axis=(1, 2)) - sim.mean(axis=(1, 2)))
    assert level.max() < 2.0, level  # brightness per slot: the time-intensity curve
    diff = np.abs(engine - sim).mean(axis=(1, 2))
    # pixels: H.264 at q23 smooths the finest speckle (and x264's threads make it vary a little
    # from one encode to the next)
    assert np.median(diff) < 10.0 and diff.max() < 25.0, diff
    corr = np.corrcoef(engine.ravel(), sim.ravel())[0, 1]
    assert corr > 0.9, corr
    # the frame next door (new bubble speckle, same curve) is clearly further away
    other = simulate_clip(sample_case(11), injection_s=5.0,
                          times=[t + 1 / 30 for t in got]).astype(float)
    assert np.abs(engine - other).mean() > 1.3 * diff.mean(), (np.abs(engine - other).mean(), diff)


def test_the_reference_band_leaves_the_network_bit_identical(coded_mp4, cfg):
    """The reader crops the ROI with a band of parenchyma around it (the TIC reading's
    reference, issue 18), or the ROI with the operator's reference box; the model's slot is
    the ROI part of that crop, so every score is the same float as with the ROI alone."""
    roi = Roi(*ROI)  # 56,32,64,64 in a 160x120 frame
    runs = {}
    for name, kw in {"ring": {"band": 0.0}, "band": {}, "ref_roi": {"ref_roi": Roi(4, 4, 24, 24)}
                     }.items():
        seen: dict = {"scores": [], "shapes": set()}

        def keep(ev, seen=seen):
            if ev.kind == "score":
                seen["scores"].append(ev.data.p_network)  # the network's own
            elif ev.kind == "slot" and ev.data[1] is not None:
                seen["shapes"].add(ev.data[1].shape)
        r = replay(coded_mp4.path, ReplayOptions(roi=roi, t0=coded_mp4.arrival, journal=False,
                                                 **kw), cfg, subscribers=(keep,))
        runs[name] = (r, seen)
    (ring, s0), (band, s1), (ref, s2) = runs["ring"], runs["band"], runs["ref_roi"]
    # the crops: the ROI; the ROI and 32 pixels around it (clamped to the frame: x 24..152,
    # y 0..120); the ROI and the reference box (x 4..120, y 4..96)
    assert s0["shapes"] == {(64, 64)} and s1["shapes"] == {(120, 128)} and \
        s2["shapes"] == {(92, 116)}
    assert len(s0["scores"]) == 30 and s0["scores"] == s1["scores"] == s2["scores"]
    assert ring["score_network"] == band["score_network"] == ref["score_network"] and \
        band["final"]
    assert [s["pts_s"] for s in ring["slots"]] == [s["pts_s"] for s in band["slots"]]
    # this recording's background is flat grey (no parenchyma enhances around the ROI): the
    # band has nothing to offer and the reading says it used the ROI's ring
    assert ring["features"]["reference"] == "ring" and band["features"]["reference"] == "ring"


def test_a_bad_reference_box_is_one_line(coded_mp4, env):
    for bad, what in (("1,2,3", "--ref-roi"), ("0,0,9000,10", "--ref-roi"),
                      ("a,b,c,d", "--ref-roi")):
        p = run_cli(["replay", str(coded_mp4.path), "--roi", ",".join(map(str, ROI)), "--t0",
                     str(coded_mp4.arrival), "--no-publish", "--no-journal", "--ref-roi", bad],
                    env)
        assert p.returncode != 0 and what in one_line_error(p), p.stderr
    p = run_cli(["replay", str(coded_mp4.path), "--roi", ",".join(map(str, ROI)), "--t0", "1",
                 "--no-publish", "--ref-band", "nan"], env)
    assert p.returncode == 2 and "--ref-band" in p.stderr and "Traceback" not in p.stderr


def test_the_session_splits_a_region_crop_by_hand():
    """A 60x40 ROI at (30, 20) in a region (10, 0, 100, 80) of the frame, model 64x64: the ROI
    part is the crop's rows 20..60 and columns 20..80 (exactly the ROI's pixels); the frame
    around it is kept at the ROI's scale (64/60 across, 64/40 down: 107x128), the ROI at
    (32, 21) in it; an operator's box (80, 5, 20, 10) lands at rows 8..24, columns 75..96."""
    from ceustream.engine.app.session import Around
    from ceustream.engine.core.roi import region_for

    roi, region = Roi(30, 20, 60, 40), Roi(10, 0, 100, 80)
    crop_ = np.arange(80 * 100, dtype=np.int64).reshape(80, 100).astype(np.uint8)
    a = Around(roi, region, Roi(80, 5, 20, 10), 30, 64, 64)
    assert np.array_equal(a.roi_part(crop_), crop_[20:60, 20:80])
    a.put(3, crop_)
    assert a.pixels.shape == (30, 128, 107) and a.box == (32, 21, 64, 64)
    ys, xs = np.nonzero(a.ref_mask)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (8, 23, 75, 95)
    present = np.zeros(30, bool)
    present[3] = True
    assert a.view(present) is not None and a.view(np.ones(30, bool)) is None
    # a crop of the ROI alone (an older journal) passes through and keeps nothing
    b = Around(roi, region, None, 30, 64, 64)
    alone = crop_[20:60, 20:80]
    assert b.roi_part(alone) is alone
    b.put(0, alone)
    assert b.view(np.ones(30, bool)) is None
    # the band: half the ROI's side around it, clamped to the frame
    assert region_for(roi, 640, 480) == Roi(0, 0, 120, 80)
    assert region_for(Roi(300, 200, 40, 40), 640, 480) == Roi(280, 180, 80, 80)
    assert region_for(roi, 640, 480, ref=Roi(200, 300, 10, 10)) == Roi(30, 20, 180, 290)
