"""``python -m ceustream.models.renderer_b``: write an archive of renderer-B recordings
and its manifest."""

from __future__ import annotations

import argparse
import logging
import sys

from .archive import TIMES, write_archive
from .exam import CONTAINERS
from .record import RecordingError

PROG = "python -m ceustream.models.renderer_b"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (no usage dump)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def seed_int(text: str) -> int:
    """An integer >= 0."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def container_list(text: str) -> tuple[str, ...]:
    """Comma-separated containers, each one of CONTAINERS."""
    items = tuple(c.strip().lower() for c in text.split(",") if c.strip())
    bad = [c for c in items if c not in CONTAINERS]
    if not items or bad:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(CONTAINERS)}, got {text!r}")
    return items


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = OneLineParser(prog=PROG, description="Write simulated CEUS exam recordings (renderer B) "
                      "with balanced HCC / non-HCC labels, plus manifest.csv for `ceustream qa`. "
                      "Simulated data: not for medical use.")
    p.add_argument("--n", type=positive_int, default=48, help="number of recordings (default 48)")
    p.add_argument("--seed", type=seed_int, default=0, help="archive seed; same seed, same files (default 0)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--containers", type=container_list, default=None,
                   help=f"comma-separated containers to use, among {','.join(CONTAINERS)} "
                        "(default: each exam's own draw)")
    p.add_argument("--times", choices=TIMES, default="t0",
                   help="which time the manifest rows give: t0 (contrast arrival, default), injection, "
                        "or both (`ceustream qa` wants one per row)")
    p.add_argument("--verbose", action="store_true", help="log diagnostics to stderr")
    return p


def main(argv=None) -> int:
    """Run the command; 0 on success, 1 on a failure (one line on stderr)."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    def progress(i: int, n: int, info: dict) -> None:
        print(f"[{i}/{n}] {info['path']} {info['label']} ({info['seconds']:.1f} s)",
              file=sys.stderr, flush=True)

    try:
        manifest = write_archive(args.out, args.n, args.seed, args.containers, progress, args.times)
    except (RecordingError, ValueError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    print(f"{args.n} recordings in {args.out}; manifest {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
