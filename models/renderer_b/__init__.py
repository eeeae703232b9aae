"""Renderer B: a second, independent simulator of CEUS liver-lesion exams (HCC vs
non-HCC), built from the physiology literature (shared/reference/ceus.md) but
deliberately different from renderer A in its curves, image formation and screens,
to measure cross-renderer generalisation and to train on both.

NumPy + OpenCV for pixels, PyGObject GStreamer for recordings; no other ceustream
module is imported.

    exam = sample_exam(seed, label=None)        # everything about one exam (frozen)
    frame = render_frame(exam, t_s)             # full screen, RGB uint8 (H, W, 3)
    clip = render_clip(exam, t0_error_s=0.0)    # 30 scheduled ROI slots, uint8 (30, 64, 64)
    write_recording(exam, "x.mp4")              # H.264/MP4, H.264/MKV or MJPEG/AVI + x.mp4.json
    write_archive(folder, n, seed)              # n recordings + manifest.csv
"""

from .archive import write_archive
from .exam import Exam, sample_exam
from .physiology import PATTERNS, WASHOUTS
from .record import RecordingError, write_recording
from .render import SLOT_OFFSETS_S, nearest_frame, render_clip, render_frame, slot_frames, slot_times

__all__ = ["Exam", "sample_exam", "render_frame", "render_clip", "write_recording", "write_archive",
           "RecordingError", "SLOT_OFFSETS_S", "slot_times", "slot_frames", "nearest_frame",
           "PATTERNS", "WASHOUTS"]
