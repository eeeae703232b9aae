"""Training with the paper's protocol (Adam 1e-4, batch 16, softmax cross-entropy), on a
simulated cohort or on user data, with checkpoints and resume.

Expansion of the minority class (paper 1.1.4/1.1.7: ±1 s temporal shifts and horizontal
flips of each non-HCC clip; five more B-mode images per non-HCC patient) is applied AFTER a
patient-level split, so no patient's copies land on both sides. The paper expanded first and
then split 7:1:2, which lets copies of one patient reach both training and test sets; its test
numbers may be optimistic for that reason.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .metrics import evaluate, roc_auc

#: the module's logger (``fit`` takes a progress callable named ``log``)
logger = logging.getLogger(__name__)


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def patient_split(labels: np.ndarray, seed: int, ratios=(0.7, 0.1, 0.2)) -> Split:
    """Stratified 7:1:2 split of patient indices (each patient lands in exactly one part)."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n = len(idx)
        n_val = max(1, int(round(n * ratios[1]))) if n >= 5 else 0
        n_test = max(1, int(round(n * ratios[2]))) if n >= 3 else 0
        parts["test"] += list(idx[:n_test])
        parts["val"] += list(idx[n_test:n_test + n_val])
        parts["train"] += list(idx[n_test + n_val:])
    return Split(*(np.array(sorted(parts[k]), int) for k in ("train", "val", "test")))


@dataclass
class TrainConfig:
    network: str = "cnn3d"
    epochs: int = 20
    batch: int = 16
    lr: float = 1e-4
    seed: int = 0
    threads: int = 0
    #: "best" keeps the epoch with the best validation ROC AUC; "last" keeps the last epoch,
    #: as the paper did (it stopped after 100 iterations)
    keep: str = "best"
    net_kwargs: dict = field(default_factory=dict)
    #: how clips become the input (``engine.core.preprocess``), exported into the metadata
    preprocessing: dict = field(default_factory=lambda: {"kind": "scale"})
    #: input = (prepared * norm_scale - norm_mean) / norm_std, exported into the metadata
    norm: tuple[float, float, float] = (1.0 / 255.0, 0.0, 1.0)
    #: clip-level augmentations drawn per sample per epoch (``models.augment.CLIP_LEVEL``)
    augment: tuple[str, ...] = ()

    @property
    def is_3d(self) -> bool:
        from .networks import NETWORKS_3D

        return self.network in NETWORKS_3D


class ProgressBar:
    def __init__(self, total: int, label: str, enabled: bool = True):
        self.total, self.label, self.enabled = total, label, enabled and total > 0
        self.start = time.monotonic()
        self.n = 0
        self.tty = sys.stderr.isatty()
        self._last_tenth = -1

    def update(self, n: int = 1, note: str = "") -> None:
        self.n += n
        if not self.enabled:
            return
        frac = self.n / self.total
        el = time.monotonic() - self.start
        eta = el / frac - el if frac > 0 else 0
        bar = "#" * int(frac * 24)
        line = f"{self.label} [{bar:<24}] {self.n}/{self.total} {el:5.0f}s eta {eta:4.0f}s {note}"
        if self.tty:
            sys.stderr.write(f"\r{line}   " + ("\n" if self.n >= self.total else ""))
        elif int(frac * 10) != self._last_tenth:  # a log file gets a line per 10 %
            self._last_tenth = int(frac * 10)
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def prepare_batch(x: np.ndarray, cfg: "TrainConfig | None") -> np.ndarray:
    """uint8 clips (N, D, H, W) → the model's float32 input, with the function the engine
    uses (``engine.core.preprocess.prepare``): training and serving cannot differ."""
    from ceustream.engine.core.preprocess import Preprocessing, prepare

    cfg = cfg or TrainConfig()
    spec = Preprocessing.from_dict(cfg.preprocessing)
    scale, mean, std = cfg.norm
    present = np.ones(x.shape[1], bool)
    return np.stack([prepare(c, present, spec, scale, mean, std) for c in x])


def _to_tensor(x: np.ndarray, is_3d: bool, cfg: "TrainConfig | None" = None):
    import torch

    if is_3d:
        return torch.from_numpy(prepare_batch(x, cfg))[:, None]  # (N, 1, D, H, W)
    t = torch.from_numpy(x.astype(np.float32) / 255.0)
    return t.permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)


