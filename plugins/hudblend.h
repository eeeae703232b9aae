/* Blending a rendered overlay onto a video frame in place: only the overlay's rectangles
 * are touched, with integer arithmetic, so a 1080p frame costs well under a millisecond. */
#ifndef CEUS_HUD_BLEND_H
#define CEUS_HUD_BLEND_H

#include <glib.h>

#include "hudrender.h"

G_BEGIN_DECLS

/* A mapped video frame: @n_planes planes of @format (1 for RGB, 3 for I420, 2 for NV12). */
typedef struct
{
  guint8 *data[3];
  gint stride[3];
  gint n_planes;
  gint width, height;
  HudFormat format;
} HudFrame;

/* Builds the planar (YUV) form of the rectangles; call after hud_render. */
void hud_overlay_prepare (HudOverlay * ov);

/* Blends @ov into @f by @f's own format (the negotiated one, never the overlay's). Returns
 * FALSE and leaves the frame untouched when they do not fit: another size, or planes missing. */
gboolean hud_blend (const HudOverlay * ov, HudFrame * f);

G_END_DECLS

#endif
