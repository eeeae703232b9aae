"""From and back to a real PACS: Debian's Orthanc (tests/pacs.py) holding CEUS cines written
by dcmtk (RLE) and GDCM (JPEG-LS), a GSPS drawing the ROI (highdicom) and a labels CSV for
the rest. ``ceustream qa`` queries (QIDO-RS / C-FIND), retrieves (WADO-RS / C-GET), scores,
and stores a TID 1500 SR and a Secondary Capture back (STOW-RS / C-STORE); the SR is read
back from Orthanc and checked with dicom3tools' ``dciodvfy`` and dcmtk's ``dsrdump``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import free_port, last_json, one_line_error, run_cli
from dicomfiles import FAKE_ACCESSION, secrets_in
from media import ROI, frame
from pacs import (OUR_AET, PASSWORD, USER, make_certs, make_cine, missing_tools,
                  start_orthanc, start_tls_front)

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason="needs Debian packages: "
                                + " ".join(missing_tools()))

FPS = 10.0
ARRIVAL = 17.3
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"


def uid(n: int) -> str:
    return f"1.2.826.0.1.3680043.10.1299.{n}"


@pytest.fixture(scope="module")
def frames():
    return [frame(i, i / FPS, ARRIVAL) for i in range(int(200 * FPS))]


@pytest.fixture(scope="module")
def archive(tmp_path_factory, frames):
    """Orthanc with: cine A (dcmtk RLE, Contrast/Bolus Start Time 4 s after the acquisition
    start, a GSPS box = the ROI), cine B (GDCM JPEG-LS, no contrast tags: injection from the
    labels CSV, ROI from an SR's image region), cine C (a study outside the date range)."""
    import highdicom as hd
    import pydicom

    d = tmp_path_factory.mktemp("pacs")
    o = start_orthanc(d / "orthanc", free_port(), free_port(), free_port())
    try:
        a = make_cine(d / "a.dcm", frames, study_uid=uid(1), series_uid=uid(11), sop_uid=uid(111),
                      accession=FAKE_ACCESSION, acquisition="20260102091500.000000",
                      contrast_start="091504.000000", codec="rle")
        b = make_cine(d / "b.dcm", frames, study_uid=uid(2), series_uid=uid(21), sop_uid=uid(211),
                      accession="ACC-2", acquisition="20260103100000", contrast_start=None,
                      codec="jpegls")
        c = make_cine(d / "c.dcm", frames[:400], study_uid=uid(3), series_uid=uid(31),
                      sop_uid=uid(311), accession="ACC-3", acquisition="20250505100000",
                      contrast_start=None, codec="raw")
        subprocess.run(["dcmodify", "-nb", "-m", "(0008,0020)=20250505", str(c.path)],
                       check=True, capture_output=True)
        o.store(a.path, propose="-xr")
        o.store(b.path, propose="-xt")
        o.store(c.path, propose="-x=")
        # the radiologist's box around the lesion, drawn on cine A
        x, y, w, h = ROI
        cine = pydicom.dcmread(a.path, stop_before_pixels=True)
        layer = hd.pr.GraphicLayer(layer_name="LESION", order=1)
        box = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], float)
        pr = hd.pr.GrayscaleSoftcopyPresentationState(
            referenced_images=[cine], series_instance_uid=uid(12), series_number=2,
            sop_instance_uid=uid(121), instance_number=1, manufacturer="tests",
            manufacturer_model_name="tests", software_versions="1", device_serial_number="1",
            content_label="LESION", graphic_layers=[layer],
            modality_lut_transformation=hd.ModalityLUTTransformation(
                rescale_intercept=0.0, rescale_slope=1.0, rescale_type="US"),
            voi_lut_transformations=[hd.pr.SoftcopyVOILUTTransformation(
                window_center=128.0, window_width=256.0)],
            graphic_annotations=[hd.pr.GraphicAnnotation(
                referenced_images=[cine], graphic_layer=layer,
                graphic_objects=[hd.pr.GraphicObject("POLYLINE", box, "PIXEL")])])
        pr.save_as(d / "gsps.dcm", enforce_file_format=True)
        o.store(d / "gsps.dcm", propose="-x=")
        # and on cine B, a region in an SR (TID 1500 / 1410, as a reporting tool writes it)
        cine_b = pydicom.dcmread(b.path, stop_before_pixels=True)
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=uid(221), identifier="lesion"),
            referenced_region=hd.sr.ImageRegion(
                "POLYLINE", box, hd.sr.SourceImageForRegion.from_source_image(cine_b)))
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(),
            procedure_reported=hd.sr.CodedConcept("P5-B8500", "SRT", "Ultrasound"),
            imaging_measurements=[group])
        sr = hd.sr.ComprehensiveSR([cine_b], report, uid(22), 3, uid(222), 1,
                                   manufacturer="tests")
        sr.save_as(d / "region_sr.dcm", enforce_file_format=True)
        o.store(d / "region_sr.dcm", propose="-x=")
        labels = d / "labels.csv"
        labels.write_text("accession,study_uid,label,roi,injection\n"
                          f"{FAKE_ACCESSION},,HCC,,\n"
                          f",{uid(2)},non-HCC,\"{x},{y},{w},{h}\",4.0\n")
        yield {"orthanc": o, "a": a, "b": b, "c": c, "labels": labels, "dir": d}
    finally:
        o.stop()


