"""Site adaptation: ``ceustream adapt MANIFEST --out FILE.onnx [--base MODEL]``.

A hospital has a few dozen local, labelled exams, not thousands. From so few, only small
things can be fitted without over-fitting; this fits exactly those, beside the unchanged
network weights:

- the TIC model (``core.tic``'s ridge logistic regression) refitted on the site's readings;
- a fusion: a ridge logistic regression of the network's logit and the TIC vector, which
  becomes the adapted model's score (``analysis.fusion``) once the clip has
  ``analysis.MIN_SLOTS_FOR_WARNINGS`` slots (before that the network's probability is shown,
  provisional as always);
- the out-of-distribution reference extended with the site's embeddings (``core.domain``),
  so that exams like the site's are inside the adapted model's domain.

Expected performance is measured by leave-one-out cross-validation (every exam predicted by a
fit that never saw it) with bootstrap 95 % intervals, for the network alone, the refitted TIC
model and the fusion; how often a left-out exam is inside the domain of a reference extended
by the others is reported too. The adapted file is the base file with new metadata: what it
was adapted on (count, manifest sha256, date, base model), the cross-validation, the fits.
It is served by ``--model`` and ``reload_model`` like any model file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ceustream.engine.core import domain, tic
from ceustream.engine.core.errors import InputError, UsageError
from ceustream.engine.core.manifest import check_manifest
from ceustream.engine.core.modelmeta import LoadedModel

log = logging.getLogger(__name__)

#: fewer exams than this are refused: leave-one-out on fewer says nothing
MIN_EXAMS = 10
#: ridge strength of the fits (standardised features): strong, for a few dozen exams
L2 = 4.0
FUSION_FEATURES = ["network_logit", *tic.VECTOR]


@dataclass
class SiteExam:
    line: int
    label: int
    p_network: float
    tic_vector: np.ndarray
    embedding: np.ndarray | None
    final: bool


def logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def fusion_vector(p_network: float, tic_vec: np.ndarray) -> np.ndarray:
    return np.concatenate([[logit(p_network)], np.asarray(tic_vec, np.float64)])


def fused_probability(p_network: float, tic_vec: np.ndarray, fusion: dict) -> float:
    """The adapted score: the fusion's P(HCC) (``fit_logistic`` coefficients)."""
    return tic.tic_probability(fusion_vector(p_network, tic_vec), fusion)


def fit_fusion(p_network: np.ndarray, tic_vecs: np.ndarray, y: np.ndarray) -> dict:
    X = np.array([fusion_vector(p, v) for p, v in zip(p_network, tic_vecs)])
    fit = tic.fit_logistic(X, y, l2=L2)
    fit["features"] = list(FUSION_FEATURES)
    return fit


def fit_tic(tic_vecs: np.ndarray, y: np.ndarray) -> dict:
    return tic.fit_logistic(np.asarray(tic_vecs), y, l2=L2)


def leave_one_out(n: int, fit: Callable[[np.ndarray], Any],
                  predict: Callable[[Any, int], float]) -> np.ndarray:
    """Predictions for each exam from a fit on all the others."""
    out = np.empty(n)
    for i in range(n):
        keep = np.flatnonzero(np.arange(n) != i)
        out[i] = predict(fit(keep), i)
    return out


def check_classes(labels: list[int], where: str) -> None:
    n_hcc = sum(labels)
    if len(labels) < MIN_EXAMS:
        raise InputError(f"{where}: {len(labels)} usable exam(s); adapt needs at least "
                         f"{MIN_EXAMS}")
    if n_hcc == 0 or n_hcc == len(labels):
        raise InputError(f"{where}: every usable exam is {'HCC' if n_hcc else 'non-HCC'}; adapt "
                         "needs both classes")


def cross_validate(exams: list[SiteExam], ood: dict | None) -> dict[str, Any]:
    from ceustream.models.metrics import evaluate

    y = np.array([e.label for e in exams])
    p_net = np.array([e.p_network for e in exams])
    V = np.array([e.tic_vector for e in exams])
    n = len(exams)
    loo_tic = leave_one_out(n, lambda k: fit_tic(V[k], y[k]),
                            lambda m, i: tic.tic_probability(V[i], m))
    loo_fus = leave_one_out(n, lambda k: fit_fusion(p_net[k], V[k], y[k]),
                            lambda m, i: fused_probability(p_net[i], V[i], m))

    def ev(p: np.ndarray) -> dict[str, Any]:
        e = evaluate(y, p, 0.5, n_boot=2000)
        return {"ROC_AUC": round(e["metrics"]["ROC_AUC"], 4),
                "ROC_AUC_ci95": [None if v is None else round(v, 3)
                                 for v in e["ci95"]["ROC_AUC"]],
                "ACC": round(e["metrics"]["ACC"], 4), "SE": round(e["metrics"]["SE"], 4),
                "SP": round(e["metrics"]["SP"], 4)}

    out = {"method": "leave-one-out", "n": n, "n_hcc": int(y.sum()),
           "network": ev(p_net), "tic_model": ev(loo_tic), "fusion": ev(loo_fus),
           "predictions": {"network": p_net.round(4).tolist(), "tic_model": loo_tic.round(4).tolist(),
                           "fusion": loo_fus.round(4).tolist()}}
    emb = [e.embedding for e in exams]
    if ood is not None and all(x is not None for x in emb):
        E = np.array(emb)
        base_out = domain.knn_distances(E, ood) > float(ood["threshold"])
        inside = []
        for i in range(n):
            ref = domain.extend_reference(ood, E[np.arange(n) != i], "loo")
            inside.append(bool(domain.knn_distances(E[i:i + 1], ref)[0] <= float(ref["threshold"])))
        out["domain"] = {"base_out_of_domain": int(base_out.sum()),
                         "left_out_inside_adapted_domain": int(sum(inside))}
    return out


