/* The overlay's look. Readable from two metres (sizes scale with the frame height: the score
 * is ~9 % of it), nothing over the lesion (the ROI gets corner brackets only and the panel
 * goes to the corner farthest from it), and honest: no score is shown as current when the
 * engine has gone quiet ("STALE"), a provisional score says so, and a permanent line says
 * the model was trained on simulated data. */
#include "hudrender.h"

#include <math.h>
#include <pango/pangocairo.h>
#include <string.h>

HudOverlay *
hud_overlay_new (gint width, gint height, HudFormat format)
{
  HudOverlay *ov = g_new0 (HudOverlay, 1);
  ov->ref = 1;
  ov->width = width;
  ov->height = height;
  ov->format = format;
  ov->surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  return ov;
}

HudOverlay *
hud_overlay_ref (HudOverlay * ov)
{
  g_atomic_int_inc (&ov->ref);
  return ov;
}

void
hud_overlay_unref (HudOverlay * ov)
{
  if (ov && g_atomic_int_dec_and_test (&ov->ref)) {
    cairo_surface_destroy (ov->surface);
    g_free (ov->planes);
    g_free (ov);
  }
}

static void
add_rect (HudOverlay * ov, gdouble x, gdouble y, gdouble w, gdouble h)
{
  /* even origin so the half-resolution chroma of I420/NV12 lines up */
  gint x0 = MAX ((gint) floor (x) - 1, 0) & ~1, y0 = MAX ((gint) floor (y) - 1, 0) & ~1;
  gint x1 = MIN ((gint) ceil (x + w) + 2, ov->width);
  gint y1 = MIN ((gint) ceil (y + h) + 2, ov->height);
  if (ov->n_rects >= HUD_MAX_RECTS || x1 <= x0 || y1 <= y0)
    return;
  ov->rects[ov->n_rects++] = (HudRect) {
  x0, y0, x1 - x0, y1 - y0};
}

typedef struct
{
  cairo_t *cr;
  PangoLayout *layout;
  PangoFontDescription *desc;
  const gchar *font;
} Ink;

