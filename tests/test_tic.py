"""The TIC reading on hand-made clips whose curves are known, the liver-rank preprocessing by
hand, and training and the engine preparing a clip identically."""

from __future__ import annotations

import numpy as np
import pytest

from ceustream.engine.core import analysis, preprocess, tic
from ceustream.engine.core.clip import ClipBuffer
from ceustream.engine.core.modelmeta import PAPER_OFFSETS_S, ModelMeta

OFF = np.array(PAPER_OFFSETS_S)


def clip_of(lesion: list[float], liver: list[float], rim: list[float] | None = None,
            size: int = 64, radius: float = 14.0) -> np.ndarray:
    """A noiseless clip: liver grey levels everywhere, a centred disk of lesion grey levels,
    optionally its outer band (the rim) at other levels."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    disk, band = r <= radius, (r <= radius) & (r > radius * 2 / 3)
    out = np.empty((len(OFF), size, size), np.uint8)
    for i in range(len(OFF)):
        img = np.full((size, size), liver[i], np.float64)
        img[disk] = lesion[i]
        if rim is not None:
            img[band] = rim[i]
        out[i] = np.clip(np.round(img), 0, 255)
    return out


def test_liver_rank_by_hand():
    """Ring pixels of a 4x4 clip of two slots: 8 pixels at 10 and 4 at 30 in slot 0, all 12
    at 30 in slot 1 (the ring of 4x4 with ring 0.25 is its 12 border pixels)."""
    raw = np.zeros((2, 4, 4), np.uint8)
    raw[0] = 10
    raw[0, 0, :] = 30  # 4 of slot 0's ring pixels at 30
    raw[0, 1:3, 1:3] = 200  # the interior: not part of the reference
    raw[1] = 30
    lut = preprocess.liver_rank_lut(raw, np.ones(2, bool), 0.25)
    # 24 ring samples: 8 at 10, 16 at 30. Mid-ranks: 10 -> 4/24, 30 -> (8 + 8)/24
    assert lut[10] == pytest.approx(4 / 24)
    assert lut[30] == pytest.approx(16 / 24)
    assert lut[9] == 0.0 and lut[200] == 1.0 and lut[20] == pytest.approx(8 / 24)
    x = preprocess.prepare(raw, np.ones(2, bool), preprocess.Preprocessing("liver_rank", 0.25),
                           1.0, 0.5, 0.25)
    assert x[0, 1, 1] == pytest.approx((1.0 - 0.5) / 0.25)


def test_ranks_ignore_a_monotone_change_of_brightness():
    rng = np.random.default_rng(1)
    raw = rng.integers(20, 180, (30, 64, 64)).astype(np.uint8)
    v = np.arange(256, dtype=np.float64)
    lut = np.clip(np.round(v + 0.002 * v ** 2 - 5), 0, 255).astype(np.uint8)  # gain, log, map
    assert (np.diff(lut[20:180].astype(int)) > 0).all()  # strictly monotone on the range used
    spec = preprocess.Preprocessing("liver_rank", 0.1)
    a = preprocess.prepare(raw, np.ones(30, bool), spec, 1.0, 0.5, 0.25)
    b = preprocess.prepare(lut[raw], np.ones(30, bool), spec, 1.0, 0.5, 0.25)
    assert np.array_equal(a, b)


#: a liver that brightens slowly, one grey level per slot: its rank at slot i is (i + 0.5) / 30
LIVER = [100 + i for i in range(30)]


def hcc_like(late_drop: int = 5) -> np.ndarray:
    """Non-rim APHE (lesion 180 for 0-20 s after t0), iso 22-48 s, then ``late_drop`` grey
    levels below the liver from 60 s (78 s after the injection: late washout)."""
    lesion = [180 if o <= 20 else (LIVER[i] if o < 60 else LIVER[i] - late_drop)
              for i, o in enumerate(OFF)]
    return clip_of(lesion, LIVER)


def test_hcc_like_curves_read_as_lr5():
    rd = tic.read(hcc_like(), np.ones(30, bool), PAPER_OFFSETS_S, arrival_delay_s=18.0)
    # arterial: lesion 180 is above every liver sample (rank 1); the liver at slot 0 has rank
    # 0.5/30, so the peak lesion - liver is 1 - 0.5/30
    assert rd.aphe == "nonrim" and rd.aphe_magnitude == pytest.approx(1 - 0.5 / 30, abs=0.01)
    # late: the lesion at liver_i - 5 has rank (i - 5)/30, the liver (i + 0.5)/30: d = -5.5/30
    assert rd.washout == "late" and rd.washout_onset_s == pytest.approx(60 + 18.0)
    assert rd.washout_degree == "mild" and rd.category == "LR-5-like"
    assert rd.lesion_found and 0.1 < rd.lesion_fraction < 0.25
    assert rd.summary() == "APHE ✓ (non-rim) · washout late, mild · LR-5-like"


def test_mild_versus_marked_washout():
    """5 grey levels under the liver is mild (d = -5.5/30); 40 under is 'punched out' (as dark
    as the liver's darkest samples, rank 0): marked, hence LR-M-like."""
    rd = tic.read(hcc_like(40), np.ones(30, bool), PAPER_OFFSETS_S, arrival_delay_s=18.0)
    assert rd.washout == "late" and rd.washout_degree == "marked"
    assert rd.category == "LR-M-like"


def test_early_marked_washout_and_rim_read_as_lr_m():
    """Rim APHE (band 200, core 100 = liver) then the lesion punched out from 20 s after t0
    (38 s after the injection: early)."""
    lesion = [LIVER[i] if o <= 18 else 30 for i, o in enumerate(OFF)]
    rim = [200 if o <= 18 else 30 for o in OFF]
    rd = tic.read(clip_of(lesion, LIVER, rim), np.ones(30, bool), PAPER_OFFSETS_S,
                  arrival_delay_s=18.0)
    assert rd.aphe == "rim" and rd.rim_index > tic.RIM_MIN
    assert rd.washout == "early" and rd.washout_onset_s == pytest.approx(20 + 18.0)
    assert rd.washout_degree == "marked" and rd.category == "LR-M-like"


def test_no_aphe_no_washout_and_pending():
    flat = clip_of(LIVER, LIVER)
    rd = tic.read(flat, np.ones(30, bool), PAPER_OFFSETS_S)
    assert rd.aphe == "none" and rd.washout == "none" and rd.category == "LR-3-like"
    assert not rd.lesion_found  # nothing differs: the central disk stands in
    early = np.zeros(30, bool)
    early[:5] = True  # 0-8 s after t0: the arterial phase is not over
    rd = tic.read(hcc_like(), early, PAPER_OFFSETS_S)
    assert rd.aphe is None and rd.washout is None and rd.lesion[5] is None
    assert rd.summary().startswith("TIC: waiting")


def test_the_tic_model_and_analysis():
    """A logistic regression that separates the two hand-made patterns; the analysis flags a
    disagreement only when the network says otherwise and the TIC model is sure."""
    hcc = hcc_like()
    icc = clip_of([LIVER[i] if o <= 18 else 30 for i, o in enumerate(OFF)], LIVER,
                  [200 if o <= 18 else 30 for o in OFF])
    rng = np.random.default_rng(0)
    X, y = [], []
    for k in range(40):
        c = (hcc if k % 2 else icc).astype(np.int16) + rng.integers(-3, 4, hcc.shape)
        c = np.clip(c, 0, 255).astype(np.uint8)
        X.append(tic.tic_vector(c, np.ones(30, bool), PAPER_OFFSETS_S))
        y.append(k % 2)
    model = tic.fit_logistic(np.array(X), np.array(y))
    assert tic.tic_probability(tic.tic_vector(hcc, np.ones(30, bool), PAPER_OFFSETS_S), model) > 0.8
    assert tic.tic_probability(tic.tic_vector(icc, np.ones(30, bool), PAPER_OFFSETS_S), model) < 0.2
    out = analysis.analyse(hcc, np.ones(30, bool), PAPER_OFFSETS_S, {"tic": model}, 0.1, 0.5)
    assert out["warnings"]["model_tic_disagree"] is True
    assert out["features"]["p_hcc"] > 0.8 and out["features"]["category"]
    out = analysis.analyse(hcc, np.ones(30, bool), PAPER_OFFSETS_S, {"tic": model}, 0.9, 0.5)
    assert out["warnings"]["model_tic_disagree"] is False


def test_out_of_distribution_reference():
    rng = np.random.default_rng(2)
    base = hcc_like().astype(np.int16)
    vecs = []
    for _ in range(60):
        c = np.clip(base + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)
        rd = tic.read(c, np.ones(30, bool), PAPER_OFFSETS_S)
        vecs.append(analysis.ood_vector(c, np.ones(30, bool), rd))
    ref = analysis.fit_ood(np.array(vecs[:40]), np.array(vecs[40:]))
    black = np.zeros_like(base, dtype=np.uint8)  # a black screen: nothing like training
    rd = tic.read(black, np.ones(30, bool), PAPER_OFFSETS_S)
    assert analysis.ood_distance(analysis.ood_vector(black, np.ones(30, bool), rd), ref) > \
        ref["threshold"]
    out = analysis.analyse(black, np.ones(30, bool), PAPER_OFFSETS_S, {"ood": ref}, 0.5, 0.5)
    assert out["warnings"]["out_of_distribution"] is True


@pytest.mark.parametrize("kind", ["scale", "liver_rank"])
def test_training_and_the_engine_prepare_a_clip_identically(kind):
    pytest.importorskip("torch")
    from ceustream.models.train import TrainConfig, prepare_batch

    norm = (1.0, 0.5, 0.25) if kind == "liver_rank" else (1 / 255, 0.0, 1.0)
    meta = ModelMeta(name="t", preprocessing={"kind": kind, "ring": 0.1}
                     if kind == "liver_rank" else {"kind": "scale"},
                     norm_scale=norm[0], norm_mean=norm[1], norm_std=norm[2])
    cfg = TrainConfig(preprocessing=dict(meta.preprocessing), norm=norm)
    clip = np.random.default_rng(3).integers(0, 256, (30, 64, 64)).astype(np.uint8)
    buf = ClipBuffer(meta)
    for i in range(30):
        buf.put(i, clip[i])
    engine = buf.model_input()[0, 0]
    training = prepare_batch(clip[None], cfg)[0]
    assert engine.dtype == training.dtype == np.float32
    assert np.array_equal(engine, training)


# -- rim APHE from the spatial pattern (radial profile at the arterial peak frames) ----------

def disc_clip(lesion: list[float], core: list[float] | None = None, core_rho: float = 0.45,
              size: int = 64, radius: float = 14.0, liver: list[float] = LIVER) -> np.ndarray:
    """A noiseless disc of ``lesion`` grey levels on the liver; optionally a central disc of
    ``core_rho`` radii at ``core`` levels."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    out = np.empty((len(OFF), size, size), np.uint8)
    for i in range(len(OFF)):
        img = np.full((size, size), liver[i], np.float64)
        img[r <= radius] = lesion[i]
        if core is not None:
            img[r <= core_rho * radius] = core[i]
        out[i] = img
    return out


#: the lesion after the arterial phase (from 20 s after t0): 30, far below the liver
ART = [o <= 18 for o in OFF]
LATE = 30


def test_a_ring_reads_as_rim():
    """Band (2/3..1 radius) at 200 while the core stays at the liver's level: the edge is at
    rank 1 and the core at the liver's own rank, so edge - liver averaged over the peak frames
    (slots 0-9, liver ranks (i + 0.5)/30, mean 5/30) is 1 - 5/30 and the core's is 0."""
    lesion = [LIVER[i] if a else LATE for i, a in enumerate(ART)]
    rim = [200 if a else LATE for a in ART]
    rd = tic.read(clip_of(lesion, LIVER, rim), np.ones(30, bool), PAPER_OFFSETS_S)
    assert rd.aphe == "rim"
    assert rd.rim_index == pytest.approx(1 - 5 / 30, abs=0.02)
    assert rd.profile[8] == pytest.approx(100 * (1 - 5 / 30), abs=1)  # 0.8-0.9 radii: band
    assert rd.profile[0] == pytest.approx(0.0, abs=0.5)  # the centre: at the liver's level


def test_a_filled_disc_reads_as_nonrim():
    """The whole disc at 200 in the arterial phase: edge and core alike (rim index 0)."""
    rd = tic.read(disc_clip([200 if a else LATE for a in ART]), np.ones(30, bool),
                  PAPER_OFFSETS_S)
    assert rd.aphe == "nonrim" and rd.rim_index == pytest.approx(0.0, abs=0.02)
    assert rd.aphe_magnitude == pytest.approx(1 - 0.5 / 30, abs=0.01)


def test_a_disc_with_a_dark_core_reads_as_rim_and_a_bright_core_does_not():
    """Core (0.45 radii) at 110 = rank 10.5/30 among the liver's samples: it enhances
    10.5/30 - 5/30 = 0.183 over the liver, the edge 1 - 5/30 = 0.833 (core/edge 0.22 <
    RIM_CORE_RATIO). A core at 150 is still above every liver sample (rank 1, like the edge):
    relative to the parenchyma it is not darker, so non-rim."""
    disc = [200 if a else LATE for a in ART]
    dark = tic.read(disc_clip(disc, [110 if a else LATE for a in ART]), np.ones(30, bool),
                    PAPER_OFFSETS_S)
    assert dark.aphe == "rim"
    assert dark.rim_index == pytest.approx((1 - 5 / 30) - (10.5 / 30 - 5 / 30), abs=0.03)
    bright = tic.read(disc_clip(disc, [150 if a else LATE for a in ART]), np.ones(30, bool),
                      PAPER_OFFSETS_S)
    assert bright.aphe == "nonrim" and abs(bright.rim_index) < tic.RIM_MIN


def test_a_lesion_too_small_for_a_pattern_is_not_called_rim():
    """A ring of radius 3 in 64 pixels (under 2 % of the ROI): no lesion found, and the
    stand-in central disk has no pattern to read."""
    lesion = [LIVER[i] if a else LATE for i, a in enumerate(ART)]
    rim = [200 if a else LATE for a in ART]
    rd = tic.read(clip_of(lesion, LIVER, rim, radius=3.0), np.ones(30, bool), PAPER_OFFSETS_S)
    assert rd.aphe != "rim" and rd.rim_index is None


# -- the reference outside the ROI (band / operator's reference box) ------------------------

def tight(size: int = 128, radius: float = 28.0, side: int = 45):
    """An HCC-like disc of ``radius`` in a ``size`` frame and a ROI of 1.6 radii around its
    centre (all lesion: the ROI's own border ring sees no liver)."""
    lesion = [180 if o <= 20 else (LIVER[i] if o < 60 else LIVER[i] - 5)
              for i, o in enumerate(OFF)]
    frame = disc_clip(lesion, size=size, radius=radius)
    y0 = (size - side) // 2
    return frame, (y0, y0, side, side), frame[:, y0:y0 + side, y0:y0 + side]


def test_a_tight_roi_needs_the_band_outside_it():
    frame, box, roi = tight()
    inner = tic.read(roi, np.ones(30, bool), PAPER_OFFSETS_S, arrival_delay_s=18.0)
    assert inner.reference == "ring" and inner.aphe == "none"  # the lesion is its own liver
    rd = tic.read(roi, np.ones(30, bool), PAPER_OFFSETS_S, arrival_delay_s=18.0,
                  view=tic.View(frame, box))
    # the same hand-computed curves as the loose ROI of test_hcc_like_curves_read_as_lr5
    assert rd.reference == "band" and rd.aphe == "nonrim"
    assert rd.aphe_magnitude == pytest.approx(1 - 0.5 / 30, abs=0.01)
    assert rd.washout == "late" and rd.washout_degree == "mild" and rd.category == "LR-5-like"


def test_an_operator_reference_box_and_too_small_a_band():
    frame, box, roi = tight()
    ref = np.zeros(frame.shape[1:], bool)
    ref[2:20, 2:20] = True  # a corner of liver
    rd = tic.read(roi, np.ones(30, bool), PAPER_OFFSETS_S, arrival_delay_s=18.0,
                  view=tic.View(frame, box, ref))
    assert rd.reference == "ref_roi" and rd.aphe == "nonrim"
    assert rd.aphe_magnitude == pytest.approx(1 - 0.5 / 30, abs=0.01)
    # a view with (almost) nothing around the ROI: the ring stands in, and says so
    y0, x0, h, w = box
    rd = tic.read(roi, np.ones(30, bool), PAPER_OFFSETS_S,
                  view=tic.View(frame[:, y0 - 1:y0 + h, x0:x0 + w], (1, 0, h, w)))
    assert rd.reference == "ring"