def collect(rows, cfg: dict, loaded: tuple, progress: Callable[[str], None]) -> list[SiteExam]:
    """Each row through the real pipeline with the base model; the final clip's facts."""
    from ceustream.engine.backends.onnxruntime import EmbeddingRunner

    from .replay import ReplayOptions, replay

    model: LoadedModel = loaded[0]
    meta = model.meta
    ood = meta.analysis.get("ood") if domain.uses_embedding(meta.analysis or {}) else None
    embed = EmbeddingRunner(model, ood["output"]) if ood else None
    out: list[SiteExam] = []
    for k, row in enumerate(rows, 1):
        cap: dict[str, Any] = {}

        def keep(s, session) -> None:
            cap["raw"], cap["present"] = session.clip.raw.copy(), session.clip.present.copy()
            cap["x"], cap["delay"] = session.clip.model_input(), None
            if session.t0 is not None and session.injection is not None:
                cap["delay"] = session.t0 - session.injection

        t0, inj = row.replay_times
        try:
            res = replay(row.path, ReplayOptions(roi=row.roi, t0=t0, injection=inj,
                                                 journal=False), cfg, on_score=keep,
                         loaded=loaded)
        except InputError as e:
            progress(f"row {row.line}: left out ({e})")
            continue
        if not res["final"] or "raw" not in cap:
            progress(f"row {row.line}: left out (not final: {res['slots_filled']}/"
                     f"{res['slots_total']} slots)")
            continue
        vec = tic.tic_vector(cap["raw"], cap["present"], meta.offsets_s,
                             meta.preprocessing_spec().ring, cap["delay"])
        emb = embed(cap["x"])[0] if embed is not None else None
        out.append(SiteExam(row.line, row.label, float(res["score"]), vec, emb, True))
        progress(f"[{k}/{len(rows)}] row {row.line}: P(HCC) network {res['score']:.3f}")
    return out


def manifest_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def adapt(manifest: str | Path, out: str | Path, cfg: dict, base: str | None = None,
          progress: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Fits, cross-validates and writes the adapted model; returns the report."""
    from .loading import load_model_and_backend

    out = Path(out)
    if out.suffix != ".onnx":
        raise UsageError(f"--out {out}: must end in .onnx")
    if not out.parent.is_dir():
        raise InputError(f"--out {out}: folder {out.parent} not found")
    m = check_manifest(manifest)
    for b in m.bad:
        progress(f"{b.describe()}: left out")
    check_classes([r.label for r in m.rows], f"manifest {m.path}")
    loaded = load_model_and_backend(base, "onnxruntime", cfg)
    model: LoadedModel = loaded[0]
    exams = collect(m.rows, cfg, loaded, progress)
    check_classes([e.label for e in exams], f"manifest {m.path} (after replay)")
    meta = model.meta
    ood = meta.analysis.get("ood") if domain.uses_embedding(meta.analysis or {}) else None
    cv = cross_validate(exams, ood)
    y = np.array([e.label for e in exams])
    V = np.array([e.tic_vector for e in exams])
    analysis = dict(meta.analysis or {})
    analysis["tic"] = fit_tic(V, y)
    analysis["fusion"] = fit_fusion(np.array([e.p_network for e in exams]), V, y)
    if ood is not None:
        analysis["ood"] = domain.extend_reference(
            ood, np.array([e.embedding for e in exams]), f"site adaptation ({len(exams)} exams)")
    adapted = {"count": len(exams), "n_hcc": int(y.sum()),
               "manifest_sha256": manifest_sha256(m.path),
               "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "base_model": {"name": meta.name, "sha256": model.sha256},
               "fitted": ["tic", "fusion"] + (["ood_reference"] if ood is not None else []),
               "cross_validation": {k: v for k, v in cv.items() if k != "predictions"}}
    prov = dict(meta.provenance or {})
    prov["adapted"] = adapted
    new_meta = replace(meta, name=(meta.name + "-site")[:64], analysis=analysis,
                       provenance=prov)
    write_model(model.path, new_meta, out)
    return {"out": str(out), "adapted": adapted, "cross_validation": cv,
            "left_out": len(m.rows) - len(exams) + len(m.bad)}


def write_model(base: Path, meta, out: Path) -> None:
    """The base ONNX file with ``meta`` in place of its metadata, written atomically."""
    import onnx

    from ceustream.engine.core.modelmeta import write

    model = onnx.load(str(base))
    write(model, meta)
    tmp = out.with_name(out.name + ".tmp")
    try:
        onnx.save(model, str(tmp))
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InputError(f"--out {out}: cannot write ({e.strerror})") from None
