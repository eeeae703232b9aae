"""Query, retrieve and store against a PACS: DICOMweb with dicomweb-client (QIDO-RS,
WADO-RS, STOW-RS), DIMSE with pynetdicom (C-FIND, C-GET, C-STORE).

A query finds Ultrasound Multi-frame instances (modality US) by study date range,
accession numbers, or Study / Series Instance UIDs. A retrieved instance is written to a
``Cache`` (a bounded folder; files named by a digest of their UID) as it arrives: WADO-RS
streams the part to disk, C-GET's store handler writes the dataset there.

Every failure is one ``InputError`` line naming the peer (without credentials) and what
failed; nothing here logs a patient identifier, accession number or credential.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ceustream.engine.core.errors import InputError, UsageError

from . import GSPS, US_MULTIFRAME
from .peer import Peer

log = logging.getLogger(__name__)

DATE_RE = re.compile(r"^(\d{8})?-?(\d{8})?$")
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class Query:
    """What to look for. Dates are DICOM ``YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD`` ranges."""

    study_date: str | None = None
    accessions: tuple[str, ...] = ()
    study_uids: tuple[str, ...] = ()
    series_uids: tuple[str, ...] = ()
    sop_uids: tuple[str, ...] = ()
    modality: str = "US"
    sop_class: str = US_MULTIFRAME

    def __post_init__(self) -> None:
        if self.study_date is not None:
            m = DATE_RE.match(self.study_date)
            if not m or not (m.group(1) or m.group(2)):
                raise UsageError(f"--study-date {self.study_date!r}: YYYYMMDD or "
                                 "YYYYMMDD-YYYYMMDD")
        for u in (*self.study_uids, *self.series_uids, *self.sop_uids):
            if not UID_RE.match(u) or len(u) > 64:
                raise UsageError(f"UID {u[:70]!r}: digits and dots, at most 64 characters")
        for a in self.accessions:
            if not a or len(a) > 16 or any(ord(c) < 32 or c in "\\*?" for c in a):
                raise UsageError("--accession: 1-16 characters each, no wildcards or "
                                 "control characters")

    def filters(self) -> list[dict[str, str]]:
        """One set of matching keys per request (a list of values is several requests)."""
        base = {"Modality": self.modality, "SOPClassUID": self.sop_class}
        if self.study_date:
            base["StudyDate"] = self.study_date
        out = [dict(base)]
        for key, values in (("AccessionNumber", self.accessions),
                            ("StudyInstanceUID", self.study_uids),
                            ("SeriesInstanceUID", self.series_uids),
                            ("SOPInstanceUID", self.sop_uids)):
            if values:
                out = [dict(f, **{key: v}) for f in out for v in values]
        return out


@dataclass(frozen=True)
class InstanceRef:
    """One instance found; the accession number stays in memory (labels CSV matching)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str = US_MULTIFRAME
    accession: str = field(default="", repr=False)


