"""``ceustream qa MANIFEST.csv --out DIR``: many recorded exams through the same replay path as
a single one, spread over worker processes (``jobs``) or a Ray cluster (``ray_address``),
results appended by this (parent) process as they finish, then the paper's metrics with
bootstrap CIs and a report (``report.html``, self-contained; ``report.json``; ``report.md``).

Manifest: see ``engine.core.manifest``. Every row is checked first; bad rows and duplicates
are listed in ``results.jsonl`` and the report with their reason, and the rest run (exit 4
when any row failed or ended partial). An interrupted run resumes: rows already scored with
the same model are kept (rows that failed are tried again).

Each worker process loads its own model and backend once, and scores one exam at a time; the
parent only appends, so ``results.jsonl`` is never written by two processes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ceustream.engine.core.errors import CeusError, InputError, UsageError
from ceustream.engine.core.manifest import Manifest, Row, check_manifest

from .loading import load_model_and_backend
from .replay import ReplayOptions, replay
from .session import Event

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
STRIPS = "filmstrips"


# -- one exam (in whatever process runs it) ---------------------------------------------------
def row_key(row: Row) -> str:
    """What identifies a row's exam across runs and manifest edits: file, ROI, times."""
    return "|".join(str(v) for v in row.key)


def task_of(row: Row) -> dict[str, Any]:
    """A row as a picklable task for a worker (no objects, no open files)."""
    t0, inj = row.replay_times
    return {"row": row.line, "key": row_key(row), "path": str(row.path), "label": row.label,
            "roi": row.roi.as_list(), "t0": t0, "injection": inj,
            "ref_roi": None if row.ref_roi is None else row.ref_roi.as_list(),
            "injection_info": row.injection if row.t0 is not None else None}


def score_task(task: dict[str, Any], cfg: dict, loaded: tuple) -> dict[str, Any]:
    """Replays one exam; returns its results record and its clip (for the filmstrip).
    Every user-caused error becomes the record's ``error``; nothing escapes."""
    from ceustream.engine.core.roi import Roi

    model = loaded[0]
    rec: dict[str, Any] = {"row": task["row"], "key": task["key"],
                           "path": Path(task["path"]).name, "label": task["label"],
                           "model_sha256": model.sha256}
    if task.get("injection_info") is not None:
        rec["injection_info"] = task["injection_info"]
    taken: dict[str, Any] = {}

    def keep(ev: Event) -> None:
        if ev.kind == "finished":
            taken["clip"] = ev.session.clip.raw.copy()
            taken["present"] = ev.session.clip.present.copy()

    t = time.monotonic()
    try:
        ref = task.get("ref_roi")
        r = replay(task["path"], ReplayOptions(roi=Roi(*task["roi"]), t0=task["t0"],
                                               injection=task["injection"], journal=False,
                                               ref_roi=None if ref is None else Roi(*ref)),
                   cfg, loaded=loaded, subscribers=(keep,))
        rec.update(status="scored" if r["final"] else "partial", exam=r["exam"],
                   score=r["score"], final=r["final"], predicted=r["label"], t0=r["t0"],
                   first_frame_s=r.get("first_frame_s"), clock=r.get("clock"),
                   flags=r["flags"], slots_filled=r["slots_filled"],
                   offsets_s=list(model.meta.offsets_s), features=r.get("features"),
                   recording={k: r["recording"].get(k) for k in ("kind", "codec", "fps")},
                   seek_fallback=r["replay"].get("seek_fallback"),
                   wall_s=r["replay"]["wall_s"],
                   slot_times_s=[sl.get("pts_s") for sl in r.get("slots") or []],
                   backend=r.get("backend"), domain=r.get("domain"),
                   score_network=r.get("score_network"), score_basis=r.get("score_basis"))
    except CeusError as e:
        rec.update(status="error", error=str(e), score=None, final=False)
    rec["elapsed_s"] = round(time.monotonic() - t, 3)
    return {"record": rec, "clip": taken.get("clip"), "present": taken.get("present")}


