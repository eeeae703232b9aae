"""The journal: each run of an exam in its own folder (runs never mix, an interrupted run
rescores as partial), files written whole or not at all (a full or read-only disk leaves no
truncated file that looks valid, and the exam goes on with a published journal_error), exam
ids checked as the control socket checks them and paths confined to the journal folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ceustream.engine.app import journal as jr
from ceustream.engine.core.errors import UsageError
from ceustream.models.simulator.scanner import SimScanner

from conftest import last_json, one_line_error, run_cli
from livekit import Engine, wait_until
from media import ROI

SIM = "sim://11?speed=10&size=320x240&injection=6"


def replay_args(c, exam: str, *extra: str) -> list[str]:
    return ["replay", str(c.path), "--roi", ",".join(map(str, ROI)), "--t0", str(c.arrival),
            "--json", "--no-publish", "--exam", exam, *extra]


def test_two_runs_of_one_exam_never_mix(coded_mp4, env):
    """The same recording replayed twice, the second killed after 10 slots: two runs; the
    list shows both; the newest rescores as partial (its own 10 slots), the first as final."""
    r1 = last_json(run_cli(replay_args(coded_mp4, "mix1"), env).stdout)
    assert r1["final"]
    root = Path(env["CEUSTREAM_JOURNAL_DIR"])
    p = subprocess.Popen([sys.executable, "-m", "ceustream.engine.cli",
                          *replay_args(coded_mp4, "mix1", "--speed", "10", "--seek", "never")],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def second_run_slots() -> int:
            runs = jr.runs(root, "mix1")
            if len(runs) < 2:
                return 0
            f = runs[-1].dir / "slots.jsonl"
            return len(f.read_text().splitlines()) if f.exists() else 0

        wait_until(lambda: second_run_slots() >= 10 or p.poll() is not None, 120, "10 slots")
        assert p.poll() is None, p.stderr.read()
        p.kill()
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    runs = jr.runs(root, "mix1")
    assert len(runs) == 2 and runs[0].run != runs[1].run
    assert runs[0].result is not None and runs[1].interrupted
    out = run_cli(["journal", "list"], env).stdout
    lines = [x for x in out.splitlines() if x.startswith("mix1 ")]
    assert len(lines) == 2 and "interrupted" in lines[1] and "final" in lines[0]
    p2 = run_cli(["journal", "rescore", "mix1", "--json"], env)
    assert p2.returncode == 4, p2.stderr
    part = last_json(p2.stdout)
    assert not part["final"] and "interrupted" in part["flags"]
    assert 10 <= part["slots_filled"] < 30 and part["journal_run"] == runs[1].run
    p3 = run_cli(["journal", "rescore", "mix1", "--run", runs[0].run, "--json"], env)
    assert p3.returncode == 0, p3.stderr
    assert last_json(p3.stdout)["score"] == pytest.approx(r1["score"], abs=1e-6)


@pytest.mark.parametrize("argv", [
    ["replay", "X", "--roi", "1,1,8,8", "--t0", "5", "--exam", "../../x"],
    ["run", "--source", "test://black", "--exam", "../../y"],
    ["run", "--source", "test://black", "--exam", "DOE^JOHN MRN123456"],
    ["journal", "show", "../x"],
    ["journal", "rescore", "../../etc"],
    ["journal", "show", "ok1", "--run", "../../z"],
])
def test_exam_ids_are_checked_like_the_control_socket(env, tmp_path, argv):
    argv = [str(tmp_path / "none.mp4") if a == "X" else a for a in argv]
    p = run_cli(argv, env, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "exam id" in one_line_error(p)
    assert not any(tmp_path.parent.glob("x")) and not (tmp_path / "y").exists()


def test_journal_paths_stay_inside_the_journal_folder(tmp_path):
    root = tmp_path / "journal"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    for bad in ("../x", "..", "a/b", "", "idle"):
        with pytest.raises(UsageError):
            jr.exam_dir(root, bad)
    (root / "linked").symlink_to(outside)  # a folder that leads out is refused too
    with pytest.raises(UsageError):
        jr.Journal(root, "linked")
    assert not any(outside.iterdir())


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 kB tmpfs (we are root in the test machine); skipped where mounting is refused."""
    d = tmp_path / "tiny"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode}): "
                    "the full-disk test needs root and mount permission")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def assert_nothing_truncated(root: Path) -> int:
    """Every file under ``root`` with a final name is complete; returns how many crops."""
    assert not [p for p in root.rglob("*") if ".tmp" in p.name], "temporary files left"
    crops = 0
    for p in root.rglob("slot_*.npy"):
        a = np.load(p)
        assert a.dtype == np.uint8 and a.ndim == 2 and a.size > 0
        crops += 1
    for p in root.rglob("*.json"):
        json.loads(p.read_text())
    for p in root.rglob("slots.jsonl"):
        for line in p.read_text().splitlines():
            json.loads(line)
    return crops


