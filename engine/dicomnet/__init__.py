"""The hospital's side: a PACS reached by DICOMweb (QIDO-RS, WADO-RS, STOW-RS; dicomweb-client)
or DIMSE (C-FIND, C-GET, C-STORE; pynetdicom), a bounded on-disk cache of retrieved cines, the
exam's inputs where DICOM holds them (Contrast/Bolus Start Time, a GSPS drawing the ROI), the
results written back as a TID 1500 Structured Report and a Secondary Capture (highdicom), and
the C-STORE listener's protocol. No hand-written protocol code.

Nothing here logs or returns a patient identifier, an accession number or a credential: an
exam is named by an opaque digest of its SOP Instance UID (``opaque``).
"""

from __future__ import annotations

import hashlib

#: SOP classes
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
#: where a radiologist's ROI can be: a presentation state, or an SR's image region
ROI_CLASSES = (GSPS, COMPREHENSIVE_SR, ENHANCED_SR)


def opaque(uid: str) -> str:
    """An exam id from a UID: stable, and no identifier in it."""
    return "d" + hashlib.sha256(uid.encode()).hexdigest()[:15]
