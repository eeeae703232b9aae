/* Learning the scanner's screen from its frames (see hudscreen.h). */
#include "hudscreen.h"

#include <string.h>

#define SPC 4                   /* samples per cell, each way */
#define CONTENT_DELTA 28        /* luma away from the background: text, graphics, image */
#define CHANGE_DELTA 14         /* luma change between two looks: moving */
#define MIN_CHANGES 3           /* a cell that moved this often is moving */
#define AREA_MIN_FRACTION 0.02  /* a moving patch smaller than this is changing text */

void
hud_screen_init (HudScreen * sc, gint width, gint height)
{
  gint cell;
  memset (sc, 0, sizeof *sc);
  sc->width = MAX (width, 1);
  sc->height = MAX (height, 1);
  cell = MAX (8, MAX ((sc->width + HUD_SCREEN_MAX_COLS - 1) / HUD_SCREEN_MAX_COLS,
          (sc->height + HUD_SCREEN_MAX_ROWS - 1) / HUD_SCREEN_MAX_ROWS));
  sc->cell = cell;
  sc->cols = (sc->width + cell - 1) / cell;
  sc->rows = (sc->height + cell - 1) / cell;
}

static guint8
mode_of (const guint32 hist[256])
{
  guint best = 0;
  for (guint i = 1; i < 256; i++)
    if (hist[i] > hist[best])
      best = i;
  return (guint8) best;
}

static void provisional (HudScreen * sc);

gboolean
hud_screen_feed (HudScreen * sc, const guint8 * luma, gint stride, gint step)
{
  const gint n = SPC;
  if (sc->learnt || !luma)
    return FALSE;
  if (sc->frames++ % HUD_SCREEN_EVERY)
    return FALSE;
  if (sc->samples == 0) {
    guint32 hist[256] = { 0 };
    for (gint r = 0; r < sc->rows * n; r++) {
      gint y = MIN ((r * sc->cell) / n + sc->cell / (2 * n), sc->height - 1);
      for (gint c = 0; c < sc->cols * n; c++) {
        gint x = MIN ((c * sc->cell) / n + sc->cell / (2 * n), sc->width - 1);
        hist[luma[(gsize) y * stride + (gsize) x * step]]++;
      }
    }
    sc->background = mode_of (hist);
  }
  for (gint r = 0; r < sc->rows * n; r++) {
    gint y = MIN ((r * sc->cell) / n + sc->cell / (2 * n), sc->height - 1);
    const guint8 *row = luma + (gsize) y * stride;
    for (gint c = 0; c < sc->cols * n; c++) {
      gint x = MIN ((c * sc->cell) / n + sc->cell / (2 * n), sc->width - 1);
      guint8 v = row[(gsize) x * step];
      if (ABS ((gint) v - sc->background) > CONTENT_DELTA)
        sc->content[r / n][c / n] = 1;
      if (sc->samples > 0 && ABS ((gint) v - sc->last[r][c]) > CHANGE_DELTA
          && sc->changed[r / n][c / n] < G_MAXUINT16)
        sc->changed[r / n][c / n]++;
      sc->last[r][c] = v;
    }
  }
  if (++sc->samples >= HUD_SCREEN_SAMPLES) {
    hud_screen_finish (sc);
    return TRUE;
  }
  if (sc->samples == 1) {
    provisional (sc);
    return TRUE;
  }
  return FALSE;
}

/* connected moving cells (8-neighbours, bridging one-cell gaps); returns the patch's box in
 * cells */
static void
flood (HudScreen * sc, guint8 moving[HUD_SCREEN_MAX_ROWS][HUD_SCREEN_MAX_COLS], gint r0,
    gint c0, gint * stack, gint box[4])
{
  gint top = 0;
  box[0] = box[2] = c0;
  box[1] = box[3] = r0;
  moving[r0][c0] = 2;
  stack[top++] = r0 * HUD_SCREEN_MAX_COLS + c0;
  while (top > 0) {
    gint p = stack[--top], r = p / HUD_SCREEN_MAX_COLS, c = p % HUD_SCREEN_MAX_COLS;
    box[0] = MIN (box[0], c);
    box[2] = MAX (box[2], c);
    box[1] = MIN (box[1], r);
    box[3] = MAX (box[3], r);
    for (gint dr = -2; dr <= 2; dr++)
      for (gint dc = -2; dc <= 2; dc++) {
        gint rr = r + dr, cc = c + dc;
        if (rr < 0 || cc < 0 || rr >= sc->rows || cc >= sc->cols || moving[rr][cc] != 1)
          continue;
        moving[rr][cc] = 2;
        stack[top++] = rr * HUD_SCREEN_MAX_COLS + cc;
      }
  }
}

/* The image areas: the connected patches of @mask (1 = candidate; used up) whose bounding
 * box is big enough, overlapping ones merged; their cells become image, the areas are kept in
 * pixels. */
