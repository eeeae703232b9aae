"""/healthz and /readyz beside /metrics (engine.app.health): the readiness rule on hand-made
states, then a real `ceustream run` asked over HTTP by a real client (urllib): alive at once,
ready when its source plays, not ready (503, naming the source) while a source it was given
delivers nothing beyond the re-open grace, ready again once that source is removed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from ceustream.engine.app.health import SourceState, grace_s, readiness
from ceustream.engine.core import config

from conftest import free_port
from livekit import Engine, wait_until


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_readiness_rule():
    grace = 12.0
    up, ok = readiness(True, {"a": SourceState("playing", 0.1)}, grace, 100.0)
    assert up and ok["sources"]["a"] == {"state": "playing", "ready": True, "down_s": None}
    # reconnecting within the grace: still ready; beyond it: not
    assert readiness(True, {"a": SourceState("reconnecting", 11.9)}, grace, 100.0)[0]
    down, body = readiness(True, {"a": SourceState("reconnecting", 12.5),
                                  "b": SourceState("playing", 0.0)}, grace, 100.0)
    assert not down and body["sources"]["a"] == {"state": "reconnecting", "ready": False,
                                                 "down_s": 12.5}
    assert body["sources"]["b"]["ready"]
    # never had a frame: down since the engine started
    assert readiness(True, {"a": SourceState("opening", None)}, grace, 3.0)[0]
    assert not readiness(True, {"a": SourceState("opening", None)}, grace, 30.0)[0]
    assert not readiness(True, {"a": SourceState("ended", 0.0)}, grace, 1.0)[0]
    assert not readiness(False, {"a": SourceState("playing", 0.0)}, grace, 1.0)[0]
    assert readiness(True, {}, grace, 1.0)[0]  # nothing configured is down
    assert grace_s(config.load(env={})) == 2.0 + 5.0 + 5.0


@pytest.mark.slow
def test_healthz_and_readyz_of_a_running_engine(env):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # a short grace, so that the source without a sender is "down too long" soon
    env = dict(env, CEUSTREAM_LIVE__REOPEN_AFTER_S="0.5", CEUSTREAM_LIVE__OPEN_TIMEOUT_S="0.5",
               CEUSTREAM_LIVE__REOPEN_MAX_S="0.5")
    dead = f"udp://127.0.0.1:{free_port()}"
    eng = Engine(env, "cam=test://smpte", "--source", f"nosender={dead}",
                 "--metrics", f"127.0.0.1:{port}")
    try:
        assert get(f"{base}/healthz") == (200, "ok\n")
        status, text = wait_until(
            lambda: (lambda r: r if r[0] == 503 and not json.loads(r[1])["sources"]
                     ["nosender"]["ready"] else None)(get(f"{base}/readyz")),
            30, "readyz: 503 for the source without a sender")
        body = json.loads(text)
        assert body["ready"] is False and body["model"] == "loaded"
        assert body["sources"]["nosender"]["state"] in ("opening", "reconnecting")
        assert body["grace_s"] == 1.5 and body["sources"]["nosender"]["down_s"] >= 1.5
        wait_until(lambda: json.loads(get(f"{base}/readyz")[1])["sources"]["cam"]["ready"],
                   30, "the test source playing")
        assert eng.cmd("remove_source", source="nosender")["ok"]
        status, text = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(
            get(f"{base}/readyz")), 30, "readyz: 200 once the dead source is removed")
        body = json.loads(text)
        assert body["ready"] is True and set(body["sources"]) == {"cam"}
        assert body["sources"]["cam"]["state"] == "playing"
        # /metrics is still the Prometheus page; the engine is alive throughout
        status, text = get(f"{base}/metrics")
        assert status == 200 and "ceustream_scores" in text
        assert get(f"{base}/healthz")[0] == 200
    finally:
        assert eng.stop() == 0, eng.stderr[-2000:]
