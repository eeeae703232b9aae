"""A STOW-RS receiver (PS3.18 10.5) for ``ceustream listen``: ``POST /studies`` (or
``/studies/{StudyInstanceUID}``) with a ``multipart/related; type="application/dicom"`` body.
Each part is written to the spool as it arrives (one read buffer plus a delimiter in memory),
then kept under a digest of its SOP Instance UID and handed on like a C-STORE.

Like the C-STORE listener it never takes what it cannot keep: a body (with a length, or
chunked as dicomweb-client sends large ones) longer than ``max_bytes`` is refused (413), and
when the spool's disk would be left with less than ``min_free_bytes`` the request is refused
with 503 and ``Retry-After`` (before its body is read, and every 16 MB while it is), so the
sender keeps its instances; the parts already written are removed. An instance of a SOP
class it does not score, or one that is not DICOM, is listed as failed in the response
(PS3.18 Table 10.5.3-1: 200 all stored, 202 some, 409 none). Nothing of a header, a path or a UID is logged.

With ``credentials`` (``CEUSTREAM_LISTEN_CREDENTIALS``: a file whose first line is
``user:password`` or ``Bearer TOKEN``) a request must carry them (HTTP basic or bearer),
else 401 before its body is read. It speaks plain HTTP: keep it on loopback (``--host``, the
default) or behind a TLS terminator, as one would put before a PACS.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
from pathlib import Path
from typing import Callable

from ceustream.engine.core.errors import InputError

from . import ROI_CLASSES, US_MULTIFRAME
from .listener import free_bytes

log = logging.getLogger(__name__)

PATH_RE = re.compile(r"^/studies(/[0-9.]{1,64})?/?$")
CHUNK = 1 << 20


def end_of_body(buf: bytes, body_end: bytes) -> int:
    """Where a part's body ends in ``buf`` (a delimiter is CRLF--boundary followed by CRLF,
    "--" or padding: RFC 2046), or -1 while it cannot be told yet."""
    pos = 0
    while True:
        j = buf.find(body_end, pos)
        after = buf[j + len(body_end):j + len(body_end) + 2] if j >= 0 else b""
        if j < 0 or len(after) < 2:
            return -1
        if after in (b"\r\n", b"--") or after[:1] in (b" ", b"\t"):
            return j
        pos = j + 1


def split_parts(read: Callable[[int], bytes], boundary: bytes,
                open_part: Callable[[], object]) -> int:
    """The bodies of a multipart/related stream (RFC 2046), each written to a file from
    ``open_part()`` as it arrives; returns how many. ``read(n)`` gives b"" at the end; a
    stream that ends before its closing delimiter is an ``InputError``."""
    delim = b"--" + boundary
    body_end = b"\r\n" + delim
    buf, state, f, n = b"", "preamble", None, 0
    try:
        while True:
            chunk = read(CHUNK)
            buf += chunk
            while True:
                if state == "preamble":
                    i = buf.find(delim)
                    if i < 0:
                        buf = buf[-len(delim):]
                        break
                    buf, state = buf[i + len(delim):], "after"
                elif state == "after":  # "--": the end; else padding then CRLF, a part
                    if len(buf) < 2:
                        break
                    if buf[:2] == b"--":
                        return n
                    j = buf.find(b"\r\n")
                    if j < 0:
                        if len(buf) > 1024:
                            raise InputError("multipart: a delimiter line without CRLF")
                        break
                    buf, state = buf[j + 2:], "headers"
                elif state == "headers":
                    if buf.startswith(b"\r\n"):
                        j, head = 0, b""
                    else:
                        j = buf.find(b"\r\n\r\n")
                        if j < 0:
                            if len(buf) > 65536:
                                raise InputError("multipart: a part's header is too long")
                            break
                        head = buf[:j]
                        j += 2
                    ctype = re.search(rb"(?im)^content-type:\s*([^;\r\n]+)", head)
                    if ctype and ctype.group(1).strip().lower() != b"application/dicom":
                        raise InputError("multipart: a part that is not application/dicom")
                    buf, state = buf[j + 2:], "body"
                    f, n = open_part(), n + 1
                else:  # body: up to CRLF--boundary followed by CRLF, "--" or padding
                    j = end_of_body(buf, body_end)
                    if j >= 0:
                        f.write(buf[:j])
                        f.close()
                        f, buf, state = None, buf[j + len(body_end):], "after"
                        continue
                    keep = len(body_end) + 2
                    if len(buf) > keep:
                        f.write(buf[:-keep])
                        buf = buf[-keep:]
                    break
            if not chunk:
                raise InputError("multipart: the body ends before its closing delimiter")
    finally:
        if f is not None:
            f.close()


class Refused(InputError):
    """A request refused with an HTTP status (``code``)."""

    def __init__(self, code: int, why: str):
        super().__init__(why)
        self.code = code


def body_reader(rfile, length: int | None, limit: int,
                room: Callable[[int], bool]) -> Callable[[int], bytes]:
    """``read(n)`` over a request body: ``length`` bytes, or HTTP/1.1 chunked transfer coding
    when ``length`` is None. More than ``limit`` bytes is refused (413); ``room(total)`` is
    asked every 16 MB whether the spool's disk still has room (503 when not)."""
    st = {"left": length, "chunk": 0, "done": False, "total": 0, "next_check": 16 << 20}

    def count(b: bytes) -> bytes:
        st["total"] += len(b)
        if st["total"] > limit:
            raise Refused(413, f"more than {limit} bytes")
        if st["total"] >= st["next_check"]:
            st["next_check"] += 16 << 20
            if not room(st["total"]):
                raise Refused(503, "the receiver's disk is nearly full")
        return b

    def read(n: int) -> bytes:
        if st["done"]:
            return b""
        if length is not None:
            b = rfile.read(min(n, st["left"])) if st["left"] > 0 else b""
            st["left"] -= len(b)
            st["done"] = not b
            return count(b)
        if st["chunk"] == 0:
            line = rfile.readline(1026)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise Refused(400, "chunked body: a chunk size that is not a number") from None
            if size == 0:
                for _ in range(100):  # trailers, up to the empty line
                    if rfile.readline(1026) in (b"\r\n", b"\n", b""):
                        break
                st["done"] = True
                return b""
            st["chunk"] = size
        b = rfile.read(min(n, st["chunk"]))
        if not b:
            raise Refused(400, "chunked body cut short")
        st["chunk"] -= len(b)
        if st["chunk"] == 0:
            rfile.readline(3)
        return count(b)

    return read


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of ``multipart/related; type="application/dicom"``, else None."""
    ct = content_type or ""
    if not ct.lower().startswith("multipart/related"):
        return None
    t = re.search(r'type="?([^";]+)"?', ct, re.I)
    if t and t.group(1).strip().lower() != "application/dicom":
        return None
    b = re.search(r'boundary="?([^";]+)"?', ct, re.I)
    return b.group(1).encode() if b and len(b.group(1)) <= 70 else None


class StowServer:
    def __init__(self, host: str, port: int, spool: Path,
                 on_instance: Callable[[Path, str], None], *, min_free_bytes: int = 1 << 30,
                 max_bytes: int = 4 << 30, credentials=None):
        self.host, self.port = host, port
        self.spool = Path(spool)
        self.on_instance = on_instance
        self.min_free_bytes = int(min_free_bytes)
        self.max_bytes = int(max_bytes)
        self.refused = 0
        self.httpd = None
        self.credentials = credentials  # peer.Credentials or None

    def authorised(self, header: str | None) -> bool:
        """The Authorization header against the credentials (constant-time)."""
        import base64
        import hmac

        c = self.credentials
        if not c:
            return True
        want = (f"Bearer {c.token}" if c.token else "Basic " + base64.b64encode(
            f"{c.user}:{c.password or ''}".encode()).decode())
        return hmac.compare_digest((header or "").strip().encode(), want.encode())

    def room(self, more: int) -> bool:
        """Whether ``more`` bytes leave ``min_free_bytes`` free on the spool's disk."""
        return free_bytes(self.spool) - more >= self.min_free_bytes

    def receive(self, read: Callable[[int], bytes], boundary: bytes) -> tuple[int, dict]:
        """Parts to the spool, each kept or listed failed: (HTTP status, DICOM JSON)."""
        import pydicom

        parts: list[Path] = []

        def open_part():
            p = self.spool / f"stow-{secrets.token_hex(8)}.part"
            parts.append(p)
            return open(p, "wb")

        try:
            split_parts(read, boundary, open_part)
        except InputError:
            for p in parts:
                p.unlink(missing_ok=True)
            raise
        except OSError as e:
            for p in parts:
                p.unlink(missing_ok=True)
            raise Refused(503, f"the spool cannot be written ({e.strerror or e})") from None
        ok, failed = [], []
        for p in parts:
            try:
                ds = pydicom.dcmread(str(p), stop_before_pixels=True)
                cls, uid = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
            except Exception:
                p.unlink(missing_ok=True)
                failed.append(("", "", 0xC000))  # cannot understand
                continue
            if cls not in (US_MULTIFRAME, *ROI_CLASSES):
                p.unlink(missing_ok=True)
                failed.append((cls, uid, 0x0122))  # SOP class not supported
                continue
            dest = self.spool / (hashlib.sha256(uid.encode()).hexdigest()[:32] + ".dcm")
            p.replace(dest)
            ok.append((cls, uid, dest))
        for cls, _, dest in ok:
            self.on_instance(dest, cls)
        log.info("STOW-RS: %d instance(s) kept, %d refused", len(ok), len(failed))
        body: dict = {}
        if ok:
            body["00081199"] = {"vr": "SQ", "Value": [
                {"00081150": {"vr": "UI", "Value": [c]}, "00081155": {"vr": "UI", "Value": [u]}}
                for c, u, _ in ok]}
        if failed:
            body["00081198"] = {"vr": "SQ", "Value": [
                {**({"00081150": {"vr": "UI", "Value": [c]}} if c else {}),
                 **({"00081155": {"vr": "UI", "Value": [u]}} if u else {}),
                 "00081197": {"vr": "US", "Value": [why]}} for c, u, why in failed]}
        return (200 if not failed else 202 if ok else 409), body

    def _handler(self):
        from http.server import BaseHTTPRequestHandler

        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # the request line holds a study UID
                pass

            def answer(self, code: int, body: dict | None = None, why: str = "",
                       headers: dict | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else why.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/dicom+json" if body is not None
                                 else "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if code >= 400:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802 (http.server's name)
                if not server.authorised(self.headers.get("Authorization")):
                    log.warning("STOW-RS refused: no or wrong credentials")
                    return self.answer(401, why="credentials required",
                                       headers={"WWW-Authenticate":
                                                'Basic realm="ceustream"'})
                if not PATH_RE.match(self.path.split("?")[0]):
                    return self.answer(404, why="STOW-RS: POST /studies")
                boundary = boundary_of(self.headers.get("Content-Type", ""))
                if boundary is None:
                    return self.answer(415, why='multipart/related; type="application/dicom"')
                te = (self.headers.get("Transfer-Encoding") or "").lower()
                length = self.headers.get("Content-Length")
                if te and te != "chunked":
                    return self.answer(501, why="Transfer-Encoding: chunked or none")
                if not te and not (length or "").isdigit():
                    return self.answer(411, why="a Content-Length (or chunked coding) is "
                                       "required")
                length = None if te else int(length)
                if length is not None and length > server.max_bytes:
                    return self.answer(413, why=f"at most {server.max_bytes} bytes")
                if not server.room(length or 0):
                    server.refused += 1
                    log.warning("STOW-RS refused: under %d MB would be left free on the "
                                "spool's disk", server.min_free_bytes >> 20)
                    return self.answer(503, why="the receiver's disk is nearly full",
                                       headers={"Retry-After": "60"})
                read = body_reader(self.rfile, length, server.max_bytes, server.room)
                try:
                    code, body = server.receive(read, boundary)
                    while read(CHUNK):  # an epilogue after the closing delimiter
                        pass
                except Refused as e:
                    log.warning("STOW-RS refused: %s", e)
                    return self.answer(e.code, why=str(e),
                                       headers={"Retry-After": "60"} if e.code == 503 else None)
                except InputError as e:
                    log.warning("STOW-RS refused: %s", e)
                    return self.answer(400, why=str(e))
                self.answer(code, body)

            def do_GET(self):  # noqa: N802
                self.answer(405, why="STOW-RS only: POST /studies")

        return Handler

    def start(self) -> None:
        from http.server import ThreadingHTTPServer

        try:
            self.httpd = ThreadingHTTPServer((self.host, self.port), self._handler())
        except OSError as e:
            raise InputError(f"listen --stow-port {self.port}: cannot listen "
                             f"({e.strerror or e})") from None
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, name="listen-stow",
                         daemon=True).start()
        log.info("STOW-RS on http://%s:%d/studies", self.host, self.port)

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
