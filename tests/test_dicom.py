"""DICOM ultrasound cines and image folders as recordings: written here with pydicom (JPEG
baseline, RLE, uncompressed; grey and colour; Frame Time, Frame Time Vector, Cine Rate) and
replayed through the same gate, sampler and journal as video. Their patient tags hold a fake
name that must appear nowhere in what ceustream writes."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")

from ceustream.engine.app.replay import ReplayOptions, replay  # noqa: E402
from ceustream.engine.core import config  # noqa: E402
from ceustream.engine.core.roi import Roi  # noqa: E402
from ceustream.pipelines.filesource import decode_all, discover  # noqa: E402

from conftest import last_json, one_line_error, run_cli  # noqa: E402
from dicomfiles import secrets_in, write_dicom  # noqa: E402
from media import H, ROI, W, frame, read_index  # noqa: E402

FPS = 10.0
ARRIVAL = 17.3
SECONDS = 200.0


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    c = config.load(env={})
    c["journal"]["dir"] = str(tmp_path_factory.mktemp("journal"))
    return c


@pytest.fixture(scope="module")
def frames():
    """200 s of barcoded frames at 10 fps, contrast arriving at 17.3 s."""
    return [frame(i, i / FPS, ARRIVAL) for i in range(int(SECONDS * FPS))]


@pytest.fixture(scope="module")
def dicom_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("dicom")


@pytest.fixture(scope="module")
def jpeg_dcm(dicom_dir, frames):
    return write_dicom(dicom_dir / "cine_jpeg.dcm", frames, syntax="jpeg", fps=FPS)


def ffmpeg_twin(path: Path, frames: list[np.ndarray], *codec: str) -> Path:
    """The same frames encoded by ffmpeg (an independent encoder)."""
    p = subprocess.Popen(["ffmpeg", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "gray",
                          "-s", f"{W}x{H}", "-r", str(int(FPS)), "-i", "-", *codec, str(path)],
                         stdin=subprocess.PIPE)
    for f in frames:
        p.stdin.write(f.tobytes())
    p.stdin.close()
    assert p.wait() == 0
    return path


def slot_frames(path, cfg, **times) -> tuple[dict, list[float], list[int]]:
    got: dict[int, int] = {}

    def on_slot(ev):
        if ev.kind == "slot" and ev.data[1] is not None:
            got[ev.data[0].index] = read_index(ev.data[1])

    r = replay(path, ReplayOptions(roi=Roi(0, 0, W, H), journal=False, **times), cfg,
               subscribers=(on_slot,))
    return r, [s.get("pts_s") for s in r["slots"]], [got.get(i) for i in range(30)]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg makes the MP4 twin")
def test_dicom_and_its_mp4_twin_score_the_same_within_codec_loss(jpeg_dcm, frames, dicom_dir,
                                                                 cfg):
    """The same frames as a JPEG-baseline DICOM (quality 95) and an ffmpeg H.264 MP4 (qp 18).
    Tolerance 0.05 on P(HCC): each codec changes the frames' noise texture by about 2 grey
    levels per pixel (the ROI mean by < 0.5), and the shipped model moves by 0.015-0.025 for
    either against the lossless frames on this clip, so the twins may differ by their sum.
    Lossless twins (uncompressed DICOM, FFV1 MKV) must score identically."""
    mp4 = ffmpeg_twin(dicom_dir / "twin.mp4", frames, "-c:v", "libx264", "-preset", "veryfast",
                      "-qp", "18", "-pix_fmt", "yuv420p")
    roi = Roi(*ROI)
    a = replay(jpeg_dcm, ReplayOptions(roi=roi, t0=ARRIVAL, journal=False), cfg)
    b = replay(mp4, ReplayOptions(roi=roi, t0=ARRIVAL, journal=False), cfg)
    assert a["final"] and b["final"]
    assert a["recording"]["kind"] == "dicom" and a["recording"]["codec"] == "dicom/jpeg-baseline"
    assert a["replay"]["mode"] == "stream" and a["clock"] == "first_frame"
    assert [s["pts_s"] for s in a["slots"]] == pytest.approx([s["pts_s"] for s in b["slots"]],
                                                             abs=1e-6)
    assert abs(a["score"] - b["score"]) <= 0.05, (a["score"], b["score"])
    # lossless: bit-identical frames, identical score
    raw = write_dicom(dicom_dir / "cine_raw.dcm", frames, syntax="raw", fps=FPS)
    ffv1 = ffmpeg_twin(dicom_dir / "twin_ffv1.mkv", frames, "-c:v", "ffv1", "-pix_fmt", "gray")
    c = replay(raw, ReplayOptions(roi=roi, t0=ARRIVAL, journal=False), cfg)
    d = replay(ffv1, ReplayOptions(roi=roi, t0=ARRIVAL, journal=False), cfg)
    assert c["score"] == pytest.approx(d["score"], abs=1e-6)
    assert abs(c["score"] - a["score"]) <= 0.05


def test_dicom_takes_the_frames_its_timing_says(jpeg_dcm, cfg):
    r, pts, idx = slot_frames(jpeg_dcm, cfg, t0=ARRIVAL)
    assert r["final"]
    # frame k at k / 10 s: the slot at 17.3 + 2 j s takes frame 173 + 20 j
    assert idx[:25] == [173 + 20 * j for j in range(25)]
    assert pts[:3] == pytest.approx([17.3, 19.3, 21.3], abs=1e-9)
    # arrival detection works on DICOM as on video
    r, _, _ = slot_frames(jpeg_dcm, cfg, injection=4.0)
    assert r["final"] and abs(r["t0"] - ARRIVAL) < 1.0 and "t0_from_injection" in r["flags"]


def test_frame_time_vector_frame_delay_and_cine_rate(tmp_path):
    rng = np.random.default_rng(5)
    n = 60
    inc = [round(float(v), 3) for v in rng.uniform(50, 150, n - 1)]
    fr = [frame(i, 0.0, ARRIVAL) for i in range(n)]
    p = write_dicom(tmp_path / "vfr.dcm", fr, syntax="raw", timing="frame_time_vector",
                    increments_ms=inc, delay_ms=1500)
    info = discover(p)
    assert info.kind == "dicom" and info.frames == n and info.first_frame_s == 1.5
    got = decode_all(p)
    want = np.concatenate([[0.0], np.cumsum(inc)]) / 1000.0  # from the first frame
    assert [f.pts_s for f in got] == pytest.approx(list(want), abs=1e-9)
    assert [read_index(f.luma) for f in got] == list(range(n))
    p2 = write_dicom(tmp_path / "cine.dcm", fr, syntax="rle", timing="cine_rate", fps=25)
    assert [f.pts_s for f in decode_all(p2)][:4] == pytest.approx([0, 0.04, 0.08, 0.12])


def test_colour_frames_become_bt601_luma(tmp_path):
    import cv2

    rng = np.random.default_rng(2)
    rgb = [np.stack([rng.integers(0, 256, (H, W)), np.full((H, W), 40 + 3 * i),
                     rng.integers(0, 256, (H, W))], -1).astype(np.uint8) for i in range(12)]
    want = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb]  # Y = .299 R + .587 G + .114 B
    for syntax in ("rle", "raw"):
        got = decode_all(write_dicom(tmp_path / f"c_{syntax}.dcm", rgb, syntax=syntax))
        assert all(np.array_equal(g.luma, w) for g, w in zip(got, want)), syntax
    smooth = [cv2.GaussianBlur(f, (9, 9), 3) for f in rgb]  # JPEG-friendly content
    got = decode_all(write_dicom(tmp_path / "c_jpeg.dcm", smooth, syntax="jpeg"))
    for g, f in zip(got, smooth):
        err = np.abs(g.luma.astype(int) - cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(int))
        assert err.mean() < 1.5, err.mean()  # YBR_FULL_422 JPEG q95: codec loss only


def test_no_patient_tag_leaves_the_process(jpeg_dcm, frames, env, tmp_path):
    """Replay (-vv, journal, --json) and QA (results, reports, filmstrips, logs) of a cine
    whose header names a patient: the name and ids are nowhere."""
    journal = Path(env["CEUSTREAM_JOURNAL_DIR"])
    p = run_cli(["replay", str(jpeg_dcm), "--roi", ",".join(map(str, ROI)), "--t0",
                 str(ARRIVAL), "--json", "--no-publish", "-vv"], env)
    assert p.returncode == 0, p.stderr
    r = last_json(p.stdout)
    assert r["exam"].startswith("d") and r["final"]
    assert any(journal.rglob("*.npy"))
    (tmp_path / "manifest.csv").write_text(
        "path,label,roi,t0,injection\n"
        f"{jpeg_dcm},HCC,\"{','.join(map(str, ROI))}\",{ARRIVAL},4.0\n")
    q = run_cli(["qa", str(tmp_path), "--out", str(tmp_path / "qa"), "--jobs", "1", "-vv"], env)
    assert q.returncode == 0, q.stderr
    assert (tmp_path / "qa" / "report.html").is_file()
    assert secrets_in(p.stdout, p.stderr, q.stdout, q.stderr,
                      folders=(journal, tmp_path / "qa")) == []
    # the exam id comes from the pixels: another header, the same id
    other = write_dicom(tmp_path / "renamed.dcm", frames, syntax="jpeg", fps=FPS)
    r2 = last_json(run_cli(["replay", str(other), "--roi", ",".join(map(str, ROI)), "--t0",
                            str(ARRIVAL), "--json", "--no-publish", "--no-journal"],
                           env).stdout)
    assert r2["exam"] == r["exam"]


def test_bad_dicom_files_get_one_line(tmp_path, env, frames):
    one = write_dicom(tmp_path / "one.dcm", frames[:1], syntax="raw")
    untimed = write_dicom(tmp_path / "untimed.dcm", frames[:20], syntax="raw", timing="none")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 50)
    cut = tmp_path / "cut.dcm"
    data = write_dicom(tmp_path / "full.dcm", frames, syntax="jpeg").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    for f, words in ((one, "single"), (untimed, "no frame timing"), (junk, "DICOM")):
        p = run_cli(["replay", str(f), "--roi", "56,32,64,64", "--t0", "5", "--no-publish"],
                    env)
        assert p.returncode == 3, p.stderr
        line = one_line_error(p)
        assert f.name in line and words in line, line
    p = run_cli(["replay", str(cut), "--roi", "56,32,64,64", "--t0", str(ARRIVAL),
                 "--no-publish", "--json"], env)
    assert p.returncode in (3, 4), p.stderr
    one_line_error(p)


@pytest.mark.parametrize("syntax", ["jpeg", "rle"])
def test_a_cut_cine_says_it_is_cut_in_one_line(tmp_path, env, frames, syntax):
    """Half of an encapsulated cine: pydicom warns (its log line and two lines of Python
    warning); the user gets one line saying the pixel data is cut short and how much of it
    is there (encapsulate writes one fragment per frame after the offset table: of the
    first half of the file, fragments for about half of the 2000 frames)."""
    data = write_dicom(tmp_path / "full.dcm", frames, syntax=syntax).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) // 2])
    p = run_cli(["replay", str(cut), "--roi", "56,32,64,64", "--t0", str(ARRIVAL),
                 "--no-publish", "--no-journal"], env)
    assert p.returncode == 3
    line = one_line_error(p)
    assert "cut short" in line and f"of {len(frames)} frames" in line, line
    present = int(line.split("(")[1].split(" complete")[0])
    assert 0.4 * len(frames) < present < 0.6 * len(frames)
    assert "UserWarning" not in p.stderr and "warn_and_log" not in p.stderr
    assert len(p.stderr.strip().splitlines()) <= 2  # the model line, the error


def write_image_folder(d: Path, n: int, fps: float) -> Path:
    import cv2

    (d / "frames").mkdir(parents=True)
    rows = []
    for i in range(n):
        g = frame(i, i / fps, ARRIVAL)
        cv2.imwrite(str(d / "frames" / f"{i:05d}.png"), np.stack([g, g, g], -1))
        rows.append((f"frames/{i:05d}.png", f"{i / fps + 3.0:.4f}"))
    rows.reverse()  # any order: played in time order
    with open(d / "timestamps.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "t_s"])
        w.writerows(rows)
    return d


def test_image_folder_with_timestamps_replays(tmp_path, cfg, env):
    d = write_image_folder(tmp_path / "exam", int(SECONDS * 5), 5.0)
    r, pts, idx = slot_frames(d, cfg, t0=ARRIVAL)
    assert r["final"] and r["recording"]["kind"] == "images"
    assert r["first_frame_s"] == 3.0  # timestamps start at 3 s: times count from frame 0
    assert idx[:3] == [round(ARRIVAL * 5), round((ARRIVAL + 2) * 5), round((ARRIVAL + 4) * 5)]
    (d / "timestamps.csv").write_text("file,t_s\nframes/00000.png,0\nframes/00001.png,nan\n"
                                      "frames/nope.png,1\n")
    p = run_cli(["replay", str(d), "--roi", "56,32,64,64", "--t0", "5", "--no-publish"], env)
    assert p.returncode == 3
    line = one_line_error(p)
    assert "row 3" in line and "row 4" in line and "nope.png" in line


@pytest.mark.slow
def test_train_from_recordings_and_dicom(tmp_path, env, frames):
    """``train --data`` on a folder of simulated recordings and DICOM cines: the clips come
    from the engine (in worker processes), one epoch trains, and model.onnx, its FP16 twin
    and the plots are written (this aborted with exit 134 before model.onnx)."""
    pytest.importorskip("torch")
    data = tmp_path / "data"
    s = run_cli(["simulate", "--n", "6", "--out", str(data), "--size", "320x240", "--fps", "10"],
                env, timeout=600)
    assert s.returncode == 0, s.stderr
    rows = (data / "manifest.csv").read_text().splitlines()
    roi = ",".join(map(str, ROI))
    for k in range(4):  # DICOM cines: the coded frames, labelled by turn
        write_dicom(data / f"cine_{k}.dcm", frames[k:], syntax="jpeg" if k % 2 else "rle",
                    fps=FPS)
        rows.append(f"cine_{k}.dcm,{'HCC' if k % 2 else 'non-HCC'},\"{roi}\",4.0")  # injection
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    p = run_cli(["train", "--network", "cnn3d", "--data", str(data), "--epochs", "1", "--out",
                 str(out), "--jobs", "2"], env, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    for name in ("model.onnx", "model_fp16.onnx", "roc.png", "confusion.png", "report.json"):
        assert (out / name).is_file(), name
    assert secrets_in(p.stdout, p.stderr, folders=(out,)) == []


@pytest.mark.parametrize("name", ["badVR.dcm", "SC_rgb_jpeg.dcm"])
def test_pydicom_warnings_are_one_line_each(name, env):
    """pydicom both logs and warns each problem (a log line plus two lines of Python warning
    on stderr); the user gets one line per problem, and the one-line error."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    p = run_cli(["replay", path, "--roi", "0,0,8,8", "--t0", "1", "--no-publish",
                 "--no-journal"], env)
    assert p.returncode == 3
    one_line_error(p)
    assert "UserWarning" not in p.stderr and "warn_and_log" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if "model" not in ln]
    assert len(lines) <= 2 and len(set(lines)) == len(lines), p.stderr


