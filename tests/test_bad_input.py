"""Every bad input a user can give gets one line naming what is wrong and a documented
non-zero exit: never a traceback, a hang or a silently wrong score. Run as the user runs it:
the ``ceustream`` command in a subprocess."""

from __future__ import annotations

import shutil

import onnx
import pytest

from ceustream.engine.core import modelmeta

from conftest import last_json, one_line_error, run_cli


def replay(env, path, *extra):
    return run_cli(["replay", str(path), "--no-publish", *extra], env, timeout=240)


def test_missing_file(env, tmp_path):
    p = replay(env, tmp_path / "nope.mp4", "--roi", "1,1,20,20", "--t0", "5")
    assert p.returncode == 3
    assert "nope.mp4: file not found" in one_line_error(p)


def test_not_a_video(env, tmp_path):
    f = tmp_path / "notes.mp4"
    f.write_text("this is a text file, not a recording\n" * 50)
    p = replay(env, f, "--roi", "1,1,20,20", "--t0", "5")
    assert p.returncode == 3
    line = one_line_error(p)
    assert "notes.mp4" in line and "not" in line and ("video" in line or "playable" in line)


def test_empty_file(env, tmp_path):
    f = tmp_path / "empty.mkv"
    f.write_bytes(b"")
    p = replay(env, f, "--roi", "1,1,20,20", "--t0", "5")
    assert p.returncode == 3 and "empty file" in one_line_error(p)


@pytest.mark.parametrize("cut", [0.5])
def test_truncated_mkv_uses_frames_up_to_the_damage(coded_mkv25, env, tmp_path, cut):
    data = coded_mkv25.path.read_bytes()
    f = tmp_path / "truncated.mkv"
    f.write_bytes(data[: int(len(data) * cut)])
    p = replay(env, f, "--roi", coded_mkv25.roi, "--t0", str(coded_mkv25.arrival), "--json")
    assert p.returncode == 4, p.stderr
    r = last_json(p.stdout)
    assert not r["final"] and r["label"] is None
    assert 10 <= r["slots_filled"] < 30
    assert {"slots_missing"} <= set(r["flags"])
    assert "partial result" in one_line_error(p)


def test_truncated_mp4_uses_frames_up_to_the_damage(coded_mp4, env, tmp_path):
    data = coded_mp4.path.read_bytes()
    f = tmp_path / "truncated.mp4"
    f.write_bytes(data[: int(len(data) * 0.45)])
    p = replay(env, f, "--roi", coded_mp4.roi, "--t0", str(coded_mp4.arrival), "--json")
    assert p.returncode in (3, 4), p.stderr
    line = one_line_error(p)
    if p.returncode == 4:
        r = last_json(p.stdout)
        assert not r["final"] and r["slots_filled"] < 30
        assert "recording_damaged" in r["flags"] or "recording_ended_early" in r["flags"]
    else:
        assert "truncated.mp4" in line


def test_corrupt_bytes_in_the_middle_never_crash(coded_mp4, env, tmp_path):
    data = bytearray(coded_mp4.path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 20000] = bytes((i * 7919) % 251 for i in range(20000))
    f = tmp_path / "corrupt.mp4"
    f.write_bytes(bytes(data))
    p = replay(env, f, "--roi", coded_mp4.roi, "--t0", str(coded_mp4.arrival), "--json")
    assert p.returncode in (0, 3, 4), p.stderr
    assert "Traceback" not in p.stderr
    if p.returncode != 3:
        r = last_json(p.stdout)
        assert r["final"] == (p.returncode == 0)


def test_recording_ends_before_the_clip_completes(short_mp4, env):
    p = replay(env, short_mp4.path, "--roi", short_mp4.roi, "--t0", str(short_mp4.arrival),
               "--json")
    assert p.returncode == 4
    r = last_json(p.stdout)
    assert r["final"] is False and r["label"] is None and r["slots_filled"] < 30


