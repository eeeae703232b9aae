"""Embedding ceustream in Python: score a recorded exam and follow it slot by slot.

    python examples/embed_replay.py EXAM.mp4 --roi X,Y,W,H (--t0 S | --injection S)
                                    [--config examples/config.toml]

Prints a line after every slot (``SlotScore.headline()``), then the result's headline and its
JSON (the same object as ``ceustream replay --json``) as the last line. Exit 0 for a final
result, 4 for a partial one, the CLI's codes for bad input (``CeusError.exit_code``).
"""

from __future__ import annotations

import argparse
import json
import sys

import ceustream


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("exam", help="a video file or a DICOM cine")
    ap.add_argument("--roi", required=True, help="X,Y,W,H of the lesion, in the video's pixels")
    t = ap.add_mutually_exclusive_group(required=True)
    t.add_argument("--t0", type=float, help="contrast arrival, seconds from the first frame")
    t.add_argument("--injection", type=float, help="injection time (arrival is detected)")
    ap.add_argument("--config", help="settings (TOML) over the defaults")
    args = ap.parse_args(argv)
    try:
        result = ceustream.replay_file(
            args.exam, roi=args.roi, t0=args.t0, injection=args.injection,
            config=ceustream.load_config(args.config),
            on_score=lambda s: print(f"slot {s.slot}: {s.headline()}", flush=True))
    except ceustream.CeusError as e:
        print(f"embed_replay: {e}", file=sys.stderr)
        return e.exit_code
    print(result.headline())
    print(result.disclaimer)
    print(json.dumps(result.raw))
    return 0 if result.final else 4


if __name__ == "__main__":
    sys.exit(main())
