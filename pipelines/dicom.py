"""DICOM ultrasound cine (Ultrasound Multi-frame Image Storage) as a recording.

Read with pydicom, and only the tags the engine needs: patient, study and institution tags
are skipped unread (``specific_tags``), so no identifier can reach a message, journal, log
or report; the exam id comes from the pixel data alone.

- **Frames.** JPEG Baseline frames (MONOCHROME2, YBR_FULL_422, YBR_FULL) go to GStreamer
  still encoded (``appsrc ! jpegparse ! jpegdec``): their luma is the JPEG's Y, full range,
  which is BT.601 luma. Everything else pydicom decodes (RLE, uncompressed, and whatever
  its installed plugins handle: pylibjpeg for JPEG-LS / JPEG 2000 / lossless JPEG) and the
  luma is taken as the engine takes it for video: MONOCHROME2 as is, MONOCHROME1 inverted,
  YBR's Y plane, RGB through BT.601 full-range weights.
- **Timing** (PS3.3 C.7.6.5, C.8.5.6): the Frame Increment Pointer (0028,0009) names the
  attribute that times the frames: Frame Time (0018,1063, ms between frames; frame n at
  Frame Delay + Frame Time x (n - 1)) or Frame Time Vector (0018,1065, ms increments, the
  first 0). Without either: Cine Rate (0018,0040) or Recommended Display Frame Rate
  (0008,2144) in frames/s, else Effective Duration (0018,0072) / Number of Frames. Times are
  computed from the tags' decimal text in exact rationals, then integer nanoseconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ceustream.engine.core.errors import InputError

from .appsrc import FeedReader, gray8_bytes, monotonic_ns_list, rgb_to_luma

log = logging.getLogger(__name__)

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
NATIVE = {"1.2.840.10008.1.2": "implicit VR", "1.2.840.10008.1.2.1": "explicit VR",
          "1.2.840.10008.1.2.2": "explicit VR big endian"}

# tags (group, element) read from the file: nothing else is parsed
FRAME_TIME = 0x00181063
FRAME_TIME_VECTOR = 0x00181065
FRAME_DELAY = 0x00181066
CINE_RATE = 0x00180040
DISPLAY_RATE = 0x00082144
EFFECTIVE_DURATION = 0x00180072
FRAME_INCREMENT_POINTER = 0x00280009
NUMBER_OF_FRAMES = 0x00280008
PIXEL_TAGS = [0x00280002, 0x00280004, 0x00280006, 0x00280010, 0x00280011, 0x00280100,
              0x00280101, 0x00280102, 0x00280103]
TIMING_TAGS = [FRAME_TIME, FRAME_TIME_VECTOR, FRAME_DELAY, CINE_RATE, DISPLAY_RATE,
               EFFECTIVE_DURATION, FRAME_INCREMENT_POINTER, NUMBER_OF_FRAMES]
PIXEL_DATA = 0x7FE00010
HEADER_TAGS = [0x00080016, *PIXEL_TAGS, *TIMING_TAGS]
MAX_SPAN_NS = 24 * 3600 * 10**9  # a cine longer than a day is a broken timing tag


def pydicom():
    try:
        import pydicom as pd
    except ImportError:
        raise InputError("reading DICOM needs pydicom: pip install 'pydicom>=3' pylibjpeg "
                         "pylibjpeg-libjpeg") from None
    return pd


class _Collect(logging.Filter):
    """Keeps pydicom's log records (it logs each warning AND warns it) for one read."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.messages.append(record.getMessage())
        return False


@contextlib.contextmanager
def quiet(path: Path):
    """pydicom's warnings collected (its ``warnings.warn`` and its log lines) while reading or
    converting values of ``path``, so each becomes at most one line of ours: yields the list
    the messages go to (the file's path taken out of them)."""
    import warnings

    grab = _Collect()
    plog = logging.getLogger("pydicom")
    plog.addFilter(grab)
    out: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield out
            finally:
                for m in [*grab.messages, *(str(w.message) for w in caught)]:
                    m = m.splitlines()[0].replace(f" in file {path}", "")
                    m = m.replace(str(path), path.name).split(" Please see <")[0][:160]
                    if m not in out:
                        out.append(m)
    finally:
        plog.removeFilter(grab)


