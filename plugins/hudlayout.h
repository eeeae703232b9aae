/* The overlay's layout: a view (what to say), the screen (where the image and the scanner's
 * own text are) and the output size -> boxes with text, sizes and tones. No drawing: text
 * widths come from a measuring function (pango in the element, a fixed-advance one in the
 * tests), so the layout is tested without cairo (hudcheck "layout").
 *
 * Sizes come from the output height: body text has capitals of 2.04 % of it (22 px at
 * 1080 lines: 6 mm on a 24-inch 1080p monitor, readable at two metres), never under
 * HUD_CAP_FLOOR_PX; the score is the largest thing (3.2 x body). Text that does not fit its
 * width is wrapped at spaces (a word longer than the width is broken, never cut). */
#ifndef CEUS_HUD_LAYOUT_H
#define CEUS_HUD_LAYOUT_H

#include <glib.h>

#include "hudscreen.h"
#include "hudview.h"

G_BEGIN_DECLS

#define HUD_CAP_EM 0.73         /* DejaVu Sans: capital height per em */
#define HUD_CAP_FRACTION 0.0204 /* body capitals per output line: 22 px at 1080 */
#define HUD_CAP_FLOOR_PX 9.0    /* the smallest capitals drawn */
#define HUD_LINE_EM 1.2         /* line advance per em */
#define HUD_MAX_ITEMS 96
#define HUD_CANVAS_MAX 32767    /* cairo's largest surface side */
#define HUD_MIN_OVER_HEIGHT 360 /* layout=over below this: the panel cannot be legible */

typedef enum
{
  HUD_LAYOUT_AUTO = 0,          /* learn the screen; panels in free space (beside a 4:3 picture) */
  HUD_LAYOUT_BESIDE,            /* a larger canvas: the video at the left, the panels beside it */
  HUD_LAYOUT_OVER,              /* over the video in fixed corners (the disclaimer's corner chosen) */
} HudLayoutMode;

typedef struct
{
  gdouble x, y, w, h;
} HudBox;

typedef enum
{
  HUD_ITEM_BACKDROP = 0,        /* a dark box behind a group */
  HUD_ITEM_TEXT,                /* one line of text, top-left at the box */
  HUD_ITEM_TAG,                 /* one line of text on a coloured box (tone) */
  HUD_ITEM_NUMBER,              /* the score, hollow or solid */
  HUD_ITEM_FRAME,               /* the frame around a final score */
  HUD_ITEM_GAUGE,               /* the score bar with the threshold */
  HUD_ITEM_TIC,                 /* the TIC plot, with axes, units and a key */
  HUD_ITEM_SLOTS,               /* the 30 slots */
  HUD_ITEM_ROI,                 /* the ROI's corner brackets */
} HudItemKind;

typedef struct
{
  HudItemKind kind;
  HudBox box;
  gchar text[HUD_TEXT];
  gdouble px;                   /* font size (pixels per em) */
  gboolean bold;
  HudTone tone;
  gboolean hollow;
  gboolean dimmable;            /* greyed while STALE (the score, the curves, the slots) */
} HudItem;

/* Width in pixels of @text at @px pixels per em. */
typedef gdouble (*HudMeasure) (gpointer ctx, const gchar * text, gdouble px, gboolean bold);

typedef struct
{
  HudLayoutMode mode;
  gint in_w, in_h;              /* the video */
  gint out_w, out_h;            /* the output (canvas) */
  gint video_x, video_y;        /* where the video lies in the output */
  gboolean canvas;              /* the output is larger than the video */
  gboolean too_small;           /* layout=over asked at a size where text cannot be legible */
} HudGeometry;

typedef struct
{
  HudItem items[HUD_MAX_ITEMS];
  gint n;
  gdouble body_px;              /* body text size used */
  gdouble cap_px;               /* its capital height */
  HudBox panel;                 /* the union of the panel's groups */
  HudBox disclaimer;
  HudBox groups[8];             /* each placed group's box */
  gint n_groups;
  gboolean fits;                /* everything required was placed legibly */
  gboolean in_free_space;       /* placed in the learnt screen's free space */
  const gchar *where;           /* "beside", "free-space", "corners" */
} HudLayout;

/* Output size and video placement for @mode, a @in_w x @in_h video and the output size asked
 * for (0 = choose): over keeps the video's size (a larger canvas when it is under
 * HUD_MIN_OVER_HEIGHT lines: too_small); beside always widens (16:9 at least, at least
 * 480 lines, or the size asked); auto widens a picture narrower than 16:10 and keeps a
 * wide one (its free space holds the panels). */
void hud_geometry (HudGeometry * g, HudLayoutMode mode, gint in_w, gint in_h, gint ask_w,
    gint ask_h);

/* Body text size for an output @out_h lines high. */
gdouble hud_body_px (gint out_h);

/* Wraps @text into at most @max_lines lines no wider than @width; returns the line count. */
gint hud_wrap (const gchar * text, gdouble width, gdouble px, gboolean bold, HudMeasure m,
    gpointer ctx, gchar lines[][HUD_TEXT], gint max_lines);

/* Lays out @v for @g. @screen: the screen as far as known (NULL or not ready: none). */
void hud_layout (HudLayout * l, const HudView * v, const HudGeometry * g,
    const HudScreen * screen, HudCorner disclaimer, HudMeasure m, gpointer ctx);

const gchar *hud_layout_nick (HudLayoutMode mode);

G_END_DECLS

#endif
