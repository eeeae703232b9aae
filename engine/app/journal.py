"""The exam journal: every sampled slot is written to disk as it is taken, so a crash or a
restart loses no exam (``ceustream journal rescore EXAM`` scores it again, with any model).

Layout (local disk only; nothing here leaves the machine): one folder per exam, and in it one
folder per run of that exam, so two runs (a replay repeated, an exam restarted) never mix:
  <root>/<exam>/<run>/exam.json     exam id, ROI, t0, model, backend (no file path, no name)
  <root>/<exam>/<run>/slots.jsonl   one line per decided slot (time, source, error)
  <root>/<exam>/<run>/slot_NN.npy   the slot's crop at the recording's own resolution (uint8):
                                    the ROI, or the ROI with the frame around it (exam.json
                                    "region"; the TIC reading's parenchyma reference)
  <root>/<exam>/<run>/result.json   the result, written at the end (absent: interrupted)
Run ids sort by start time (``20261128T101500Z-3fa9c1``). A folder written by an older
version (files directly under ``<exam>/``) reads as the run ``legacy``.

Every file is written under a temporary name, fsync'd and renamed, so a file with its final
name is always complete: a full or read-only disk leaves no truncated file that looks valid.
A write that fails is reported once (``on_error``: the live engine publishes
``journal_error``) and the exam goes on. Writes go through one background thread, so the
streaming path never waits on fsync.
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ceustream.engine.core.errors import InputError, UsageError
from ceustream.engine.wire.messages import check_exam_id

from .session import Event

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
LEGACY_RUN = "legacy"


def default_dir(cfg: dict | None = None) -> Path:
    if cfg and cfg["journal"]["dir"]:
        return Path(cfg["journal"]["dir"])
    if os.environ.get("CEUSTREAM_JOURNAL_DIR"):
        return Path(os.environ["CEUSTREAM_JOURNAL_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "ceustream" / "journal"


def new_run_id() -> str:
    """A run id that sorts by start time (UTC) and is unique on this machine."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def exam_dir(root: Path, exam: str) -> Path:
    """``<root>/<exam>``, for a valid exam id only, and never outside ``root``."""
    try:
        check_exam_id(exam)
    except ValueError as e:
        raise UsageError(f"journal: {e}") from None
    root = Path(root)
    d = root / exam
    if not d.resolve().is_relative_to(root.resolve()):
        raise UsageError(f"journal: exam {exam!r} would lie outside {root}")
    return d


def atomic_write(path: Path, data: bytes) -> None:
    """Writes ``data`` under a temporary name, fsyncs and renames it to ``path`` (and fsyncs
    the folder). On failure the temporary file is removed and the error raised: ``path`` is
    either its old complete self or the new complete one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # the rename happened; a folder that cannot be fsync'd is not an error


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


class Journal:
    """One run of one exam on disk. ``on_error(text)`` is called (from the writer thread)
    the first time a write fails."""

    def __init__(self, root: Path, exam: str, run: str | None = None,
                 on_error: Callable[[str], None] | None = None):
        self.exam = exam
        self.run = run or new_run_id()
        if not RUN_ID.match(self.run):
            raise UsageError(f"journal: run id {self.run!r} is not valid")
        self.dir = exam_dir(root, exam) / self.run
        self.on_error = on_error
        self.error: str | None = None
        self._records: list[dict[str, Any]] = []
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._failed(e)
        self._t = threading.Thread(target=self._run, name="ceus-journal", daemon=True)
        self._t.start()

    def exam_record(self, info: dict[str, Any]) -> None:
        self._q.put(("json", "exam.json", {**info, "run": self.run}))

    def slot(self, index: int, record: dict[str, Any], crop: np.ndarray | None) -> None:
        self._q.put(("slot", index, record, None if crop is None else crop.copy()))

    def result(self, result: dict[str, Any]) -> None:
        self._q.put(("json", "result.json", {**result, "journal_run": self.run}))

    def close(self) -> None:
        self._q.put(None)
        self._t.join(10)

    def _failed(self, e: OSError) -> None:
        text = f"journal {self.dir}: {e.strerror or e}"
        first = self.error is None
        self.error = text
        if first:
            log.error("%s; the exam goes on without its journal", text)
            if self.on_error is not None:
                try:
                    self.on_error(text)
                except Exception:
                    log.exception("journal: the error callback failed")

    def _write(self, item: tuple) -> None:
        if item[0] == "json":
            atomic_write(self.dir / item[1], json.dumps(item[2], indent=1).encode())
            return
        _, index, record, crop = item
        if crop is not None:  # the crop first: a record never points at a missing crop
            atomic_write(self.dir / f"slot_{index:02d}.npy", npy_bytes(crop))
        self._records.append(record)
        atomic_write(self.dir / "slots.jsonl",
                     "".join(json.dumps(r) + "\n" for r in self._records).encode())

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            try:
                self._write(item)
            except OSError as e:  # a full or read-only disk must not stop the exam
                if item[0] == "slot" and self._records and self._records[-1] is item[2]:
                    self._records.pop()  # not on disk: retried with the next slot's write
                self._failed(e)
            except Exception:
                log.exception("journal %s: unexpected error (continuing)", self.dir)

    def subscriber(self, event: Event) -> None:
        """Records an exam's events: t0 (the exam record), every decided slot, the result."""
        if event.kind == "t0":
            self.exam_record(event.data)
        elif event.kind == "slot":
            fill, crop = event.data
            self.slot(fill.index, fill.describe(), crop)
        elif event.kind == "finished":
            self.result(event.data)


