/* The overlay's layout (see hudlayout.h): boxes, no drawing. */
#include "hudlayout.h"

#include <math.h>
#include <string.h>

enum
{
  G_SCORE = 0, G_STATUS, G_TIC, G_SLOTS, G_INFO, G_DISCLAIMER, N_GROUPS
};

/* optional groups dropped, in this order, before the text gets smaller */
static const gint drop_order[] = { G_INFO, G_SLOTS, G_TIC };

const gchar *
hud_layout_nick (HudLayoutMode mode)
{
  switch (mode) {
    case HUD_LAYOUT_BESIDE:
      return "beside";
    case HUD_LAYOUT_OVER:
      return "over";
    default:
      return "auto";
  }
}

static gint
even_up (gdouble v)
{
  gint i = (gint) ceil (v);
  return i + (i & 1);
}

void
hud_geometry (HudGeometry * g, HudLayoutMode mode, gint in_w, gint in_h, gint ask_w, gint ask_h)
{
  gboolean asked = ask_w >= in_w && ask_h >= in_h && ask_w > 0 && ask_h > 0;
  gboolean wide = (gint64) in_w * 10 >= (gint64) in_h * 16;
  memset (g, 0, sizeof *g);
  g->mode = mode;
  g->in_w = in_w;
  g->in_h = in_h;
  g->out_w = in_w;
  g->out_h = in_h;
  if (mode == HUD_LAYOUT_OVER && in_h < HUD_MIN_OVER_HEIGHT)
    g->too_small = TRUE;
  if (mode == HUD_LAYOUT_BESIDE || g->too_small || (mode == HUD_LAYOUT_AUTO && (asked || !wide
              || in_h < HUD_MIN_OVER_HEIGHT))) {
    g->canvas = TRUE;
    if (asked && (ask_w > in_w || ask_h > in_h) && ask_w - in_w >= 0.3 * ask_h) {
      g->out_w = ask_w;
      g->out_h = ask_h;
    } else {
      g->out_h = even_up (MAX (in_h, 480));
      g->out_w = even_up (MAX (g->out_h * 16.0 / 9.0, in_w + 0.42 * g->out_h));
    }
    g->video_x = 0;
    g->video_y = ((g->out_h - in_h) / 2) & ~1;
  }
  if (g->out_w > HUD_CANVAS_MAX || g->out_h > HUD_CANVAS_MAX) {
    /* no canvas can be drawn that large: the video as it is */
    g->out_w = in_w;
    g->out_h = in_h;
    g->canvas = FALSE;
    g->video_y = 0;
  }
}

gdouble
hud_body_px (gint out_h)
{
  return MAX (HUD_CAP_FRACTION * out_h, HUD_CAP_FLOOR_PX) / HUD_CAP_EM;
}

static gdouble
floor_px (void)
{
  return HUD_CAP_FLOOR_PX / HUD_CAP_EM;
}

/* the byte length of the longest prefix of @word (at most @len bytes) that fits @width; at
 * least one character */
static gint
fit_prefix (const gchar * word, gint len, gdouble width, gdouble px, gboolean bold,
    HudMeasure m, gpointer ctx)
{
  gint best = (gint) (g_utf8_next_char (word) - word);
  gchar buf[HUD_TEXT];
  for (const gchar * p = g_utf8_next_char (word); p - word <= len;
      p = g_utf8_next_char (p)) {
    gint n = (gint) (p - word);
    if (n >= (gint) sizeof buf)
      break;
    memcpy (buf, word, n);
    buf[n] = 0;
    if (m (ctx, buf, px, bold) > width)
      break;
    best = n;
    if (p - word == len)
      break;
  }
  return MIN (best, len);
}

gint
hud_wrap (const gchar * text, gdouble width, gdouble px, gboolean bold, HudMeasure m,
    gpointer ctx, gchar lines[][HUD_TEXT], gint max_lines)
{
  gint n = 0;
  gchar cur[HUD_TEXT] = "";
  const gchar *p = text;
  while (*p && n < max_lines) {
    const gchar *end;
    gint len;
    gchar cand[2 * HUD_TEXT];
    while (*p == ' ')
      p++;
    if (!*p)
      break;
    end = strchr (p, ' ');
    len = end ? (gint) (end - p) : (gint) strlen (p);
    len = MIN (len, HUD_TEXT - 1);
    g_snprintf (cand, sizeof cand, "%s%s%.*s", cur, cur[0] ? " " : "", len, p);
    if (strlen (cand) < HUD_TEXT && m (ctx, cand, px, bold) <= width) {
      g_strlcpy (cur, cand, sizeof cur);
      p += len;
      continue;
    }
    if (cur[0]) {               /* the word starts the next line */
      g_strlcpy (lines[n++], cur, HUD_TEXT);
      cur[0] = 0;
      continue;
    }
    /* one word wider than the line: broken where it must be, never cut */
    {
      gint k = fit_prefix (p, len, width, px, bold, m, ctx);
      memcpy (cur, p, k);
      cur[k] = 0;
      p += k;
      if (k < len) {
        g_strlcpy (lines[n++], cur, HUD_TEXT);
        cur[0] = 0;
      }
    }
  }
  if (cur[0] && n < max_lines)
    g_strlcpy (lines[n++], cur, HUD_TEXT);
  return n;
}

