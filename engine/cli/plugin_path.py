"""``ceustream plugin-path``: the folder of this installation's GStreamer plugin, for
``export GST_PLUGIN_PATH=$(ceustream plugin-path)`` (one virtualenv's plugin whatever the
user's link, made by ``install-plugin``, points to)."""

from __future__ import annotations

from . import common


def add_parser(sub) -> None:
    common.command(sub, "plugin-path", "print the folder of this installation's GStreamer "
                   "plugin (for GST_PLUGIN_PATH)",
                   description="print the folder of this installation's GStreamer plugin: "
                   "`export GST_PLUGIN_PATH=$(ceustream plugin-path)` makes gst-launch-1.0 use "
                   "this virtualenv's plugin whatever the user's link points to")


def run(args) -> int:
    from ceustream.pipelines.gst import own_plugin

    print(own_plugin().parent)
    return 0