/* Draws @text at (x, y) (top-left); returns its width, stores its height in @h. */
static gdouble
text (Ink * ink, gdouble x, gdouble y, const gchar * str, gdouble px, gboolean bold,
    gdouble r, gdouble g, gdouble b, gdouble a, gdouble * h)
{
  PangoRectangle logical;
  pango_font_description_set_family (ink->desc, ink->font);
  pango_font_description_set_weight (ink->desc, bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
  pango_font_description_set_absolute_size (ink->desc, px * PANGO_SCALE);
  pango_layout_set_font_description (ink->layout, ink->desc);
  pango_layout_set_text (ink->layout, str, -1);
  pango_layout_get_pixel_extents (ink->layout, NULL, &logical);
  if (a > 0) {
    cairo_move_to (ink->cr, x, y);
    /* a dark outline keeps text readable over bright contrast */
    pango_cairo_layout_path (ink->cr, ink->layout);
    cairo_set_source_rgba (ink->cr, 0, 0, 0, 0.8 * a);
    cairo_set_line_width (ink->cr, MAX (px / 12.0, 1.0));
    cairo_stroke (ink->cr);
    cairo_move_to (ink->cr, x, y);
    cairo_set_source_rgba (ink->cr, r, g, b, a);
    pango_cairo_show_layout (ink->cr, ink->layout);
  }
  if (h)
    *h = logical.height;
  return logical.width;
}

static void
box (cairo_t * cr, gdouble x, gdouble y, gdouble w, gdouble h, gdouble r, gdouble g,
    gdouble b, gdouble a)
{
  cairo_rectangle (cr, x, y, w, h);
  cairo_set_source_rgba (cr, r, g, b, a);
  cairo_fill (cr);
}

static gboolean
is_stale (const HudState * s, const HudStyle * style, gint64 now_us)
{
  return (now_us - s->last_message_us) > (gint64) (style->stale_after_s * 1e6);
}

static gdouble
countdown (const HudState * s, gdouble now_wall)
{
  if (s->next_slot < 0 || isnan (s->next_slot_in_s))
    return NAN;
  gdouble left = s->next_slot_in_s - (now_wall - s->status_wall) * s->speed;
  return left < 0 ? 0 : left;
}

static const gchar *
phase_text (const HudState * s)
{
  if (!g_strcmp0 (s->phase, "waiting"))
    return "WAITING FOR INJECTION";
  if (!g_strcmp0 (s->phase, "pre_arrival"))
    return "DETECTING CONTRAST ARRIVAL";
  if (!g_strcmp0 (s->phase, "video_phase"))
    return "VIDEO PHASE";
  if (!g_strcmp0 (s->phase, "late_phase"))
    return "LATE PHASE";
  if (!g_strcmp0 (s->phase, "complete"))
    return "COMPLETE";
  if (!g_strcmp0 (s->phase, "partial"))
    return "PARTIAL - NOT FINAL";
  if (!g_strcmp0 (s->phase, "stopped"))
    return "STOPPED";
  return s->phase[0] ? s->phase : "NO STATUS YET";
}

gchar *
hud_render_key (const HudState * s, const HudStyle * style, gint64 now_us, gdouble now_wall)
{
  gdouble c = countdown (s, now_wall);
  /* the countdown shows tenths below 10 s, whole seconds above */
  gdouble tick = isnan (c) ? -1.0 : (c < 10 ? floor (c * 10) : 1000 + floor (c));
  return g_strdup_printf ("%" G_GUINT64_FORMAT "|%d|%.0f", s->version,
      s->version ? is_stale (s, style, now_us) : 0, tick);
}

void
hud_render (HudOverlay * ov, const HudState * s, const HudStyle * style, gint64 now_us,
    gdouble now_wall, gboolean have_state)
{
  const gdouble W = ov->width, H = ov->height;
  const gdouble k = H / 1080.0;           /* all sizes are for 1080 lines */
  const gdouble pad = 16 * k;
  gboolean stale = have_state && is_stale (s, style, now_us);
  gdouble th, x, y, pw, ph;
  gchar buf[160];
  cairo_t *cr;
  Ink ink;
  gdouble roi_cx = W / 2, roi_cy = H / 2;
  gboolean roi_ok = FALSE;
  gint corner;
  const gchar *warn[6];
  gint n_warn = 0;

  ov->n_rects = 0;
  cr = cairo_create (ov->surface);
  cairo_set_operator (cr, CAIRO_OPERATOR_CLEAR);
  cairo_paint (cr);
  cairo_set_operator (cr, CAIRO_OPERATOR_OVER);
  ink.cr = cr;
  ink.layout = pango_cairo_create_layout (cr);
  ink.desc = pango_font_description_new ();
  ink.font = style->font ? style->font : "Sans";

  /* the permanent line */
  {
    const gchar *line = "MODEL TRAINED ON SIMULATED DATA - NOT FOR DIAGNOSIS";
    gdouble tw = text (&ink, 0, 0, line, 24 * k, TRUE, 0, 0, 0, 0, &th);
    box (cr, pad, pad, tw + 2 * pad, th + pad, 0, 0, 0, 0.55);
    text (&ink, 2 * pad, pad * 1.5, line, 24 * k, TRUE, 1, 1, 1, 0.95, NULL);
    add_rect (ov, pad, pad, tw + 2 * pad, th + pad);
  }

  /* ROI: corner brackets only, the lesion itself stays clear */
  if (have_state && s->has_roi && style->show_roi) {
    gdouble sx = s->frame_size[0] > 0 ? W / s->frame_size[0] : 1.0;
    gdouble sy = s->frame_size[1] > 0 ? H / s->frame_size[1] : 1.0;
    gdouble rx = s->roi[0] * sx, ry = s->roi[1] * sy, rw = s->roi[2] * sx, rh = s->roi[3] * sy;
    gdouble arm = MIN (rw, rh) * 0.22, lw = MAX (3 * k, 1.5);
    roi_cx = rx + rw / 2;
    roi_cy = ry + rh / 2;
    roi_ok = TRUE;
    cairo_set_line_width (cr, lw);
    cairo_set_source_rgba (cr, 0.3, 0.9, 1.0, stale ? 0.4 : 0.9);
    for (gint i = 0; i < 4; i++) {
      gdouble cx = (i & 1) ? rx + rw : rx, cy = (i & 2) ? ry + rh : ry;
      gdouble dx = (i & 1) ? -arm : arm, dy = (i & 2) ? -arm : arm;
      cairo_move_to (cr, cx + dx, cy);
      cairo_line_to (cr, cx, cy);
      cairo_line_to (cr, cx, cy + dy);
      cairo_stroke (cr);
      add_rect (ov, MIN (cx, cx + dx) - lw, MIN (cy, cy + dy) - lw, fabs (dx) + 2 * lw,
          fabs (dy) + 2 * lw);
    }
  }

  /* the score panel, in the right-hand corner farthest from the lesion */
  pw = MIN (560 * k, W * 0.45);
  ph = 300 * k;
  corner = (roi_ok && roi_cy < H / 2) ? 1 : 0;  /* 0 = top right, 1 = bottom right */
  if (roi_ok && roi_cx > W * 0.62)
    corner += 2;                                /* lesion on the right: use the left side */
  x = (corner & 2) ? pad : W - pw - pad;
  y = (corner & 1) ? H - ph - 120 * k : 64 * k;
  if (corner == 2)
    y = 80 * k;                                 /* below the permanent line */
  box (cr, x, y, pw, ph, 0, 0, 0, 0.6);
  add_rect (ov, x, y, pw, ph);
  {
    gdouble tx = x + pad, ty = y + pad * 0.6, dim = stale ? 0.45 : 1.0;
    gboolean has = have_state && s->has_score;
    const gchar *kind = !has ? "no score yet" : (s->final ? "final" : "provisional");
    g_snprintf (buf, sizeof buf, "P(HCC) - %s", kind);
    text (&ink, tx, ty, buf, 26 * k, FALSE, 1, 1, 1, 0.9 * dim, &th);
    ty += th;
    if (has)
      g_snprintf (buf, sizeof buf, "%.2f", s->score);
    else
      g_strlcpy (buf, "--", sizeof buf);
    gdouble nw = text (&ink, tx, ty, buf, 96 * k, TRUE, 1, 1, 1, dim, &th);
    if (has && s->final && s->label[0]) {
      gboolean hcc = g_str_equal (s->label, "HCC");
      text (&ink, tx + nw + 24 * k, ty + 22 * k, s->label, 56 * k, TRUE,
          hcc ? 1.0 : 0.55, hcc ? 0.78 : 0.82, hcc ? 0.25 : 1.0, dim, NULL);
    } else if (has) {
      g_snprintf (buf, sizeof buf, "%d/%d slots", s->slots_filled, s->slots_total);
      text (&ink, tx + nw + 24 * k, ty + 40 * k, buf, 30 * k, FALSE, 1, 1, 1, 0.8 * dim, NULL);
    }
    ty += th + 4 * k;
    /* gauge with the decision threshold */
    gdouble gw = pw - 2 * pad, gh = 22 * k;
    box (cr, tx, ty, gw, gh, 1, 1, 1, 0.18);
    if (has) {
      if (s->final)
        box (cr, tx, ty, gw * s->score, gh, 1.0, 0.78, 0.25, dim);
      else
        box (cr, tx, ty, gw * s->score, gh, 0.85, 0.85, 0.85, 0.7 * dim);
    }
    box (cr, tx + gw * s->threshold - 1.5 * k, ty - 5 * k, 3 * k, gh + 10 * k, 1, 1, 1, 0.9);
    ty += gh + 14 * k;
    /* phase and countdown */
    gdouble c = countdown (s, now_wall);
    if (!have_state)
      g_strlcpy (buf, "WAITING FOR THE ENGINE", sizeof buf);
    else if (!isnan (c) && s->next_slot >= 0)
      g_snprintf (buf, sizeof buf, "%s - slot %d in %.*f s", phase_text (s), s->next_slot + 1,
          c < 10 ? 1 : 0, c);
    else
      g_strlcpy (buf, phase_text (s), sizeof buf);
    text (&ink, tx, ty, buf, 30 * k, TRUE, 1, 1, 1, dim, &th);
    ty += th + 4 * k;
    if (have_state && s->backend[0]) {
      g_snprintf (buf, sizeof buf, "%s - %s %s", s->model[0] ? s->model : "model", s->backend,
          s->precision);
      text (&ink, tx, ty, buf, 22 * k, FALSE, 0.85, 0.85, 0.85, dim, NULL);
    }
  }

  /* warnings, under (or above) the panel */
  if (!have_state)
    warn[n_warn++] = "NO ENGINE MESSAGES";
  else {
    if (stale)
      warn[n_warn++] = "STALE - ENGINE SILENT, SCORE NOT CURRENT";
    if (!s->has_score)
      warn[n_warn++] = "NO SCORE YET";
    if (s->cpu_fallback)
      warn[n_warn++] = "CPU FALLBACK";
    for (gint i = 0; i < s->n_warnings && n_warn < 6; i++) {
      if (g_str_has_prefix (s->warnings[i], "no_signal"))
        warn[n_warn++] = "NO SIGNAL";
      else if (g_str_has_prefix (s->warnings[i], "frozen"))
        warn[n_warn++] = "FROZEN FRAME";
      else if (g_str_has_prefix (s->warnings[i], "roi_lost"))
        warn[n_warn++] = "ROI LOST";
    }
  }
  {
    gdouble wy = (corner & 1) ? y - 8 * k : y + ph + 8 * k;
    for (gint i = 0; i < n_warn; i++) {
      gdouble tw = text (&ink, 0, 0, warn[i], 28 * k, TRUE, 0, 0, 0, 0, &th);
      gdouble bw = tw + 2 * pad, bh = th + pad * 0.6;
      gdouble wx = (corner & 2) ? x : x + pw - bw;
      gboolean red = g_str_has_prefix (warn[i], "STALE") || g_str_has_prefix (warn[i], "NO ");
      if (corner & 1)
        wy -= bh;
      box (cr, wx, wy, bw, bh, red ? 0.75 : 0.85, red ? 0.1 : 0.55, red ? 0.1 : 0.0, 0.85);
      text (&ink, wx + pad, wy + pad * 0.3, warn[i], 28 * k, TRUE, 1, 1, 1, 1, NULL);
      add_rect (ov, wx, wy, bw, bh);
      wy += (corner & 1) ? -6 * k : bh + 6 * k;
    }
  }

  /* the 30 slots: filled, flagged (neighbour), missing, pending; the next one outlined */
  if (have_state && s->slots_total > 0) {
    gint n = MIN (s->slots_total, HUD_MAX_SLOTS);
    gdouble bw = MIN (W * 0.62, 1150 * k), bh = 64 * k;
    gdouble bx = (W - bw) / 2, by = H - bh - pad;
    gdouble cell = (bw - 2 * pad) / n;
    box (cr, bx, by, bw, bh, 0, 0, 0, 0.55);
    add_rect (ov, bx, by, bw, bh);
    for (gint i = 0; i < n; i++) {
      gdouble cx = bx + pad + i * cell + cell * 0.15, cw = cell * 0.7;
      gboolean late = n == 30 && i >= 25;
      gdouble ch = late ? 34 * k : 24 * k, cy = by + (bh - ch) / 2;
      switch (s->slots[i]) {
        case HUD_SLOT_FILLED:
          box (cr, cx, cy, cw, ch, 0.95, 0.95, 0.95, stale ? 0.5 : 0.95);
          break;
        case HUD_SLOT_FLAGGED:
          box (cr, cx, cy, cw, ch, 1.0, 0.65, 0.1, 0.95);
          break;
        case HUD_SLOT_MISSING:
          box (cr, cx, cy, cw, ch, 0.85, 0.15, 0.15, 0.95);
          break;
        default:
          cairo_rectangle (cr, cx + k, cy + k, cw - 2 * k, ch - 2 * k);
          cairo_set_source_rgba (cr, 1, 1, 1, 0.45);
          cairo_set_line_width (cr, MAX (2 * k, 1));
          cairo_stroke (cr);
      }
      if (i == s->next_slot) {
        cairo_rectangle (cr, cx - 3 * k, cy - 5 * k, cw + 6 * k, ch + 10 * k);
        cairo_set_source_rgba (cr, 0.3, 0.9, 1.0, 0.95);
        cairo_set_line_width (cr, MAX (3 * k, 1.5));
        cairo_stroke (cr);
      }
    }
  }

  pango_font_description_free (ink.desc);
  g_object_unref (ink.layout);
  cairo_destroy (cr);
  cairo_surface_flush (ov->surface);
}
