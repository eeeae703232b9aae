"""The exam journal: every sampled slot is written to disk as it is taken, so a crash or a
restart loses no exam (``ceustream journal rescore EXAM`` scores it again, with any model).

Layout (one folder per exam, local disk only; nothing here leaves the machine):
  exam.json      exam id, ROI, t0, model, backend, recording facts (no file path, no name)
  slots.jsonl    one line per decided slot (time, source, error)
  slot_NN.npy    the ROI crop at the recording's own resolution (uint8), before resizing
  result.json    the last result (written at the end)
Writes go through one background thread, so the streaming path never waits on fsync.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ceustream.engine.core.errors import InputError

from .session import Event

log = logging.getLogger(__name__)


def default_dir(cfg: dict | None = None) -> Path:
    if cfg and cfg["journal"]["dir"]:
        return Path(cfg["journal"]["dir"])
    if os.environ.get("CEUSTREAM_JOURNAL_DIR"):
        return Path(os.environ["CEUSTREAM_JOURNAL_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "ceustream" / "journal"


def _fsync_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Journal:
    def __init__(self, root: Path, exam: str):
        self.dir = Path(root) / exam
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"journal folder {self.dir}: cannot be created ({e.strerror})") from None
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._t = threading.Thread(target=self._run, name="ceus-journal", daemon=True)
        self._t.start()
        self.error: str | None = None

    def exam(self, info: dict[str, Any]) -> None:
        self._q.put(("json", "exam.json", info))

    def slot(self, index: int, record: dict[str, Any], crop: np.ndarray | None) -> None:
        self._q.put(("slot", index, record, None if crop is None else crop.copy()))

    def result(self, result: dict[str, Any]) -> None:
        self._q.put(("json", "result.json", result))

    def close(self) -> None:
        self._q.put(None)
        self._t.join(10)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            try:
                if item[0] == "json":
                    _fsync_write(self.dir / item[1], json.dumps(item[2], indent=1).encode())
                else:
                    _, index, record, crop = item
                    if crop is not None:
                        with open(self.dir / f"slot_{index:02d}.npy", "wb") as f:
                            np.save(f, crop)
                            f.flush()
                            os.fsync(f.fileno())
                    with open(self.dir / "slots.jsonl", "a") as f:
                        f.write(json.dumps(record) + "\n")
                        f.flush()
                        os.fsync(f.fileno())
            except OSError as e:  # a full disk must not stop the exam; it is reported
                self.error = f"journal {self.dir}: {e.strerror}"
                log.error("%s", self.error)

    def subscriber(self, event: Event) -> None:
        """Records an exam's events: t0 (the exam record), every decided slot, the result
        (then closes)."""
        if event.kind == "t0":
            self.exam(event.data)
        elif event.kind == "slot":
            fill, crop = event.data
            self.slot(fill.index, fill.describe(), crop)
        elif event.kind == "finished":
            self.result(event.data)


def load(root: Path, exam: str) -> tuple[dict[str, Any], dict[int, dict], dict[int, np.ndarray]]:
    """(exam info, slot records by index (last wins), ROI crops by index)."""
    d = Path(root) / exam
    if not (d / "exam.json").exists():
        raise InputError(f"journal: no exam {exam!r} under {root}")
    try:
        info = json.loads((d / "exam.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"journal {d / 'exam.json'}: unreadable ({e})") from None
    records: dict[int, dict] = {}
    if (d / "slots.jsonl").exists():
        for n, line in enumerate((d / "slots.jsonl").read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                records[int(rec["slot"])] = rec
            except (json.JSONDecodeError, KeyError, ValueError):
                raise InputError(f"journal {d / 'slots.jsonl'} line {n}: damaged record") from None
    crops = {}
    for i in records:
        p = d / f"slot_{i:02d}.npy"
        if p.exists():
            crops[i] = np.load(p)
    return info, records, crops


def list_exams(root: Path) -> list[str]:
    root = Path(root)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "exam.json").exists())