# -- workers: processes ------------------------------------------------------------------------
_worker: dict[str, Any] = {}


def _init_worker(cfg: dict, threads: int) -> None:
    """A worker process: logging quiet, its own model and backend, loaded once."""
    import logging as lg

    lg.getLogger("ceustream").setLevel(lg.WARNING)
    cfg = dict(cfg, model=dict(cfg["model"], threads=threads))
    _worker["cfg"] = cfg
    _worker["loaded"] = load_model_and_backend(cfg["model"]["path"] or None,
                                               cfg["model"]["backend"], cfg)


def error_result(task: dict[str, Any], why: str) -> dict[str, Any]:
    """A task's result when its worker failed (a bug, a dead process): the row is reported,
    never lost."""
    return {"record": {"row": task["row"], "key": task["key"], "path": Path(task["path"]).name,
                       "label": task["label"], "status": "error", "error": why, "score": None,
                       "final": False}, "clip": None, "present": None}


def _work(task: dict[str, Any]) -> dict[str, Any]:
    try:
        return score_task(task, _worker["cfg"], _worker["loaded"])
    except Exception as e:  # a bug in one exam must not lose the others' results
        return error_result(task, f"internal error: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}")


def run_processes(tasks: list[dict], cfg: dict, jobs: int) -> Iterator[dict]:
    """Scores ``tasks`` on ``jobs`` worker processes (spawned: GStreamer does not survive a
    fork), yielding results as they finish. A worker that dies takes only its own exam (and
    those not started) down as errors: the loop never waits for a result that cannot come."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    threads = worker_threads(cfg, jobs)
    recycle = {"max_tasks_per_child": 200} if sys.version_info >= (3, 11) else {}
    pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker, initargs=(cfg, threads), **recycle)
    futures = {pool.submit(_work, t): t for t in tasks}
    try:
        for f in as_completed(futures):
            try:
                yield f.result()
            except BrokenProcessPool:
                yield error_result(futures[f], "a worker process died while scoring it")
            except Exception as e:  # e.g. the worker could not load the model
                yield error_result(futures[f], f"{type(e).__name__}: "
                                   f"{str(e).splitlines()[0] if str(e) else ''}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def worker_threads(cfg: dict, jobs: int) -> int:
    """CPU threads per worker's ONNX Runtime: the configured number, or the cores shared."""
    configured = int(cfg["model"]["threads"])
    return configured if configured > 0 else max(1, (os.cpu_count() or 1) // max(jobs, 1))


def run_inline(tasks: list[dict], cfg: dict, loaded: tuple) -> Iterator[dict]:
    for t in tasks:
        yield score_task(t, cfg, loaded)


# -- workers: a Ray cluster --------------------------------------------------------------------
def run_ray(tasks: list[dict], cfg: dict, address: str, jobs: int | None) -> Iterator[dict]:
    """Scores ``tasks`` on a Ray cluster: actors (one CPU each) hold a loaded model, one exam
    per task; results come back to this driver as they finish (an actor that dies is
    replaced, its exam reported as an error)."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs the ray extra: pip install 'ceustream[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=None if address == "local" else address,
                     include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, configure_logging=False)
        except Exception as e:  # ConnectionError, RuntimeError, ... : one line
            raise InputError(f"--ray {address}: cannot connect ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''})") from None
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(jobs or cpus, cpus, len(tasks)))
        threads = worker_threads(cfg, max(1, n))

        @ray.remote(num_cpus=1)
        class Scorer:
            def __init__(self, cfg: dict, threads: int):
                _init_worker(cfg, threads)

            def score(self, task: dict) -> dict:
                return _work(task)

        free = [Scorer.remote(cfg, threads) for _ in range(n)]
        log.info("Ray %s: %d actor(s) on %d CPU(s)", address, n, cpus)
        pending: dict[Any, tuple[dict, Any]] = {}
        queue = iter(tasks)

        def submit() -> None:
            while free:
                t = next(queue, None)
                if t is None:
                    return
                a = free.pop()
                pending[a.score.remote(t)] = (t, a)

        submit()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            t, actor = pending.pop(ready[0])
            try:
                res = ray.get(ready[0])
                free.append(actor)
            except Exception as e:  # the actor died or the task failed: report, replace
                res = error_result(t, f"Ray: {type(e).__name__}: "
                                   f"{str(e).splitlines()[0] if str(e) else ''}")
                free.append(Scorer.remote(cfg, threads))
            yield res
            submit()
    finally:
        if started_here:
            ray.shutdown()


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Output:
    """The run's folder; every write is an input error (exit 3, one line) when the disk
    refuses it (read-only, full, not a folder)."""

    dir: Path

    def __post_init__(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / STRIPS).mkdir(exist_ok=True)
        except OSError as e:
            raise InputError(f"--out {self.dir}: cannot be created ({e.strerror or e})") from None

    def fail(self, what: Path, e: OSError) -> InputError:
        return InputError(f"--out {self.dir}: cannot write {what.name} ({e.strerror or e})")

    def write_text(self, name: str, text: str) -> Path:
        p = self.dir / name
        try:
            p.write_text(text)
        except OSError as e:
            raise self.fail(p, e) from None
        return p

    def write_bytes(self, name: str, data: bytes) -> Path:
        p = self.dir / name
        try:
            p.write_bytes(data)
        except OSError as e:
            raise self.fail(p, e) from None
        return p


class Results:
    """``results.jsonl``: read back for resuming, appended one flushed line per record."""

    def __init__(self, out: Output):
        self.out = out
        self.path = out.dir / RESULTS
        self.records: list[dict] = []
        text = ""
        if self.path.is_file():  # (a device such as /dev/full is only written to)
            try:
                text = self.path.read_text()
            except OSError as e:
                raise out.fail(self.path, e) from None
            for line in text.splitlines():
                try:
                    self.records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by an interrupted run
        try:
            self.fh = open(self.path, "a")
            if self.path.stat().st_size and not text.endswith("\n"):
                self.fh.write("\n")  # do not glue a new record to a cut line
        except OSError as e:
            raise out.fail(self.path, e) from None

    def append(self, rec: dict) -> None:
        try:
            self.fh.write(json.dumps(rec) + "\n")
            self.fh.flush()
        except OSError as e:
            raise self.out.fail(self.path, e) from None
        self.records.append(rec)

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError as e:
            raise self.out.fail(self.path, e) from None


def done_records(records: Iterable[dict], sha: str) -> dict[str, dict]:
    """The latest scored or partial record per row key with model ``sha`` (resume)."""
    out: dict[str, dict] = {}
    for r in records:
        if r.get("key") and r.get("model_sha256") == sha and r.get("status") in ("scored",
                                                                                 "partial"):
            out[r["key"]] = r
    return out


def bad_records(m: Manifest) -> list[dict]:
    return [{"row": b.line, "path": Path(b.path).name if b.path else "",
             "status": "duplicate" if b.duplicate_of is not None else "bad_row",
             "duplicate_of": b.duplicate_of, "error": b.reason, "score": None, "final": False}
            for b in m.bad]


def model_only(cfg: dict):
    """The model's file and metadata (the parent needs no backend when workers score)."""
    from ceustream.engine.core import modelmeta

    return modelmeta.read(cfg["model"]["path"] or str(modelmeta.shipped_model_path()))


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def run(manifest: str | Path, out: str | Path, cfg: dict, threshold: float | None = None,
        jobs: int | None = None, ray_address: str | None = None,
        progress: Callable[[dict, int, int], None] | None = None,
        before_report: Callable[[dict, list[dict]], None] | None = None) -> tuple[dict, int]:
    """Scores every good row of ``manifest`` into ``out``; returns (report, exit code):
    0 when every row gave a final score, 4 when any row was bad, failed or ended partial.
    ``before_report(report, records)`` may add to the report before it is written (the PACS
    round trip stores the results back there and adds its ``pacs`` section)."""
    from . import report as rp

    m = check_manifest(manifest)
    rp.prepare_plotting()
    o = Output(Path(out))
    requested, jobs = jobs, jobs or default_jobs()
    model = model_only(cfg)
    threshold = threshold if threshold is not None else model.meta.threshold
    results = Results(o)
    t_start = time.monotonic()
    try:
        done = done_records(results.records, model.sha256)
        logged = {(r.get("row"), r.get("error")) for r in results.records
                  if r.get("status") in ("bad_row", "duplicate")}
        for b in bad_records(m):
            log.warning("manifest row %d: %s", b["row"], b["error"])
            if (b["row"], b["error"]) not in logged:
                results.append(b)
        todo = [task_of(r) for r in m.rows if row_key(r) not in done]
        if done and todo:
            log.info("resuming: %d of %d exams already scored", len(m.rows) - len(todo),
                     len(m.rows))
        if todo:
            how = (f"Ray at {ray_address}" if ray_address else
                   f"{min(jobs, len(todo))} worker process(es)" if jobs > 1 and len(todo) > 1
                   else "this process")
            log.info("%d exam(s) to score on %s", len(todo), how)
            if ray_address:
                stream = run_ray(todo, cfg, ray_address, requested)  # default: the cluster's CPUs
            elif jobs > 1 and len(todo) > 1:
                stream = run_processes(todo, cfg, min(jobs, len(todo)))
            else:
                loaded = load_model_and_backend(cfg["model"]["path"] or None,
                                                cfg["model"]["backend"], cfg)
                stream = run_inline(todo, cfg, loaded)
            for k, res in enumerate(stream, 1):
                rec = res["record"]
                if res.get("clip") is not None:
                    rec["filmstrip"] = rp.save_filmstrip(o, rec, res["clip"], res["present"])
                    rec["clip_mean"] = clip_means(res["clip"], res["present"])
                results.append(rec)
                if progress is not None:
                    progress(rec, k, len(todo))
                else:
                    log.info("[%d/%d] row %d %s: %s (%.1f s)", k, len(todo), rec["row"],
                             rec["path"], rp.state_text(rec), rec.get("elapsed_s", 0.0))
    finally:
        results.close()
    recs = latest_per_row(results.records, m, model.sha256)
    report = rp.build(m, recs, model, threshold, round(time.monotonic() - t_start, 1),
                      jobs=1 if ray_address is None and jobs <= 1 else jobs,
                      ray=ray_address)
    if before_report is not None:
        before_report(report, recs)
    rp.write_all(o, report, recs)
    failed = report["partial_or_failed"] + report["bad_rows"]
    return report, 0 if failed == 0 else 4


def latest_per_row(records: list[dict], m: Manifest, sha: str) -> list[dict]:
    """One record per manifest row, in manifest order: the newest for its key (this model),
    and the bad rows as checked this time."""
    by_key: dict[str, dict] = {}
    for r in records:
        if r.get("key") and r.get("model_sha256") in (sha, None):
            by_key[r["key"]] = r
    out = []
    for row in m.rows:
        r = by_key.get(row_key(row))
        if r is not None:
            out.append(dict(r, row=row.line))
    out += bad_records(m)
    return sorted(out, key=lambda r: r["row"])


def clip_means(clip: np.ndarray | None, present: np.ndarray | None) -> list[float | None]:
    """The ROI's mean grey level per slot (a time-intensity curve read off the clip)."""
    if clip is None:
        return []
    return [round(float(c.mean()), 2) if p else None for c, p in zip(clip, present)]