typedef struct
{
  HudLayout *l;
  const HudView *v;
  HudMeasure m;
  gpointer ctx;
  gdouble b;                    /* body px */
  gdouble out_w;                /* the output's width */
  gboolean overflow;            /* an item did not fit HUD_MAX_ITEMS or a wrap was cut */
  gboolean dimmable;
  gboolean backdrops;           /* dark boxes behind the groups (over the video only) */
} Ctx;

static HudItem *
add (Ctx * c, HudItemKind kind, gdouble x, gdouble y, gdouble w, gdouble h)
{
  HudItem *it;
  if (c->l->n >= HUD_MAX_ITEMS) {
    c->overflow = TRUE;
    return NULL;
  }
  it = &c->l->items[c->l->n++];
  memset (it, 0, sizeof *it);
  it->kind = kind;
  it->dimmable = c->dimmable;
  it->box = (HudBox) {
  x, y, w, h};
  return it;
}

/* wrapped lines of text (or tags) at (x, y) in @w; returns the height */
static gdouble
lines_of (Ctx * c, const gchar * text, gdouble x, gdouble y, gdouble w, gdouble px,
    gboolean bold, HudTone tone, gboolean tag)
{
  gchar lines[8][HUD_TEXT];
  gdouble padx = tag ? 0.4 * px : 0, lh = px * HUD_LINE_EM, h = 0;
  gint n = hud_wrap (text, w - 2 * padx, px, bold, c->m, c->ctx, lines, 8);
  gsize total = 0;
  for (gint i = 0; i < n; i++)
    total += strlen (lines[i]) + 1;
  if (total < strlen (text))
    c->overflow = TRUE;         /* more than 8 lines: never shown cut */
  for (gint i = 0; i < n; i++) {
    gdouble tw = c->m (c->ctx, lines[i], px, bold);
    HudItem *it = add (c, tag ? HUD_ITEM_TAG : HUD_ITEM_TEXT, x, y + h, tw + 2 * padx, lh);
    if (it) {
      g_strlcpy (it->text, lines[i], sizeof it->text);
      it->px = px;
      it->bold = bold;
      it->tone = tone;
    }
    h += lh;
  }
  return h;
}

static gdouble
small_px (Ctx * c)
{
  return MAX (0.8 * c->b, floor_px ());
}