@pytest.fixture(scope="module")
def https_front(archive):
    """HTTPS (stunnel, a test CA's server certificate) in front of the archive's Orthanc,
    basic auth still Orthanc's."""
    d = archive["dir"]
    certs = make_certs(d / "certs")
    front = start_tls_front(d / "stunnel", archive["orthanc"].http_port, free_port(),
                            certs["server.crt"], certs["server.key"])
    try:
        yield {"front": front, "certs": certs}
    finally:
        front.stop()


def https_env(env: dict, https_front) -> dict:
    """The PACS's CA the documented way (CEUSTREAM_PACS_CA), with the host's own bundle in
    REQUESTS_CA_BUNDLE as on a Debian machine: the PACS's CA must win over it."""
    import certifi

    return dict(env, CEUSTREAM_PACS_CA=str(https_front["certs"]["ca.crt"]),
                REQUESTS_CA_BUNDLE=certifi.where())


def address_env(protocol: str, archive, pacs_env: dict, request) -> tuple[str, dict]:
    o = archive["orthanc"]
    if protocol == "dicomweb":
        return o.dicomweb, pacs_env
    if protocol == "dicomweb-https":
        front = request.getfixturevalue("https_front")
        return front["front"].dicomweb, https_env(pacs_env, front)
    if protocol == "dimse-move":  # Orthanc's DicomModalities names OUR_AET at our_port
        return f"{o.dimse}?retrieve=move&move-port={o.our_port}", pacs_env
    return o.dimse, pacs_env


@pytest.fixture
def pacs_env(env, tmp_path):
    creds = tmp_path / "pacs.cred"
    creds.write_text(f"{USER}:{PASSWORD}\n")
    return dict(env, CEUSTREAM_PACS_CREDENTIALS=str(creds))


def sr_of_study(o, study_uid: str, sop_class: str) -> list[str]:
    found = o.rest("/tools/find", data=(
        '{"Level": "Instance", "Query": {"StudyInstanceUID": "%s", "SOPClassUID": "%s"}}'
        % (study_uid, sop_class)).encode(), method="POST")
    return found


def dciodvfy(path: Path) -> list[str]:
    """dicom3tools' findings on ``path``: its Error and Warning lines."""
    v = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [ln for ln in (v.stdout + v.stderr).splitlines()
            if ln.startswith(("Error", "Warning"))]


def described(dump: str) -> list[tuple[str, str, str]]:
    """(exact meaning, concept, value) of each item of a ``dsrdump`` that carries a child
    "Equivalent Meaning of Concept Name" (the SR's way to say what a standard concept such
    as "Probability" or "Comment" stands for here)."""
    lines = dump.splitlines()
    item = re.compile(r'^( *)<[^>]*?(?:NUM|TEXT|CODE):\([^)]*"([^"]*)"\)="([^"]*)"')
    out = []
    for i, ln in enumerate(lines):
        m = re.search(r'"Equivalent Meaning of Concept Name"\)="([^"]*)"', ln)
        if not m:
            continue
        depth = len(ln) - len(ln.lstrip(" "))
        for up in reversed(lines[:i]):
            p = item.match(up)
            if p and len(p.group(1)) < depth:
                out.append((m.group(1), p.group(2), p.group(3)))
                break
    return out


