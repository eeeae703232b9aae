"""ceustream engine: schedule, sampler, clip buffer, backends, messages, sessions and the CLI.

Everything here is plain Python over NumPy so it can be tested without GStreamer; the
GStreamer side lives in ``ceustream.pipelines``.
"""

__version__ = "0.1.0"

#: Shown with every score, in every output: the shipped weights never saw a patient.
DISCLAIMER = "Model trained on simulated data only; not a medical device, not for diagnosis."
