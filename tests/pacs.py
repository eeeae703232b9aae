"""A real PACS for the tests: Debian's ``orthanc`` (with its DICOMweb plugin) on loopback,
``RemoteAccessAllowed`` false, HTTP and DICOM ports ephemeral, a user and password required,
its storage in a temporary folder; and CEUS cines written by dcmtk and GDCM, loaded into it
by dcmtk's ``storescu``.

A cine starts as raw frames written by ``dicomfiles.write_dicom`` (the barcoded frames the
other tests use); dcmtk's ``dcmodify`` gives it the study, series, acquisition and
Contrast/Bolus tags, and dcmtk's ``dcmcrle`` or GDCM's ``gdcmconv --jpegls`` re-encodes it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

from dicomfiles import write_dicom

PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
USER, PASSWORD = "qa-user", "Pw-71d3-not-in-any-log"
PACS_AET = "ORTHANCTEST"
OUR_AET = "CEUSTEST"

TOOLS = ("Orthanc", "storescu", "dcmodify", "dcmcrle", "gdcmconv", "dciodvfy", "dsrdump",
         "stunnel4", "openssl")


def missing_tools() -> list[str]:
    out = [t for t in TOOLS if shutil.which(t) is None]
    if not Path(PLUGIN).exists():
        out.append("orthanc-dicomweb")
    return out


@dataclass
class Orthanc:
    proc: subprocess.Popen
    http_port: int
    dicom_port: int
    our_port: int
    root: Path
    scheme: str = "http"
    ca: Path | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"dicomweb+http://127.0.0.1:{self.http_port}/dicom-web"

    @property
    def dimse(self) -> str:
        return f"dimse://{PACS_AET}@127.0.0.1:{self.dicom_port}"

    def rest(self, path: str, data: bytes | None = None, method: str | None = None):
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization",
                       "Basic " + b64encode(f"{USER}:{PASSWORD}".encode()).decode())
        ctx = None
        if self.ca is not None:
            import ssl

            ctx = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            body = r.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def store(self, *files: Path, propose: str = "-xr") -> None:
        """dcmtk's storescu (``/usr/bin``: pynetdicom installs a command of the same name)
        into Orthanc's DICOM port, our AE title a known modality; ``propose``: dcmtk's
        option for the files' transfer syntax (-xr RLE, -xt JPEG-LS lossless, -x= native)."""
        before = len(self.rest("/instances"))
        subprocess.run(["/usr/bin/storescu", propose, "-aet", OUR_AET, "-aec", PACS_AET,
                        "127.0.0.1", str(self.dicom_port), *map(str, files)], check=True,
                       capture_output=True, timeout=120)
        assert len(self.rest("/instances")) == before + len(files), "storescu stored nothing"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_orthanc(root: Path, http_port: int, dicom_port: int, our_port: int,
                  timeout_s: float = 60.0, extra: dict | None = None, scheme: str = "http",
                  ca: Path | None = None) -> Orthanc:
    root.mkdir(parents=True, exist_ok=True)
    conf = {
        "Name": "ceustream-test", "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"), "Plugins": [PLUGIN],
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": PACS_AET,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD}, "DicomCheckCalledAet": True,
        "DicomCheckModalityHost": True, "DicomAlwaysAllowStore": False,
        "DicomModalities": {"ceus": {"AET": OUR_AET, "Host": "127.0.0.1", "Port": our_port,
                                     "AllowEcho": True, "AllowFind": True, "AllowGet": True,
                                     "AllowMove": True, "AllowStore": True}},
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False,
                     "Servers": {}},
        "StableAge": 1, "HttpVerbose": False, "StorageCompression": False,
        **(extra or {}),
    }
    (root / "orthanc.json").write_text(json.dumps(conf, indent=1))
    log = open(root / "orthanc.log", "wb")
    proc = subprocess.Popen(["Orthanc", str(root / "orthanc.json")], stdout=log,
                            stderr=subprocess.STDOUT)
    o = Orthanc(proc, http_port, dicom_port, our_port, root, scheme, ca)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            o.rest("/system")
            return o
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                o.stop()
                raise RuntimeError("Orthanc did not start: "
                                   + (root / "orthanc.log").read_text()[-2000:])
            time.sleep(0.1)