def qa(archive, pacs_env, out: Path, address: str, *extra: str):
    p = run_cli(["qa", address, "--out", str(out), "--study-date", "20260101-20260131",
                 "--labels", str(archive["labels"]), "--our-aet", OUR_AET, "--jobs", "1",
                 *extra], pacs_env, timeout=600)
    return p


def local_score(path: Path, env: dict, injection: float) -> dict:
    x, y, w, h = ROI
    p = run_cli(["replay", str(path), "--roi", f"{x},{y},{w},{h}", "--injection",
                 str(injection), "--json", "--no-publish", "--no-journal"], env)
    assert p.returncode == 0, p.stderr
    return last_json(p.stdout)


@pytest.mark.parametrize("protocol", ["dicomweb", "dicomweb-https", "dimse", "dimse-move"])
def test_qa_round_trip_query_retrieve_score_store_read_back(protocol, archive, pacs_env,
                                                            tmp_path, request):
    o = archive["orthanc"]
    before = {s: len(sr_of_study(o, uid(s), SR_CLASS)) for s in (1, 2, 3)}
    out = tmp_path / "run"
    addr, run_env = address_env(protocol, archive, pacs_env, request)
    p = qa(archive, run_env, out, addr)
    assert p.returncode == 0, p.stderr
    s = last_json(p.stdout)
    # cines A and B are in the date range, C is not; both scored, both stored back
    assert (s["exams"], s["scored_final"], s["stored"], s["missing"]) == (2, 2, 2, 0), s
    pacs = __import__("json").loads((out / "pacs.json").read_text())
    src = sorted((e["from"]["roi"], e["from"]["injection"], e["label"]) for e in pacs["exams"])
    assert src == [("GSPS", "Contrast/Bolus Start Time", 1), ("SR", "labels CSV", 0)]
    assert all(e["roi"] == ",".join(map(str, ROI)) and e["injection"] == 4.0
               for e in pacs["exams"])
    # the report tells what was queried, retrieved and stored back (as pacs.json does)
    page = (out / "report.html").read_text()
    assert "<h2>PACS</h2>" in page and "study date 20260101-20260131" in page
    assert "2 cine(s) retrieved; 2 exam(s) got an SR and a Secondary Capture" in page
    assert "roi from GSPS" in page and "injection from Contrast/Bolus Start Time" in page
    assert all(e["stored"]["sr"] in page for e in pacs["exams"])
    assert __import__("json").loads((out / "report.json").read_text())["pacs"] == pacs
    # each study got one more SR and one more Secondary Capture; C none
    after = {s: len(sr_of_study(o, uid(s), SR_CLASS)) for s in (1, 2, 3)}
    assert after == {1: before[1] + 1, 2: before[2] + 1, 3: before[3]}
    assert len(sr_of_study(o, uid(1), SC_CLASS)) >= 1
    # the same exams scored from local files give the same scores
    recs = [__import__("json").loads(x) for x in (out / "results.jsonl").read_text().split("\n")
            if x.strip()]
    by_cine = {}
    for e in pacs["exams"]:
        r = next(r for r in recs if r.get("path") == e["file"])
        by_cine["a" if e["label"] == 1 else "b"] = r
    for k in ("a", "b"):
        ref = local_score(archive[k].path, pacs_env, 4.0)
        assert by_cine[k]["score"] == pytest.approx(ref["score"], abs=1e-6)
    # the SR read back: clean under dciodvfy, and dsrdump reads what was scored
    sr_id = sr_of_study(o, uid(1), SR_CLASS)[-1]
    blob = o.rest(f"/instances/{sr_id}/file")
    f = tmp_path / "sr.dcm"
    f.write_bytes(blob)
    assert dciodvfy(f) == []  # no error, no warning: standard codes only
    dump = subprocess.run(["dsrdump", "+Pl", "+Pu", "+Pt", str(f)], capture_output=True,
                          text=True).stdout
    assert "Imaging Measurement Report" in dump and "TID 1500" in dump and "TID 1501" in dump
    items = described(dump)
    score = [v for m, c, v in items if m == "Probability of HCC (model)"]
    assert len(score) == 1 and float(score[0]) == pytest.approx(by_cine["a"]["score"],
                                                                 abs=1e-6)
    slots = [(m, c) for m, c, v in items if " frame time (t0+" in m]
    assert len(slots) == 30 and {c for m, c in slots} == {"Time"}
    assert [c for m, c, v in items if m == "Contrast arrival t0 from first frame"] == [
        "Bolus Arrival Time"]
    assert "trained on simulated data, not for diagnosis" in dump.lower()
    assert uid(111) in dump  # the group's source image: the cine, with the scored frames
    sc_id = sr_of_study(o, uid(1), SC_CLASS)[-1]
    (tmp_path / "sc.dcm").write_bytes(o.rest(f"/instances/{sc_id}/file"))
    assert dciodvfy(tmp_path / "sc.dcm") == []
    # nothing of the patient, the accession or the password left the process
    assert secrets_in(p.stdout, p.stderr, folders=(out,)) == []
    assert PASSWORD not in p.stdout + p.stderr
    assert not any(PASSWORD.encode() in q.read_bytes() for q in out.rglob("*") if q.is_file())


