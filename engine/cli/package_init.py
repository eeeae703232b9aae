"""ceustream: streaming CEUS inference (HCC vs non-HCC) over GStreamer and ZeroMQ.

Installed as ``ceustream/__init__.py`` (see CMakeLists.txt); the code lives in the
subpackages ``ceustream.engine``, ``ceustream.pipelines``, ``ceustream.models`` and
``ceustream.benchmarks``.
"""
