"""Every message a real replay publishes validates against the v1 JSON Schema files (the
same files the C overlay's tests read), and the builders refuse what the schema refuses."""

from __future__ import annotations

import json

import jsonschema
import pytest
from referencing import Registry, Resource

from ceustream.engine.core import config
from ceustream.engine.wire import messages

from conftest import replay_published


def validators() -> dict[str, jsonschema.Draft202012Validator]:
    docs = {n: json.loads(messages.schema_text(n)) for n in messages.SCHEMAS}
    reg = Registry().with_resources(
        [(d["$id"], Resource.from_contents(d)) for d in docs.values()]
        + [(f"{n}.v1.json", Resource.from_contents(d)) for n, d in docs.items()])
    return {n: jsonschema.Draft202012Validator(docs[n], registry=reg)
            for n in ("score", "status", "command")}


def test_schema_files_are_valid_json_schema():
    for n in messages.SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(json.loads(messages.schema_text(n)))


def test_every_published_message_validates(coded_mp4, tmp_path, port):
    from ceustream.engine.app.replay import ReplayOptions
    from ceustream.engine.core.roi import Roi

    from media import ROI

    v = validators()
    cfg = config.load(env={})
    cfg["journal"]["dir"] = str(tmp_path / "j")
    res, frames = replay_published(
        coded_mp4.path, ReplayOptions(roi=Roi(*ROI), injection=coded_mp4.injection), cfg, port)
    got = [messages.decode(f)[1] for f in frames]
    assert res["final"]
    kinds = {m["type"] for m in got}
    assert kinds == {"score", "status"}
    for m in got:
        errors = sorted(v[m["type"]].iter_errors(m), key=str)
        assert not errors, (m["type"], [e.message for e in errors[:3]])
    final = [m for m in got if m["type"] == "score" and m["final"]]
    assert len(final) == 1 and final[0]["features"] is not None
    assert final[0]["features"]["summary"]


@pytest.mark.parametrize("bad", [
    {"cmd": "status", "t": float("nan")}, {"cmd": "mark_arrival", "t": 1e308},
    {"cmd": "set_roi", "roi": [1, 2, 3]}, {"cmd": "start_exam", "exam": "DOE^JOHN MRN1"},
    {"cmd": "status", "extra": 1}, {"cmd": "launch"},
])
def test_commands_the_schema_refuses_are_refused(bad):
    v = validators()["command"]
    nan = isinstance(bad.get("t"), float) and bad["t"] != bad["t"]
    assert list(v.iter_errors(bad)) or nan  # (NaN is not JSON at all)
    raw = json.dumps(bad).encode()
    with pytest.raises(ValueError):
        messages.parse_command(raw)


def test_commands_the_schema_accepts_are_accepted():
    v = validators()["command"]
    for good in ({"cmd": "status"}, {"cmd": "mark_injection", "t": 12.5},
                 {"cmd": "start_exam", "exam": "e-1", "roi": [0, 0, 10, 10]},
                 {"cmd": "mark_arrival", "t": None}):
        assert not list(v.iter_errors(good))
        assert messages.parse_command(json.dumps(good).encode())["cmd"] == good["cmd"]