def test_a_full_disk_leaves_no_truncated_file_and_the_replay_goes_on(coded_mp4, env,
                                                                      tiny_disk):
    env = {**env, "CEUSTREAM_JOURNAL_DIR": str(tiny_disk)}
    p = run_cli(replay_args(coded_mp4, "full1"), env)
    assert p.returncode == 0, p.stderr
    res = last_json(p.stdout)
    assert res["final"] and res["slots_filled"] == 30 and "journal_error" in res["flags"]
    errors = [x for x in p.stderr.splitlines() if "journal" in x and "No space" in x]
    assert len(errors) == 1, p.stderr  # one line, not one per slot
    crops = assert_nothing_truncated(tiny_disk)
    assert 0 < crops < 30
    # the run's line says what was kept, not only what was scored
    line = run_cli(["journal", "list"], env).stdout.strip()
    assert "final" not in line or f"partial crops {crops}/30" in line, line


def test_journal_list_says_when_crops_are_missing(coded_mp4, env):
    p = run_cli(replay_args(coded_mp4, "crops1"), env)
    assert p.returncode == 0, p.stderr
    line = run_cli(["journal", "list"], env).stdout.strip()
    assert "final" in line and "30/30 slots" in line and "partial crops" not in line, line
    npys = sorted(Path(env["CEUSTREAM_JOURNAL_DIR"]).rglob("slot_*.npy"))
    assert len(npys) == 30
    for f in npys[1:]:
        f.unlink()  # what a full disk leaves: the result, one crop
    line = run_cli(["journal", "list"], env).stdout.strip()
    assert "(30/30 slots), partial crops 1/30" in line, line


def test_a_full_disk_during_a_live_exam_is_published_and_scoring_goes_on(env, tiny_disk):
    env = {**env, "CEUSTREAM_JOURNAL_DIR": str(tiny_disk)}
    (tiny_disk / "filler").write_bytes(b"\0" * 40_000)  # little room left
    truth = SimScanner(SIM).truth
    eng = Engine(env, SIM, "--exit-after-exam")
    try:
        assert eng.cmd("start_exam", exam="full2", roi=truth["roi"])["ok"]
        wait_until(lambda: eng.stream_time() > 1.0, 60, "video")
        assert eng.cmd("mark_arrival")["ok"]
        wait_until(lambda: any("journal_error" in m["warnings"]
                               for m in eng.sub.of("status", "full2")), 90, "journal_error")
        res = eng.wait_result(1, 240)
    finally:
        eng.stop()
    assert res["slots_filled"] == 30 and res["final"] and "journal_error" in res["flags"]
    assert_nothing_truncated(tiny_disk)


def test_a_read_only_journal_folder_does_not_stop_the_exam(coded_mp4, env, tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({r.stderr.strip()})")
    try:
        p = run_cli(replay_args(coded_mp4, "ro1"), {**env, "CEUSTREAM_JOURNAL_DIR": str(d)})
        assert p.returncode == 0, p.stderr
        res = last_json(p.stdout)
        assert res["final"] and "journal_error" in res["flags"]
        assert "Read-only" in p.stderr
        assert not any(d.iterdir())
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)

