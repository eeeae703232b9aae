"""DICOM ultrasound cines written by the tests themselves with pydicom (Ultrasound Multi-frame
Image Storage), JPEG baseline (frames encoded by Pillow, then ``pydicom.encaps.encapsulate``),
RLE (pydicom's own encoder) or uncompressed; timed by Frame Time or Frame Time Vector through
the Frame Increment Pointer, or by Cine Rate alone. Every file carries patient tags with a
fake name and id, which no output of ceustream may contain."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

FAKE_NAME = "Quaggafritz^Zenobia"
FAKE_ID = "PID-QZ-993311"
FAKE_ACCESSION = "ACC-77123"
FAKE_INSTITUTION = "Nowhere General Hospital"
SECRETS = (FAKE_NAME, "Quaggafritz", "Zenobia", FAKE_ID, FAKE_ACCESSION, FAKE_INSTITUTION)


def write_dicom(path: Path, frames: list[np.ndarray], *, syntax: str = "jpeg",
                timing: str = "frame_time", fps: float = 10.0,
                increments_ms: list[float] | None = None, delay_ms: float | None = None,
                quality: int = 95) -> Path:
    """``frames``: uint8 H x W (grey) or H x W x 3 (RGB). ``syntax``: jpeg | rle | raw.
    ``timing``: frame_time | frame_time_vector | cine_rate | none."""
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import (JPEGBaseline8Bit, ExplicitVRLittleEndian, RLELossless,
                             generate_uid)

    n = len(frames)
    colour = frames[0].ndim == 3
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = {"jpeg": JPEGBaseline8Bit, "rle": RLELossless,
                              "raw": ExplicitVRLittleEndian}[syntax]
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = FAKE_NAME
    ds.PatientID = FAKE_ID
    ds.PatientBirthDate = "19410302"
    ds.AccessionNumber = FAKE_ACCESSION
    ds.InstitutionName = FAKE_INSTITUTION
    ds.StudyDate = "20260102"
    ds.Modality = "US"
    ds.Rows, ds.Columns = frames[0].shape[:2]
    ds.NumberOfFrames = n
    ds.SamplesPerPixel = 3 if colour else 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if colour:
        ds.PlanarConfiguration = 0
    step = f"{1000.0 / fps:.10g}"
    if timing == "frame_time":
        ds.FrameTime = step
        ds.FrameIncrementPointer = 0x00181063
    elif timing == "frame_time_vector":
        inc = increments_ms if increments_ms is not None else [1000.0 / fps] * (n - 1)
        ds.FrameTimeVector = ["0"] + [f"{v:.10g}" for v in inc]
        ds.FrameIncrementPointer = 0x00181065
    elif timing == "cine_rate":
        ds.CineRate = int(round(fps))
    if delay_ms is not None:
        ds.FrameDelay = f"{delay_ms:.10g}"
    if syntax == "jpeg":
        ds.PhotometricInterpretation = "YBR_FULL_422" if colour else "MONOCHROME2"
        enc = []
        for f in frames:
            b = io.BytesIO()
            Image.fromarray(f).save(b, "JPEG", quality=quality, subsampling=1 if colour else 0)
            enc.append(b.getvalue())
        ds.PixelData = encapsulate(enc)
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
    else:
        ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
        arr = np.ascontiguousarray(np.stack(frames))
        ds.PixelData = arr.tobytes()
        ds["PixelData"].VR = "OB"
        if syntax == "rle":
            ds.compress(RLELossless, arr)
    ds.save_as(path, enforce_file_format=True)
    return path


def secrets_in(*texts: str | bytes, folders: tuple[Path, ...] = ()) -> list[str]:
    """Which fake patient strings occur in ``texts`` or any file under ``folders``."""
    blobs = [t.encode() if isinstance(t, str) else t for t in texts]
    for d in folders:
        blobs += [p.read_bytes() for p in Path(d).rglob("*") if p.is_file()]
    found = []
    for s in SECRETS:
        for v in {s, s.upper(), s.lower(), s.replace("^", " ")}:
            if any(v.encode() in b for b in blobs):
                found.append(v)
    return found