def test_a_pydicom_warning_while_frames_decode_is_one_line(tmp_path, env, frames):
    """pydicom warns from the decoder on the feed thread (here: pixel data with excess
    padding, noticed when the frames are iterated, not when the header is read): one log
    line naming the file, no Python warning lines; the frames are scored as the clean file's."""
    import pydicom

    clean = write_dicom(tmp_path / "clean.dcm", frames, syntax="raw", fps=FPS)
    ds = pydicom.dcmread(clean)
    ds.PixelData = ds.PixelData + b"\0" * 256
    ds.save_as(tmp_path / "padded.dcm")
    args = ["--roi", "56,32,64,64", "--t0", str(ARRIVAL), "--no-publish", "--no-journal",
            "--json"]
    p = run_cli(["replay", str(tmp_path / "padded.dcm"), *args], env)
    assert p.returncode == 0, p.stderr
    assert "UserWarning" not in p.stderr and "warn_and_log" not in p.stderr, p.stderr
    pad = [ln for ln in p.stderr.splitlines() if "excess padding" in ln]
    assert len(pad) == 1 and "padded.dcm: pydicom: " in pad[0], p.stderr
    ref = run_cli(["replay", str(clean), *args], env)
    assert last_json(p.stdout)["score"] == last_json(ref.stdout)["score"]


