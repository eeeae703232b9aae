/* Drawing the bedside overlay (cairo + pango) off the streaming thread, into patches that
 * the streaming thread only has to blend. */
#ifndef CEUS_HUD_RENDER_H
#define CEUS_HUD_RENDER_H

#include <cairo.h>
#include <glib.h>

#include "hudstate.h"

G_BEGIN_DECLS

#define HUD_MAX_RECTS 24
/* cairo image surfaces hold at most 32767 pixels a side */
#define HUD_MAX_DIM 32767

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

typedef enum
{
  HUD_CORNER_BOTTOM_LEFT = 0,
  HUD_CORNER_BOTTOM_RIGHT,
  HUD_CORNER_TOP_LEFT,
  HUD_CORNER_TOP_RIGHT,
  HUD_CORNER_BOTTOM_CENTER,
} HudCorner;

/* One rendered overlay, shared (ref-counted) between the renderer and the video thread. It
 * holds the drawing both as premultiplied ARGB (for RGB frames) and as planar Y'/U'/V' + alpha
 * (for I420/NV12), so any negotiated format of its size can be blended. */
typedef struct
{
  gint ref;
  gint width, height;
  guint64 seq;                  /* sequence number of the newest message it shows */
  cairo_surface_t *surface;     /* ARGB32, premultiplied, full frame */
  HudRect rects[HUD_MAX_RECTS];
  gint n_rects;
  /* planar versions of the rects: Y', A at full resolution and U', V', A at half resolution,
   * premultiplied; offsets into @planes per rect (hud_overlay_prepare) */
  guint8 *planes;
  gsize plane_offset[HUD_MAX_RECTS];
  gchar *shown;                 /* JSON: what the overlay says, in words (the "shown" property) */
} HudOverlay;

typedef struct
{
  gdouble stale_after_s;        /* no message for this long while an exam runs = STALE */
  const gchar *font;            /* family, e.g. "Sans" */
  gboolean show_roi;
  HudCorner disclaimer;         /* where the "trained on simulated data" block goes */
} HudStyle;

/* NULL when cairo cannot hold a frame of this size (over HUD_MAX_DIM a side, or no memory). */
HudOverlay *hud_overlay_new (gint width, gint height);
HudOverlay *hud_overlay_ref (HudOverlay * ov);
void hud_overlay_unref (HudOverlay * ov);

/* Seconds left to the next slot as shown now (>= 0), NAN when there is no countdown: the
 * status's next_slot_in_s minus the stream time passed since it arrived (speed, or 1 when
 * unknown). */
gdouble hud_countdown (const HudState * s, gint64 now_us);

/* TRUE while an exam runs and nothing arrived for stale_after_s (never after a normal end). */
gboolean hud_is_stale (const HudState * s, const HudStyle * style, gint64 now_us,
    gboolean have_state);

/* What the picture depends on besides the state: a change means a re-render. */
gchar *hud_render_key (const HudState * s, const HudStyle * style, gint64 now_us,
    gboolean have_state);

void hud_render (HudOverlay * ov, const HudState * s, const HudStyle * style, gint64 now_us,
    gboolean have_state);

const gchar *hud_corner_nick (HudCorner c);

G_END_DECLS

#endif
