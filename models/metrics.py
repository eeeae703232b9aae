"""Classification metrics as the paper defines them (section 1.3), shared by training,
export and QA replay.

HCC is the positive class. ACC, PPV, SE (sensitivity), SP (specificity), DSC (Dice = F1)
from a confusion matrix; ROC AUC from scores (Mann-Whitney), never from hard labels.

Note on the paper: its "AUC" column equals (SE + SP) / 2 in every row of Tables 1 and 2,
i.e. the area under a ROC "curve" built from hard labels (one operating point), which is the
balanced accuracy, not a ranking AUC. ``paper_auc`` computes that quantity so the tables can
be reproduced; ceustream reports the score-based AUC.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Confusion:
    tp: int
    fn: int
    tn: int
    fp: int

    @classmethod
    def from_labels(cls, y_true, y_pred) -> "Confusion":
        y, p = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
        return cls(int(((y == 1) & (p == 1)).sum()), int(((y == 1) & (p == 0)).sum()),
                   int(((y == 0) & (p == 0)).sum()), int(((y == 0) & (p == 1)).sum()))

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.tn + self.fp


def _div(a: float, b: float) -> float:
    return float(a) / b if b else float("nan")


def acc(c: Confusion) -> float:
    return _div(c.tp + c.tn, c.n)


def ppv(c: Confusion) -> float:
    return _div(c.tp, c.tp + c.fp)


def se(c: Confusion) -> float:
    return _div(c.tp, c.tp + c.fn)


def sp(c: Confusion) -> float:
    return _div(c.tn, c.tn + c.fp)


def dsc(c: Confusion) -> float:
    return _div(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def balanced_accuracy(c: Confusion) -> float:
    return (se(c) + sp(c)) / 2


def paper_auc(c: Confusion) -> float:
    """The paper's AUC column: the area under the one-point ROC of hard labels = (SE+SP)/2."""
    return balanced_accuracy(c)


def roc_auc(y_true, scores) -> float:
    """P(score of a random HCC > score of a random non-HCC), ties counting one half."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    rpos = r[:len(pos)].sum()
    return float((rpos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def roc_curve(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    thr = np.unique(s)[::-1]
    P, N = max((y == 1).sum(), 1), max((y == 0).sum(), 1)
    tpr = [0.0] + [float(((s >= t) & (y == 1)).sum()) / P for t in thr]
    fpr = [0.0] + [float(((s >= t) & (y == 0)).sum()) / N for t in thr]
    return np.array(fpr), np.array(tpr), np.concatenate([[np.inf], thr])


def table_row(c: Confusion) -> dict[str, float]:
    """The paper's columns, in percent."""
    return {"ACC": 100 * acc(c), "PPV": 100 * ppv(c), "SE": 100 * se(c), "SP": 100 * sp(c),
            "DSC": 100 * dsc(c), "AUC": 100 * paper_auc(c)}


def evaluate(y_true, scores, threshold: float = 0.5, n_boot: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """All metrics with bootstrap 95% CIs (percentile, resampling exams)."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    if len(y) != len(s):
        raise ValueError("labels and scores differ in length")
    pred = (s >= threshold).astype(int)
    c = Confusion.from_labels(y, pred)
    point = {"ACC": acc(c), "PPV": ppv(c), "SE": se(c), "SP": sp(c), "DSC": dsc(c),
             "balanced_accuracy": balanced_accuracy(c), "ROC_AUC": roc_auc(y, s)}
    rng = np.random.default_rng(seed)
    boots = {k: [] for k in point}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        yb, sb = y[idx], s[idx]
        cb = Confusion.from_labels(yb, (sb >= threshold).astype(int))
        vals = {"ACC": acc(cb), "PPV": ppv(cb), "SE": se(cb), "SP": sp(cb), "DSC": dsc(cb),
                "balanced_accuracy": balanced_accuracy(cb), "ROC_AUC": roc_auc(yb, sb)}
        for k, v in vals.items():
            if not np.isnan(v):
                boots[k].append(v)
    ci = {k: ([float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else [None, None])
          for k, v in boots.items()}
    return {"n": int(len(y)), "n_hcc": int(y.sum()), "n_non_hcc": int((1 - y).sum()),
            "threshold": threshold, "confusion": asdict(c),
            "metrics": {k: float(v) for k, v in point.items()}, "ci95": ci,
            "bootstrap": n_boot}


def plot_roc(curves: dict[str, tuple], path: str | Path, title: str = "ROC") -> Path:
    """``curves``: name → (y_true, scores). Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    for name, (y, s) in curves.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, lw=2, label=f"{name} (AUC {roc_auc(y, s):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("1 - specificity (non-HCC called HCC)")
    ax.set_ylabel("sensitivity (HCC called HCC)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_confusion(c: Confusion, path: str | Path, title: str = "Confusion matrix") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.array([[c.tn, c.fp], [c.fn, c.tp]])
    fig, ax = plt.subplots(figsize=(4, 3.6), dpi=120)
    ax.imshow(m, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=16,
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks([0, 1], ["non-HCC", "HCC"])
    ax.set_yticks([0, 1], ["non-HCC", "HCC"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


# The paper's confusion matrices (test sets), recovered from Tables 1-2 and Fig. 6:
# expanded test set 20 HCC + 20 non-HCC; unexpanded (*) 20 HCC + 4 non-HCC.
PAPER_CONFUSIONS = {
    "DenseNet": Confusion(tp=12, fn=8, tn=13, fp=7),
    "ResNet": Confusion(tp=13, fn=7, tn=14, fp=6),
    "VGG": Confusion(tp=12, fn=8, tn=16, fp=4),
    "Dense-3D": Confusion(tp=14, fn=6, tn=19, fp=1),
    "Res-3D": Confusion(tp=14, fn=6, tn=20, fp=0),
    "3D-CNN": Confusion(tp=16, fn=4, tn=18, fp=2),
    "VGG*": Confusion(tp=18, fn=2, tn=1, fp=3),
    "3D-CNN*": Confusion(tp=20, fn=0, tn=1, fp=3),
}

#: The paper's printed values (percent), Table 1 then Table 2's unexpanded rows.
PAPER_TABLES = {
    "DenseNet": {"ACC": 62.50, "PPV": 63.16, "SE": 60.00, "SP": 65.00, "DSC": 61.54, "AUC": 62.50},
    "ResNet": {"ACC": 67.50, "PPV": 68.42, "SE": 65.00, "SP": 70.00, "DSC": 66.67, "AUC": 67.50},
    "VGG": {"ACC": 70.00, "PPV": 75.00, "SE": 60.00, "SP": 80.00, "DSC": 66.67, "AUC": 70.00},
    "Dense-3D": {"ACC": 82.50, "PPV": 93.33, "SE": 70.00, "SP": 95.00, "DSC": 80.00, "AUC": 82.50},
    "Res-3D": {"ACC": 85.00, "PPV": 100.00, "SE": 70.00, "SP": 100.00, "DSC": 82.35, "AUC": 85.00},
    "3D-CNN": {"ACC": 85.00, "PPV": 88.89, "SE": 80.00, "SP": 90.00, "DSC": 84.21, "AUC": 85.00},
    "VGG*": {"ACC": 79.17, "PPV": 85.71, "SE": 90.00, "SP": 25.00, "DSC": 87.80, "AUC": 57.50},
    "3D-CNN*": {"ACC": 87.50, "PPV": 86.96, "SE": 100.00, "SP": 25.00, "DSC": 93.02, "AUC": 62.50},
}
