"""How many live scanners one engine serves (capacity benchmark).

For N = 1, 2, 4, 8, 12 ... real senders (`gst-launch-1.0 filesrc ! tsparse alignment=7 ! udpsink`, a
recorded simulated exam as MPEG-TS, 720p30 or 1080p30, at real time, their starts spread
over one 2 s slot period as unsynchronised scanners are) stream into ONE `ceustream run`
process (`--source sI=udp://...` per sender, journal on, as deployed). Each source gets an
exam (`start_exam`, `mark_injection` on time, both naming the source); the run lasts until
every exam has decided the slot at t0 + 60 s (26 of 30 slots: the whole video phase and the
first late slot), then the exams are stopped. A ZeroMQ subscriber in this process follows
every score through the stage stamps it carries (CLOCK_MONOTONIC, shared by the processes of
one machine). Reported per N:

  CPU per source        the engine's and its source workers' CPU (user + system, /proc) / N
  decoded -> subscriber p50 / p99: the frame that decided a slot left the decoder ... the
                        score reached the subscriber (slots decided when the arrival window
                        closes, from kept frames, are counted apart, as in live_latency)
  late / missed         slot_late / slot_missed warnings published, neighbour-filled slots
  machine               load average (mean, max) and the whole machine's CPU use: the CPU is
                        shared, so the load says what else was running

and the largest N with zero missed slots and p99 <= 50 ms. `--decode-only` first measures
what decoding alone costs per source (gst-launch ... ! avdec_h264 ! fakesink sync=true, one
decoder), and after each level the like-for-like baseline: N gst-launch receivers
(`udpsrc ! decodebin ! fakesink`) fed by N senders at once, as the engine's sources are; the
"x decode-only" column is the engine's CPU per source over that (issue 19's goal: <= 1.25).

    python -m ceustream.benchmarks.capacity [--sizes 720p,1080p] [--levels 1,2,4,8,12]
                                            [--backend onnxruntime|tensorrt] [--in-process]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


from .common import cpu_s, free_port, machine, out_dir, sim_exam, summary, table, write
from .live_latency import exam_720p_ts

GOAL_P99_MS = 50.0
GOAL_CPU_PCT = 12.0
#: the run ends once every exam has decided this slot (t0 + 60 s)
LAST_SLOT = 25


def exam_ts(size: str) -> tuple[Path, dict]:
    """The benchmark exam as MPEG-TS at ``size`` (720p or 1080p), made once per machine."""
    if size == "720p":
        return exam_720p_ts()
    # 1080p: long enough for t0 + 60 s (t0 ~ 23 s) and the senders' spread
    return sim_exam((1920, 1080), 110.0, "ts")


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process (MB, /proc/PID/status VmRSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the engine's source workers)."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(x) for x in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of the engine and its source workers (live ones; ended ones it waited for
    are in its cutime/cstime)."""
    total = cpu_s(pid)
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        pass
    for c in children(pid):
        try:
            total += cpu_s(c)
        except OSError:
            pass
    return total


