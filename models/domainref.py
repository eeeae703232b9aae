"""The out-of-distribution reference of a model file: ``python -m ceustream.models.domainref``.

Adds the ``embedding`` output to the model (``export.add_embedding_output``: the probabilities
stay bit-identical), computes the embeddings of training clips of the renderers the model was
trained on (the reference) and of held-out clips of the same renderers (the calibration: the
threshold is their ``--quantile`` k-NN distance), stores ``analysis.ood`` (``core.domain``)
in the metadata of the FP32 file and its FP16 sibling, and prints how often held-out clips of
each renderer are flagged (a fresh seed, never used for the reference or the threshold).

The shipped model's reference: ``python -m ceustream.models.domainref`` (defaults: 600
training patients per renderer, threshold from 150 validation patients per renderer, 97.5th
percentile, k = 5; cohorts cached in ``--work``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

log = logging.getLogger("ceustream.models.domainref")


def embeddings(model_bytes: bytes, meta, clips: np.ndarray, output: str = "embedding",
               present: np.ndarray | None = None) -> np.ndarray:
    """(N, E) embeddings of uint8 clips (N, D, H, W), prepared as the engine prepares them."""
    import onnxruntime as ort

    from ceustream.engine.core import preprocess

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    spec = meta.preprocessing_spec()
    out = []
    for i, c in enumerate(clips):
        pr = np.ones(len(c), bool) if present is None else present[i]
        x = preprocess.prepare(c, pr, spec, meta.norm_scale, meta.norm_mean, meta.norm_std)
        out.append(sess.run([output], {meta.input_name: x[None, None].astype(np.float32)})[0][0])
    return np.array(out)


def with_reference(path: Path, ood: dict) -> None:
    """Rewrites ``path`` (and its FP16 sibling) with the embedding output and ``ood``."""
    import onnx

    from ceustream.engine.core.modelmeta import read, write

    from .export import _atomic_save, add_embedding_output

    for p in (path, path.with_name(path.stem + "_fp16.onnx")):
        if not p.exists():
            continue
        meta = read(p).meta
        model = add_embedding_output(onnx.load(str(p)))
        write(model, replace(meta, analysis={**meta.analysis, "ood": ood}))
        onnx.checker.check_model(model)
        _atomic_save(model, p)
        log.info("wrote %s", p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ceustream.models.domainref",
                                 description="fit the out-of-distribution reference of a model")
    ap.add_argument("--model", default="models/weights/cnn3d.onnx")
    ap.add_argument("--work", default="runs/domainref", help="cohort cache")
    ap.add_argument("--reference", type=int, default=600, help="training patients per renderer")
    ap.add_argument("--calibrate", type=int, default=150, help="validation patients per renderer")
    ap.add_argument("--test", type=int, default=150, help="held-out patients per renderer")
    ap.add_argument("--renderers", default="A,B", help="the renderers the model was trained on")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--quantile", type=float, default=0.975)
    ap.add_argument("--dry-run", action="store_true", help="measure only; write nothing")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("ceustream").setLevel(logging.INFO)
    import onnx

    from ceustream.engine.core import domain
    from ceustream.engine.core.modelmeta import read

    from . import cohorts, recipe
    from .export import add_embedding_output

    path = Path(args.model)
    meta = read(path).meta
    model_bytes = add_embedding_output(onnx.load(str(path))).SerializeToString()
    work = Path(args.work)
    rs = args.renderers.split(",")

    def emb(r: str, n: int, seed: int) -> np.ndarray:
        return embeddings(model_bytes, meta, cohorts.cached(work, r, n, seed).clips)

    ref = np.concatenate([emb(r, args.reference, recipe.TRAIN_SEED) for r in rs])
    cal = np.concatenate([emb(r, args.calibrate, recipe.VAL_SEED) for r in rs])
    ood = domain.fit_knn(ref, cal, k=args.k, quantile=args.quantile,
                         note=f"reference: {args.reference} training patients per renderer "
                              f"({', '.join(rs)}, seed {recipe.TRAIN_SEED}); threshold: the "
                              f"{args.quantile:g} quantile over {args.calibrate} validation "
                              f"patients per renderer (seed {recipe.VAL_SEED})")
    report = {"k": args.k, "quantile": args.quantile, "threshold": ood["threshold"],
              "flagged_heldout": {}}
    for r in cohorts.RENDERERS:
        d = domain.knn_distances(emb(r, args.test, recipe.TEST_SEED), ood)
        report["flagged_heldout"][r] = round(float(np.mean(d > ood["threshold"])), 4)
    log.info("held-out clips flagged (seed %d): %s", recipe.TEST_SEED, report["flagged_heldout"])
    if not args.dry_run:
        with_reference(path, ood)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
