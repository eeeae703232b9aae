"""``ceustream install-plugin``: links ceustream's GStreamer plugin (``ceusgate``, ``ceushud``)
into the folder GStreamer scans by itself, so ``gst-inspect-1.0 ceushud`` and
``gst-launch-1.0 ... ceushud ...`` work in any new shell. ``make demo`` / ``make test`` run it."""

from __future__ import annotations

from . import common


def add_parser(sub) -> None:
    common.command(sub, "install-plugin", "link the GStreamer plugin where gst-launch-1.0 "
                   "finds it ($XDG_DATA_HOME/gstreamer-1.0/plugins)")


def run(args) -> int:
    from ceustream.engine.core.errors import InputError
    from ceustream.pipelines.gst import install_link, user_plugin_dir

    try:
        link = install_link()
    except OSError as e:
        raise InputError(f"{user_plugin_dir()}: cannot link the plugin there ({e.strerror})") \
            from None
    print(f"GStreamer plugin linked: {link} -> {link.resolve()}")
    return 0