/* one group at (x, y), @w wide; returns its height (0: nothing to show) */
static gdouble
group (Ctx * c, gint g, gdouble x, gdouble y, gdouble w)
{
  const HudView *v = c->v;
  const gdouble b = c->b, pad = 0.45 * b, iw = w - 2 * pad, ix = x + pad;
  gdouble cy = y + pad;
  gint first = c->l->n;
  HudItem *bg;

  c->dimmable = g == G_SCORE || g == G_TIC || g == G_SLOTS;
  bg = c->backdrops ? add (c, HUD_ITEM_BACKDROP, x, y, w, 0) : NULL;

  switch (g) {
    case G_SCORE:{
      gdouble tw = iw;
      if (v->cpu) {
        gdouble sp = small_px (c), cw = c->m (c->ctx, "CPU", sp, TRUE) + 0.8 * sp;
        HudItem *it = add (c, HUD_ITEM_TAG, ix + iw - cw, cy, cw, sp * HUD_LINE_EM);
        if (it) {
          g_strlcpy (it->text, "CPU", sizeof it->text);
          it->px = sp;
          it->bold = TRUE;
          it->tone = HUD_TONE_NOTE;
        }
        tw = iw - cw - 0.4 * b;
      }
      cy += lines_of (c, v->title, ix, cy, tw, b, v->kind == HUD_KIND_FINAL
          || v->kind == HUD_KIND_NONE, HUD_TONE_TEXT, FALSE) + 0.15 * b;
      if (v->outside) {
        cy += lines_of (c, v->headline, ix, cy, iw, 1.5 * b, TRUE, HUD_TONE_CAUTION, TRUE);
        if (v->label.text[0])
          cy += 0.2 * b + lines_of (c, v->label.text, ix, cy + 0.2 * b, iw, 1.8 * b, TRUE,
              v->label.tone, FALSE);
        if (v->summary[0])
          cy += lines_of (c, v->summary, ix, cy, iw, b, FALSE, HUD_TONE_TEXT, FALSE);
        cy += lines_of (c, v->detail.text, ix, cy, iw, small_px (c), FALSE, HUD_TONE_MUTED,
            FALSE);
        if (v->domain_words[0])
          cy += lines_of (c, v->domain_words, ix, cy, iw, small_px (c), FALSE,
              HUD_TONE_MUTED, FALSE);
      } else {
        gdouble px = 3.2 * b, nw = c->m (c->ctx, v->headline, px, TRUE), nh;
        gdouble side_px = v->label.text[0] ? 2.0 * b : 1.3 * b;
        const HudWords *side = v->label.text[0] ? &v->label : &v->detail;
        gdouble fy = cy;
        if (nw > iw - 0.3 * b) {
          px *= (iw - 0.3 * b) / nw;
          nw = iw - 0.3 * b;
        }
        nh = px * 1.1;
        HudItem *it = add (c, HUD_ITEM_NUMBER, ix + 0.15 * b, cy, nw, nh);
        if (it) {
          g_strlcpy (it->text, v->headline, sizeof it->text);
          it->px = px;
          it->bold = TRUE;
          it->hollow = v->hollow;
          it->tone = v->hollow ? HUD_TONE_MUTED : HUD_TONE_TEXT;
        }
        cy += nh;
        /* the label (or n/30) on its own line under the number: one size a line reads
         * best, at the bedside and to an independent reader */
        if (side->text[0])
          cy += lines_of (c, side->text, ix + 0.15 * b, cy, iw - 0.3 * b, side_px, TRUE,
              side->tone, FALSE);
        if (v->kind == HUD_KIND_FINAL)
          add (c, HUD_ITEM_FRAME, ix - 0.1 * b, fy - 0.1 * b, iw + 0.2 * b, cy - fy + 0.3 * b);
        cy += 0.35 * b;
        if (!isnan (v->gauge)) {
          add (c, HUD_ITEM_GAUGE, ix, cy + 0.15 * b, iw, 0.6 * b);
          cy += 1.0 * b;
        }
      }
      break;
    }
    case G_STATUS:
      cy += lines_of (c, v->phase, ix, cy, iw, b, TRUE, v->phase_tag ? HUD_TONE_NOTE :
          HUD_TONE_TEXT, v->phase_tag);
      for (gint i = 0; i < v->n_warnings; i++)
        cy += 0.2 * b + lines_of (c, v->warnings[i].text, ix, cy + 0.2 * b, iw, b, TRUE,
            v->warnings[i].tone, TRUE);
      break;
    case G_TIC:
      if (!v->tic)
        break;
      if (!v->outside && v->summary[0])
        cy += lines_of (c, v->summary, ix, cy, iw, b, FALSE, HUD_TONE_TEXT, FALSE) + 0.2 * b;
      {
        HudItem *it = add (c, HUD_ITEM_TIC, ix, cy, iw, 6.5 * b);
        if (it)
          it->px = small_px (c);
        cy += 6.5 * b;
      }
      break;
    case G_SLOTS:
      if (v->n_slots <= 0)
        break;
      add (c, HUD_ITEM_SLOTS, ix, cy, iw, 1.3 * b);
      cy += 1.3 * b;
      break;
    case G_INFO:
      if (!v->info[0])
        break;
      cy += lines_of (c, v->info, ix, cy, iw, small_px (c), FALSE, HUD_TONE_MUTED, FALSE);
      break;
    case G_DISCLAIMER:
      for (gint i = 0; hud_disclaimer_lines[i]; i++)
        cy += lines_of (c, hud_disclaimer_lines[i], ix, cy, iw, b, TRUE, HUD_TONE_TEXT, FALSE);
      break;
  }
  if (c->l->n == first + (bg ? 1 : 0)) {        /* nothing (but the backdrop) */
    c->l->n = first;
    return 0;
  }
  cy += pad;
  if (bg)
    bg->box.h = cy - y;
  return cy - y;
}