@pytest.mark.parametrize("protocol", ["dicomweb", "dicomweb-https", "dimse", "dimse-move"])
def test_replay_one_cine_from_the_pacs_scores_as_the_local_file(protocol, archive, pacs_env,
                                                                request):
    x, y, w, h = ROI
    addr, pacs_env = address_env(protocol, archive, pacs_env, request)
    p = run_cli(["replay", addr, "--sop-uid", uid(111), "--our-aet", OUR_AET, "--roi",
                 f"{x},{y},{w},{h}", "--injection", "4", "--json", "--no-publish",
                 "--no-journal"], pacs_env)
    assert p.returncode == 0, p.stderr
    r = last_json(p.stdout)
    assert r["final"] and r["score"] == pytest.approx(
        local_score(archive["a"].path, pacs_env, 4.0)["score"], abs=1e-6)
    assert secrets_in(p.stdout, p.stderr) == [] and PASSWORD not in p.stdout + p.stderr
    many = run_cli(["replay", addr, "--our-aet", OUR_AET, "--roi", f"{x},{y},{w},{h}",
                    "--injection", "4", "--no-publish", "--no-journal"], pacs_env)
    assert "exactly one" in one_line_error(many)


def test_pacs_errors_are_one_line_and_name_no_credential(archive, env, pacs_env, tmp_path):
    o = archive["orthanc"]
    bad = tmp_path / "bad.cred"
    bad.write_text(f"{USER}:wrong-{PASSWORD}\n")
    cases = [
        (dict(env), o.dicomweb, "not authorised"),
        (dict(env, CEUSTREAM_PACS_CREDENTIALS=str(bad)), o.dicomweb, "not authorised"),
        (pacs_env, o.dicomweb.replace("//", f"//{USER}:{PASSWORD}@"), "refused"),
        (pacs_env, f"dimse://NOSUCHAET@127.0.0.1:{o.dicom_port}", "rejected"),
        (pacs_env, f"dimse://{OUR_AET}@127.0.0.1:{free_port()}", "C-FIND failed"),
        # C-MOVE where the PACS sends elsewhere (its modality table's port, not ours)
        (pacs_env, f"{o.dimse}?retrieve=move&move-port={free_port()}", "C-MOVE failed"),
    ]
    for e, addr, want in cases:
        p = run_cli(["qa", addr, "--out", str(tmp_path / "o"), "--study-date", "20260102",
                     "--our-aet", OUR_AET], e, timeout=120)
        assert p.returncode != 0
        line = one_line_error(p)
        assert want in line, line
        assert PASSWORD not in p.stdout + p.stderr
    p = run_cli(["qa", o.dicomweb, "--out", str(tmp_path / "o"), "--study-date", "2026-01"],
                pacs_env)
    assert "--study-date" in one_line_error(p)