@pytest.mark.skipif(shutil.which("gdcmconv") is None, reason="GDCM's gdcmconv (libgdcm-tools)")
def test_gdcm_lossy_jpeg_of_rgb_reads_as_its_source(tmp_path):
    """GDCM's lossy JPEG of an RGB cine keeps the header's RGB while its JPEG stream is
    YCbCr-coded (JFIF); the luma must follow the stream, not the header: within JPEG's loss
    of the uncompressed source's BT.601 luma (it was 45 grey levels off when read as RGB)."""
    fr = []
    for i in range(20):
        a = np.zeros((120, 160, 3), np.uint8)
        a[..., 0] = np.linspace(0, 255, 160)[None, :]
        a[..., 1] = np.linspace(255, 0, 120)[:, None]
        a[..., 2] = (i * 12) % 256
        fr.append(a)
    raw = write_dicom(tmp_path / "rgb.dcm", fr, syntax="raw")
    lossy = tmp_path / "rgb_gdcm.dcm"
    subprocess.run(["gdcmconv", "--jpeg", "--lossy", "-q", "90", str(raw), str(lossy)],
                   check=True, capture_output=True)
    assert "RGB" in subprocess.run(["dcmdump", "+P", "0028,0004", str(lossy)],
                                   capture_output=True, text=True).stdout
    ref, got = decode_all(raw), decode_all(lossy)
    assert len(ref) == len(got) == 20
    diff = np.mean([np.abs(a.luma.astype(float) - b.luma).mean() for a, b in zip(ref, got)])
    assert diff < 1.5, diff
