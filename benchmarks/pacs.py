"""Issue 21: exams per minute from a PACS against the same exams from local files, and the
peak memory of each run. A simulated archive (``ceustream simulate``) becomes DICOM cines
(frames decoded by ffmpeg, written as Ultrasound Multi-frame with pydicom, study tags and
Contrast/Bolus Start Time by dcmtk's ``dcmodify``, JPEG baseline by dcmtk's ``dcmcjpeg +eb``),
loaded into Debian's Orthanc on loopback (DICOMweb plugin, a user and password) by dcmtk's
``storescu``. Then, each in its own process, timed from start to exit:

- local: ``ceustream qa manifest.csv`` over the same DICOM files;
- dicomweb: ``ceustream qa dicomweb+http://...`` (QIDO-RS, WADO-RS, score, STOW-RS of the SR
  and Secondary Capture), the cache emptied first;
- dimse: the same over C-FIND / C-GET / C-STORE;
- dimse C-MOVE: the same with ``?retrieve=move`` (Orthanc sends each cine to our storage SCP);
- dicomweb https: the DICOMweb run through Debian's ``stunnel4`` terminating TLS in front of
  Orthanc (a CA and server certificate made by ``openssl``), when both are installed.

Peak RSS is the process's own (``wait4``'s ``ru_maxrss``); ``--jobs 1`` scores inside it.

    python -m ceustream.benchmarks.pacs [--n 4] [--size 160x120] [--fps 5]
    python -m ceustream.benchmarks.pacs --make-cines DIR [--n 2]   # only the cines
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from .common import out_dir, table, write

USER, PASSWORD = "bench", "bench-pw-not-logged"
PACS_AET, OUR_AET = "ORTHANCBENCH", "CEUSBENCH"
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rest(http: int, path: str):
    req = urllib.request.Request(f"http://127.0.0.1:{http}{path}")
    req.add_header("Authorization", "Basic " + base64.b64encode(
        f"{USER}:{PASSWORD}".encode()).decode())
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def start_orthanc(root: Path, move_port: int) -> tuple[subprocess.Popen, int, int]:
    http, dicom = free_port(), free_port()
    conf = {"Name": "bench", "StorageDirectory": str(root / "db"),
            "IndexDirectory": str(root / "db"), "Plugins": [PLUGIN], "HttpPort": http,
            "DicomPort": dicom, "DicomAet": PACS_AET, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
            "DicomCheckCalledAet": True, "DicomModalities": {"ceus": {
                "AET": OUR_AET, "Host": "127.0.0.1", "Port": move_port, "AllowEcho": True,
                "AllowFind": True, "AllowGet": True, "AllowMove": True, "AllowStore": True}},
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "StorageCompression": False}
    root.mkdir(parents=True, exist_ok=True)
    (root / "orthanc.json").write_text(json.dumps(conf))
    p = subprocess.Popen(["Orthanc", str(root / "orthanc.json")], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            rest(http, "/system")
            return p, http, dicom
        except OSError:
            if p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("Orthanc did not start")
            time.sleep(0.1)


def to_dicom(mp4: Path, dest: Path, k: int, w: int, h: int, fps: float,
             injection: float) -> Path:
    """One simulated recording as a JPEG Ultrasound Multi-frame cine (ffmpeg, pydicom,
    dcmtk)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4), "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, \
        meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = f"Bench^{k}", f"B{k}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.StudyDate, ds.AccessionNumber = "US", "20260102", f"BENCH{k}"
    ds.Rows, ds.Columns, ds.NumberOfFrames = h, w, len(frames)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime, ds.FrameIncrementPointer = f"{1000.0 / fps:.10g}", 0x00181063
    ds.PixelData = frames.tobytes()
    ds["PixelData"].VR = "OB"
    raw_path = dest.with_suffix(".raw.dcm")
    ds.save_as(raw_path, enforce_file_format=True)
    t = 9 * 3600 + 15 * 60 + injection
    subprocess.run(["dcmodify", "-nb", "-i", "(0008,002A)=20260102091500", "-i",
                    f"(0018,1042)={int(t // 3600):02d}{int(t % 3600 // 60):02d}{t % 60:09.6f}",
                    str(raw_path)], check=True, capture_output=True)
    subprocess.run(["dcmcjpeg", "+eb", str(raw_path), str(dest)], check=True, capture_output=True)
    raw_path.unlink()
    return dest


