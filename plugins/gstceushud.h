#ifndef GST_CEUS_HUD_H
#define GST_CEUS_HUD_H

#include <gst/gst.h>
#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_CEUS_HUD (gst_ceus_hud_get_type ())
G_DECLARE_FINAL_TYPE (GstCeusHud, gst_ceus_hud, GST, CEUS_HUD, GstVideoFilter)
GST_ELEMENT_REGISTER_DECLARE (ceushud);

G_END_DECLS

#endif
