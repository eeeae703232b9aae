"""``ceustream replay FILE --roi X,Y,W,H (--t0 S | --injection S)``: one recorded exam."""

from __future__ import annotations

from ceustream.engine.core.errors import UsageError
from ceustream.engine.core.roi import Roi

from . import common


def add_parser(sub) -> None:
    p = common.command(sub, "replay", "score one recorded exam", codes=(0, 1, 2, 3, 4, 5),
                       description="Score one recorded exam. Times (--t0, --injection, and every "
                       "time in the result) are seconds from the recording's FIRST FRAME; the "
                       "--json result says so (clock: first_frame) and gives first_frame_s, "
                       "where that frame sits on the file's own stream clock.")
    p.add_argument("file", help="the recording: a video file (any container/codec GStreamer "
                   "decodes), a DICOM ultrasound cine (multi-frame; JPEG baseline, RLE or "
                   "uncompressed), or a folder of images with timestamps.csv (columns file,t_s)")
    p.add_argument("--roi", required=True, help="X,Y,W,H: the box around the lesion, in the "
                   "recording's pixels")
    common.add_reference_options(p)
    g = p.add_argument_group("t0 (give exactly one)").add_mutually_exclusive_group(required=True)
    g.add_argument("--t0", type=common.seconds, help="contrast arrival in the lesion, seconds "
                   "from the recording's first frame")
    g.add_argument("--injection", type=common.seconds,
                   help="injection time, seconds from the recording's first frame; t0 (contrast "
                   "arrival) is detected from it")
    p.add_argument("--speed", type=common.speed, default=None,
                   help="'max' (default: as fast as possible, seeking) or a factor of real time")
    p.add_argument("--seek", choices=["auto", "always", "never"], default=None,
                   help="seek to the slots (auto: at --speed max when the file allows); never: "
                   "decode every frame")
    p.add_argument("--exam", type=common.exam_id,
                   help="exam id (default: derived from the file's content): 1-64 letters, "
                   "digits, - or _, never a patient name")
    p.add_argument("--json", action="store_true", help="print the result as JSON (last line)")
    p.add_argument("--no-journal", action="store_true", help="do not journal the slots")
    g = p.add_argument_group(
        "from a PACS (FILE given as dicomweb+http(s)://HOST:PORT/ROOT or "
        "dimse[+tls]://AET@HOST:PORT[?retrieve=move&move-port=N]; "
        "credentials from CEUSTREAM_PACS_CREDENTIALS or CEUSTREAM_PACS_USER/"
        "CEUSTREAM_PACS_PASSWORD, never the command line): the query must match one cine")
    g.add_argument("--study-uid", default=None, help="its Study Instance UID")
    g.add_argument("--series-uid", default=None, help="its Series Instance UID")
    g.add_argument("--sop-uid", default=None, help="its SOP Instance UID")
    g.add_argument("--accession", default=None, help="its study's accession number")
    g.add_argument("--our-aet", default="CEUSTREAM", help="our AE title (default CEUSTREAM)")
    common.add_model_options(p)
    common.add_zmq_options(p)


def from_pacs(args) -> str:
    from ceustream.engine.app import pacs
    from ceustream.engine.dicomnet import archive, peer

    pr = peer.parse(args.file, args.our_aet)
    one = lambda v: (v.strip(),) if v and v.strip() else ()  # noqa: E731
    q = archive.Query(accessions=one(args.accession), study_uids=one(args.study_uid),
                      series_uids=one(args.series_uid), sop_uids=one(args.sop_uid))
    return str(pacs.fetch_one(pr, q))


def run(args) -> int:
    from ceustream.engine.app.replay import ReplayOptions, replay
    from ceustream.engine.dicomnet.peer import is_pacs_address

    if is_pacs_address(args.file):
        Roi.parse(args.roi)  # a bad ROI before any network
        args.file = from_pacs(args)
    elif any((args.study_uid, args.series_uid, args.sop_uid, args.accession)):
        raise UsageError("replay: --study-uid/--series-uid/--sop-uid/--accession need a PACS "
                         "address as FILE")
    cfg = common.load_config(args)
    roi = Roi.parse(args.roi)
    ref_roi = common.ref_roi(args)
    if args.seek:
        cfg["replay"]["seek"] = args.seek
    pub = common.make_publisher(args, cfg)
    try:
        opts = ReplayOptions(roi=roi, t0=args.t0, injection=args.injection, speed=args.speed,
                             backend=cfg["model"]["backend"], model_path=cfg["model"]["path"] or None,
                             exam=args.exam, seek=cfg["replay"]["seek"],
                             journal=not args.no_journal, ref_roi=ref_roi,
                             band=args.ref_band)
        result = replay(args.file, opts, cfg, pub,
                        common.progress_scores(not args.quiet and not args.json))
    finally:
        if pub is not None:
            pub.close()
    return common.finish(result, args.json)