@pytest.mark.parametrize("roi,code,words", [
    ("150,100,64,64", 3, "outside"),        # 160x120 frame
    ("0,0,0,20", 2, "empty"),
    ("1,2,3", 2, "X,Y,W,H"),
    ("a,b,c,d", 2, "integers"),
    ("-5,0,20,20", 2, ">= 0"),
    ("0,0,4,4", 3, "too small"),
])
def test_bad_roi(coded_mp4, env, roi, code, words):
    p = replay(env, coded_mp4.path, f"--roi={roi}", "--t0", "19")
    assert p.returncode == code, p.stderr
    assert words in one_line_error(p)


def test_t0_after_the_end(coded_mp4, env):
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi, "--t0", "9999")
    assert p.returncode == 3 and "after the end" in one_line_error(p)


def test_injection_after_the_end(coded_mp4, env):
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi, "--injection", "9999")
    assert p.returncode == 3 and "after the end" in one_line_error(p)


def test_t0_and_injection_together_or_neither(coded_mp4, env):
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi, "--t0", "3", "--injection", "1")
    assert p.returncode == 2 and "not allowed with" in one_line_error(p)
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi)
    assert p.returncode == 2 and "--t0" in one_line_error(p)


def test_resolution_change_mid_stream(media_dir, env):
    import numpy as np

    from ceustream.pipelines import gst

    gst.init()
    Gst = gst.Gst
    f = media_dir / "reschange.ts"
    p = Gst.parse_launch(
        "appsrc name=src format=time caps=video/x-raw,format=GRAY8,width=160,height=120,"
        "framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast "
        f'key-int-max=30 ! h264parse ! mpegtsmux ! filesink location="{f}"')
    src = p.get_by_name("src")
    p.set_state(Gst.State.PLAYING)
    for k in range(30 * 60):
        if k == 30 * 30:
            src.set_property("caps", Gst.Caps.from_string(
                "video/x-raw,format=GRAY8,width=320,height=240,framerate=30/1"))
        w, h = (160, 120) if k < 900 else (320, 240)
        b = Gst.Buffer.new_wrapped(np.full((h, w), k % 200, np.uint8).tobytes())
        b.pts, b.duration = int(k / 30 * 1e9), int(1e9 / 30)
        src.emit("push-buffer", b)
    src.emit("end-of-stream")
    p.get_bus().timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    p.set_state(Gst.State.NULL)
    r = replay(env, f, "--roi", "10,10,50,50", "--t0", "5", "--seek", "never")
    assert r.returncode == 3, r.stderr
    assert "resolution changed mid-stream" in one_line_error(r)


def test_model_without_metadata(coded_mp4, env, tmp_path):
    m = onnx.load(str(modelmeta.shipped_model_path()))
    del m.metadata_props[:]
    bad = tmp_path / "bare.onnx"
    onnx.save(m, str(bad))
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi, "--t0", "19", "--model", str(bad))
    assert p.returncode == 3
    assert "no 'ceustream' metadata" in one_line_error(p)


def test_model_that_is_not_onnx(coded_mp4, env, tmp_path):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"\x00junk" * 100)
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi, "--t0", "19", "--model", str(bad))
    assert p.returncode == 3 and "junk.onnx" in one_line_error(p)


def test_bad_speed_and_unknown_option(coded_mp4, env):
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi, "--t0", "19", "--speed", "fast")
    assert p.returncode == 2 and "--speed" in one_line_error(p)
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi, "--t0", "19", "--frobnicate")
    assert p.returncode == 2 and "frobnicate" in one_line_error(p)


def test_tensorrt_requested_without_a_gpu(coded_mp4, env):
    """No GPU or TensorRT on this machine: asking for it is a clear exit 5."""
    from ceustream.engine.backends.tensorrt import unavailable_reason

    if unavailable_reason() is None:
        pytest.skip("TensorRT is usable here")
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi, "--t0", "19", "--backend", "tensorrt")
    assert p.returncode == 5 and "tensorrt" in one_line_error(p).lower()


