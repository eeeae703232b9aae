"""The PACS layer's pure parts, with hand-computed expectations: addresses and credentials,
the query's checks, the bounded cache, the exam's inputs read from DICOM attributes (pydicom
datasets built here), the labels CSV. The protocols themselves are tested against Orthanc
(test_pacs.py)."""

from __future__ import annotations

import os
import time

import pytest
from pydicom.dataset import Dataset

from ceustream.engine.core.errors import InputError, UsageError
from ceustream.engine.dicomnet.archive import Cache, Query
from ceustream.engine.dicomnet.inputs import (injection_from_contrast, read_labels,
                                              roi_from_gsps)
from ceustream.engine.dicomnet.peer import parse


def test_addresses_and_where_credentials_come_from(tmp_path):
    p = parse("dimse://PACS1@10.0.0.5:104", "ME", env={})
    assert (p.kind, p.aet, p.host, p.port, p.our_aet) == ("dimse", "PACS1", "10.0.0.5", 104, "ME")
    creds = tmp_path / "c"
    creds.write_text("alice:s3cr:et\n")
    w = parse("dicomweb+https://pacs.example:8443/dicom-web/", env={
        "CEUSTREAM_PACS_CREDENTIALS": str(creds)})
    assert (w.url, w.port) == ("https://pacs.example:8443/dicom-web", 8443)
    assert (w.credentials.user, w.credentials.password) == ("alice", "s3cr:et")
    assert "s3cr" not in repr(w) and "s3cr" not in w.describe()
    creds.write_text("Bearer tok-123\n")
    assert parse("dicomweb+http://h/x", env={"CEUSTREAM_PACS_CREDENTIALS": str(creds)}
                 ).credentials.token == "tok-123"
    bad = [("dicomweb+http://u:pw@h/x", "refused"), ("dimse://h:104", "AE title first"),
           ("dimse://A@h:0", "1-65535"), ("dimse://WAY_TOO_LONG_AE_TITLE@h:1", "1-16"),
           ("dicomweb+http://h/x?StudyDate=1", "no query"), ("http://h", "not a PACS"),
           ("dimse://A\x07@h:1", "control")]
    for text, want in bad:
        with pytest.raises(UsageError, match=want):
            parse(text, env={})
    creds.write_text("no-colon\n")
    with pytest.raises(InputError, match="user:password"):
        parse("dicomweb+http://h/x", env={"CEUSTREAM_PACS_CREDENTIALS": str(creds)})


def test_dimse_retrieve_by_c_move_is_chosen_in_the_address(tmp_path):
    m = parse("dimse://PACS1@10.0.0.5:104?retrieve=move&move-port=11113", "ME", env={})
    assert (m.retrieve, m.move_port, m.port) == ("move", 11113, 104)
    assert m.describe() == "dimse://PACS1@10.0.0.5:104?retrieve=move&move-port=11113"
    g = parse("dimse://PACS1@10.0.0.5:104?retrieve=get", env={})
    assert (g.retrieve, g.move_port) == ("get", None)
    assert parse("dimse://PACS1@h:104", env={}).retrieve == "get"
    bad = [("dimse://A@h:1?retrieve=move", "move-port=N"),
           ("dimse://A@h:1?retrieve=move&move-port=0", "1-65535"),
           ("dimse://A@h:1?retrieve=move&move-port=x1", "1-65535"),
           ("dimse://A@h:1?retrieve=fetch", "retrieve=get or retrieve=move"),
           ("dimse://A@h:1?move-port=11113", "only with retrieve=move"),
           ("dimse://A@h:1?retrieve=move&move-port=1&move-port=2", "repeated"),
           ("dimse://A@h:1?aet=X", "unknown"), ("dimse://A@h:1?junk", "key=value"),
           ("dimse+tls://A@h:1?retrieve=move&move-port=5", "not offered over dimse.tls")]
    for text, want in bad:
        with pytest.raises(UsageError, match=want):
            parse(text, env={})
    ca = tmp_path / "ca.crt"
    with pytest.raises(UsageError, match="CEUSTREAM_PACS_CA"):
        parse("dicomweb+https://h/x", env={"CEUSTREAM_PACS_CA": str(ca)})
    ca.write_text("x")
    assert parse("dicomweb+https://h/x", env={"CEUSTREAM_PACS_CA": str(ca)}).ca == str(ca)


