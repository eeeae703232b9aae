/* Blending a rendered overlay onto a video frame in place: only the overlay's rectangles
 * are touched, with integer arithmetic, so a 1080p frame costs well under a millisecond. */
#ifndef CEUS_HUD_BLEND_H
#define CEUS_HUD_BLEND_H

#include <glib.h>

#include "hudrender.h"

G_BEGIN_DECLS

typedef struct
{
  guint8 *data[3];
  gint stride[3];
  gint width, height;
  HudFormat format;
} HudFrame;

/* Builds the planar (YUV) form of the rectangles; call after hud_render for YUV formats. */
void hud_overlay_prepare (HudOverlay * ov);

void hud_blend (const HudOverlay * ov, HudFrame * f);

G_END_DECLS

#endif