class Cache:
    """A folder of retrieved instances bounded to ``max_bytes``: before a new one is written
    the least recently used ones go (never one in ``pinned``, the exams being scored)."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.pinned: set[Path] = set()
        self._lock = threading.Lock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"PACS cache {self.root}: cannot be created "
                             f"({e.strerror or e})") from None

    def path_for(self, uid: str) -> Path:
        return self.root / (hashlib.sha256(uid.encode()).hexdigest()[:32] + ".dcm")

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*.dcm") if p.is_file())

    def make_room(self, need: int) -> None:
        with self._lock:
            files = sorted((p for p in self.root.glob("*.dcm") if p.is_file()),
                           key=lambda p: p.stat().st_mtime)
            total = sum(p.stat().st_size for p in files)
            for p in files:
                if total + need <= self.max_bytes:
                    break
                if p in self.pinned:
                    continue
                total -= p.stat().st_size
                p.unlink(missing_ok=True)
                log.debug("cache: %s evicted", p.name)
            if total + need > self.max_bytes:
                raise InputError(f"PACS cache {self.root}: {need} bytes do not fit under "
                                 f"its bound of {self.max_bytes} bytes")


def _one_line(e: BaseException) -> str:
    s = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {s[:200]}" if s else type(e).__name__


def _json_value(item: dict, tag: str) -> str:
    v = item.get(tag, {}).get("Value") or [""]
    return str(v[0])


# -- DICOMweb ---------------------------------------------------------------------------------
def pinned_tls(ca: str | None, cert: tuple[str, str] | None):
    """A requests adapter that verifies the server against ``ca`` and offers ``cert`` on
    every request, whatever the request or the environment says."""
    from requests.adapters import HTTPAdapter

    class PinnedTLS(HTTPAdapter):
        def send(self, request, **kw):
            if ca:
                kw["verify"] = ca
            if cert:
                kw["cert"] = cert
            return super().send(request, **kw)

    return PinnedTLS()


class DicomWebArchive:
    def __init__(self, peer: Peer, timeout_s: float = 60.0):
        import requests
        from dicomweb_client.api import DICOMwebClient

        self.peer = peer
        s = requests.Session()
        c = peer.credentials
        if c.token:
            s.headers["Authorization"] = f"Bearer {c.token}"
        elif c.user:
            s.auth = (c.user, c.password or "")
        if peer.ca or peer.cert:
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's
            # ``verify`` (psf/requests#3829): the PACS's CA and our certificate are pinned
            # on the adapter, so the environment of the host cannot swap them
            s.mount("https://", pinned_tls(peer.ca, peer.cert))
        self.session = s
        self.client = DICOMwebClient(peer.url, session=s, timeout=timeout_s)

    def _fail(self, what: str, e: BaseException) -> InputError:
        import requests

        if isinstance(e, requests.exceptions.SSLError):
            return InputError(f"{self.peer.describe()}: {what} failed (TLS: the server's "
                              "certificate is not trusted or the handshake failed; "
                              "CEUSTREAM_PACS_CA names the CA bundle)")
        status = getattr(getattr(e, "response", None), "status_code", None)
        why = {401: "not authorised (check CEUSTREAM_PACS_CREDENTIALS)",
               403: "forbidden"}.get(status, _one_line(e) if status is None else f"HTTP {status}")
        return InputError(f"{self.peer.describe()}: {what} failed ({why})")

    def query(self, q: Query) -> list[InstanceRef]:
        out: dict[str, InstanceRef] = {}
        for f in q.filters():
            try:
                found = self.client.search_for_instances(
                    search_filters=f, fields=["AccessionNumber", "SOPClassUID"],
                    get_remaining=True)
            except Exception as e:  # requests/HTTP errors of many kinds: one line
                raise self._fail("QIDO-RS query", e) from None
            for it in found:
                ref = InstanceRef(_json_value(it, "0020000D"), _json_value(it, "0020000E"),
                                  _json_value(it, "00080018"), _json_value(it, "00080016"),
                                  _json_value(it, "00080050"))
                if ref.sop_class == q.sop_class and ref.sop_uid:
                    out[ref.sop_uid] = ref
        return list(out.values())

    def related(self, study_uid: str, sop_class: str = GSPS) -> list[InstanceRef]:
        try:
            found = self.client.search_for_instances(
                study_instance_uid=study_uid, search_filters={"SOPClassUID": sop_class},
                fields=["SOPClassUID"])
        except Exception as e:
            raise self._fail("QIDO-RS query", e) from None
        return [InstanceRef(study_uid, _json_value(it, "0020000E"), _json_value(it, "00080018"),
                            _json_value(it, "00080016")) for it in found
                if _json_value(it, "00080016") == sop_class]

    def retrieve(self, ref: InstanceRef, cache: Cache) -> Path:
        """WADO-RS in the stored transfer syntax, the response streamed to the cache."""
        dest = cache.path_for(ref.sop_uid)
        if dest.is_file() and dest.stat().st_size > 0:
            os.utime(dest)
            return dest
        url = (f"{self.peer.url}/studies/{ref.study_uid}/series/{ref.series_uid}"
               f"/instances/{ref.sop_uid}")
        tmp = dest.with_suffix(".part")
        try:
            with self.session.get(url, stream=True, timeout=60, headers={
                    "Accept": 'multipart/related; type="application/dicom"; '
                              'transfer-syntax=*'}) as r:
                r.raise_for_status()
                size = int(r.headers.get("Content-Length") or 0)
                cache.make_room(size)
                boundary = boundary_of(r.headers.get("Content-Type", ""))
                with open(tmp, "wb") as f:
                    write_first_part(r.iter_content(1 << 20), boundary, f)
        except InputError:
            tmp.unlink(missing_ok=True)
            raise
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise InputError(f"PACS cache {cache.root}: cannot write ({e.strerror or e})") \
                from None
        except Exception as e:
            tmp.unlink(missing_ok=True)
            raise self._fail("WADO-RS retrieve", e) from None
        tmp.replace(dest)
        return dest

    def store(self, datasets: list[Any]) -> None:
        try:
            self.client.store_instances(datasets)
        except Exception as e:
            raise self._fail("STOW-RS store", e) from None

    def close(self) -> None:
        self.session.close()


def boundary_of(content_type: str) -> bytes:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise InputError(f"WADO-RS answer is not multipart ({content_type[:60]!r})")
    return m.group(1).encode()


def write_first_part(chunks: Iterable[bytes], boundary: bytes, f) -> None:
    """The body of the first part of a multipart/related stream, written as it arrives
    (PS3.18 8.7.1): everything between the first part's header block and the next
    delimiter. Holds at most one chunk plus a delimiter's length in memory."""
    delim = b"\r\n--" + boundary
    buf = b""
    started = False
    for chunk in chunks:
        buf += chunk
        if not started:
            head = buf.find(b"\r\n\r\n")
            if head < 0:
                if len(buf) > 65536:
                    raise InputError("WADO-RS answer: no part header")
                continue
            buf = buf[head + 4:]
            started = True
        pos = 0
        while True:  # a delimiter is CRLF--boundary then CRLF, "--" or padding (RFC 2046)
            end = buf.find(delim, pos)
            after = buf[end + len(delim):end + len(delim) + 2] if end >= 0 else b""
            if end < 0 or len(after) < 2:
                break
            if after in (b"\r\n", b"--") or after[:1] in (b" ", b"\t"):
                f.write(buf[:end])
                return
            pos = end + 1
        keep = len(delim) + 2
        if len(buf) > keep:
            f.write(buf[:-keep])
            buf = buf[-keep:]
    raise InputError("WADO-RS answer cut short (no closing boundary)")


