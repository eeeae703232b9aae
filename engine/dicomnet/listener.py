"""The C-STORE listener's protocol (pynetdicom): a Storage SCP that accepts Ultrasound
Multi-frame cines and Grayscale Softcopy Presentation States, writes each to a spool folder as
it arrives and hands it on (``on_instance``). It never takes what it cannot keep:

- TLS (PS3.15 B.1) with our certificate, and callers' certificates checked against a CA
  when one is given;
- AE titles are checked: the called AE title must be ours, and the calling AE title one of
  ``allowed`` (when given); any other association is rejected by pynetdicom;
- when the spool's disk has less than ``min_free_bytes`` free, new associations are
  rejected (transient, local limit exceeded: the sender tries later), and a store inside an
  association already open is refused with status A700 (Refused: Out of Resources), so the
  sender keeps the instance rather than the listener losing it. The disk is checked every
  ``check_s`` seconds.

Files are named by a digest of their SOP Instance UID; nothing is logged of their header.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Callable

from ceustream.engine.core.errors import InputError

from . import ROI_CLASSES, US_MULTIFRAME
from .archive import storage_contexts

log = logging.getLogger(__name__)

OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
SOP_CLASS_NOT_SUPPORTED = 0x0122


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


class Listener:
    def __init__(self, our_aet: str, host: str, port: int, spool: Path,
                 on_instance: Callable[[Path, str], None], *, allowed: list[str] | None = None,
                 min_free_bytes: int = 1 << 30, tls: tuple[str, str, str | None] | None = None):
        self.our_aet = our_aet
        self.host, self.port = host, port
        self.spool = Path(spool)
        self.on_instance = on_instance
        self.allowed = allowed
        self.min_free_bytes = int(min_free_bytes)
        self.tls = tls  # (our certificate, our key, CA the callers' certificates must chain to)
        self.refused = 0
        self.server = None
        self.ae = None
        self.full = False
        self._stop = None
        try:
            self.spool.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"--spool {self.spool}: cannot be created ({e.strerror or e})") \
                from None

    def _on_store(self, event) -> int:
        if free_bytes(self.spool) < self.min_free_bytes:
            self.refused += 1
            log.warning("store refused: under %d MB free on the spool's disk",
                        self.min_free_bytes >> 20)
            return OUT_OF_RESOURCES
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            cls = str(ds.SOPClassUID)
            if cls not in (US_MULTIFRAME, *ROI_CLASSES):
                return SOP_CLASS_NOT_SUPPORTED
            name = hashlib.sha256(str(ds.SOPInstanceUID).encode()).hexdigest()[:32] + ".dcm"
            tmp = self.spool / (name + ".part")
            ds.save_as(tmp, enforce_file_format=True)
            tmp.replace(self.spool / name)
        except OSError as e:
            log.warning("store refused: the spool cannot be written (%s)", e.strerror or e)
            return OUT_OF_RESOURCES
        except Exception as e:  # a dataset pydicom cannot write back: refused, not lost
            log.warning("store refused: the dataset cannot be kept (%s)", type(e).__name__)
            return CANNOT_UNDERSTAND
        self.on_instance(self.spool / name, cls)
        return 0x0000

    def _watch_disk(self, check_s: float) -> None:
        """Closes the door while the disk is nearly full. pynetdicom rejects an association
        request (A-ASSOCIATE-RJ: transient, local limit exceeded) when more associations are
        open than its maximum; its setter refuses 0, so the attribute it reads is set."""
        while not self._stop.wait(check_s):
            full = free_bytes(self.spool) < self.min_free_bytes
            if full != self.full:
                self.full = full
                self.ae._maximum_associations = 0 if full else 10
                if full:
                    log.warning("under %d MB free on the spool's disk: new associations are "
                                "rejected", self.min_free_bytes >> 20)
                else:
                    log.info("disk space back: associations accepted again")

    def start(self, check_s: float = 0.5) -> None:
        import threading

        from pynetdicom import AE, evt
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=self.our_aet)
        ae.require_called_aet = True
        if self.allowed:
            ae.require_calling_aet = list(self.allowed)
        for cls in (US_MULTIFRAME, *ROI_CLASSES):
            ae.add_supported_context(cls, storage_contexts())
        ae.add_supported_context(Verification)
        ctx = None
        if self.tls is not None:
            import ssl

            cert, key, ca = self.tls
            try:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
                ctx.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as e:
                raise InputError(f"listen: TLS material unreadable "
                                 f"({getattr(e, 'strerror', None) or e})") from None
            if ca:
                ctx.verify_mode = ssl.CERT_REQUIRED  # callers show a certificate from the CA
        try:
            self.server = ae.start_server((self.host, self.port), block=False, ssl_context=ctx,
                                          evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        except OSError as e:
            raise InputError(f"listen {self.host}:{self.port}: cannot listen "
                             f"({e.strerror or e})") from None
        self.port = self.server.server_address[1]
        self.ae = ae
        self.full = free_bytes(self.spool) < self.min_free_bytes
        ae._maximum_associations = 0 if self.full else 10  # see _watch_disk
        self._stop = threading.Event()
        threading.Thread(target=self._watch_disk, args=(check_s,), name="listen-disk",
                         daemon=True).start()
        log.info("listening as %s on %s:%d", self.our_aet, self.host, self.port)
        if self.full:
            log.warning("under %d MB free on the spool's disk: new associations are rejected",
                        self.min_free_bytes >> 20)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self.server is not None:
            self.server.shutdown()
            self.server = None
