"""Training data a user brings: a folder of clips (``labels.csv`` + ``<id>.npy``). Every row
is checked before anything is loaded."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ceustream.engine.core.errors import InputError
from ceustream.engine.core.manifest import LABELS

CLIP_SHAPE = (30, 64, 64)


def load_clip_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``labels.csv`` (id,label) + ``<id>.npy`` clips (30x64x64 uint8). Every bad row is
    reported at once; nothing is loaded half."""
    csv_path = folder / "labels.csv"
    if not csv_path.is_file():
        raise InputError(f"--data {folder}: no labels.csv (id,label) and no manifest.csv")
    rows = list(csv.DictReader(csv_path.read_text(encoding="utf-8-sig").splitlines()))
    errors, clips, labels, ids = [], [], [], []
    for n, r in enumerate(rows, start=2):
        r = {(k or "").strip().lower(): (v or "").strip() for k, v in r.items()}
        cid, lab = r.get("id", ""), LABELS.get(r.get("label", "").lower())
        why = []
        if not cid:
            why.append("id is empty")
        if lab is None:
            why.append(f"label {r.get('label')!r} is not HCC or non-HCC")
        f = folder / f"{cid}.npy"
        arr = None
        if cid and not f.is_file():
            why.append(f"{f.name} not found")
        elif cid:
            try:
                arr = np.load(f, allow_pickle=False)
            except (ValueError, OSError) as e:
                why.append(f"{f.name} unreadable ({e})")
            else:
                if arr.shape != CLIP_SHAPE:
                    why.append(f"{f.name} has shape {arr.shape}, expected {CLIP_SHAPE}")
                elif arr.dtype != np.uint8:
                    why.append(f"{f.name} is {arr.dtype}, expected uint8")
        if why:
            errors.append(f"row {n}: {'; '.join(why)}")
        else:
            clips.append(arr)
            labels.append(lab)
            ids.append(cid)
    if errors:
        raise InputError(f"{csv_path}: {len(errors)} bad row(s): " + " | ".join(errors[:20]))
    if len(set(labels)) < 2:
        raise InputError(f"{csv_path}: needs both HCC and non-HCC clips")
    return np.stack(clips), np.array(labels), ids