def predict(net, x: np.ndarray, is_3d: bool, batch: int = 32,
            cfg: "TrainConfig | None" = None) -> np.ndarray:
    """P(HCC) for uint8 inputs, prepared as ``cfg`` says (default: the legacy scaling)."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = net(_to_tensor(x[i:i + batch], is_3d, cfg))
            out.append(torch.softmax(logits, 1)[:, 1].numpy())
    return np.concatenate(out) if out else np.zeros(0)


def fit(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
        cfg: TrainConfig, checkpoint_dir: str | Path | None = None, resume: bool = False,
        progress: bool = True, log: Callable[[str], None] | None = None) -> tuple:
    """Trains; returns (best network, history). Keeps the epoch with the best validation
    ROC AUC (ties: lower validation loss)."""
    import torch
    from torch import nn

    from .networks import build

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = build(cfg.network, **cfg.net_kwargs)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict] = []
    start_epoch = 0
    best = (-1.0, float("inf"))
    best_state = None
    ckpt = Path(checkpoint_dir) / "checkpoint.pt" if checkpoint_dir else None
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        if resume and ckpt.exists():
            state = torch.load(ckpt, weights_only=False)
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["opt"])
            start_epoch = state["epoch"] + 1
            history = state["history"]
            best = tuple(state["best"])
            best_state = state["best_state"]
            rng = np.random.default_rng(state["rng_seed"] + start_epoch)
            if log:
                log(f"resumed from {ckpt} at epoch {start_epoch + 1}")
    for epoch in range(start_epoch, cfg.epochs):
        net.train()
        order = rng.permutation(len(x_train))
        bar = ProgressBar(len(order), f"{cfg.network} epoch {epoch + 1}/{cfg.epochs}", progress)
        total = 0.0
        for i in range(0, len(order), cfg.batch):
            idx = order[i:i + cfg.batch]
            xs = x_train[idx]
            if cfg.augment and cfg.is_3d:
                from .augment import ClipAugment

                xs = np.stack([ClipAugment.sample(rng, cfg.augment).apply(c) for c in xs])
            xb = _to_tensor(xs, cfg.is_3d, cfg)
            yb = torch.from_numpy(y_train[idx].astype(np.int64))
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            bar.update(len(idx), f"loss {total / min(i + cfg.batch, len(order)):.3f}")
        p_val = predict(net, x_val, cfg.is_3d, cfg=cfg)
        with torch.no_grad():
            eps = 1e-7
            val_loss = float(-np.mean(y_val * np.log(p_val + eps) + (1 - y_val) * np.log(1 - p_val + eps)))
        auc = roc_auc(y_val, p_val) if len(set(y_val.tolist())) == 2 else float("nan")
        rec = {"epoch": epoch + 1, "train_loss": total / max(len(order), 1), "val_loss": val_loss,
               "val_auc": auc}
        history.append(rec)
        if log:
            log(f"epoch {epoch + 1}: train loss {rec['train_loss']:.4f}, val loss {val_loss:.4f},"
                f" val AUC {auc:.4f}")
        key = (auc if not np.isnan(auc) else 0.0, val_loss)
        if key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
            best = key
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if ckpt is not None:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "epoch": epoch,
                        "history": history, "best": list(best), "best_state": best_state,
                        "rng_seed": cfg.seed, "config": cfg.__dict__}, tmp)
            os.replace(tmp, ckpt)
            logger.debug("checkpoint after epoch %d: %s", epoch + 1, ckpt)
    if best_state is not None and cfg.keep == "best":
        net.load_state_dict(best_state)
    net.eval()
    return net, history


def expand_minority(x: np.ndarray, y: np.ndarray, extra: dict[int, list[np.ndarray]] | None,
                    is_3d: bool) -> tuple[np.ndarray, np.ndarray]:
    """Paper expansion of the non-HCC class (training part only). ``extra`` maps a row to
    its additional views (±1 s shifted clips, or more B-mode images); every view and the
    original are also flipped horizontally."""
    xs, ys = [x], [y]
    for i in np.flatnonzero(y == 0):
        views = [x[i]] + (extra.get(int(i), []) if extra else [])
        for k, v in enumerate(views):
            if k > 0:
                xs.append(v[None])
                ys.append(np.array([0]))
            flipped = v[:, :, ::-1] if is_3d else v[:, ::-1, :]
            xs.append(np.ascontiguousarray(flipped)[None])
            ys.append(np.array([0]))
    return np.concatenate(xs), np.concatenate(ys)


def save_history(history: list[dict], path: Path) -> None:
    path.write_text(json.dumps(history, indent=1))
    logger.debug("training history (%d epochs): %s", len(history), path)


def summarize(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict:
    return evaluate(y, p, threshold)
