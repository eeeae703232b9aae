"""All CPU benchmarks in sequence (``make bench``); each prints its table and writes JSON to
benchmarks/results/. The paper reproduction is separate (``make paper``), as is the GPU check
(``make gpu-check``)."""

from __future__ import annotations

import sys

from . import backends, frame_cost, ingest, latency, sim_speed


def main() -> int:
    for mod, args in ((sim_speed, []), (backends, []), (frame_cost, []), (ingest, []),
                      (latency, [])):
        print(f"== {mod.__name__.rsplit('.', 1)[-1]} ==", flush=True)
        mod.main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
