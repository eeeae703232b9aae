"""Errors a user can cause, each with the exit code the CLI documents.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; anything that
is not a ``CeusError`` is a bug and is reported as such (exit 1) without a traceback unless
``--debug`` is given.
"""


class CeusError(Exception):
    """An error a user can cause: ``str(error)`` is one line naming what is wrong, and
    ``exit_code`` is the CLI's documented exit code for it."""

    exit_code = 1


class UsageError(CeusError):
    """A bad command-line value (ROI syntax, conflicting options)."""

    exit_code = 2


class InputError(CeusError):
    """The input itself is unusable: missing file, not a video, ROI outside the frame, ..."""

    exit_code = 3


class ModelError(InputError):
    """A model file that cannot be served (missing, unreadable, without ceustream metadata)."""


class PartialResult(CeusError):
    """The exam could not be completed (recording too short, damaged); a flagged partial
    result was produced."""

    exit_code = 4


class BackendUnavailable(CeusError):
    """The backend asked for cannot run here (no GPU, no TensorRT)."""

    exit_code = 5


class NoAnswer(CeusError):
    """No engine answered on the control socket within the timeout (not running, another
    endpoint, or CURVE keys that do not match)."""

    exit_code = 6


EXIT_CODES = {
    0: "final score produced (all 30 slots)",
    1: "internal error (a bug: rerun with --debug and report it)",
    2: "usage error (bad option or value)",
    3: "input error (missing or unreadable file, not a video, ROI outside the frame, t0 after "
    "the end, resolution change, model without metadata)",
    4: "partial result (recording ends before the clip completes, or is damaged): the JSON "
    "result is still printed, with final=false and flags; qa: some rows were bad, failed or "
    "partial (listed in results.jsonl and the report), the rest were scored",
    5: "backend unavailable (e.g. --backend tensorrt without a GPU or TensorRT)",
    6: "no engine answered (control: nothing listens on the endpoint within --timeout)",
    130: "interrupted",
}

#: what 0 and 3 mean for a command that does not score (keys, simulate, export, ...)
PLAIN_EXIT_CODES = {
    0: "success",
    3: "input error (a missing or unreadable file, or a bad value in it)",
}