def test_query_filters_and_checks():
    q = Query(study_date="20260101-20260131", accessions=("A1", "A2"))
    assert q.filters() == [
        {"Modality": "US", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.3.1",
         "StudyDate": "20260101-20260131", "AccessionNumber": a} for a in ("A1", "A2")]
    for kw, want in ((dict(study_date="2026-01"), "--study-date"),
                     (dict(study_uids=("1.2.x",)), "UID"),
                     (dict(accessions=("A*",)), "wildcards")):
        with pytest.raises(UsageError, match=want):
            Query(**kw)


def test_the_cache_keeps_its_bound_least_recently_used_first(tmp_path):
    c = Cache(tmp_path / "cache", 250)
    paths = []
    for k, uid in enumerate(("1.1", "1.2", "1.3")):
        c.make_room(100)
        p = c.path_for(uid)
        p.write_bytes(b"x" * 100)
        os.utime(p, (time.time() - 100 + k, time.time() - 100 + k))
        paths.append(p)
    # 300 bytes do not fit in 250: before the third, the oldest went
    assert [p.exists() for p in paths] == [False, True, True]
    c.pinned.add(paths[1])  # being scored: never evicted
    c.make_room(100)
    assert [p.exists() for p in paths] == [False, True, False]
    with pytest.raises(InputError, match="do not fit"):
        c.make_room(200)
    assert "1.2" not in paths[1].name  # named by a digest, not the UID


def cine(**tags) -> Dataset:
    ds = Dataset()
    for k, v in tags.items():
        setattr(ds, k, v)
    return ds


def test_injection_from_contrast_bolus_start_time():
    # 09:15:04.5 against an acquisition starting 09:15:00.25: 4.25 s into the cine
    assert injection_from_contrast(cine(AcquisitionDateTime="20260102091500.25",
                                        ContrastBolusStartTime="091504.5")) == (4.25, None)
    # Acquisition Date + Time when there is no DateTime; across midnight
    assert injection_from_contrast(cine(AcquisitionDate="20260102", AcquisitionTime="235950",
                                        ContrastBolusStartTime="000010")) == (20.0, None)
    assert injection_from_contrast(cine(AcquisitionDateTime="20260102091500"))[1] == \
        "no Contrast/Bolus Start Time"
    v, why = injection_from_contrast(cine(AcquisitionDateTime="20260102091500",
                                          ContrastBolusStartTime="091455"))
    assert v is None and "5.0 s before the cine's first frame" in why
    assert injection_from_contrast(cine(ContrastBolusStartTime="091455"))[0] is None