def test_https_errors_are_one_line_and_name_no_credential(archive, https_front, pacs_env,
                                                          tmp_path):
    """Over HTTPS: a server certificate from another CA (or the host's bundle only), a wrong
    password, a CA file that is not there, plain HTTP to the TLS port: one line each, no
    traceback, the password nowhere (not even with --debug, nor in the TLS front's log)."""
    import certifi

    front = https_front["front"]
    good = https_env(pacs_env, https_front)
    other = make_certs(tmp_path / "other")
    bad = tmp_path / "bad.cred"
    bad.write_text(f"{USER}:wrong-{PASSWORD}\n")
    cases = [
        (dict(good, CEUSTREAM_PACS_CA=str(other["ca.crt"])), front.dicomweb, "not trusted"),
        ({k: v for k, v in good.items() if k != "CEUSTREAM_PACS_CA"}, front.dicomweb,
         "not trusted"),
        (dict(good, CEUSTREAM_PACS_CREDENTIALS=str(bad)), front.dicomweb, "not authorised"),
        (dict(good, CEUSTREAM_PACS_CA=str(tmp_path / "nope.crt")), front.dicomweb,
         "CEUSTREAM_PACS_CA"),
        (good, front.dicomweb.replace("https", "http"), "QIDO-RS query failed"),
    ]
    for e, addr, want in cases:
        p = run_cli(["qa", addr, "--out", str(tmp_path / "o"), "--study-date", "20260102",
                     "--our-aet", OUR_AET], e, timeout=120)
        assert p.returncode != 0
        line = one_line_error(p)
        assert want in line, line
        assert PASSWORD not in p.stdout + p.stderr
    # debug logging (requests/urllib3 included) with a working password: still not there
    p = run_cli(["qa", front.dicomweb, "--out", str(tmp_path / "d"), "--study-date",
                 "20260102", "--labels", str(archive["labels"]), "--no-store", "--jobs", "1",
                 "--debug"], dict(good, REQUESTS_CA_BUNDLE=certifi.where()), timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert PASSWORD not in p.stdout + p.stderr
    assert PASSWORD not in front.log.read_text(errors="replace")


def start_listen(env, spool: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    import json
    import sys

    p = subprocess.Popen([sys.executable, "-m", "ceustream.engine.cli", "listen", "--aet",
                          OUR_AET, "--port", "0", "--spool", str(spool), *extra], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()  # blocks until the SCP listens (or the process ends)
    assert first, p.stderr.read()
    line = json.loads(first)
    return p, int((line.get("stow") or line["listening"]).split(":")[-1].split("/")[0])


def send(port: int, *files: Path, calling: str = "SCANNER1", propose: str = "-xr"):
    return subprocess.run(["/usr/bin/storescu", "-v", propose, "-aet", calling, "-aec", OUR_AET,
                           "127.0.0.1", str(port), *map(str, files)], capture_output=True,
                          text=True, timeout=120)


def test_listen_scores_on_arrival_and_stores_back(archive, pacs_env, tmp_path):
    import json

    o = archive["orthanc"]
    before = len(sr_of_study(o, uid(1), SR_CLASS))
    p, port = start_listen(pacs_env, tmp_path / "spool", "--allow-aet", "SCANNER1",
                           "--store-to", o.dicomweb, "--max-exams", "2")
    try:
        # a caller not allowed is rejected; nothing is kept
        assert send(port, archive["dir"] / "gsps.dcm", calling="INTRUDER",
                    propose="-x=").returncode != 0
        assert not list((tmp_path / "spool").glob("*.dcm"))
        # the GSPS, then cine A: scored with the GSPS box and the Contrast/Bolus time
        assert send(port, archive["dir"] / "gsps.dcm", propose="-x=").returncode == 0
        assert send(port, archive["a"].path).returncode == 0
        line = json.loads(p.stdout.readline())
        assert line["status"] == "scored" and line["final"] and line["stored"], line
        # cine B has neither: reported missing, not guessed
        assert send(port, archive["b"].path, propose="-xt").returncode == 0
        line = json.loads(p.stdout.readline())
        assert line["status"] == "missing" and len(line["missing"]) == 2, line
        assert p.wait(60) == 0
    finally:
        p.kill()
        p.wait()
    assert len(sr_of_study(o, uid(1), SR_CLASS)) == before + 1
    err = p.stderr.read()
    assert secrets_in(err) == [] and PASSWORD not in err


def test_listen_takes_stow_rs_scores_and_stores_back(archive, pacs_env, tmp_path):
    """STOW-RS into the listener with dicomweb-client (an independent client; it sends the
    cine chunked): the GSPS, then cine A, scored and stored back into Orthanc; a SOP class it
    does not score is listed failed (409); nothing with an identifier in the spool's names or
    the log; curl gets 503 when the disk is nearly full, and nothing is kept."""
    import json

    import pydicom
    import requests
    from dicomweb_client.api import DICOMwebClient

    o = archive["orthanc"]
    before = len(sr_of_study(o, uid(1), SR_CLASS))
    spool = tmp_path / "spool"
    stow_pw = "stow-pw-8c1e-not-logged"
    (tmp_path / "listen.cred").write_text(f"scanner:{stow_pw}\n")
    p = subprocess.Popen([sys.executable, "-m", "ceustream.engine.cli", "listen", "--aet",
                          OUR_AET, "--port", "0", "--stow-port", "0", "--spool", str(spool),
                          "--store-to", o.dicomweb, "--max-exams", "1"],
                         env=dict(pacs_env, CEUSTREAM_LISTEN_CREDENTIALS=str(
                             tmp_path / "listen.cred")),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline() or "{}")
        assert first.get("stow", "").startswith("http://127.0.0.1:"), p.stderr.read()
        root = first["stow"].rsplit("/studies", 1)[0]
        for auth in (None, ("scanner", "wrong")):  # refused before the body is read
            s = requests.Session()
            s.auth = auth
            with pytest.raises(requests.HTTPError) as no:
                DICOMwebClient(root, session=s).store_instances(
                    [pydicom.dcmread(archive["dir"] / "gsps.dcm")])
            assert no.value.response.status_code == 401
        assert not list(spool.glob("*.dcm"))
        s = requests.Session()
        s.auth = ("scanner", stow_pw)
        client = DICOMwebClient(root, session=s, chunk_size=1 << 20)
        sent = client.store_instances([pydicom.dcmread(archive["dir"] / "gsps.dcm")])
        assert [str(x.ReferencedSOPInstanceUID) for x in sent.ReferencedSOPSequence] == \
            [uid(121)]
        other = pydicom.dcmread(archive["c"].path)
        other.SOPClassUID = other.file_meta.MediaStorageSOPClassUID = SC_CLASS
        with pytest.raises(requests.HTTPError) as refused:  # not a class scored here
            client.store_instances([other])
        assert refused.value.response.status_code == 409
        cine = pydicom.dcmread(archive["a"].path)
        assert len(cine.PixelData) > 1 << 20  # more than one chunk
        client.store_instances([cine])
        line = json.loads(p.stdout.readline())
        assert line["status"] == "scored" and line["final"] and line["stored"], line
        assert p.wait(60) == 0
    finally:
        p.kill()
        p.wait()
    assert len(sr_of_study(o, uid(1), SR_CLASS)) == before + 1
    err = p.stderr.read()
    assert secrets_in(err) == [] and PASSWORD not in err and uid(1) not in err
    assert stow_pw not in err
    assert all(re.fullmatch(r"[0-9a-f]{32}(\.strip\.jpg|\.dcm)", f.name)
               for f in spool.iterdir()), sorted(f.name for f in spool.iterdir())
    full, port = start_listen(pacs_env, tmp_path / "spool2", "--min-free-gb", "100000",
                              "--stow-port", "0")
    try:
        stow = f"http://127.0.0.1:{port}/studies"
        c = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                            "-H", 'Content-Type: multipart/related; type="application/dicom"; '
                            "boundary=XB", "--data-binary", "@" + str(archive["a"].path), stow],
                           capture_output=True, text=True, timeout=60)
        assert c.stdout == "503", c
        assert not list((tmp_path / "spool2").iterdir())
        assert full.poll() is None
    finally:
        full.terminate()
        full.wait(30)


def test_listen_refuses_associations_when_its_disk_is_nearly_full(archive, pacs_env,
                                                                   tmp_path):
    p, port = start_listen(pacs_env, tmp_path / "spool", "--min-free-gb", "100000")
    try:
        r = send(port, archive["a"].path)
        assert r.returncode != 0
        # dcmtk: "Association Rejected: ... Transient ... local-limit-exceeded"
        assert "Association Rejected" in r.stderr and "Transient" in r.stderr, r.stderr
        assert not list((tmp_path / "spool").glob("*.dcm"))
        assert p.poll() is None  # still listening
    finally:
        p.terminate()
        p.wait(30)


def test_sr_and_sc_for_a_cine_without_type2_patient_attributes(archive, tmp_path):
    """A cine lacking Patient Birth Date / Sex / Study ID (Type 2: an archive's may) still
    gets an SR and SC that dciodvfy finds no error in (the attributes present, empty), and
    the SR, whatever it holds, no warning of its own: every concept is a standard code."""
    import pydicom

    from ceustream.engine.dicomnet.results import Result, write_sc, write_sr

    cine = pydicom.dcmread(archive["a"].path, stop_before_pixels=True)
    for k in ("PatientBirthDate", "PatientSex", "StudyID", "ReferringPhysicianName"):
        if k in cine:
            delattr(cine, k)
    res = Result(score=0.25, label="indeterminate", final=True, threshold=0.5, t0_s=17.3,
                 slot_offsets_s=[0.0, 2.0], slot_frames=[174, 194], slot_times_s=[17.3, 19.3],
                 flags=["out_of_distribution"], model_name="m", model_sha256="0" * 64,
                 backend="onnxruntime", software_version="t", tic=None, domain=None)
    # every item the SR can hold: a provisional HCC with the TIC reading, the domain, the
    # physiology basis, a note
    full = Result(score=0.81, label="HCC", final=False, threshold=0.5, t0_s=17.3,
                  slot_offsets_s=[0.0, 2.0, 4.0], slot_frames=[174, 194, None],
                  slot_times_s=[17.3, 19.3, None], flags=["out_of_distribution", "late"],
                  model_name="m", model_sha256="0" * 64, backend="onnxruntime",
                  software_version="t",
                  tic={"p_hcc": 0.7, "category": "LR-5-like", "summary": "APHE · washout"},
                  domain={"state": "out", "distance": 3.2, "threshold": 2.5,
                          "method": "mahalanobis"},
                  extra_text=["a note"], score_basis="physiology")
    # the one warning left is the cine's: its Study ID is empty (Type 2, copied as the
    # standard asks into the SR and SC), and dciodvfy notes that a DICOMDIR would need it
    study_id = ("Warning - Missing attribute or value that would be needed to build "
                "DICOMDIR - Study ID")
    for name, ds in (("sr.dcm", write_sr(cine, res)), ("full.dcm", write_sr(cine, full)),
                     ("sc.dcm", write_sc(cine, np.zeros((64, 96, 3), np.uint8), res))):
        ds.save_as(tmp_path / name, enforce_file_format=True)
        assert dciodvfy(tmp_path / name) == [study_id], name
        assert "CodingSchemeIdentificationSequence" not in ds  # no local scheme to declare
    dump = subprocess.run(["dsrdump", "+Pl", str(tmp_path / "sr.dcm")], capture_output=True,
                          text=True).stdout
    items = {m: (c, v) for m, c, v in described(dump)}
    assert items["CEUS label (model classification)"] == (
        "Finding", "Indeterminate (outside model domain)")
    assert items["Model domain"] == ("Comment", "unknown")  # an older result: no domain
    assert items["Outside model domain"][1].startswith("outside model domain")
    assert items["Probability of HCC (model)"] == ("Probability", "0.25")
    dump = subprocess.run(["dsrdump", "+Pl", str(tmp_path / "full.dcm")],
                          capture_output=True, text=True).stdout
    items = {m: (c, v) for m, c, v in described(dump)}
    assert items["CEUS label (model classification)"][1] == (
        "Hepatocellular carcinoma (CEUS score)")
    assert items["Final"] == ("Comment", "provisional (2/3 slots)")
    assert items["Model domain"][1] == "out (distance 3.2, threshold 2.5, mahalanobis)"
    assert items["Probability of HCC (TIC reading)"] == ("Probability", "0.7")
    assert items["TIC category"] == ("Finding", "LR-5-like")
    assert "physiology reading's" in items["Outside model domain"][1]
    assert items["Note"] == ("Comment", "a note")
    assert items["Flags"] == ("Comment", "out_of_distribution, late")
    assert items["Disclaimer"][1].endswith("Trained on simulated data, not for diagnosis.")
    assert [m for m in items if "frame time" in m] == ["Slot 0 frame time (t0+0 s)",
                                                       "Slot 1 frame time (t0+2 s)"]
    assert ('(16310003,SCT,"Diagnostic ultrasonography")' in dump
            and '"Equivalent Meaning of Value")="Contrast-enhanced ultrasound of the liver"'
            in dump)


def test_dicom_tls(archive, pacs_env, tmp_path):
    """An Orthanc speaking DICOM TLS (mutual: it asks for our certificate): query and C-GET
    work over ``dimse+tls://`` with the CA and our certificate from the environment; a plain
    association to its port, or TLS without our certificate, gets one line. (Orthanc 1.10's
    own HTTPS server drops every request after the handshake with Debian 12's OpenSSL:
    ``dicomweb+https://`` goes through stunnel, ``https_front``.)"""
    import json

    c = make_certs(tmp_path / "certs")
    extra = {"DicomTlsEnabled": True, "DicomTlsCertificate": str(c["server.crt"]),
             "DicomTlsPrivateKey": str(c["server.key"]),
             "DicomTlsTrustedCertificates": str(c["trusted.crt"]),
             "DicomTlsRemoteCertificateRequired": True}
    o = start_orthanc(tmp_path / "tls", free_port(), free_port(), free_port(), extra=extra)
    try:
        for f in (archive["a"].path, archive["dir"] / "gsps.dcm"):
            o.rest("/instances", data=f.read_bytes(), method="POST")
        env = dict(pacs_env, CEUSTREAM_PACS_CA=str(c["ca.crt"]),
                   CEUSTREAM_PACS_CERT=str(c["client.crt"]),
                   CEUSTREAM_PACS_KEY=str(c["client.key"]))
        tls = f"dimse+tls://ORTHANCTEST@127.0.0.1:{o.dicom_port}"
        args = ["--study-date", "20260102", "--labels", str(archive["labels"]), "--our-aet",
                OUR_AET, "--jobs", "1", "--no-store"]
        p = run_cli(["qa", tls, "--out", str(tmp_path / "run"), *args], env, timeout=300)
        assert p.returncode == 0, p.stderr
        s = json.loads(p.stdout.strip().splitlines()[-1])
        assert (s["exams"], s["scored_final"]) == (1, 1), s
        no_cert = {k: v for k, v in env.items() if k not in ("CEUSTREAM_PACS_CERT",
                                                              "CEUSTREAM_PACS_KEY")}
        for e, addr in ((env, tls.replace("dimse+tls", "dimse")), (no_cert, tls)):
            p = run_cli(["qa", addr, "--out", str(tmp_path / "x"), *args], e, timeout=120)
            assert p.returncode != 0
            assert "C-FIND failed" in one_line_error(p)
        # Orthanc sends the cine to our listener over DICOM TLS (both sides' certificates
        # checked): scored as it arrives
        lp, port = start_listen(pacs_env, tmp_path / "spool", "--tls-cert",
                                str(c["server.crt"]), "--tls-key", str(c["server.key"]),
                                "--tls-ca", str(c["ca.crt"]), "--roi", "56,32,64,64",
                                "--max-exams", "1")
        try:
            o.rest("/modalities/tlsceus", data=json.dumps(
                {"AET": OUR_AET, "Host": "127.0.0.1", "Port": port, "UseDicomTls": True}
            ).encode(), method="PUT")
            sop = o.rest("/tools/find", data=json.dumps(
                {"Level": "Instance", "Query": {"SOPInstanceUID": uid(111)}}).encode(),
                method="POST")
            o.rest("/modalities/tlsceus/store", data=json.dumps(
                {"Resources": sop, "Synchronous": True}).encode(), method="POST")
            line = json.loads(lp.stdout.readline())
            assert line["status"] == "scored" and line["final"], line
            assert lp.wait(60) == 0
        finally:
            lp.kill()
            lp.wait()
    finally:
        o.stop()
