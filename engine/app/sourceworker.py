"""The source worker with the simulator (``python -m ceustream.engine.app.sourceworker``):
``pipelines.worker`` runs the source's pipeline; a ``sim://`` source's frames come from the
simulated scanner of ``models``, which the pipelines layer may not import, so the live engine
starts this entry point instead for such sources."""

from __future__ import annotations

import logging
import sys

from ceustream.pipelines import worker

log = logging.getLogger(__name__)


def make_generator(uri: str):
    from ceustream.models.simulator.scanner import SimScanner

    return SimScanner(uri)


if __name__ == "__main__":
    sys.exit(worker.main(make_generator=make_generator))
