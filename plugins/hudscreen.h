/* What the overlay learns about the scanner's screen from the frames it already sees: the
 * image areas (where pixels keep changing: the sector or the rectangle, one or two views)
 * and the static text and graphics around them. The rest of the screen is free for panels.
 *
 * In two steps, so that panels are placed well from the very first frame and do not jump:
 * - the first look (the first frame) gives a provisional screen at once (@ready): cells whose
 *   luma differs from the background are occupied, and each large connected blob of them
 *   (an image: a sector whose dark interior looks like background, a rectangle) occupies its
 *   whole bounding box as image;
 * - the motion analysis over HUD_SCREEN_SAMPLES looks (one frame in HUD_SCREEN_EVERY, a
 *   sparse grid of luma samples) then adds what moved or was drawn later (@learnt). It only
 *   ever adds occupied cells to the provisional screen, never frees one, so the panels move
 *   only where the learnt screen contradicts the provisional one.
 * Nothing is looked at after that. Plain C, no GStreamer; tested by hudcheck ("screen"). */
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
  gboolean ready;               /* cells hold a screen: the provisional one, then the learnt */
  gboolean learnt;              /* the motion analysis is done (cells final) */
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
 * 4 for a 32-bit RGB pixel's green byte). Looks at one frame in HUD_SCREEN_EVERY: the first
 * makes the provisional screen (@ready); after HUD_SCREEN_SAMPLES of them the screen is
 * learnt. Returns TRUE when the cells were (re)made: after the first look and once learnt.
 * Costs nothing once learnt. */
gboolean hud_screen_feed (HudScreen * sc, const guint8 * luma, gint stride, gint step);

/* Ends learning now from what was seen (hud_screen_feed calls it). */
void hud_screen_finish (HudScreen * sc);

/* TRUE when @a and @b are ready and their cells are the same (a layout from one is the
 * layout from the other). */
gboolean hud_screen_same_cells (const HudScreen * a, const HudScreen * b);

/* The kind of the cell holding pixel (x, y); HUD_CELL_FREE outside the screen. */
HudCell hud_screen_at (const HudScreen * sc, gint x, gint y);

G_END_DECLS

#endif