def make_cines(dcm: Path, n: int, size: str, fps: float, env: dict,
               sim: Path | None = None) -> Path:
    """``n`` simulated exams as JPEG US Multi-frame cines in ``dcm``, with ``manifest.csv``
    (local QA) and ``labels.csv`` (QA from a PACS: label and ROI by accession number; the
    injection comes from each cine's Contrast/Bolus Start Time)."""
    w, h = (int(v) for v in size.split("x"))
    sim = sim or dcm / "sim"
    subprocess.run([sys.executable, "-m", "ceustream.engine.cli", "simulate", "--n",
                    str(n), "--out", str(sim), "--size", size, "--fps", str(fps),
                    "--quiet"], check=True, env=env)
    rows = list(csv.DictReader((sim / "manifest.csv").read_text().splitlines()))
    dcm.mkdir(parents=True, exist_ok=True)
    local, labels = [], []
    for k, r in enumerate(rows):
        f = to_dicom(sim / r["path"], dcm / f"cine_{k}.dcm", k, w, h, fps,
                     float(r["injection"]))
        local.append([f.name, r["label"], r["roi"], r["injection"]])
        labels.append([f"BENCH{k}", r["label"], r["roi"]])
    with open(dcm / "manifest.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label", "roi", "injection"], *local])
    with open(dcm / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["accession", "label", "roi"], *labels])
    if sim.parent == dcm:
        shutil.rmtree(sim, ignore_errors=True)
    return dcm


