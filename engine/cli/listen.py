"""``ceustream listen``: a C-STORE SCP scoring each CEUS cine it receives and storing the SR
and Secondary Capture back into its study."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ceustream.engine.core.errors import UsageError

from . import common

DESCRIPTION = """\
Listen for DICOM C-STORE (a scanner or the PACS routing CEUS cines here), score each Ultrasound
Multi-frame cine on arrival and, with --store-to, store a TID 1500 SR and a Secondary Capture
(TIC plot + slot filmstrip) into its study. Injection from the cine's Contrast/Bolus Start
Time, ROI from a GSPS sent before it (or --roi, or --labels). One JSON line per exam on stdout.
The called AE title must be --aet; with --allow-aet only those callers are accepted. Below
--min-free-gb free on the spool's disk new associations are rejected (transient) and stores
refused (A700: out of resources), so the sender keeps its cines. With --stow-port it also
takes STOW-RS (POST /studies over HTTP, same disk guard: 503). PACS credentials for --store-to as for qa (CEUSTREAM_PACS_CREDENTIALS or
CEUSTREAM_PACS_USER/CEUSTREAM_PACS_PASSWORD)."""


def add_parser(sub) -> None:
    p = common.command(sub, "listen", "score DICOM cines sent here (C-STORE SCP); results back "
                       "to the PACS", description=DESCRIPTION)
    p.add_argument("--aet", default="CEUSTREAM", help="our AE title (default CEUSTREAM)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "loopback)")
    p.add_argument("--port", type=int, default=11112, help="port (default 11112; 0: any "
                   "free port, printed)")
    p.add_argument("--allow-aet", action="append", default=[],
                   help="a calling AE title accepted (repeat or comma-separate; default any)")
    p.add_argument("--spool", required=True, help="folder where received instances are "
                   "kept (they hold patient data)")
    p.add_argument("--min-free-gb", type=float, default=1.0,
                   help="refuse associations and stores below this free space on the spool's "
                   "disk (default 1)")
    p.add_argument("--store-to", help="PACS address for the results (dicomweb+http(s)://... "
                   "or dimse://AET@host:port)")
    p.add_argument("--roi", help="X,Y,W,H used when no GSPS or labels row gives the ROI")
    p.add_argument("--labels", help="CSV keyed by accession, study_uid or sop_uid (as qa)")
    p.add_argument("--tls-cert", help="our certificate (PEM): listen with DICOM TLS")
    p.add_argument("--tls-key", help="its private key (PEM)")
    p.add_argument("--tls-ca", help="CA bundle the callers' certificates must chain to "
                   "(with it, a caller without one is refused)")
    p.add_argument("--stow-port", type=int, default=None,
                   help="also accept STOW-RS (POST /studies, multipart/related; "
                   "type=application/dicom) over HTTP on this port, on --host (0: any free "
                   "port, printed); credentials required when CEUSTREAM_LISTEN_CREDENTIALS "
                   "names a file (user:password or Bearer TOKEN); plain HTTP: loopback or "
                   "behind a TLS terminator")
    p.add_argument("--max-exams", type=common.count, default=None,
                   help="stop after this many exams (default: run until interrupted)")
    common.add_model_options(p)


def run(args) -> int:
    from ceustream.engine.app import listen
    from ceustream.engine.core.roi import Roi
    from ceustream.engine.dicomnet.peer import check_aet, parse, read_credentials_file

    if not 0 <= args.port < 65536:
        raise UsageError("--port: 0-65535")
    if args.stow_port is not None and not 0 <= args.stow_port < 65536:
        raise UsageError("--stow-port: 0-65535")
    if not (math.isfinite(args.min_free_gb) and 0 <= args.min_free_gb <= 100000):
        raise UsageError("--min-free-gb: a number of GB between 0 and 100000")
    if args.roi:
        Roi.parse(args.roi)
    aet = check_aet(args.aet, "--aet")
    allowed = [check_aet(a.strip(), "--allow-aet") for x in args.allow_aet for a in x.split(",")
               if a.strip()] or None
    store_to = parse(args.store_to, aet) if args.store_to else None
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_ca and not args.tls_cert):
        raise UsageError("listen: --tls-cert and --tls-key go together (--tls-ca with them)")
    tls = (args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None
    stow_credentials = None
    if args.stow_port is not None and os.environ.get("CEUSTREAM_LISTEN_CREDENTIALS"):
        stow_credentials = read_credentials_file(os.environ["CEUSTREAM_LISTEN_CREDENTIALS"],
                                                 "CEUSTREAM_LISTEN_CREDENTIALS")
    opts = listen.ListenOptions(aet, args.host, args.port, Path(args.spool), allowed,
                                int(args.min_free_gb * 1e9), store_to, args.roi, args.labels,
                                args.max_exams, tls, args.stow_port, stow_credentials)
    def emit(line: dict) -> None:  # results on stdout, one JSON object a line
        print(json.dumps(line), flush=True)

    return listen.run(opts, common.load_config(args), emit)