/* the width a group needs at most: its widest unwrapped line */
static gdouble
natural_width (Ctx * c, gint g)
{
  const HudView *v = c->v;
  gdouble b = c->b, w = 0;
  if (g == G_DISCLAIMER) {
    for (gint i = 0; hud_disclaimer_lines[i]; i++)
      w = MAX (w, c->m (c->ctx, hud_disclaimer_lines[i], b, TRUE));
  } else {
    w = 14 * b;
    (void) v;
  }
  return w + 0.9 * b + 2;
}

typedef struct
{
  HudBox r;
  gdouble used;                 /* height taken from the top */
} Region;

static gboolean
place_groups (Ctx * c, Region * regs, gint n_regs, const gboolean want[N_GROUPS],
    gboolean disclaimer_at_bottom, gdouble max_w, gboolean to_edge)
{
  static const gint order[] = { G_SCORE, G_STATUS, G_TIC, G_SLOTS, G_INFO, G_DISCLAIMER };
  HudLayout *l = c->l;
  for (guint k = 0; k < G_N_ELEMENTS (order); k++) {
    gint g = order[k];
    gboolean placed = FALSE;
    if (!want[g])
      continue;
    for (gint r = 0; r < n_regs && !placed; r++) {
      Region *rg = &regs[r];
      gdouble w = MIN (rg->r.w, max_w), h, y, x;
      gint mark = l->n;
      if (w < 8 * c->b)
        continue;
      if (g == G_DISCLAIMER)
        w = MIN (w, natural_width (c, g));
      /* a region wider than the panel: the panel at its side nearer the screen's edge */
      x = to_edge && rg->r.x + rg->r.w / 2 >= c->out_w / 2 ? rg->r.x + rg->r.w - w : rg->r.x;
      h = group (c, g, x, rg->r.y + rg->used, w);
      if (h == 0) {
        placed = TRUE;
        break;
      }
      if (rg->used + h > rg->r.h + 0.01 || c->overflow) {
        l->n = mark;
        c->overflow = FALSE;
        continue;
      }
      y = rg->r.y + rg->used;
      if (g == G_DISCLAIMER && disclaimer_at_bottom) {
        /* moved to the region's bottom */
        gdouble dy = rg->r.y + rg->r.h - h - y;
        for (gint i = mark; i < l->n; i++)
          l->items[i].box.y += dy;
        y += dy;
      }
      rg->used += h + 0.3 * c->b;
      if (l->n_groups < (gint) G_N_ELEMENTS (l->groups))
        l->groups[l->n_groups++] = (HudBox) {
        x, y, w, h};
      if (g == G_DISCLAIMER)
        l->disclaimer = (HudBox) {
        x, y, w, h};
      placed = TRUE;
    }
    if (!placed && (g == G_SCORE || g == G_STATUS || g == G_DISCLAIMER))
      return FALSE;
  }
  return TRUE;
}

/* the largest free rectangles of the screen (provisional or learnt; (cells next to anything are not free) */
static gint
free_regions (const HudScreen * sc, const HudGeometry * g, Region * out, gint max,
    gdouble min_w, gdouble min_h)
{
  static const gint R = HUD_SCREEN_MAX_ROWS, C = HUD_SCREEN_MAX_COLS;
  guint8 *busy = g_malloc0 (R * C);
  gint *hist = g_new0 (gint, C + 1), *stack = g_new (gint, C + 1);
  gint n = 0;
  for (gint r = 0; r < sc->rows; r++)
    for (gint col = 0; col < sc->cols; col++)
      if (sc->cells[r][col] != HUD_CELL_FREE)
        for (gint dr = -1; dr <= 1; dr++)
          for (gint dc = -1; dc <= 1; dc++) {
            gint rr = r + dr, cc = col + dc;
            if (rr >= 0 && cc >= 0 && rr < sc->rows && cc < sc->cols)
              busy[rr * C + cc] = 1;
          }
  while (n < max) {
    gdouble best = 0;
    gint bx = 0, by = 0, bw = 0, bh = 0;
    memset (hist, 0, sizeof (gint) * (C + 1));
    for (gint r = 0; r < sc->rows; r++) {
      gint top = 0;
      for (gint col = 0; col < sc->cols; col++)
        hist[col] = busy[r * C + col] ? 0 : hist[col] + 1;
      hist[sc->cols] = 0;
      for (gint col = 0; col <= sc->cols; col++) {
        while (top > 0 && hist[stack[top - 1]] >= hist[col]) {
          gint hh = hist[stack[--top]];
          gint left = top > 0 ? stack[top - 1] + 1 : 0, ww = col - left;
          gdouble pw = (gdouble) ww * sc->cell, ph = (gdouble) hh * sc->cell;
          if (pw >= min_w && ph >= min_h && pw * ph > best) {
            best = pw * ph;
            bx = left;
            by = r - hh + 1;
            bw = ww;
            bh = hh;
          }
        }
        stack[top++] = col;
      }
    }
    if (best <= 0)
      break;
    for (gint r = by; r < by + bh; r++)
      memset (busy + r * C + bx, 1, bw);
    out[n].r = (HudBox) {
    g->video_x + bx * sc->cell, g->video_y + by * sc->cell,
          MIN (bw * sc->cell, sc->width - bx * sc->cell),
          MIN (bh * sc->cell, sc->height - by * sc->cell)};
    out[n].used = 0;
    n++;
  }
  g_free (busy);
  g_free (hist);
  g_free (stack);
  return n;
}

