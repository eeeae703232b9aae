"""GStreamer set-up shared by every pipeline: finds the bundled ``libgstceus.so`` (so no user
sets GST_PLUGIN_PATH), initialises once, and turns bus errors into one-line messages."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ceustream.engine.core.errors import InputError

log = logging.getLogger(__name__)

_lock = threading.Lock()
_ready = False
Gst = None  # type: ignore[assignment]
GstApp = None  # type: ignore[assignment]
GstPbutils = None  # type: ignore[assignment]

STAMP_CAPS = "timestamp/x-ceus-monotonic"


def plugin_dirs() -> list[Path]:
    """Where ceustream's own plugin may be: $CEUSTREAM_PLUGIN_DIR, the installed package's
    ``gst-plugins`` folder, and a source checkout's ``build/``."""
    import sys

    here = Path(__file__).resolve().parent
    out = []
    if os.environ.get("CEUSTREAM_PLUGIN_DIR"):
        out.append(Path(os.environ["CEUSTREAM_PLUGIN_DIR"]))
    out.append(here.parent / "gst-plugins")  # a regular install
    out += [Path(p) / "ceustream" / "gst-plugins" for p in sys.path if p]  # editable install
    out.append(here.parent / "build")  # a source checkout built with cmake
    seen, dirs = set(), []
    for p in out:
        if (p / "libgstceus.so").exists() and p.resolve() not in seen:
            seen.add(p.resolve())
            dirs.append(p)
    return dirs[:1]


def user_plugin_dir() -> Path:
    """The folder GStreamer scans by itself for a user's plugins."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "gstreamer-1.0" / "plugins"


def own_plugin() -> Path:
    """This installation's plugin file (``libgstceus.so``), resolved; InputError when it is
    not built."""
    dirs = plugin_dirs()
    if not dirs:
        raise InputError("ceustream's GStreamer plugin (libgstceus.so) is not built; reinstall "
                         "the package with the build packages from the README")
    return (dirs[0] / "libgstceus.so").resolve()


def install_link() -> tuple[Path, str | None]:
    """Links this installation's plugin into ``user_plugin_dir()``, so ``gst-inspect-1.0
    ceushud`` and ``gst-launch-1.0 ... ceushud ...`` work in any shell without
    GST_PLUGIN_PATH. There is one such link per user: it follows the installation that ran
    this last. Returns (the link, what it replaced: None, "a dangling link to P" (a removed
    virtualenv) or "the plugin of another installation, P")."""
    target = own_plugin()
    link = user_plugin_dir() / "libgstceus.so"
    link.parent.mkdir(parents=True, exist_ok=True)
    replaced = None
    if link.is_symlink() or link.exists():
        if link.is_symlink() and link.resolve() == target:
            return link, None
        old = os.readlink(link) if link.is_symlink() else str(link)
        replaced = (f"the plugin of another installation, {old}" if link.exists()
                    else f"a dangling link to {old}")
        link.unlink()
    link.symlink_to(target)
    log.info("GStreamer plugin linked: %s -> %s", link, target)
    return link, replaced


def remove_link() -> Path | None:
    """Removes the user's link when it points to this installation's plugin or nowhere (run
    before deleting a virtualenv); leaves another installation's link alone. Returns the
    removed link, or None."""
    link = user_plugin_dir() / "libgstceus.so"
    if not link.is_symlink():
        return None
    try:
        ours = link.resolve() == own_plugin()
    except InputError:
        ours = False
    if ours or not link.exists():
        link.unlink()
        log.info("GStreamer plugin link removed: %s", link)
        return link
    return None


def init() -> None:
    global _ready, Gst, GstApp, GstPbutils
    with _lock:
        if _ready:
            return
        dirs = plugin_dirs()
        if dirs:
            extra = os.pathsep.join(str(d) for d in dirs)
            old = os.environ.get("GST_PLUGIN_PATH")
            os.environ["GST_PLUGIN_PATH"] = extra + (os.pathsep + old if old else "")
        try:
            import gi

            gi.require_version("Gst", "1.0")
            gi.require_version("GstApp", "1.0")
            gi.require_version("GstPbutils", "1.0")
            gi.require_version("GstVideo", "1.0")
            from gi.repository import Gst as _Gst, GstApp as _App, GstPbutils as _Pb
        except (ImportError, ValueError) as e:
            raise InputError(f"GStreamer Python bindings missing ({e}); install the Debian "
                             "packages listed in the README") from None
        _Gst.init(None)
        if _Gst.ElementFactory.find("ceusgate") is None:
            # GStreamer was initialised before us (by another library in this process), so
            # GST_PLUGIN_PATH came too late: register the plugin file directly
            for d in dirs:
                try:
                    plugin = _Gst.Plugin.load_file(str(d / "libgstceus.so"))
                    _Gst.Registry.get().add_plugin(plugin)
                except Exception as e:  # a broken build: require() names what is missing
                    log.warning("cannot load %s: %s", d / "libgstceus.so", e)
        Gst, GstApp, GstPbutils = _Gst, _App, _Pb
        _ready = True


def require(*names: str) -> None:
    init()
    missing = [n for n in names if Gst.ElementFactory.find(n) is None]
    if missing:
        hint = ""
        if any(n.startswith("ceus") for n in missing):
            hint = (" (ceustream's native plugin was not built: reinstall with the build "
                    "packages from the README)")
        raise InputError(f"GStreamer element(s) not available: {', '.join(missing)}{hint}")


def error_line(msg) -> str:
    """A bus ERROR/WARNING message → 'element: text (debug head)'."""
    if msg.type == Gst.MessageType.ERROR:
        err, dbg = msg.parse_error()
    else:
        err, dbg = msg.parse_warning()
    src = msg.src.get_name() if msg.src else "pipeline"
    text = err.message if err else "unknown error"
    if dbg:
        first = dbg.strip().splitlines()[-1]
        if len(first) > 160:
            first = first[:157] + "..."
        text += f" ({first})"
    return f"{src}: {text}"


def ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def seconds(nanoseconds: int) -> float:
    return nanoseconds / 1e9