# -- reading -------------------------------------------------------------------------------
@dataclass
class Run:
    exam: str
    run: str
    dir: Path
    result: dict[str, Any] | None   # None: the run was interrupted (or is still going)
    started: float

    @property
    def interrupted(self) -> bool:
        return self.result is None

    def crops_kept(self) -> int:
        """How many slot crops this run's folder holds (a full disk keeps fewer than were
        scored; a rescore needs them all)."""
        try:
            return sum(1 for _ in self.dir.glob("slot_[0-9][0-9].npy"))
        except OSError:
            return 0


def _run_dirs(d: Path) -> list[tuple[str, Path]]:
    out = []
    if (d / "exam.json").exists():
        out.append((LEGACY_RUN, d))
    if d.is_dir():
        out += [(p.name, p) for p in d.iterdir()
                if p.is_dir() and RUN_ID.match(p.name) and (p / "exam.json").exists()]
    return out


def _read_json(p: Path) -> dict[str, Any] | None:
    try:
        v = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return v if isinstance(v, dict) else None


def runs(root: Path, exam: str) -> list[Run]:
    """The runs of one exam, oldest first."""
    d = exam_dir(root, exam)
    out = []
    for name, p in _run_dirs(d):
        info = _read_json(p / "exam.json") or {}
        started = info.get("started_wall")
        out.append(Run(exam, name, p, _read_json(p / "result.json") if
                       (p / "result.json").exists() else None,
                       float(started) if isinstance(started, (int, float)) else 0.0))
    return sorted(out, key=lambda r: (r.started, r.run))


def list_runs(root: Path) -> list[Run]:
    """Every run of every exam under ``root``, by exam then start."""
    root = Path(root)
    if not root.is_dir():
        return []
    out: list[Run] = []
    for p in sorted(root.iterdir()):
        if p.is_dir() and not p.name.startswith(".") and re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z", p.name):
            try:
                out += runs(root, p.name)
            except UsageError:
                continue
    return out


def list_exams(root: Path) -> list[str]:
    return sorted({r.exam for r in list_runs(root)})


def find_run(root: Path, exam: str, run: str | None = None) -> Run:
    """One run of ``exam``: ``run`` by id, else the newest."""
    all_runs = runs(root, exam)
    if not all_runs:
        raise InputError(f"journal: no exam {exam!r} under {root}")
    if run is None:
        return all_runs[-1]
    for r in all_runs:
        if r.run == run:
            return r
    raise InputError(f"journal: exam {exam!r} has no run {run!r} (runs: "
                     f"{', '.join(r.run for r in all_runs)})")


def load(root: Path, exam: str, run: str | None = None
         ) -> tuple[dict[str, Any], dict[int, dict], dict[int, np.ndarray]]:
    """(exam info, slot records by index (last wins), ROI crops by index) of one run (the
    newest by default). ``info["run"]`` names it and ``info["interrupted"]`` says whether it
    ended with a result."""
    r = find_run(root, exam, run)
    d = r.dir
    try:
        info = json.loads((d / "exam.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"journal {d / 'exam.json'}: unreadable ({e})") from None
    if not isinstance(info, dict):
        raise InputError(f"journal {d / 'exam.json'}: not an exam record")
    info["run"], info["interrupted"] = r.run, r.interrupted
    records: dict[int, dict] = {}
    if (d / "slots.jsonl").exists():
        for n, line in enumerate((d / "slots.jsonl").read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                records[int(rec["slot"])] = rec
            except (json.JSONDecodeError, KeyError, ValueError, TypeError):
                raise InputError(f"journal {d / 'slots.jsonl'} line {n}: damaged record") from None
    crops = {}
    for i in records:
        p = d / f"slot_{i:02d}.npy"
        if p.exists():
            try:
                crops[i] = np.load(p, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise InputError(f"journal {p}: unreadable ({e})") from None
    return info, records, crops
