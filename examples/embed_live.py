"""Embedding the live engine in Python: a source, an exam, its scores as they come.

    python examples/embed_live.py --source URI --roi X,Y,W,H (--injection S | --t0 S)
                                  [--config examples/config.toml] [--timeout S]

e.g. the simulated scanner at 10x real time (its lesion is at 146,123,52,52 and its injection
at 6 s):

    python examples/embed_live.py --source "sim://11?speed=10&size=320x240&injection=6" \\
        --roi 146,123,52,52 --injection 6

Waits for video, starts an exam with the ROI, marks the injection (arrival is then
detected) or the arrival once the exam clock reaches it, prints a line after every slot
(``SlotScore.headline()``), then the result's headline, the disclaimer and its JSON (the
same object as ``ceustream run --json``) as the last line. Exit 0 for a final result, 4 for
a partial one, the CLI's codes for bad input (``CeusError.exit_code``), 1 on a timeout.
"""

from __future__ import annotations

import argparse
import json
import sys

import ceustream


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="any `ceustream run --source` URI")
    ap.add_argument("--roi", required=True, help="X,Y,W,H of the lesion, in the video's pixels")
    t = ap.add_mutually_exclusive_group(required=True)
    t.add_argument("--injection", type=float, help="injection time on the exam clock (s)")
    t.add_argument("--t0", type=float, help="contrast arrival on the exam clock (s)")
    ap.add_argument("--config", help="settings (TOML) over the defaults")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="give up after this many seconds without video or a score")
    args = ap.parse_args(argv)
    try:
        with ceustream.Engine({"cam": args.source}, config=args.config) as eng:
            if not eng.wait_for_video(args.timeout):
                print(f"embed_live: no video from {args.source}", file=sys.stderr)
                return 1
            exam = eng.start_exam(args.roi)
            mark = args.injection if args.injection is not None else args.t0
            eng.wait_until(mark, args.timeout)
            if args.injection is not None:
                eng.mark_injection(args.injection)
            else:
                eng.mark_arrival(args.t0)
            for s in eng.scores(exam, timeout_s=args.timeout):
                print(f"slot {s.slot}: {s.headline()}", flush=True)
            result = eng.result(exam, timeout_s=args.timeout)
    except ceustream.CeusError as e:
        print(f"embed_live: {e}", file=sys.stderr)
        return e.exit_code
    except TimeoutError as e:
        print(f"embed_live: {e}", file=sys.stderr)
        return 1
    print(result.headline())
    print(result.disclaimer)
    print(json.dumps(result.raw))
    return 0 if result.final else 4


if __name__ == "__main__":
    sys.exit(main())
