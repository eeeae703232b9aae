"""A folder of images with a timestamps file, as a recording (frames exported by a scanner or
a workstation that keeps no video).

Format (documented in the README, "Replaying recordings"):

    EXAM/timestamps.csv     header ``file,t_s``: one row per frame, the image's path relative
                            to EXAM and its time in seconds (decimal text, any origin)
    EXAM/frames/0001.png    the images (PNG, JPEG, BMP or TIFF; 8-bit grey or colour, all
                            the same size)

Rows may come in any order; frames are played in time order, and two frames at the same time
are refused. Colour frames become BT.601 full-range luma (as OpenCV's grey conversion), the
engine's luma for video.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterator

import numpy as np

from ceustream.engine.core.errors import InputError

from .appsrc import FeedReader, gray8_bytes

log = logging.getLogger(__name__)

TIMESTAMPS = "timestamps.csv"
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_timestamps(folder: Path) -> tuple[list[Path], list[int]]:
    """(files, times in integer ns) in time order; every bad row listed in one line."""
    f = folder / TIMESTAMPS
    if not f.is_file():
        raise InputError(f"{folder}: is a folder, not a recording (an image folder needs "
                         f"{TIMESTAMPS} with columns file,t_s)")
    try:
        text = f.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{f}: unreadable ({e})") from None
    reader = csv.DictReader(text.splitlines())
    cols = {(c or "").strip().lower() for c in (reader.fieldnames or [])}
    if not {"file", "t_s"} <= cols:
        raise InputError(f"{f}: needs columns file,t_s (has: {', '.join(sorted(cols)) or 'none'})")
    rows, errors = [], []
    for n, raw in enumerate(reader, start=2):
        r = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        why = []
        p = folder / r.get("file", "") if r.get("file") else None
        if p is None:
            why.append("file is empty")
        elif p.suffix.lower() not in SUFFIXES:
            why.append(f"{r['file']} is not an image ({', '.join(SUFFIXES)})")
        elif not p.is_file():
            why.append(f"{r['file']} not found")
        t = None
        try:
            d = Decimal(r.get("t_s", ""))
            if not d.is_finite():
                raise InvalidOperation
            t = int((d * 1_000_000_000).to_integral_value())
        except InvalidOperation:
            why.append(f"t_s {r.get('t_s')!r} is not a number of seconds")
        if why:
            errors.append(f"row {n}: {'; '.join(why)}")
        else:
            rows.append((t, p))
    if errors:
        shown = errors[:10] + ([f"... and {len(errors) - 10} more"] if len(errors) > 10 else [])
        raise InputError(f"{f}: {len(errors)} bad row(s): " + " | ".join(shown))
    if len(rows) < 2:
        raise InputError(f"{f}: fewer than two frames listed")
    rows.sort(key=lambda r: r[0])
    for (ta, pa), (tb, pb) in zip(rows, rows[1:]):
        if ta == tb:
            raise InputError(f"{f}: {pa.name} and {pb.name} have the same time {ta / 1e9:g} s")
    return [p for _, p in rows], [t for t, _ in rows]


def load_luma(p: Path) -> np.ndarray:
    """An image as 8-bit full-range luma (BT.601 for colour)."""
    import cv2

    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{p}: not a readable image")
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        else:
            raise InputError(f"{p}: {img.dtype} pixels (8 or 16-bit images only)")
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code)
    return img


def discover(folder: Path):
    from .filesource import VideoInfo

    files, times = read_timestamps(folder)
    first = load_luma(files[0])
    h, w = first.shape
    gaps = np.diff(times)
    period = int(np.median(gaps))
    return VideoInfo(path=str(folder), duration_s=(times[-1] - times[0] + period) / 1e9,
                     width=w, height=h, fps=1e9 / period if period > 0 else None,
                     seekable=False, codec=f"images/{files[0].suffix.lower().lstrip('.')}",
                     container="image folder", kind="images", first_frame_s=times[0] / 1e9,
                     frames=len(files))


def content_id(folder: Path) -> str:
    """An opaque exam id from the frames' content (the timestamps and the first and last
    images' bytes), never from file or folder names."""
    files, times = read_timestamps(folder)
    h = hashlib.sha256()
    h.update(",".join(str(t - times[0]) for t in times).encode())
    for p in (files[0], files[-1]):
        h.update(p.read_bytes())
    return "i" + h.hexdigest()[:15]


class ImageFolderReader(FeedReader):
    """An image folder through ``appsrc`` into the engine's gate (streams; never seeks)."""

    def __init__(self, info, *, speed: float | None = None,
                 crop: tuple[int, int, int, int] | None = None):
        folder = Path(info.path)
        self.files, times = read_timestamps(folder)
        self.size = (info.width, info.height)
        super().__init__(info.path, self.size, times, self._frames, jpeg=False, speed=speed,
                         crop=crop, first_frame_s=times[0] / 1e9)

    def _frames(self) -> Iterator[bytes]:
        w, h = self.size
        for p in self.files:
            luma = load_luma(p)
            if luma.shape != (h, w):
                raise ValueError(f"{p.name} is {luma.shape[1]}x{luma.shape[0]}, the first "
                                 f"frame {w}x{h}")
            yield gray8_bytes(luma)