def gsps(refs: list[str], kind: str, data: list[float], units: str = "PIXEL") -> Dataset:
    img = [cine(ReferencedSOPInstanceUID=u) for u in refs]
    obj = cine(GraphicAnnotationUnits=units, GraphicType=kind, GraphicData=data,
               NumberOfGraphicPoints=len(data) // 2)
    ann = cine(GraphicObjectSequence=[obj])
    return cine(ReferencedSeriesSequence=[cine(ReferencedImageSequence=img)],
                GraphicAnnotationSequence=[ann])


def test_roi_from_a_presentation_state():
    box = [56.0, 32.0, 120.0, 32.0, 120.0, 96.0, 56.0, 96.0, 56.0, 32.0]
    roi, why = roi_from_gsps(gsps(["1.2.3"], "POLYLINE", box), "1.2.3", (160, 120))
    assert why is None and roi.as_list() == [56, 32, 64, 64]
    # a circle: centre (80, 60), a point 10.5 px away -> the box 69.5..90.5 -> 69..91
    roi, _ = roi_from_gsps(gsps(["1.2.3"], "CIRCLE", [80.0, 60.0, 90.5, 60.0]), "1.2.3")
    assert roi.as_list() == [69, 49, 22, 22]
    assert roi_from_gsps(gsps(["9.9"], "POLYLINE", box), "1.2.3")[1] == \
        "the presentation state does not reference this cine"
    assert "PIXEL" in roi_from_gsps(gsps(["1.2.3"], "POLYLINE", box, "DISPLAY"), "1.2.3")[1]


def test_labels_csv(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("accession,sop_uid,label,roi,injection\nA1,,HCC,\"1,2,30,40\",4.5\n"
                 ",1.2.3,unknown,,\n")
    got = read_labels(f)
    assert got[("accession", "A1")].label == 1 and got[("accession", "A1")].injection == 4.5
    assert got[("sop_uid", "1.2.3")].label is None
    for text, want in (("label\nHCC\n", "needs a column"),
                       ("accession,label\nA1,maybe\n", "row 2: label"),
                       ("accession,label,t0\nA1,HCC,nan\n", "row 2: t0"),
                       ("accession,label,roi\nA1,HCC,1;2\n", "row 2: roi")):
        f.write_text(text)
        with pytest.raises(InputError, match=want):
            read_labels(f)


def test_wado_rs_multipart_is_written_as_it_arrives():
    """The first part of a multipart/related answer, whatever the chunking, with a payload
    holding bytes that look like a delimiter but are not this boundary's."""
    import io

    from ceustream.engine.dicomnet.archive import boundary_of, write_first_part

    payload = bytes(range(256)) * 40 + b"\r\n--Bx not the end\r\n" + b"\x00" * 999
    body = (b"--B\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.5"
            b"\r\n\r\n" + payload + b"\r\n--B\r\nContent-Type: application/dicom\r\n\r\n"
            b"second\r\n--B--")
    assert boundary_of('multipart/related; type="application/dicom"; boundary=B') == b"B"
    for size in (1, 7, 64, 4096, len(body)):
        f = io.BytesIO()
        write_first_part((body[i:i + size] for i in range(0, len(body), size)), b"B", f)
        assert f.getvalue() == payload, size
    with pytest.raises(InputError, match="cut short"):
        write_first_part([body[:500]], b"B", io.BytesIO())


def test_stow_rs_multipart_parts_are_split_as_they_arrive(tmp_path):
    """Every part of a STOW-RS body to its own file, whatever the chunking, a look-alike
    delimiter inside a payload kept; a body cut before its closing delimiter refused."""
    import io

    from ceustream.engine.dicomnet.stow import boundary_of, split_parts

    one = bytes(range(256)) * 40 + b"\r\n--Bx not the end\r\n" + b"\x00" * 999
    two = b"second"
    body = (b"preamble\r\n--B\r\nContent-Type: application/dicom\r\n\r\n" + one
            + b"\r\n--B\r\nContent-Type: application/dicom\r\n\r\n" + two
            + b"\r\n--B--\r\nepilogue")
    assert boundary_of('multipart/related; type="application/dicom"; boundary=B') == b"B"
    assert boundary_of('multipart/related; type="application/dicom+xml"; boundary=B') is None
    assert boundary_of("application/dicom") is None
    for size in (1, 7, 64, 4096, len(body)):
        src, files = io.BytesIO(body), []

        def new_file():
            files.append(tmp_path / f"p{size}_{len(files)}")
            return open(files[-1], "wb")

        assert split_parts(lambda n, src=src, size=size: src.read(min(n, size)), b"B",
                           new_file) == 2
        assert [f.read_bytes() for f in files] == [one, two], size
    src = io.BytesIO(body[:700])
    with pytest.raises(InputError, match="before its closing delimiter"):
        split_parts(src.read, b"B", lambda: io.BytesIO())
    bad = io.BytesIO(b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--")
    with pytest.raises(InputError, match="not application/dicom"):
        split_parts(bad.read, b"B", lambda: io.BytesIO())