static void
add_roi (Ctx * c, const HudGeometry * g)
{
  const HudView *v = c->v;
  gdouble sx, sy;
  if (!v->has_roi)
    return;
  sx = v->frame_size[0] > 0 ? (gdouble) g->in_w / v->frame_size[0] : 1.0;
  sy = v->frame_size[1] > 0 ? (gdouble) g->in_h / v->frame_size[1] : 1.0;
  add (c, HUD_ITEM_ROI, g->video_x + v->roi[0] * sx, g->video_y + v->roi[1] * sy,
      v->roi[2] * sx, v->roi[3] * sy);
}

static void
union_panel (HudLayout * l)
{
  gdouble x0 = G_MAXDOUBLE, y0 = G_MAXDOUBLE, x1 = -1, y1 = -1;
  for (gint i = 0; i < l->n_groups; i++) {
    const HudBox *b = &l->groups[i];
    if (b->x == l->disclaimer.x && b->y == l->disclaimer.y)
      continue;
    x0 = MIN (x0, b->x);
    y0 = MIN (y0, b->y);
    x1 = MAX (x1, b->x + b->w);
    y1 = MAX (y1, b->y + b->h);
  }
  if (x1 >= 0)
    l->panel = (HudBox) {
    x0, y0, x1 - x0, y1 - y0};
}

/* Fixed corners over the video: the disclaimer in @corner, the panel in the first other
 * corner (top-right, bottom-right, top-left, bottom-left); never moved by the ROI. */
static gboolean
corners (Ctx * c, const HudGeometry * g, HudCorner corner, const gboolean want[N_GROUPS])
{
  const gdouble W = g->out_w, H = g->out_h, b = c->b, m = 0.5 * b;
  const HudCorner order[] = { HUD_CORNER_TOP_RIGHT, HUD_CORNER_BOTTOM_RIGHT,
    HUD_CORNER_TOP_LEFT, HUD_CORNER_BOTTOM_LEFT
  };
  HudCorner panel = HUD_CORNER_TOP_RIGHT;
  gboolean want_d[N_GROUPS] = { 0 }, want_p[N_GROUPS];
  gdouble dw, pw = MIN (16 * b, 0.45 * W), top = MAX (m, 0.06 * H);
  Region rd, rp;
  gint mark = c->l->n;
  gdouble h;

  for (guint i = 0; i < G_N_ELEMENTS (order); i++) {
    gboolean bottom = order[i] == HUD_CORNER_BOTTOM_LEFT || order[i] == HUD_CORNER_BOTTOM_RIGHT;
    if (order[i] == corner || (corner == HUD_CORNER_BOTTOM_CENTER && bottom))
      continue;
    panel = order[i];
    break;
  }
  /* the disclaimer first: its height decides the room left */
  dw = MIN (natural_width (c, G_DISCLAIMER), 0.48 * W);
  h = group (c, G_DISCLAIMER, 0, 0, dw);
  c->l->n = mark;
  rd.used = 0;
  rd.r.w = dw;
  rd.r.h = h;
  rd.r.x = corner == HUD_CORNER_TOP_LEFT || corner == HUD_CORNER_BOTTOM_LEFT ? m
      : corner == HUD_CORNER_BOTTOM_CENTER ? (W - dw) / 2 : W - dw - m;
  rd.r.y = corner == HUD_CORNER_TOP_LEFT || corner == HUD_CORNER_TOP_RIGHT ? m : H - h - m;
  want_d[G_DISCLAIMER] = TRUE;
  if (!place_groups (c, &rd, 1, want_d, FALSE, W, FALSE))
    return FALSE;
  memcpy (want_p, want, sizeof want_p);
  want_p[G_DISCLAIMER] = FALSE;
  rp.used = 0;
  rp.r.w = pw;
  rp.r.x = panel == HUD_CORNER_TOP_RIGHT || panel == HUD_CORNER_BOTTOM_RIGHT ? W - pw - m : m;
  /* the panel's column: beside the disclaimer's corner, it stops short of the disclaimer */
  {
    gboolean same_side = (rp.r.x < W / 2) == (rd.r.x < W / 2)
        || corner == HUD_CORNER_BOTTOM_CENTER;
    gdouble y0 = top, y1 = H - m;
    if (same_side && rd.r.y > H / 2)
      y1 = rd.r.y - m;
    else if (same_side)
      y0 = rd.r.y + rd.r.h + m;
    rp.r.y = y0;
    rp.r.h = y1 - y0;
  }
  {
    gint pmark = c->l->n, gmark = c->l->n_groups;
    if (!place_groups (c, &rp, 1, want_p, FALSE, pw, FALSE))
      return FALSE;
    if (panel == HUD_CORNER_BOTTOM_LEFT || panel == HUD_CORNER_BOTTOM_RIGHT) {
      /* bottom corners: the column's stack moves down to the bottom */
      gdouble dy = MAX (rp.r.h - rp.used + 0.3 * b, 0);
      for (gint i = pmark; i < c->l->n; i++)
        c->l->items[i].box.y += dy;
      for (gint i = gmark; i < c->l->n_groups; i++)
        c->l->groups[i].y += dy;
    }
  }
  return TRUE;
}