static void
find_areas (HudScreen * sc, guint8 mask[HUD_SCREEN_MAX_ROWS][HUD_SCREEN_MAX_COLS])
{
  gint *stack = g_new (gint, HUD_SCREEN_MAX_ROWS * HUD_SCREEN_MAX_COLS);
  gint boxes[64][4], nb = 0;
  const gdouble min_area = AREA_MIN_FRACTION * sc->cols * sc->rows;

  for (gint r = 0; r < sc->rows; r++)
    for (gint c = 0; c < sc->cols; c++)
      if (mask[r][c] == 1 && nb < (gint) G_N_ELEMENTS (boxes))
        flood (sc, mask, r, c, stack, boxes[nb++]);
  g_free (stack);
  sc->n_areas = 0;
  for (gint i = 0; i < nb; i++) {
    gint *b = boxes[i];
    gdouble area = (gdouble) (b[2] - b[0] + 1) * (b[3] - b[1] + 1);
    if (area < min_area)
      continue;
    for (gint j = 0; j < sc->n_areas; j++) {
      HudIBox *a = &sc->areas[j];
      gint ax0 = a->x, ay0 = a->y, ax1 = a->x + a->w - 1, ay1 = a->y + a->h - 1;
      if (b[0] <= ax1 + 1 && b[2] >= ax0 - 1 && b[1] <= ay1 + 1 && b[3] >= ay0 - 1) {
        b[0] = MIN (b[0], ax0);
        b[1] = MIN (b[1], ay0);
        b[2] = MAX (b[2], ax1);
        b[3] = MAX (b[3], ay1);
        sc->areas[j] = sc->areas[--sc->n_areas];
        j = -1;                 /* merged: look again */
      }
    }
    if (sc->n_areas < HUD_SCREEN_MAX_AREAS)
      sc->areas[sc->n_areas++] = (HudIBox) {
      b[0], b[1], b[2] - b[0] + 1, b[3] - b[1] + 1};
  }
  for (gint j = 0; j < sc->n_areas; j++) {
    HudIBox *a = &sc->areas[j];
    for (gint r = a->y; r < a->y + a->h; r++)
      for (gint c = a->x; c < a->x + a->w; c++)
        sc->cells[r][c] = HUD_CELL_IMAGE;
    /* to pixels, clipped to the screen */
    a->x *= sc->cell;
    a->y *= sc->cell;
    a->w = MIN (a->w * sc->cell, sc->width - a->x);
    a->h = MIN (a->h * sc->cell, sc->height - a->y);
  }
}

/* The first look: what differs from the background is occupied; a large connected blob of it
 * is an image, its whole bounding box (a sector's dark interior looks like background). */
static void
provisional (HudScreen * sc)
{
  guint8 (*mask)[HUD_SCREEN_MAX_COLS] = g_malloc0 (HUD_SCREEN_MAX_ROWS * HUD_SCREEN_MAX_COLS);
  for (gint r = 0; r < sc->rows; r++)
    for (gint c = 0; c < sc->cols; c++) {
      sc->cells[r][c] = sc->content[r][c] ? HUD_CELL_STATIC : HUD_CELL_FREE;
      mask[r][c] = sc->content[r][c];
    }
  find_areas (sc, mask);
  g_free (mask);
  sc->ready = TRUE;
}

void
hud_screen_finish (HudScreen * sc)
{
  guint8 (*mask)[HUD_SCREEN_MAX_COLS];
  guint8 (*prev)[HUD_SCREEN_MAX_COLS] = NULL;
  HudIBox prev_areas[HUD_SCREEN_MAX_AREAS];
  gint prev_n = 0;

  if (sc->learnt)
    return;
  if (sc->ready) {
    prev = g_memdup2 (sc->cells, sizeof sc->cells);
    memcpy (prev_areas, sc->areas, sizeof prev_areas);
    prev_n = sc->n_areas;
  }
  /* cells: static where anything was ever drawn or moved, image inside a moving patch's box */
  mask = g_malloc0 (HUD_SCREEN_MAX_ROWS * HUD_SCREEN_MAX_COLS);
  for (gint r = 0; r < sc->rows; r++)
    for (gint c = 0; c < sc->cols; c++) {
      sc->cells[r][c] = (sc->content[r][c] || sc->changed[r][c]) ? HUD_CELL_STATIC
          : HUD_CELL_FREE;
      mask[r][c] = sc->changed[r][c] >= MIN_CHANGES;
    }
  find_areas (sc, mask);
  g_free (mask);
  if (prev) {
    /* the learnt screen only adds to the provisional one: a cell occupied at the first look
     * stays occupied (image over static over free) */
    for (gint r = 0; r < sc->rows; r++)
      for (gint c = 0; c < sc->cols; c++)
        sc->cells[r][c] = MAX (sc->cells[r][c], prev[r][c]);
    if (sc->n_areas == 0) {
      memcpy (sc->areas, prev_areas, sizeof prev_areas);
      sc->n_areas = prev_n;
    }
    g_free (prev);
  }
  sc->ready = TRUE;
  sc->learnt = TRUE;
}

gboolean
hud_screen_same_cells (const HudScreen * a, const HudScreen * b)
{
  if (!a->ready || !b->ready || a->rows != b->rows || a->cols != b->cols
      || a->cell != b->cell || a->width != b->width || a->height != b->height)
    return FALSE;
  for (gint r = 0; r < a->rows; r++)
    if (memcmp (a->cells[r], b->cells[r], a->cols) != 0)
      return FALSE;
  return TRUE;
}

HudCell
hud_screen_at (const HudScreen * sc, gint x, gint y)
{
  if (!sc->ready || x < 0 || y < 0 || x >= sc->width || y >= sc->height)
    return HUD_CELL_FREE;
  return sc->cells[y / sc->cell][x / sc->cell];
}