_FEED_THREADS: set[int] = set()
_SHOW_WARNING: list[Any] = []


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` for the process: a pydicom warning raised on a feed thread is
    dropped (pydicom logs each one too, and ``FeedWarnings`` makes that one line of ours);
    every other warning goes where it went before."""
    import threading

    if threading.get_ident() in _FEED_THREADS and "pydicom" in str(filename):
        return
    _SHOW_WARNING[0](message, category, filename, lineno, file, line)


class FeedWarnings(logging.Filter):
    """pydicom's log records raised while frames are decoded on the feed thread (a decoder
    warning, excess padding...): one line of ours each, naming the file, once per message.
    Records from other threads pass through untouched."""

    def __init__(self, name: str) -> None:
        import threading

        super().__init__()
        self.file = name
        self.thread = threading.get_ident()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        import threading

        if threading.get_ident() != self.thread:
            return True
        m = (record.getMessage().splitlines() or [""])[0][:160]
        if m not in self.seen:
            self.seen.add(m)
            log.warning("%s: pydicom: %s", self.file, m)
        return False


@contextlib.contextmanager
def feed_warnings(path: Path):
    """Around decoding on a feed thread: pydicom's warnings become ``FeedWarnings`` lines."""
    import warnings

    if not _SHOW_WARNING:
        _SHOW_WARNING.append(warnings.showwarning)
        warnings.showwarning = _show_warning
    grab = FeedWarnings(path.name)
    plog = logging.getLogger("pydicom")
    plog.addFilter(grab)
    _FEED_THREADS.add(grab.thread)
    try:
        yield grab
    finally:
        _FEED_THREADS.discard(grab.thread)
        plog.removeFilter(grab)


def _quiet_read(pd, path: Path, **kw) -> tuple[Any, list[str]]:
    """``dcmread`` under ``quiet``: (the dataset or the exception, pydicom's messages)."""
    with quiet(path) as msgs:
        try:
            ds = pd.dcmread(str(path), **kw)
        except Exception as e:  # pydicom raises many types; none may escape as a bug
            ds = e
    return ds, msgs


def described(ds: Any, path: Path) -> dict[str, Any]:
    """``describe`` with pydicom's value warnings (a bad IS, DS...) in its one-line error, or
    logged once each."""
    with quiet(path) as msgs:
        try:
            d = describe(ds, path)
        except InputError as e:
            err = e
        else:
            err = None
    if err is not None:
        raise InputError(str(err) + (f" (pydicom: {msgs[0]})" if msgs else "")) from None
    for m in msgs:
        log.warning("%s: %s", path.name, m)
    return d


def _encapsulated_items(path: Path) -> tuple[int, bool] | None:
    """(items after the Pixel Data tag, whether a sequence delimiter closes them) from the
    raw bytes, for saying how much of a cut encapsulated cine is there."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    at = data.rfind(b"\xe0\x7f\x10\x00")
    if at < 0:
        return None
    tail = data[at:]
    return tail.count(b"\xfe\xff\x00\xe0"), b"\xfe\xff\xdd\xe0" in tail


def read(path: Path, pixels: bool) -> Any:
    """The dataset with only the engine's tags (and the pixel data when asked). pydicom's
    warnings become one line each in our log, or part of the one-line error."""
    pd = pydicom()
    tags = HEADER_TAGS + ([PIXEL_DATA] if pixels else [])
    ds, warned = _quiet_read(pd, path, specific_tags=tags, stop_before_pixels=not pixels)
    if isinstance(ds, Exception):
        extra = f"; pydicom: {warned[0]}" if warned else ""
        raise InputError(f"{path}: not a readable DICOM file ({type(ds).__name__}: "
                         f"{_short(ds)}{extra})") from None
    if pixels and "PixelData" not in ds:
        items = _encapsulated_items(path)
        if items is not None and not items[1]:
            hdr, _ = _quiet_read(pd, path, specific_tags=HEADER_TAGS, stop_before_pixels=True)
            n = None if isinstance(hdr, Exception) else _tag(hdr, NUMBER_OF_FRAMES)
            raise InputError(f"{path}: the pixel data is cut short: the file ends inside it "
                             f"({max(items[0] - 2, 0)} complete of {n or '?'} frames' "
                             "fragments; a cut cine is not scored)")
        if items is not None:
            raise InputError(f"{path}: the pixel data cannot be read"
                             + (f" (pydicom: {warned[0]})" if warned else ""))
        raise InputError(f"{path}: DICOM file without pixel data")
    for m in warned:
        log.warning("%s: %s", path.name, m)
    return ds


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return text[:120]


def _rational(value: Any, what: str, path: Path) -> Fraction:
    """A DS/IS value as an exact rational (from its decimal text), finite."""
    text = getattr(value, "original_string", None) or str(value)
    try:
        r = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{path}: {what} {text!r} is not a number") from None
        if not np.isfinite(f):
            raise InputError(f"{path}: {what} {text!r} is not a finite number") from None
        r = Fraction(f)
    return r


def _tag(ds: Any, tag: int) -> Any:
    el = ds.get(tag)
    if el is None or el.value is None or el.value == "" or el.value == []:
        return None
    return el.value


def _values(v: Any) -> list:
    """A (possibly multi-valued) element's values as a list."""
    if v is None:
        return []
    if isinstance(v, (int, float, str, bytes)):
        return [v]
    return list(v)


def frame_times_ns(ds: Any, n: int, path: Path) -> tuple[list[int], str]:
    """Each frame's time (integer ns, on the file's own clock: the first frame at Frame
    Delay) and which tag gave it."""
    delay = _tag(ds, FRAME_DELAY)
    delay_ms = _rational(delay, "Frame Delay (0018,1066)", path) if delay is not None \
        else Fraction(0)
    pointer = _tag(ds, FRAME_INCREMENT_POINTER)
    pointers = [int(t) for t in _values(pointer)]
    ft, ftv = _tag(ds, FRAME_TIME), _tag(ds, FRAME_TIME_VECTOR)
    order = []
    for t in pointers:
        if t == FRAME_TIME and ft is not None:
            order.append("frame_time")
        elif t == FRAME_TIME_VECTOR and ftv is not None:
            order.append("frame_time_vector")
    order += [k for k, v in (("frame_time", ft), ("frame_time_vector", ftv)) if v is not None]
    how = order[0] if order else None
    if how == "frame_time_vector":
        inc = [_rational(v, "Frame Time Vector (0018,1065)", path) for v in _values(ftv)]
        if len(inc) == n - 1:
            inc = [Fraction(0)] + inc
        if len(inc) != n:
            raise InputError(f"{path}: Frame Time Vector (0018,1065) has {len(inc)} values for "
                             f"{n} frames")
        if any(v < 0 for v in inc[1:]):
            raise InputError(f"{path}: Frame Time Vector (0018,1065) has a negative increment")
        acc, times = Fraction(0), []
        for k, v in enumerate(inc):
            acc += v if k else 0
            times.append(delay_ms + acc)
        return [round(t * 1_000_000) for t in times], "Frame Time Vector"
    if how == "frame_time":
        step_ms = _rational(ft, "Frame Time (0018,1063)", path)
        src = "Frame Time"
    else:
        step_ms, src = None, None
        for tag, name in ((CINE_RATE, "Cine Rate (0018,0040)"),
                          (DISPLAY_RATE, "Recommended Display Frame Rate (0008,2144)")):
            v = _tag(ds, tag)
            if v is not None:
                rate = _rational(v, name, path)
                if rate <= 0:
                    raise InputError(f"{path}: {name} {float(rate):g} is not > 0")
                step_ms, src = Fraction(1000) / rate, name.split(" (")[0]
                break
        if step_ms is None:
            v = _tag(ds, EFFECTIVE_DURATION)
            if v is not None:
                dur = _rational(v, "Effective Duration (0018,0072)", path)
                if dur <= 0:
                    raise InputError(f"{path}: Effective Duration (0018,0072) is not > 0")
                step_ms, src = dur * 1000 / n, "Effective Duration"
    if step_ms is None:
        raise InputError(f"{path}: no frame timing (none of Frame Time, Frame Time Vector, "
                         "Cine Rate, Recommended Display Frame Rate, Effective Duration)")
    if step_ms <= 0:
        raise InputError(f"{path}: frame time {float(step_ms):g} ms is not > 0")
    return [round((delay_ms + step_ms * k) * 1_000_000) for k in range(n)], src


def _int(ds: Any, tag: int, name: str, path: Path) -> int | None:
    """An integer tag (IS / US), or None when absent; one line when it is not a number."""
    v = _tag(ds, tag)
    if v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {name} {v!r} is not a whole number") from None


def describe(ds: Any, path: Path) -> dict[str, Any]:
    """Size, frame count, encoding and timing of a DICOM cine (one-line errors)."""
    sop = str(_tag(ds, 0x00080016) or "")
    rows, cols = _int(ds, 0x00280010, "Rows", path), _int(ds, 0x00280011, "Columns", path)
    if not rows or not cols:
        raise InputError(f"{path}: DICOM file without an image (no Rows/Columns)")
    n = _int(ds, NUMBER_OF_FRAMES, "Number of Frames", path) or 1
    if n < 2:
        raise InputError(f"{path}: a single DICOM frame, not a cine (Number of Frames {n})")
    photo = str(_tag(ds, 0x00280004) or "").strip().upper()
    samples = _int(ds, 0x00280002, "Samples per Pixel", path) or 1
    bits = _int(ds, 0x00280100, "Bits Allocated", path) or 8
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if photo not in ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422",
                     "YBR_RCT", "YBR_ICT"):
        raise InputError(f"{path}: photometric interpretation {photo or 'missing'} is not "
                         "supported (MONOCHROME1/2, RGB, YBR_FULL, YBR_FULL_422)")
    if bits not in (8, 16):
        raise InputError(f"{path}: {bits} bits allocated per sample (8 or 16 supported)")
    # RGB too: a JPEG stream says itself (JFIF/Adobe markers) whether it is YCbCr- or
    # RGB-coded, and GStreamer's jpegdec reads that; GDCM writes YCbCr streams under an RGB header
    jpeg = syntax == JPEG_BASELINE and photo in ("MONOCHROME2", "YBR_FULL_422", "YBR_FULL", "RGB")
    codec = ("jpeg-baseline" if syntax == JPEG_BASELINE else "rle" if syntax == RLE_LOSSLESS
             else "uncompressed" if syntax in NATIVE else f"transfer syntax {syntax}")
    times, timing = frame_times_ns(ds, n, path)
    monotonic_ns_list(times, str(path))
    if times[-1] - times[0] > MAX_SPAN_NS:
        raise InputError(f"{path}: the frame timing spans {(times[-1] - times[0]) / 3.6e12:.1f} h "
                         f"({timing}): not a plausible cine")
    gaps = np.diff(times)
    period = int(np.median(gaps)) if len(gaps) else 0
    duration = (times[-1] - times[0] + period) / 1e9
    fps = 1e9 / period if period > 0 else None
    return {"rows": int(rows), "cols": int(cols), "frames": n, "photometric": photo,
            "samples": samples, "bits": bits, "syntax": syntax, "jpeg": jpeg, "codec": codec,
            "times_ns": times, "timing": timing, "duration_s": duration, "fps": fps,
            "sop": sop}


def discover(path: Path):
    """The ``VideoInfo`` of a DICOM cine, from its header only."""
    from .filesource import VideoInfo

    ds = read(path, pixels=False)
    d = described(ds, path)
    log.debug("%s: DICOM %s, %dx%d, %d frames, %s, timed by %s", path.name, d["codec"],
              d["cols"], d["rows"], d["frames"], d["photometric"], d["timing"])
    return VideoInfo(path=str(path), duration_s=d["duration_s"], width=d["cols"],
                     height=d["rows"], fps=d["fps"], seekable=False,
                     codec=f"dicom/{d['codec']}", container="dicom", kind="dicom",
                     first_frame_s=d["times_ns"][0] / 1e9, frames=d["frames"])


def content_id(path: Path) -> str:
    """An opaque exam id from the pixel data only (size, frame count and the first and last
    MiB of the pixel bytes): the same cine gives the same id whatever its header says."""
    ds = read(path, pixels=True)
    data = ds.PixelData
    h = hashlib.sha256()
    h.update(f"{_tag(ds, 0x00280010)}x{_tag(ds, 0x00280011)}x{_tag(ds, NUMBER_OF_FRAMES)}"
             f":{len(data)}".encode())
    h.update(data[: 1 << 20])
    if len(data) > 2 << 20:
        h.update(data[-(1 << 20):])
    return "d" + h.hexdigest()[:15]


def luma_of(arr: np.ndarray, photo: str, bits: int) -> np.ndarray:
    """A decoded frame (pydicom, raw: YBR kept as YBR) as full-range 8-bit luma."""
    if bits > 8 or arr.dtype != np.uint8:
        a = arr.astype(np.int64)
        if a.max(initial=0) > 255:
            a = a >> max(0, int(np.ceil(np.log2(a.max() + 1))) - 8)
        arr = np.clip(a, 0, 255).astype(np.uint8)
    if arr.ndim == 3:
        if photo.startswith("YBR"):
            return np.ascontiguousarray(arr[..., 0])
        return rgb_to_luma(arr[..., :3])
    if photo == "MONOCHROME1":
        return 255 - arr
    return arr


class DicomReader(FeedReader):
    """A DICOM cine through ``appsrc`` into the engine's gate (streams; never seeks)."""

    def __init__(self, info, *, speed: float | None = None,
                 crop: tuple[int, int, int, int] | None = None):
        path = Path(info.path)
        self.file = path
        self.ds = read(path, pixels=True)
        d = described(self.ds, path)
        self.desc = d
        super().__init__(info.path, (d["cols"], d["rows"]), d["times_ns"], self._frames,
                         jpeg=d["jpeg"], speed=speed, crop=crop,
                         first_frame_s=d["times_ns"][0] / 1e9)

    def _frames(self) -> Iterator[bytes]:
        """Runs on the feed thread: pydicom's warnings there become one line each."""
        with feed_warnings(self.file):
            yield from self._decoded()

    def _decoded(self) -> Iterator[bytes]:
        d = self.desc
        if d["jpeg"]:
            from pydicom.encaps import generate_frames

            yield from generate_frames(self.ds.PixelData, number_of_frames=d["frames"])
            return
        from pydicom.pixels import iter_pixels

        for arr in iter_pixels(self.ds, raw=True):
            luma = luma_of(arr, d["photometric"], d["bits"])
            if luma.shape != (d["rows"], d["cols"]):
                raise ValueError(f"decoded {luma.shape[1]}x{luma.shape[0]}, expected "
                                 f"{d['cols']}x{d['rows']}")
            yield gray8_bytes(luma)