void
hud_layout (HudLayout * l, const HudView * v, const HudGeometry * g,
    const HudScreen * screen, HudCorner disclaimer, HudMeasure m, gpointer ctx)
{
  const gdouble nominal = hud_body_px (g->out_h);
  Ctx c = { l, v, m, ctx, nominal, g->out_w, FALSE, FALSE, FALSE };
  gboolean use_free = !g->canvas && g->mode == HUD_LAYOUT_AUTO && screen && screen->ready;

  for (gdouble scale = 1.0; ; scale -= 0.1) {
    gdouble b = MAX (nominal * scale, floor_px ());
    for (guint drop = 0; drop <= G_N_ELEMENTS (drop_order); drop++) {
      gboolean want[N_GROUPS] = { TRUE, TRUE, TRUE, TRUE, TRUE, TRUE }, ok;
      for (guint i = 0; i < drop; i++)
        want[drop_order[i]] = FALSE;
      memset (l, 0, sizeof *l);
      c.b = b;
      c.overflow = FALSE;
      l->body_px = b;
      l->cap_px = b * HUD_CAP_EM;
      add_roi (&c, g);
      if (g->canvas) {
        Region r;
        r.used = 0;
        r.r.x = g->video_x + g->in_w + 0.5 * b;
        r.r.y = 0.5 * b;
        r.r.w = g->out_w - r.r.x - 0.5 * b;
        r.r.h = g->out_h - b;
        l->where = "beside";
        ok = place_groups (&c, &r, 1, want, TRUE, r.r.w, FALSE);
      } else if (use_free) {
        Region regs[4];
        gint n = free_regions (screen, g, regs, 4, 8 * b, 3 * b);
        l->where = "free-space";
        l->in_free_space = TRUE;
        ok = n > 0 && place_groups (&c, regs, n, want, FALSE, 18 * b, TRUE);
      } else {
        l->where = "corners";
        c.backdrops = TRUE;     /* over the picture: a dark box keeps the text readable */
        ok = corners (&c, g, disclaimer, want);
      }
      if (ok) {
        l->fits = TRUE;
        union_panel (l);
        return;
      }
    }
    if (b <= floor_px () + 1e-9)
      break;
  }
  /* nothing fits legibly: the corners at the floor size, everything required, marked */
  memset (l, 0, sizeof *l);
  c.b = floor_px ();
  l->body_px = c.b;
  l->cap_px = c.b * HUD_CAP_EM;
  add_roi (&c, g);
  {
    gboolean want[N_GROUPS] = { TRUE, TRUE, FALSE, FALSE, FALSE, TRUE };
    l->where = "corners";
    c.backdrops = TRUE;
    corners (&c, g, disclaimer, want);
  }
  l->fits = FALSE;
  union_panel (l);
}
