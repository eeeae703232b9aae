/* The ceustream GStreamer plugin: the slot gate (engine side) and the bedside overlay. */
#include <gst/gst.h>

#include "gstceusgate.h"
#ifdef CEUS_HAVE_HUD
#include "gstceushud.h"
#endif

#ifndef PACKAGE
#define PACKAGE "ceustream"
#endif
#ifndef CEUS_VERSION
#define CEUS_VERSION "0.1.0"
#endif

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ok = GST_ELEMENT_REGISTER (ceusgate, plugin);
#ifdef CEUS_HAVE_HUD
  ok &= GST_ELEMENT_REGISTER (ceushud, plugin);
#endif
  return ok;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, ceus,
    "ceustream: CEUS slot gate and bedside overlay", plugin_init, CEUS_VERSION,
    "MIT/X11", "ceustream", "https://github.com/ceustream/ceustream")
