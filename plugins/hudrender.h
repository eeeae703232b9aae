/* Drawing the bedside overlay (cairo + pango) off the streaming thread, into patches that
 * the streaming thread only has to blend. */
#ifndef CEUS_HUD_RENDER_H
#define CEUS_HUD_RENDER_H

#include <cairo.h>
#include <glib.h>

#include "hudlayout.h"
#include "hudstate.h"
#include "hudview.h"

G_BEGIN_DECLS

#define HUD_MAX_RECTS 64
/* cairo image surfaces hold at most 32767 pixels a side */
#define HUD_MAX_DIM 32767

typedef struct
{
  gint x, y, w, h;
} HudRect;

/* @n pixels from (@x, @y) of a rectangle: copied when @opaque, else blended; an opaque run
 * of one colour (@fill: a tag's background) is written without reading its source */
typedef struct
{
  gint y, x, n, opaque;
  gint fill;
} HudRun;

typedef enum
{
  HUD_FMT_BGRX = 0,             /* also BGRA */
  HUD_FMT_RGBX,                 /* also RGBA */
  HUD_FMT_I420,
  HUD_FMT_NV12,
} HudFormat;

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
  /* what the video thread does per frame, found once per render (hud_overlay_prepare): runs
   * of pixels in rect coordinates, each copied (opaque) or blended; the transparent space
   * between them (between lines and letters) is never read. @runs at full resolution (RGB
   * and Y'), @cruns at half resolution (U', V') */
  HudRun *runs, *cruns;
  gsize run_offset[HUD_MAX_RECTS], n_runs[HUD_MAX_RECTS];
  gsize crun_offset[HUD_MAX_RECTS], n_cruns[HUD_MAX_RECTS];
  gchar *shown;                 /* JSON: what the overlay says, in words (the "shown" property) */
} HudOverlay;

/* A new overlay is clear; hud_render may be called again on one nobody else holds (it
 * clears what it drew before). NULL when cairo cannot hold a frame of this size (over HUD_MAX_DIM a side, or no memory). */
HudOverlay *hud_overlay_new (gint width, gint height);
HudOverlay *hud_overlay_ref (HudOverlay * ov);
void hud_overlay_unref (HudOverlay * ov);

/* Paints the overlay for @s: the view (hudview.h), laid out for @g and @screen
 * (hudlayout.h), drawn with cairo/pango; records the rectangles to blend and the "shown"
 * JSON. Returns FALSE when the layout could not hold everything required legibly. */
gboolean hud_render (HudOverlay * ov, const HudState * s, const HudStyle * style,
    const HudGeometry * g, const HudScreen * screen, gint64 now_us, gboolean have_state);

/* The screen the overlay was laid out for is now learnt, with the same cells (the layout is
 * the same): only its "shown" JSON changes (screen_learnt true). Call under the lock that
 * guards "shown". */
void hud_overlay_mark_learnt (HudOverlay * ov);

G_END_DECLS

#endif