def start_https(root: Path, backend: int) -> tuple[subprocess.Popen, int, Path] | None:
    """stunnel4 with a test CA's server certificate in front of Orthanc's HTTP port."""
    if not (shutil.which("stunnel4") and shutil.which("openssl")):
        return None
    root.mkdir(parents=True, exist_ok=True)

    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=root)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
         "-days", "1", "-subj", "/CN=bench CA")
    (root / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
         "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.crt", "-days", "1", "-extfile", "san.cnf")
    port = free_port()
    (root / "stunnel.conf").write_text(
        f"foreground = yes\npid =\n[dicomweb]\naccept = 127.0.0.1:{port}\n"
        f"connect = 127.0.0.1:{backend}\ncert = {root / 'srv.crt'}\nkey = {root / 'srv.key'}\n")
    p = subprocess.Popen(["stunnel4", str(root / "stunnel.conf")], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, port, root / "ca.crt"
        except OSError:
            if p.poll() is not None or time.monotonic() > deadline:
                p.kill()
                return None
            time.sleep(0.05)


def run_one(args: list[str], env: dict) -> dict:
    """``ceustream ARGS`` in a child whose peak RSS ``wait4`` reports."""
    t = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "ceustream.engine.cli", *args], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # read both pipes without a deadlock, then reap with wait4 for this child's rusage
    import threading

    bufs: dict[str, bytes] = {}

    def drain(name, f):
        bufs[name] = f.read()

    th = [threading.Thread(target=drain, args=(n, f)) for n, f in (("o", p.stdout),
                                                                    ("e", p.stderr))]
    for x in th:
        x.start()
    _, status, ru = os.wait4(p.pid, 0)
    for x in th:
        x.join()
    wall = time.monotonic() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    out, err = bufs.get("o", b"").decode(), bufs.get("e", b"").decode()
    if p.returncode not in (0, 4):
        raise SystemExit(f"ceustream {args[0]} {args[1][:40]}: exit {p.returncode}: "
                         f"{err[-1500:]}")
    if PASSWORD in out + err:
        raise SystemExit("the PACS password reached the output")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
            "summary": json.loads(out.strip().splitlines()[-1])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4, help="exams")
    ap.add_argument("--size", default="160x120", help="their screen size")
    ap.add_argument("--fps", type=float, default=5.0, help="their frame rate")
    ap.add_argument("--make-cines", metavar="DIR", help="only write the cines (and "
                    "manifest.csv, labels.csv) into DIR, to load into a PACS by hand")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pacs_bench_"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEUSTREAM_")}
    env.update(CEUSTREAM_PACS_USER=USER, CEUSTREAM_PACS_PASSWORD=PASSWORD,
               XDG_CACHE_HOME=str(work / "cache"), CEUSTREAM_JOURNAL_DIR=str(work / "journal"))
    if a.make_cines:
        d = make_cines(Path(a.make_cines), a.n, a.size, a.fps, env)
        shutil.rmtree(work, ignore_errors=True)
        print(f"{a.n} cines, manifest.csv and labels.csv in {d}")
        return 0
    orthanc = tls = None
    try:
        dcm = make_cines(work / "dicom", a.n, a.size, a.fps, env, work / "sim")
        move_port = free_port()
        orthanc, http, dicom = start_orthanc(work / "orthanc", move_port)
        tls = start_https(work / "tls", http)
        subprocess.run(["/usr/bin/storescu", "-xy", "-aet", OUR_AET, "-aec", PACS_AET,
                        "127.0.0.1", str(dicom), *map(str, sorted(dcm.glob("*.dcm")))],
                       check=True, capture_output=True)
        assert len(rest(http, "/instances")) == a.n
        common = ["--jobs", "1", "--quiet"]
        pacs = ["--study-date", "20260102", "--labels", str(dcm / "labels.csv")]
        res = {"local files": run_one(["qa", str(dcm / "manifest.csv"), "--out",
                                       str(work / "local"), *common], env)}
        runs = [("dicomweb (QIDO/WADO/STOW)", f"dicomweb+http://127.0.0.1:{http}/dicom-web",
                 [], {}),
                ("dimse (C-FIND/C-GET/C-STORE)", f"dimse://{PACS_AET}@127.0.0.1:{dicom}",
                 ["--our-aet", OUR_AET], {}),
                ("dimse-move (C-FIND/C-MOVE/C-STORE)",
                 f"dimse://{PACS_AET}@127.0.0.1:{dicom}?retrieve=move&move-port={move_port}",
                 ["--our-aet", OUR_AET], {})]
        if tls is not None:
            runs.append(("dicomweb-https (stunnel TLS)",
                         f"dicomweb+https://127.0.0.1:{tls[1]}/dicom-web", [],
                         {"CEUSTREAM_PACS_CA": str(tls[2])}))
        for name, addr, extra, more_env in runs:
            shutil.rmtree(work / "cache", ignore_errors=True)
            res[name] = run_one(["qa", addr, "--out", str(work / name.split()[0]), *common,
                                 *pacs, *extra], dict(env, **more_env))
            info = json.loads((work / name.split()[0] / "pacs.json").read_text())
            res[name]["store_errors"] = sorted({e["stored"]["error"] for e in info["exams"]
                                                if "error" in e["stored"]})
    finally:
        for proc in (orthanc, tls[0] if tls else None):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    trows = []
    for name, r in res.items():
        s = r["summary"]
        trows.append([name, s["exams"], s["scored_final"], s.get("stored", "-"), r["wall_s"],
                      round(60.0 * s["exams"] / r["wall_s"], 2), r["peak_rss_mb"]])
    table(f"QA from a PACS vs local files: {a.n} simulated exams as JPEG US Multi-frame cines "
          f"({a.size}, {a.fps:g} fps), Orthanc on loopback, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}",
          ["source", "exams", "final", "SR+SC stored", "wall s", "exams/min", "peak RSS MB"],
          trows)
    write("pacs", {"archive": {"n": a.n, "size": a.size, "fps": a.fps}, "runs": res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
