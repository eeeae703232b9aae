"""The training recipe of the shipped model, in one place: the shipped model
(``python -m ceustream.models.ship``) and the cross-renderer evaluation
(``python -m ceustream.benchmarks.cross_renderer``) train with exactly this.

- input: ``liver_rank`` preprocessing (every pixel ranked among the liver's, the ROI border's,
  over the exam; ``engine.core.preprocess``), centred by ``norm``;
- augmentations: every clip-level one (gain, dynamic range, colour map, blur, codec, noise,
  flip), drawn anew per sample and epoch; the render-time ones (ROI, frame rate, t0 error) are
  in the cohorts (``models.cohorts``);
- the paper's 3D-CNN, Adam, batch 16, cross-entropy, the epoch with the best validation ROC
  AUC kept;
- beside the network: the TIC model (``engine.core.tic``) and the out-of-distribution
  reference (``engine.core.analysis``), fitted on the same training clips.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from ceustream.engine.core import analysis, tic
from ceustream.engine.core.modelmeta import PAPER_OFFSETS_S

from .augment import CLIP_LEVEL
from .train import TrainConfig

log = logging.getLogger(__name__)

PREPROCESSING = {"kind": "liver_rank", "ring": 0.1}
NORM = (1.0, 0.5, 0.25)
RECIPE = TrainConfig(network="cnn3d", epochs=8, batch=16, lr=3e-4, seed=0,
                     preprocessing=PREPROCESSING, norm=NORM, augment=CLIP_LEVEL)
#: cohort seeds: training, validation (epoch choice, OOD threshold), held-out test
TRAIN_SEED, VAL_SEED, TEST_SEED = 1001, 1002, 2024


def config(**changes) -> TrainConfig:
    """The recipe with some fields changed (ablations, other networks, quick runs)."""
    return replace(RECIPE, **changes)


def tic_vectors(clips: np.ndarray) -> np.ndarray:
    present = np.ones(clips.shape[1], bool)
    return np.array([tic.tic_vector(c, present, PAPER_OFFSETS_S, PREPROCESSING["ring"])
                     for c in clips])


def ood_vectors(clips: np.ndarray) -> np.ndarray:
    present = np.ones(clips.shape[1], bool)
    out = []
    for c in clips:
        rd = tic.read(c, present, PAPER_OFFSETS_S, PREPROCESSING["ring"])
        out.append(analysis.ood_vector(c, present, rd, PREPROCESSING["ring"]))
    return np.array(out)


def fit_analysis(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray) -> dict:
    """The metadata's ``analysis``: the TIC model and the OOD reference (threshold: the
    validation clips' 99th percentile distance)."""
    log.info("fitting the TIC model and the OOD reference on %d clips", len(x_train))
    return {"tic": tic.fit_logistic(tic_vectors(x_train), y_train),
            "ood": analysis.fit_ood(ood_vectors(x_train), ood_vectors(x_val))}


def tic_scores(model: dict, clips: np.ndarray) -> np.ndarray:
    return np.array([tic.tic_probability(v, model) for v in tic_vectors(clips)])


def fit(x_train, y_train, x_val, y_val, cfg: TrainConfig = RECIPE, work: Path | None = None,
        resume: bool = False):
    """(network, history) by the recipe (``models.train.fit``)."""
    from .train import fit as train_fit

    return train_fit(x_train, y_train, x_val, y_val, cfg, work, resume=resume, progress=False,
                     log=log.info)
