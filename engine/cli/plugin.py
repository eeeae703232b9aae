"""``ceustream install-plugin``: links ceustream's GStreamer plugin (``ceusgate``, ``ceushud``)
into the folder GStreamer scans by itself, so ``gst-inspect-1.0 ceushud`` and
``gst-launch-1.0 ... ceushud ...`` work in any new shell. ``make demo`` / ``make test`` run it.

There is one such link per user; it follows the installation (virtualenv) that ran
``install-plugin`` last, and says so when it replaces another one's. Several virtualenvs side
by side: ``export GST_PLUGIN_PATH=$(ceustream plugin-path)`` in each (GStreamer takes
GST_PLUGIN_PATH before the user's folder); ``install-plugin --remove`` before deleting one.
``ceustream`` itself never needs the link: it finds its own plugin."""

from __future__ import annotations

import logging

from . import common

log = logging.getLogger(__name__)

DESCRIPTION = """link the GStreamer plugin (ceusgate, ceushud) into the folder GStreamer scans by
itself ($XDG_DATA_HOME/gstreamer-1.0/plugins), so gst-inspect-1.0 and gst-launch-1.0 find it in
any shell. There is one such link per user: it follows the installation (virtualenv) that ran
install-plugin last, and says so when it replaces another one's link.

several virtualenvs side by side: `export GST_PLUGIN_PATH=$(ceustream plugin-path)` in each
(GStreamer takes GST_PLUGIN_PATH before the user's folder); `ceustream install-plugin --remove`
before deleting one. ceustream itself never needs the link: it finds its own plugin."""


def add_parser(sub) -> None:
    p = common.command(sub, "install-plugin", "link the GStreamer plugin where gst-launch-1.0 "
                       "finds it ($XDG_DATA_HOME/gstreamer-1.0/plugins)",
                       description=DESCRIPTION)
    p.add_argument("--remove", action="store_true", help="remove the link if it is this "
                   "installation's (or dangling); another installation's link is left alone")


def run(args) -> int:
    from ceustream.engine.core.errors import InputError
    from ceustream.pipelines.gst import install_link, remove_link, user_plugin_dir

    if args.remove:
        gone = remove_link()
        print(f"GStreamer plugin link removed: {gone}" if gone else
              f"no link of this installation in {user_plugin_dir()}: nothing removed")
        return 0
    try:
        link, replaced = install_link()
    except OSError as e:
        raise InputError(f"{user_plugin_dir()}: cannot link the plugin there ({e.strerror})") \
            from None
    if replaced:
        log.warning("install-plugin: replaced %s; to keep several virtualenvs apart use "
                    "`export GST_PLUGIN_PATH=$(ceustream plugin-path)` in each", replaced)
    print(f"GStreamer plugin linked: {link} -> {link.resolve()}")
    return 0
