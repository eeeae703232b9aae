/* Drawing the bedside overlay (cairo + pango) off the streaming thread, into patches that
 * the streaming thread only has to blend. */
#ifndef CEUS_HUD_RENDER_H
#define CEUS_HUD_RENDER_H

#include <cairo.h>
#include <glib.h>

#include "hudstate.h"

G_BEGIN_DECLS

#define HUD_MAX_RECTS 24

typedef struct
{
  gint x, y, w, h;
} HudRect;

typedef enum
{
  HUD_FMT_BGRX = 0,             /* also BGRA */
  HUD_FMT_RGBX,                 /* also RGBA */
  HUD_FMT_I420,
  HUD_FMT_NV12,
} HudFormat;

/* One rendered overlay, shared (ref-counted) between the renderer and the video thread. */
typedef struct
{
  gint ref;
  gint width, height;
  HudFormat format;
  guint64 seq;                  /* sequence number of the newest message it shows */
  cairo_surface_t *surface;     /* ARGB32, premultiplied, full frame */
  HudRect rects[HUD_MAX_RECTS];
  gint n_rects;
  /* planar versions of the rects for YUV formats: Y', A at full resolution and U', V', A at
   * half resolution, premultiplied; offsets into @planes per rect */
  guint8 *planes;
  gsize plane_offset[HUD_MAX_RECTS];
} HudOverlay;

typedef struct
{
  gdouble stale_after_s;        /* no message for this long = STALE */
  const gchar *font;            /* family, e.g. "Sans" */
  gboolean show_roi;
} HudStyle;

HudOverlay *hud_overlay_new (gint width, gint height, HudFormat format);
HudOverlay *hud_overlay_ref (HudOverlay * ov);
void hud_overlay_unref (HudOverlay * ov);

/* What the text and marks depend on besides the state: a change means a re-render. */
gchar *hud_render_key (const HudState * s, const HudStyle * style, gint64 now_us,
    gdouble now_wall);

void hud_render (HudOverlay * ov, const HudState * s, const HudStyle * style,
    gint64 now_us, gdouble now_wall, gboolean have_state);

G_END_DECLS

#endif
