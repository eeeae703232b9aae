/* What the overlay learns about the scanner's screen from the frames it already sees: the
 * image areas (where pixels keep changing: the sector or the rectangle, one or two views)
 * and the static text and graphics around them. The rest of the screen is free for panels.
 *
 * Sampled at a low rate (every HUD_SCREEN_EVERY-th frame, a sparse grid of luma samples)
 * over the first HUD_SCREEN_SAMPLES samples, then never again. Plain C, no GStreamer; tested
 * by hudcheck ("screen"). */
#ifndef CEUS_HUD_SCREEN_H
#define CEUS_HUD_SCREEN_H

#include <glib.h>

G_BEGIN_DECLS

#define HUD_SCREEN_MAX_COLS 160
#define HUD_SCREEN_MAX_ROWS 120
#define HUD_SCREEN_MAX_AREAS 4
#define HUD_SCREEN_SAMPLES 16   /* frames looked at */
#define HUD_SCREEN_EVERY 2      /* one frame in this many */

typedef enum
{
  HUD_CELL_FREE = 0,
  HUD_CELL_STATIC,              /* text or graphics that stay (or change only a little) */
  HUD_CELL_IMAGE,               /* inside an image area's bounding box */
} HudCell;

typedef struct
{
  gint x, y, w, h;
} HudIBox;

typedef struct
{
  gboolean learnt;
  gint width, height;           /* the video's size */
  gint cell;                    /* cell size in pixels */
  gint cols, rows;
  guint8 cells[HUD_SCREEN_MAX_ROWS][HUD_SCREEN_MAX_COLS];   /* HudCell */
  HudIBox areas[HUD_SCREEN_MAX_AREAS];  /* image areas' bounding boxes, pixels */
  gint n_areas;
  /* learning */
  gint samples, frames;
  guint8 background;            /* the screen's background luma */
  guint8 last[HUD_SCREEN_MAX_ROWS * 4][HUD_SCREEN_MAX_COLS * 4];    /* luma samples */
  guint16 changed[HUD_SCREEN_MAX_ROWS][HUD_SCREEN_MAX_COLS];        /* samples that moved */
  guint8 content[HUD_SCREEN_MAX_ROWS][HUD_SCREEN_MAX_COLS]; /* differs from the background */
} HudScreen;

/* Starts learning a @width x @height video. */
void hud_screen_init (HudScreen * sc, gint width, gint height);

/* One frame's luma: @luma at (x, y) is luma[y * stride + x * step] (step 1 for a Y plane,
 * 4 for a 32-bit RGB pixel's green byte). Looks at one frame in HUD_SCREEN_EVERY; after
 * HUD_SCREEN_SAMPLES of them the screen is learnt (TRUE is returned once, then).
 * Costs nothing once learnt. */
gboolean hud_screen_feed (HudScreen * sc, const guint8 * luma, gint stride, gint step);

/* Ends learning now from what was seen (hud_screen_feed calls it). */
void hud_screen_finish (HudScreen * sc);

/* The kind of the cell holding pixel (x, y); HUD_CELL_FREE outside the screen. */
HudCell hud_screen_at (const HudScreen * sc, gint x, gint y);

G_END_DECLS

#endif
