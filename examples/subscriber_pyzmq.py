"""A bedside client in plain pyzmq (no ceustream import): prints one line per score.

    python examples/subscriber_pyzmq.py [--endpoint tcp://127.0.0.1:5556] [--count N]

Messages are ``[topic, JSON]`` (schema v1, ``ceustream schema score``). As the compatibility
policy asks, fields this client does not know are ignored, and fields added later (such as
``domain``) are read only when present. When the model is outside its domain (label
"indeterminate", flag "out_of_distribution" or domain.state "out") the TIC reading is shown
instead of the network's score (a score leaves before the clip's analysis, so its reading is
the one before it; the status that follows carries the new one). The model is trained on
simulated data: the disclaimer is printed with every line.
"""

from __future__ import annotations

import argparse
import json
import sys

import zmq


def line(msg: dict) -> str:
    """One score message as a line for a screen."""
    slots = f"{msg['slots_filled']}/{msg['slots_total']}"
    domain = msg.get("domain") or {}
    outside = msg.get("label") == "indeterminate" or \
        "out_of_distribution" in msg.get("flags", []) or domain.get("state") == "out"
    if outside:
        tic = msg.get("features") or {}
        head = f"outside model domain: TIC {tic.get('category')} ({tic.get('summary', '')})"
    else:
        state = msg["label"] if msg["final"] and msg.get("label") else "provisional"
        head = f"P(HCC) {msg['score']:.3f} {state}"
    return f"{msg['exam']} slot {slots}: {head} | {msg.get('disclaimer', '')}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5556", help="the engine's PUB socket")
    ap.add_argument("--count", type=int, default=0, help="exit after this many scores (0: never)")
    ap.add_argument("--timeout", type=float, default=0, help="exit 1 after this many seconds "
                    "without a message (0: wait for ever)")
    args = ap.parse_args(argv)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"score.")
    sock.connect(args.endpoint)
    seen = 0
    try:
        while args.count == 0 or seen < args.count:
            if args.timeout and not sock.poll(int(args.timeout * 1000)):
                print(f"no score within {args.timeout:g} s", file=sys.stderr)
                return 1
            frames = sock.recv_multipart()
            try:
                msg = json.loads(frames[1])
            except (IndexError, ValueError):
                continue  # not a v1 message
            if not isinstance(msg, dict) or msg.get("v") != 1 or msg.get("type") != "score":
                continue
            print(line(msg), flush=True)
            seen += 1
    finally:
        sock.close(0)
        ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