def test_bad_config(coded_mp4, env, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[zmq]\nheartbeat_s = -1\n")
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi, "--t0", "19", "--config", str(cfg))
    assert p.returncode == 2 and "heartbeat_s" in one_line_error(p)
    env = dict(env, CEUSTREAM_REPLAY__SEEK="sometimes")
    p = replay(env, coded_mp4.path, "--roi", coded_mp4.roi, "--t0", "19")
    assert p.returncode == 2 and "replay.seek" in one_line_error(p)


def test_publish_port_in_use(coded_mp4, env):
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PUB)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    try:
        p = run_cli(["replay", str(coded_mp4.path), "--roi", coded_mp4.roi, "--t0", "19",
                     "--pub", f"tcp://127.0.0.1:{port}"], env)
        assert p.returncode == 2 and "cannot bind" in one_line_error(p)
    finally:
        s.close()
        ctx.term()


def test_off_loopback_without_keys_is_refused(coded_mp4, env):
    p = run_cli(["replay", str(coded_mp4.path), "--roi", coded_mp4.roi, "--t0", "19",
                 "--pub", "tcp://0.0.0.0:5999"], env)
    assert p.returncode == 2 and "not loopback" in one_line_error(p)


def test_qa_manifest_with_bad_rows_lists_them(coded_mp4, env, tmp_path):
    shutil.copy(coded_mp4.path, tmp_path / "a.mp4")
    (tmp_path / "m.csv").write_text(
        "path,label,roi,t0\n"
        f"a.mp4,HCC,\"{coded_mp4.roi}\",19\n"
        "missing.mp4,HCC,\"1,1,20,20\",19\n"
        "a.mp4,benign,\"1,1,20,20\",19\n"
        "a.mp4,HCC,\"1,1,20\",abc\n"
        f"a.mp4,HCC,\"{coded_mp4.roi}\",nan\n")
    p = run_cli(["qa", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"), "--jobs", "1"],
                env)
    # bad rows do not block the archive (issue 12): listed with their reasons, the rest run,
    # exit 4 because rows failed
    assert p.returncode == 4, p.stderr
    assert "Traceback" not in p.stderr
    import json

    recs = {r["row"]: r for r in map(json.loads,
                                     (tmp_path / "out" / "results.jsonl").read_text().splitlines())}
    assert recs[2]["status"] == "scored"
    assert all(recs[n]["status"] == "bad_row" for n in (3, 4, 5, 6))
    assert "missing.mp4 not found" in recs[3]["error"] and "benign" in recs[4]["error"]
    assert "abc" in recs[5]["error"] and "nan" in recs[6]["error"]


@pytest.mark.parametrize("args, words", [
    (["simulate", "--n", "0"], "--n"),
    (["simulate", "--fps", "0"], "--fps"),
    (["simulate", "--duration", "-5"], "--duration"),
    (["simulate", "--keyint", "abc"], "--keyint"),
    (["simulate", "--size", "10"], "--size"),
    (["replay", "x.mp4", "--roi", "1,1,9,9", "--t0", "nan"], "--t0"),
])
def test_bad_numbers_are_refused_and_nothing_is_written(env, tmp_path, args, words):
    out = tmp_path / "sim"
    target = out if "--n" in args else out.with_suffix(".mp4")
    extra = ["--out", str(target)] if args[0] == "simulate" else []
    p = run_cli([*args, *extra], env, timeout=60)
    assert p.returncode == 2 and words in one_line_error(p)
    assert not out.exists() and not target.exists()


def test_qa_threshold_must_be_a_probability(env, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,roi,t0\n")
    p = run_cli(["qa", str(manifest), "--out", str(tmp_path / "q"), "--threshold", "5"], env)
    assert p.returncode == 2 and "--threshold" in one_line_error(p)
    assert not (tmp_path / "q").exists()