# -- DIMSE ------------------------------------------------------------------------------------
def storage_contexts():
    """The transfer syntaxes we accept for a cine (as SCP in C-GET / the listener)."""
    from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
                             ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000,
                             JPEG2000Lossless, JPEGBaseline8Bit, JPEGExtended12Bit,
                             JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, RLELossless)

    return [ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
            ExplicitVRBigEndian, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1,
            JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless]


class DimseArchive:
    def __init__(self, peer: Peer, timeout_s: float = 60.0):
        self.peer = peer
        self.timeout_s = timeout_s

    def _fail(self, what: str, why: str) -> InputError:
        return InputError(f"{self.peer.describe()}: {what} failed ({why})")

    def _associate(self, ae, what: str, **kw):
        if self.peer.tls:
            kw["tls_args"] = (self.peer.ssl_context(), self.peer.host)
        try:
            assoc = ae.associate(self.peer.host, self.peer.port, ae_title=self.peer.aet, **kw)
        except Exception as e:
            raise self._fail(what, _one_line(e)) from None
        if not assoc.is_established:
            why = "association rejected" if assoc.is_rejected else \
                "association aborted" if assoc.is_aborted else "no association (peer down?)"
            raise self._fail(what, why)
        return assoc

    def _ae(self):
        from pynetdicom import AE

        ae = AE(ae_title=self.peer.our_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        return ae

    def _find(self, level: str, keys: dict[str, str], want: list[str]) -> list[Any]:
        from pydicom.dataset import Dataset
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        for k in want:
            setattr(ds, k, "")
        for k, v in keys.items():
            setattr(ds, k, v)
        assoc = self._associate(ae, "C-FIND")
        out = []
        try:
            for status, ident in assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind):
                if status is None:
                    raise self._fail("C-FIND", "no answer")
                if status.Status in (0xFF00, 0xFF01) and ident is not None:
                    out.append(ident)
                elif status.Status not in (0x0000, 0xFF00, 0xFF01):
                    raise self._fail("C-FIND", f"status 0x{status.Status:04X}")
        finally:
            assoc.release()
        return out

    def query(self, q: Query) -> list[InstanceRef]:
        """Study Root, level by level (PS3.4 C.4.1.2: hierarchical keys): studies by date and
        accession, their US series, the series' Ultrasound Multi-frame instances."""
        out: dict[str, InstanceRef] = {}
        for f in q.filters():
            skeys = {k: f[k] for k in ("StudyDate", "AccessionNumber", "StudyInstanceUID")
                     if k in f}
            studies = self._find("STUDY", skeys, ["StudyInstanceUID", "AccessionNumber"])
            for st in studies:
                suid = str(st.get("StudyInstanceUID", ""))
                acc = str(st.get("AccessionNumber", ""))
                if not suid:
                    continue
                sk = {"StudyInstanceUID": suid, "Modality": q.modality}
                if "SeriesInstanceUID" in f:
                    sk["SeriesInstanceUID"] = f["SeriesInstanceUID"]
                for se in self._find("SERIES", sk, ["SeriesInstanceUID"]):
                    seuid = str(se.get("SeriesInstanceUID", ""))
                    if not seuid:
                        continue
                    ik = {"StudyInstanceUID": suid, "SeriesInstanceUID": seuid}
                    if "SOPInstanceUID" in f:
                        ik["SOPInstanceUID"] = f["SOPInstanceUID"]
                    for im in self._find("IMAGE", ik, ["SOPInstanceUID", "SOPClassUID"]):
                        sop, cls = str(im.get("SOPInstanceUID", "")), str(im.get("SOPClassUID",
                                                                                  ""))
                        if sop and cls == q.sop_class:
                            out[sop] = InstanceRef(suid, seuid, sop, cls, acc)
        return list(out.values())

    def related(self, study_uid: str, sop_class: str = GSPS) -> list[InstanceRef]:
        out = []
        for se in self._find("SERIES", {"StudyInstanceUID": study_uid}, ["SeriesInstanceUID"]):
            seuid = str(se.get("SeriesInstanceUID", ""))
            for im in self._find("IMAGE", {"StudyInstanceUID": study_uid,
                                           "SeriesInstanceUID": seuid},
                                 ["SOPInstanceUID", "SOPClassUID"]):
                if str(im.get("SOPClassUID", "")) == sop_class:
                    out.append(InstanceRef(study_uid, seuid, str(im.SOPInstanceUID), sop_class))
        return out

    def _store_handler(self, ref: InstanceRef, cache: Cache, dest: Path, got: dict):
        """The C-STORE sub-operation's handler (C-GET and C-MOVE alike): the dataset asked
        for goes to the cache file; anything else is refused."""

        def on_store(event):
            try:
                ds = event.dataset
                ds.file_meta = event.file_meta
                if str(ds.SOPInstanceUID) != ref.sop_uid:
                    return 0xA900  # not what was asked for
                cache.make_room(len(event.request.DataSet.getvalue())
                                if hasattr(event.request.DataSet, "getvalue") else 0)
                tmp = dest.with_suffix(".part")
                ds.save_as(tmp, enforce_file_format=True)
                tmp.replace(dest)
                got["ok"] = True
                return 0x0000
            except InputError as e:
                got["error"] = str(e)
                return 0xA700  # out of resources
            except Exception as e:  # a dataset that cannot be written: refuse it
                got["error"] = _one_line(e)
                return 0xC000

        return on_store

    @staticmethod
    def _identifier(ref: InstanceRef):
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = \
            ref.study_uid, ref.series_uid, ref.sop_uid
        return ds

    def retrieve(self, ref: InstanceRef, cache: Cache) -> Path:
        """C-GET (or C-MOVE when the address asks for it) at IMAGE level; the store
        sub-operation's dataset goes straight to the cache file (pynetdicom hands it over
        already received)."""
        dest = cache.path_for(ref.sop_uid)
        if dest.is_file() and dest.stat().st_size > 0:
            os.utime(dest)
            return dest
        got: dict[str, Any] = {}
        if self.peer.retrieve == "move":
            what, last = "C-MOVE", self._move(ref, self._store_handler(ref, cache, dest, got))
        else:
            what, last = "C-GET", self._get(ref, self._store_handler(ref, cache, dest, got))
        if "error" in got:
            raise self._fail(what, got["error"])
        if not got.get("ok") or not dest.is_file():
            why = "the PACS does not know our AE title as a move destination" \
                if last == 0xA801 else "nothing received"
            raise self._fail(what, f"{why} (status 0x{(last or 0):04X})")
        return dest

    def _get(self, ref: InstanceRef, on_store) -> int | None:
        from pynetdicom import build_role, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        ae.add_requested_context(ref.sop_class, storage_contexts())
        roles = [build_role(ref.sop_class, scp_role=True)]
        assoc = self._associate(ae, "C-GET", ext_neg=roles,
                                evt_handlers=[(evt.EVT_C_STORE, on_store)])
        last = None
        try:
            for status, _ in assoc.send_c_get(self._identifier(ref),
                                              StudyRootQueryRetrieveInformationModelGet):
                if status is None:
                    raise self._fail("C-GET", "no answer")
                last = status.Status
        finally:
            assoc.release()
        return last

    def _move(self, ref: InstanceRef, on_store) -> int | None:
        """C-MOVE to our own AE title: a storage SCP on ``move_port`` for the length of the
        retrieve, accepting only the peer's AE title as caller and only the asked instance."""
        from pynetdicom import evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

        scp = self._ae()
        scp.require_calling_aet = [self.peer.aet]
        scp.add_supported_context(ref.sop_class, storage_contexts())
        try:
            server = scp.start_server(("", self.peer.move_port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, on_store)])
        except OSError as e:
            raise self._fail("C-MOVE", f"our storage SCP cannot listen on port "
                             f"{self.peer.move_port} ({e.strerror or e})") from None
        try:
            ae = self._ae()
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
            assoc = self._associate(ae, "C-MOVE")
            last = None
            try:
                for status, _ in assoc.send_c_move(self._identifier(ref), self.peer.our_aet,
                                                   StudyRootQueryRetrieveInformationModelMove):
                    if status is None:
                        raise self._fail("C-MOVE", "no answer")
                    last = status.Status
            finally:
                assoc.release()
        finally:
            server.shutdown()
        return last

    def store(self, datasets: list[Any]) -> None:
        ae = self._ae()
        for cls in {str(d.SOPClassUID) for d in datasets}:
            ae.add_requested_context(cls, [str(d.file_meta.TransferSyntaxUID) for d in datasets
                                           if str(d.SOPClassUID) == cls][:1] or None)
        assoc = self._associate(ae, "C-STORE")
        try:
            for d in datasets:
                st = assoc.send_c_store(d)
                if st is None or "Status" not in st or st.Status != 0x0000:
                    code = "no answer" if st is None or "Status" not in st else \
                        f"status 0x{st.Status:04X}"
                    raise self._fail("C-STORE", code)
        finally:
            assoc.release()

    def close(self) -> None:
        pass


def open_archive(peer: Peer):
    return DicomWebArchive(peer) if peer.kind == "dicomweb" else DimseArchive(peer)