@dataclass
class Cine:
    path: Path
    study_uid: str
    series_uid: str
    sop_uid: str
    accession: str
    arrival_s: float


def make_cine(path: Path, frames, *, study_uid: str, series_uid: str, sop_uid: str,
              accession: str, acquisition: str, contrast_start: str | None,
              codec: str = "rle", fps: float = 10.0, arrival_s: float = 17.3) -> Cine:
    """A CEUS cine: raw frames, then dcmtk's dcmodify for the study's tags (the
    Contrast/Bolus Start Time ``contrast_start`` HHMMSS.FFFFFF against the
    ``acquisition`` date-time), then ``codec``: rle (dcmtk dcmcrle) | jpegls (GDCM
    gdcmconv) | raw."""
    raw = path.with_suffix(".raw.dcm")
    write_dicom(raw, frames, syntax="raw", fps=fps)
    tags = [f"(0020,000D)={study_uid}", f"(0020,000E)={series_uid}",
            f"(0008,0018)={sop_uid}",
            f"(0008,0050)={accession}", "(0008,0060)=US", "(0020,0011)=1",
            "(0020,0013)=1", "(0020,0010)=1", "(0008,0020)=20260102",
            "(0008,0030)=090000", "(0008,0090)=", "(0010,0040)=O",
            f"(0008,002A)={acquisition}", f"(0008,0022)={acquisition[:8]}",
            f"(0008,0032)={acquisition[8:]}", "(0008,0070)=ceustream tests",
            "(0028,0014)=0"]
    if contrast_start is not None:
        tags += ["(0018,0010)=SonoVue", f"(0018,1042)={contrast_start}"]
    args = ["dcmodify", "-nb", "-imt"]
    for t in tags:
        args += ["-i", t]
    subprocess.run([*args, str(raw)], check=True, capture_output=True)
    if codec == "rle":
        subprocess.run(["dcmcrle", str(raw), str(path)], check=True, capture_output=True)
    elif codec == "jpegls":
        subprocess.run(["gdcmconv", "--jpegls", str(raw), str(path)], check=True,
                       capture_output=True)
    else:
        shutil.copy(raw, path)
    raw.unlink()
    return Cine(path, study_uid, series_uid, sop_uid, accession, arrival_s)


@dataclass
class TlsFront:
    """Debian's ``stunnel4`` terminating HTTPS in front of Orthanc's HTTP port (Debian's
    Orthanc 1.10 cannot serve HTTPS with Debian 12's OpenSSL): the way a hospital puts a
    TLS reverse proxy before its archive."""

    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def dicomweb(self) -> str:
        return f"dicomweb+https://127.0.0.1:{self.port}/dicom-web"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_tls_front(root: Path, backend_port: int, port: int, cert: Path, key: Path,
                    timeout_s: float = 30.0) -> TlsFront:
    import socket

    root.mkdir(parents=True, exist_ok=True)
    conf = root / "stunnel.conf"
    conf.write_text(f"foreground = yes\npid =\n[dicomweb]\naccept = 127.0.0.1:{port}\n"
                    f"connect = 127.0.0.1:{backend_port}\ncert = {cert}\nkey = {key}\n")
    log = root / "stunnel.log"
    proc = subprocess.Popen(["stunnel4", str(conf)], stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)
    front = TlsFront(proc, port, log)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return front
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                front.stop()
                raise RuntimeError("stunnel did not start: " + log.read_text()[-2000:])
            time.sleep(0.05)


def make_certs(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, by openssl."""
    d.mkdir(parents=True, exist_ok=True)

    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
         "ca.crt", "-days", "2", "-subj", "/CN=test CA")
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={name}")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "san.cnf")
    (d / "server.pem").write_text((d / "server.key").read_text() + (d / "server.crt").read_text())
    (d / "trusted.crt").write_text((d / "ca.crt").read_text() + (d / "client.crt").read_text())
    return {k: d / f"{k}" for k in ("ca.crt", "server.pem", "server.crt", "server.key",
                                     "trusted.crt", "client.crt", "client.key")}
