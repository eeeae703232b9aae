"""``python -m ceustream``: the same as the ``ceustream`` command (installed as
``ceustream/__main__.py``, see CMakeLists.txt)."""

import sys

from ceustream.engine.cli import main

sys.exit(main())