def workers_rss_mb(pid: int) -> float | None:
    """Resident memory of the engine's source workers together (MB), None without any."""
    vals = [v for v in (rss_mb(c) for c in children(pid)) if v is not None]
    return sum(vals) if vals else None


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine (/proc/stat): its CPU use over a run."""
    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return float(sum(v) - idle), float(sum(v))


def udp_bound(port: int) -> bool:
    """True once some process has the UDP port bound (the engine's source is listening)."""
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local = line.split()[1]
            if int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def sender(path: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!",
                             "tsparse", "set-timestamps=true", "alignment=7", "!", "udpsink",
                             "host=127.0.0.1", f"port={port}", "sync=true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def decode_cost(path: Path, seconds: float = 30.0) -> float:
    """CPU % of a core to decode the recording at real time (gst-launch, avdec_h264)."""
    p = subprocess.Popen(["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!",
                          "tsparse", "set-timestamps=true", "!", "tsdemux", "!", "h264parse",
                          "!", "avdec_h264", "!", "fakesink", "sync=true"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.0)  # past the start-up
    c0, t0 = cpu_s(p.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_s(p.pid), time.monotonic()
    p.kill()
    p.wait(10)
    return (c1 - c0) / (t1 - t0) * 100.0


def decode_level(n: int, path: Path, seconds: float = 30.0) -> float:
    """CPU % of a core per source to receive and decode ``n`` of these senders at once as the
    engine's sources do (``udpsrc ! decodebin``, one gst-launch each, fed by the same senders
    over loopback UDP), with nothing after the decoder: the like-for-like baseline at the same
    concurrency (a machine running N decoders spends more per decoder than one alone)."""
    ports = [free_port() for _ in range(n)]
    decoders = [subprocess.Popen(
        ["gst-launch-1.0", "-q", "udpsrc", "address=127.0.0.1", f"port={p}",
         "buffer-size=4194304",
         "caps=video/mpegts,systemstream=(boolean)true,packetsize=(int)188", "!",
         "decodebin", "!", "fakesink", "sync=false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    senders: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 30
        while not all(udp_bound(p) for p in ports) and time.monotonic() < deadline:
            time.sleep(0.1)
        for p in ports:
            senders.append(sender(path, p))
            time.sleep(2.0 / n)
        time.sleep(5.0)  # past the start-up
        c0, t0 = sum(cpu_s(d.pid) for d in decoders), time.monotonic()
        time.sleep(seconds)
        c1, t1 = sum(cpu_s(d.pid) for d in decoders), time.monotonic()
    finally:
        for p in senders + decoders:
            p.kill()
            p.wait(10)
    return (c1 - c0) / (t1 - t0) * 100.0 / n


class Listener:
    """Every score and status on its own thread (ceustream's ``Collector``), each score
    stamped on arrival (``timing.received_mono_ns``)."""

    def __init__(self, endpoint: str):
        from ceustream.engine.wire.subscriber import Collector

        self._c = Collector(endpoint, validate=False, rcvhwm=0)

    @property
    def msgs(self) -> list[dict]:
        out = []
        for m in list(self._c.messages):
            if m.kind == "score":
                m.raw.setdefault("timing", {})["received_mono_ns"] = m.received_mono_ns
            out.append(m.raw)
        return out

    def close(self) -> None:
        self._c.close()


def run_level(n: int, path: Path, truth: dict, args) -> dict:
    """One engine, ``n`` senders, one exam each; returns the level's numbers."""
    from ceustream.engine.wire.control import request

    ports = [free_port() for _ in range(n)]
    ctl, pub, metrics = free_port(), free_port(), free_port()
    ctl_ep = f"tcp://127.0.0.1:{ctl}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEUSTREAM_")}
    env["CEUSTREAM_JOURNAL_DIR"] = str(out_dir() / "media" / "journal")
    env["CEUSTREAM_METRICS__LISTEN"] = f"127.0.0.1:{metrics}"
    if args.in_process:  # the sources' pipelines in the engine's process (live.workers)
        env["CEUSTREAM_LIVE__WORKERS"] = "false"
    env["CEUSTREAM_LIVE__WORKER_NICE"] = str(args.worker_nice)
    cmd = [sys.executable, "-m", "ceustream.engine.cli", "run", "--json", "-q",
           "--control", ctl_ep, "--pub", f"tcp://127.0.0.1:{pub}", "--backend", args.backend]
    for i, p in enumerate(ports):
        cmd += ["--source", f"s{i}=udp://127.0.0.1:{p}"]
    listener = Listener(f"tcp://127.0.0.1:{pub}")
    eng = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(eng.stderr), daemon=True).start()
    senders: list[subprocess.Popen] = []
    exams = [f"cap{n}x{i}" for i in range(n)]
    roi = list(truth["roi"])
    loads: list[float] = []

    def ask(c: str, **kw) -> dict:
        return request(ctl_ep, {"cmd": c, **kw}, timeout_s=10.0)

    try:
        deadline = time.monotonic() + 180
        while not (eng.poll() is None and ask("health").get("ok")
                   and all(udp_bound(p) for p in ports)):
            if eng.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the engine did not start: {''.join(err)[-1500:]}")
            time.sleep(0.2)
        m0, c0, w0 = machine_cpu(), tree_cpu_s(eng.pid), time.monotonic()
        for i, p in enumerate(ports):  # unsynchronised scanners: starts spread over 2 s
            senders.append(sender(path, p))
            time.sleep(2.0 / n)
        started = set()
        marked = set()
        deadline = time.monotonic() + truth["t0_s"] + 60 + 120
        last_load = 0.0
        while time.monotonic() < deadline and eng.poll() is None:
            if time.monotonic() - last_load > 5:
                loads.append(os.getloadavg()[0])
                last_load = time.monotonic()
            h = ask("health")
            srcs = (h.get("sources") or {}) if h.get("ok") else {}
            for i, ex in enumerate(exams):
                st = (srcs.get(f"s{i}") or {})
                now = st.get("stream_time_s") or 0.0
                if ex not in started and now > 0:
                    r = ask("start_exam", source=f"s{i}", exam=ex, roi=roi)
                    if r.get("ok"):
                        started.add(ex)
                if ex in started and ex not in marked and now >= truth["injection_s"]:
                    r = ask("mark_injection", source=f"s{i}", t=truth["injection_s"])
                    if r.get("ok"):
                        marked.add(ex)
            done = [ex for ex in exams if any(
                m.get("type") == "score" and m.get("exam") == ex and
                (m.get("slot") or -1) >= LAST_SLOT for m in listener.msgs[-4000:])]
            if len(done) == n:
                break
            time.sleep(0.25)
        m1, c1, w1 = machine_cpu(), tree_cpu_s(eng.pid), time.monotonic()
        rss = (rss_mb(eng.pid), workers_rss_mb(eng.pid))
        before_stop = len(listener.msgs)  # what the stop closes is not counted
        for i, ex in enumerate(exams):
            ask("stop_exam", source=f"s{i}")
        health = ask("health")
    finally:
        for s in senders:
            s.kill()
            s.wait(10)
        if eng.poll() is None:
            eng.terminate()
        try:
            eng.wait(60)
        except subprocess.TimeoutExpired:
            eng.kill()
        time.sleep(0.5)
        listener.close()
    wall = w1 - w0
    return numbers(n, listener.msgs[:before_stop], exams, (c1 - c0) / wall * 100.0,
                   (m1[0] - m0[0]) / max(1.0, m1[1] - m0[1]) * 100.0 * os.cpu_count(),
                   loads, wall, health, rss)


def numbers(n: int, msgs: list[dict], exams: list[str], engine_pct: float, machine_pct: float,
            loads: list[float], wall: float, health: dict,
            rss: tuple[float | None, float | None]) -> dict:
    live, window = [], []
    late = missed = neighbour = 0
    slots = 0
    for ex in exams:
        scores = [m for m in msgs if m.get("type") == "score" and m.get("exam") == ex]
        status = [m for m in msgs if m.get("type") == "status" and m.get("exam") == ex]
        for m in scores:
            t = m.get("timing") or {}
            if m.get("slot") is None or t.get("decided_mono_ns") is None:
                continue
            slots += 1
            gap = (t["filled_mono_ns"] - t["decided_mono_ns"]) / 1e6
            (window if gap > 1000 or (t["decided_mono_ns"] - t["frame_mono_ns"]) > 1e9
             else live).append(t)
        late += count_rises(status, "slot_late")
        missed += count_rises(status, "slot_missed")
        if status:
            states = (status[-1].get("slot_states") or [])[:LAST_SLOT + 1]
            neighbour += sum(1 for s in states if s in ("neighbour", "missing"))
    lat = [(t["received_mono_ns"] - t["decided_mono_ns"]) / 1e6 for t in live]
    lat_chosen = [(t["received_mono_ns"] - t["frame_mono_ns"]) / 1e6 for t in live]
    s, sc = summary(lat), summary(lat_chosen)
    return {"n": n, "slots_scored": slots, "window_slots": len(window),
            "decided_to_subscriber": s, "chosen_to_subscriber": sc,
            "late": late, "missed": missed, "neighbour_or_missing": neighbour,
            "engine_cpu_pct": engine_pct, "cpu_per_source_pct": engine_pct / n,
            "machine_cpu_pct": machine_pct, "load_mean": sum(loads) / len(loads) if loads else None,
            "load_max": max(loads) if loads else None, "wall_s": wall,
            "engine_lag_s": health.get("lag_s") if isinstance(health, dict) else None,
            "engine_rss_mb": rss[0], "workers_rss_mb": rss[1],
            "rss_per_source_mb": None if rss[0] is None else
            round((rss[0] + (rss[1] or 0.0)) / n, 1),
            "ok": missed == 0 and neighbour == 0 and s["p99_ms"] is not None and
            s["p99_ms"] <= GOAL_P99_MS}


def loaded_machine(load_before: float) -> bool:
    """True when other work was running: the 1-minute load average before the benchmark
    started anything was above half the cores."""
    return load_before > (os.cpu_count() or 1) / 2


def count_rises(status: list[dict], name: str) -> int:
    """How often ``name`` was raised in a run of status messages."""
    on, rises = False, 0
    for m in status:
        now = name in (m.get("warnings") or [])
        rises += now and not on
        on = now
    return rises


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="720p,1080p", help="comma-separated: 720p, 1080p")
    ap.add_argument("--levels", default="1,2,4,8,12",
                    help="numbers of concurrent sources to try, comma-separated")
    ap.add_argument("--backend", default="onnxruntime",
                    help="the engine's --backend (onnxruntime, tensorrt, auto)")
    ap.add_argument("--stop-after-failures", type=int, default=2,
                    help="stop climbing a size after this many levels in a row with missed "
                    "(neighbour-filled or missing) slots: the engine's capacity is passed")
    ap.add_argument("--in-process", action="store_true",
                    help="pipelines in the engine's process, not one worker per source "
                    "(live.workers = false): the layout before source workers")
    ap.add_argument("--worker-nice", type=int, default=0,
                    help="live.worker_nice: the workers this much nicer than the engine (0-19)")
    ap.add_argument("--decode-only", action="store_true",
                    help="first measure what decoding alone costs per source")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if args.backend == "tensorrt":  # the engine never builds a plan during an exam
        p = subprocess.run([sys.executable, "-m", "ceustream.engine.cli", "engine", "build"])
        if p.returncode != 0:
            print("capacity: `ceustream engine build` failed; no TensorRT run", file=sys.stderr)
            return p.returncode
    load0 = os.getloadavg()  # before anything of the benchmark runs: other work
    out: dict = {"backend": args.backend, "worker_nice": args.worker_nice, "sizes": {}, "load_before": list(load0), "goal": {
        "p99_ms": GOAL_P99_MS, "cpu_per_source_pct": GOAL_CPU_PCT, "missed": 0}}
    texts = []
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        path, truth = exam_ts(size)
        decode = decode_cost(path) if args.decode_only else None
        rows, results, fails = [], [], 0
        for n in levels:
            print(f"{size}: {n} source(s) ...", flush=True)
            try:
                r = run_level(n, path, truth, args)
            except RuntimeError as e:
                print(f"  {e}", file=sys.stderr)
                break
            if args.decode_only:
                r["decode_only_same_n_pct"] = decode_level(n, path)
                r["cpu_vs_decode_only_same_n"] = round(
                    r["cpu_per_source_pct"] / r["decode_only_same_n_pct"], 2)
            results.append(r)
            d = r["decided_to_subscriber"]
            rows.append([n, r["cpu_per_source_pct"], r.get("decode_only_same_n_pct"),
                         r.get("cpu_vs_decode_only_same_n"), r["engine_cpu_pct"], d["p50_ms"],
                         d["p99_ms"], r["slots_scored"], r["late"], r["missed"],
                         r["neighbour_or_missing"], r["machine_cpu_pct"], r["load_mean"],
                         r["load_max"], r["engine_rss_mb"], r["workers_rss_mb"],
                         r["rss_per_source_mb"], "yes" if r["ok"] else "no"])
            fails = fails + 1 if r["neighbour_or_missing"] or r["missed"] else 0
            if fails >= args.stop_after_failures:
                break
        best = max([r["n"] for r in results if r["ok"]], default=0)
        loaded = loaded_machine(load0[0])
        title = (f"capacity, {size}30 MPEG-TS/UDP sources into one engine ({args.backend}) on "
                 f"{os.cpu_count()} cores; largest N with zero missed slots and p99 <= "
                 f"{GOAL_P99_MS:g} ms: {best}"
                 + (f"; decoding alone: {decode:.1f} % of a core per source (one decoder)"
                    if decode else "")
                 + (f"; the machine was loaded by other work (load {load0[0]:.1f} before the "
                    "run): the goal (>= 16 sources) cannot be judged from this run"
                    if loaded else ""))
        texts.append(table(title, ["N", "CPU/src %", "decode-only/src % (same N)",
                                   "x decode-only", "engine %", "p50 ms", "p99 ms", "slots",
                                   "late", "missed", "nbr/miss", "machine %", "load",
                                   "load max", "engine RSS MB", "workers RSS MB",
                                   "RSS/src MB", "ok"], rows))
        out["sizes"][size] = {"levels": results, "largest_ok": best, "decode_only_pct": decode,
                              "cpu_vs_decode_only": None if not decode else
                              [round(r["cpu_per_source_pct"] / decode, 2) for r in results],
                              "loaded_machine": loaded, "recording": str(path)}
    write("capacity", {**out, "table": "\n\n".join(texts), "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
