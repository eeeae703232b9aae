/* The overlay's look. Readable from two metres: sizes scale with the frame (the score is ~9 %
 * of its height, the disclaimer's capitals >= 2.5 %). Nothing over the lesion: the ROI gets
 * corner brackets only and the score panel takes the corner farthest from it that the
 * disclaimer does not use. Honest: a provisional score is drawn hollow and grey with "n/30",
 * a final one solid, framed and labelled; the countdown runs down between messages; STALE
 * only while an exam runs and the engine is silent; after a normal end the last state stays,
 * marked EXAM ENDED; warnings in words; CPU fallback as a neutral note; the TIC reading (a
 * small lesion-vs-liver plot and its one-line summary) under the score; and a permanent block
 * saying the model was trained on simulated data. */
#include "hudrender.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <pango/pangocairo.h>
#include <string.h>

HudOverlay *
hud_overlay_new (gint width, gint height)
{
  HudOverlay *ov;
  cairo_surface_t *surface;
  if (width <= 0 || height <= 0 || width > HUD_MAX_DIM || height > HUD_MAX_DIM)
    return NULL;
  surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS
      || cairo_image_surface_get_data (surface) == NULL) {
    cairo_surface_destroy (surface);
    return NULL;
  }
  ov = g_new0 (HudOverlay, 1);
  ov->ref = 1;
  ov->width = width;
  ov->height = height;
  ov->surface = surface;
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
    g_free (ov->shown);
    g_free (ov);
  }
}

const gchar *
hud_corner_nick (HudCorner c)
{
  switch (c) {
    case HUD_CORNER_BOTTOM_LEFT:
      return "bottom-left";
    case HUD_CORNER_BOTTOM_RIGHT:
      return "bottom-right";
    case HUD_CORNER_TOP_LEFT:
      return "top-left";
    case HUD_CORNER_TOP_RIGHT:
      return "top-right";
    case HUD_CORNER_BOTTOM_CENTER:
      return "bottom-center";
  }
  return "bottom-left";
}

gdouble
hud_countdown (const HudState * s, gint64 now_us)
{
  gdouble speed, left;
  if (s->next_slot < 0 || isnan (s->next_slot_in_s) || hud_state_ended (s))
    return NAN;
  speed = s->speed > 0 ? s->speed : 1.0;
  left = s->next_slot_in_s - (gdouble) (now_us - s->status_mono_us) / G_USEC_PER_SEC * speed;
  return left < 0 ? 0 : left;
}

gboolean
hud_is_stale (const HudState * s, const HudStyle * style, gint64 now_us, gboolean have_state)
{
  return have_state && !hud_state_ended (s)
      && (now_us - s->last_message_us) > (gint64) (style->stale_after_s * G_USEC_PER_SEC);
}

/* the whole seconds shown: 12.3 s left reads "12 s", 0.4 s reads "1 s", 0 reads "due now" */
static gint
shown_seconds (gdouble c)
{
  return isnan (c) ? -1 : (gint) MIN (ceil (c), 1e8);
}

gchar *
hud_render_key (const HudState * s, const HudStyle * style, gint64 now_us, gboolean have_state)
{
  return g_strdup_printf ("%" G_GUINT64_FORMAT "|%d|%d|%d", s->version, have_state,
      hud_is_stale (s, style, now_us, have_state), shown_seconds (hud_countdown (s, now_us)));
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

typedef enum
{
  INK_FILL = 0,                 /* solid letters with a dark outline */
  INK_HOLLOW,                   /* outlined letters only: provisional */
  INK_MEASURE,                  /* nothing drawn */
} InkMode;

static void
set_font (Ink * ink, const gchar * str, gdouble px, gboolean bold, gboolean condensed)
{
  pango_font_description_set_family (ink->desc, ink->font);
  pango_font_description_set_weight (ink->desc, bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
  pango_font_description_set_stretch (ink->desc,
      condensed ? PANGO_STRETCH_CONDENSED : PANGO_STRETCH_NORMAL);
  pango_font_description_set_absolute_size (ink->desc, MAX (px, 1.0) * PANGO_SCALE);
  pango_layout_set_font_description (ink->layout, ink->desc);
  pango_layout_set_text (ink->layout, str, -1);
}

/* Draws @str with its top-left at (x, y); returns its width, stores its height in @h. */
static gdouble
text_ex (Ink * ink, gdouble x, gdouble y, const gchar * str, gdouble px, gboolean bold,
    gboolean condensed, const gdouble rgba[4], InkMode mode, gdouble * h)
{
  PangoRectangle logical;
  set_font (ink, str, px, bold, condensed);
  pango_layout_get_pixel_extents (ink->layout, NULL, &logical);
  if (mode == INK_FILL && rgba[3] > 0) {
    cairo_move_to (ink->cr, x, y);
    /* a dark outline keeps text readable over bright contrast */
    pango_cairo_layout_path (ink->cr, ink->layout);
    cairo_set_source_rgba (ink->cr, 0, 0, 0, 0.8 * rgba[3]);
    cairo_set_line_width (ink->cr, MAX (px / 12.0, 1.0));
    cairo_stroke (ink->cr);
    cairo_move_to (ink->cr, x, y);
    cairo_set_source_rgba (ink->cr, rgba[0], rgba[1], rgba[2], rgba[3]);
    pango_cairo_show_layout (ink->cr, ink->layout);
  } else if (mode == INK_HOLLOW && rgba[3] > 0) {
    cairo_move_to (ink->cr, x, y);
    pango_cairo_layout_path (ink->cr, ink->layout);
    cairo_set_source_rgba (ink->cr, rgba[0], rgba[1], rgba[2], 0.12 * rgba[3]);
    cairo_fill_preserve (ink->cr);
    cairo_set_source_rgba (ink->cr, rgba[0], rgba[1], rgba[2], rgba[3]);
    cairo_set_line_width (ink->cr, MAX (px / 26.0, 1.0));
    cairo_stroke (ink->cr);
  }
  if (h)
    *h = logical.height;
  return logical.width;
}

static gdouble
text (Ink * ink, gdouble x, gdouble y, const gchar * str, gdouble px, gboolean bold,
    const gdouble rgba[4], gdouble * h)
{
  return text_ex (ink, x, y, str, px, bold, FALSE, rgba, INK_FILL, h);
}

static gdouble
measure (Ink * ink, const gchar * str, gdouble px, gboolean bold, gdouble * h)
{
  static const gdouble none[4] = { 0, 0, 0, 0 };
  return text_ex (ink, 0, 0, str, px, bold, FALSE, none, INK_MEASURE, h);
}

static void
box (cairo_t * cr, gdouble x, gdouble y, gdouble w, gdouble h, gdouble r, gdouble g,
    gdouble b, gdouble a)
{
  cairo_rectangle (cr, x, y, w, h);
  cairo_set_source_rgba (cr, r, g, b, a);
  cairo_fill (cr);
}

typedef struct
{
  gdouble x, y, w, h;
} Box;

/* a small filled tag with text, its left (or right) edge at @x; returns where it went */
static Box
tag (Ink * ink, gdouble x, gdouble y, const gchar * str, gdouble px, const gdouble bg[4],
    gboolean right_aligned)
{
  static const gdouble white[4] = { 1, 1, 1, 1 };
  gdouble th, tw = measure (ink, str, px, TRUE, &th);
  gdouble padx = px * 0.5;
  Box b = { x, y, tw + 2 * padx, th + px * 0.3 };
  if (right_aligned)
    b.x -= b.w;
  box (ink->cr, b.x, b.y, b.w, b.h, bg[0], bg[1], bg[2], bg[3]);
  text (ink, b.x + padx, y + px * 0.15, str, px, TRUE, white, NULL);
  return b;
}

static const gchar *
phase_text (const HudState * s)
{
  static const struct
  {
    const gchar *phase, *words;
  } words[] = {
    {"waiting", "WAITING FOR INJECTION"},
    {"pre_arrival", "DETECTING CONTRAST ARRIVAL"},
    {"video_phase", "VIDEO PHASE"},
    {"late_phase", "LATE PHASE"},
    {"complete", "COMPLETE"},
    {"partial", "PARTIAL - NOT FINAL"},
    {"stopped", "STOPPED"},
    {"idle", "IDLE"},
  };
  for (guint i = 0; i < G_N_ELEMENTS (words); i++)
    if (!g_strcmp0 (s->phase, words[i].phase))
      return words[i].words;
  return s->phase[0] ? s->phase : "NO STATUS YET";
}

/* A warning's name in words for the bedside; unknown names as themselves, upper case. */
static gchar *
warning_words (const gchar * name, gboolean * red)
{
  static const struct
  {
    const gchar *name, *words;
    gboolean red;
  } known[] = {
    {"no_signal", "NO SIGNAL", TRUE},
    {"frozen_frame", "FROZEN IMAGE", FALSE},
    {"roi_lost", "ROI LOST", FALSE},
    {"baseline_contaminated", "BASELINE HAD CONTRAST", FALSE},
    {"journal_error", "JOURNAL ERROR", FALSE},
    {"slot_late", "SLOT LATE", FALSE},
    {"slot_missed", "SLOT MISSED", FALSE},
    {"out_of_distribution", "OUT OF DISTRIBUTION", FALSE},
    {"model_tic_disagree", "MODEL/TIC DISAGREE", FALSE},
    {"recording_damaged", "RECORDING DAMAGED", FALSE},
  };
  for (guint i = 0; i < G_N_ELEMENTS (known); i++)
    if (!g_strcmp0 (name, known[i].name)) {
      *red = known[i].red;
      return g_strdup (known[i].words);
    }
  *red = FALSE;
  gchar *up = g_utf8_strup (name, -1);
  g_strdelimit (up, "_", ' ');
  return up;
}

/* The disclaimer block at @corner: two lines (three when two would take half the width),
 * condensed bold, capitals >= 2.5 % of the frame height. */
static Box
draw_disclaimer (HudOverlay * ov, Ink * ink, HudCorner corner, gdouble W, gdouble H,
    gdouble margin)
{
  static const gchar *two[] = { "MODEL TRAINED ON SIMULATED DATA", "NOT FOR DIAGNOSIS", NULL };
  static const gchar *three[] = { "MODEL TRAINED ON", "SIMULATED DATA", "NOT FOR DIAGNOSIS",
    NULL
  };
  static const gdouble white[4] = { 1, 1, 1, 0.97 }, none[4] = { 0, 0, 0, 0 };
  /* DejaVu's capitals are 0.73 em: 0.036 em per frame height gives 2.6 % */
  const gdouble px = MAX (0.036 * H, 1.0), padx = px * 0.5, pady = px * 0.25;
  const gchar **lines = two;
  gdouble lw[3] = { 0 }, lh = 0, maxw = 0, th;
  gint n = 0;
  Box b;

  for (gint i = 0; two[i]; i++)
    maxw = MAX (maxw, text_ex (ink, 0, 0, two[i], px, TRUE, TRUE, none, INK_MEASURE, &th));
  if (maxw + 2 * padx > 0.48 * W)
    lines = three;
  maxw = 0;
  for (n = 0; lines[n]; n++) {
    lw[n] = text_ex (ink, 0, 0, lines[n], px, TRUE, TRUE, none, INK_MEASURE, &th);
    maxw = MAX (maxw, lw[n]);
    lh = MAX (lh, th);
  }
  b.w = maxw + 2 * padx;
  b.h = n * lh + 2 * pady;
  switch (corner) {
    case HUD_CORNER_TOP_LEFT:
      b.x = margin, b.y = margin;
      break;
    case HUD_CORNER_TOP_RIGHT:
      b.x = W - b.w - margin, b.y = margin;
      break;
    case HUD_CORNER_BOTTOM_RIGHT:
      b.x = W - b.w - margin, b.y = H - b.h - margin;
      break;
    case HUD_CORNER_BOTTOM_CENTER:
      b.x = (W - b.w) / 2, b.y = H - b.h - margin;
      break;
    case HUD_CORNER_BOTTOM_LEFT:
    default:
      b.x = margin, b.y = H - b.h - margin;
      break;
  }
  box (ink->cr, b.x, b.y, b.w, b.h, 0, 0, 0, 0.62);
  for (gint i = 0; i < n; i++)
    text_ex (ink, b.x + padx, b.y + pady + i * lh, lines[i], px, TRUE, TRUE, white, INK_FILL,
        NULL);
  add_rect (ov, b.x, b.y, b.w, b.h);
  return b;
}

/* The TIC plot: lesion (amber) and liver parenchyma (blue-grey) against seconds after t0,
 * ticks every 60 s; null points break the line. Returns the number of points drawn. */
static gint
draw_tic (Ink * ink, const HudFeatures * f, gdouble x, gdouble y, gdouble w, gdouble h,
    gdouble k, gdouble dim)
{
  static const gdouble lesion_c[4] = { 1.0, 0.72, 0.2, 1 }, liver_c[4] = { 0.6, 0.82, 1.0, 1 };
  const gdouble grey[4] = { 0.8, 0.8, 0.8, 0.9 * dim };
  cairo_t *cr = ink->cr;
  gdouble tmax = 180, vmin = 0, vmax = 0, lab = 17 * k, th;
  gdouble px0 = x + 6 * k, px1 = x + w - 6 * k, py0 = y + lab + 6 * k, py1 = y + h - lab - 6 * k;
  gint drawn = 0;
  box (cr, x, y, w, h, 1, 1, 1, 0.07);
  for (gint i = 0; i < f->n; i++) {
    tmax = MAX (tmax, f->times[i]);
    const gdouble *cv[] = { f->lesion, f->parenchyma, f->has_rim ? f->rim : NULL };
    for (gint c = 0; c < 3; c++)
      if (cv[c] && !isnan (cv[c][i])) {
        vmin = MIN (vmin, cv[c][i]);
        vmax = MAX (vmax, cv[c][i]);
      }
  }
  tmax = ceil (tmax / 60.0) * 60.0;
  if (vmax - vmin < 1e-6)
    vmax = vmin + 1.0;
  vmax += (vmax - vmin) * 0.08;
#define PX(t) (px0 + (px1 - px0) * (t) / tmax)
#define PY(v) (py1 - (py1 - py0) * ((v) - vmin) / (vmax - vmin))
  /* the baseline (no enhancement) and the 60 s ticks */
  cairo_set_line_width (cr, MAX (1.0 * k, 1.0));
  cairo_set_source_rgba (cr, 1, 1, 1, 0.35 * dim);
  cairo_move_to (cr, px0, PY (0));
  cairo_line_to (cr, px1, PY (0));
  cairo_stroke (cr);
  for (gdouble t = 0; t <= tmax + 1e-9; t += 60) {
    gchar buf[16];
    gdouble tx = PX (t);
    cairo_move_to (cr, tx, py1);
    cairo_line_to (cr, tx, py1 + 5 * k);
    cairo_stroke (cr);
    g_snprintf (buf, sizeof buf, t + 60 > tmax ? "%.0f s" : "%.0f", t);
    gdouble tw = measure (ink, buf, lab, FALSE, &th);
    text (ink, CLAMP (tx - tw / 2, x + 2 * k, x + w - tw - 2 * k), py1 + 6 * k, buf, lab,
        FALSE, grey, NULL);
  }
  /* the legend and the category */
  {
    gdouble lx = x + 8 * k, ly = y + 3 * k;
    gdouble c1[4] = { lesion_c[0], lesion_c[1], lesion_c[2], dim };
    gdouble c2[4] = { liver_c[0], liver_c[1], liver_c[2], dim };
    lx += text (ink, lx, ly, "lesion", lab, TRUE, c1, NULL) + 12 * k;
    text (ink, lx, ly, "liver", lab, TRUE, c2, NULL);
    if (f->category[0]) {
      gdouble cw = measure (ink, f->category, lab, TRUE, NULL);
      text (ink, x + w - cw - 8 * k, ly, f->category, lab, TRUE, grey, NULL);
    }
  }
  /* the curves: liver under, lesion over, rim dashed */
  {
    const gdouble *cv[] = { f->parenchyma, f->lesion, f->has_rim ? f->rim : NULL };
    const gdouble *col[] = { liver_c, lesion_c, lesion_c };
    const gdouble widths[] = { 2.5, 3.5, 1.8 };
    cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);
    for (gint c = 0; c < 3; c++) {
      gboolean pen = FALSE;
      if (!cv[c])
        continue;
      cairo_set_source_rgba (cr, col[c][0], col[c][1], col[c][2], dim);
      cairo_set_line_width (cr, MAX (widths[c] * k, 1.0));
      if (c == 2) {
        gdouble dash = 6 * k;
        cairo_set_dash (cr, &dash, 1, 0);
      }
      for (gint i = 0; i < f->n; i++) {
        gdouble v = cv[c][i];
        if (isnan (v)) {
          pen = FALSE;
          continue;
        }
        gboolean alone = (i == 0 || isnan (cv[c][i - 1])) && (i + 1 >= f->n
            || isnan (cv[c][i + 1]));
        if (alone) {
          cairo_stroke (cr);
          cairo_arc (cr, PX (f->times[i]), PY (v), MAX (2.5 * k, 1.0), 0, 2 * G_PI);
          cairo_fill (cr);
        } else if (pen) {
          cairo_line_to (cr, PX (f->times[i]), PY (v));
        } else {
          cairo_move_to (cr, PX (f->times[i]), PY (v));
        }
        pen = TRUE;
        if (c == 1)
          drawn++;
      }
      cairo_stroke (cr);
      cairo_set_dash (cr, NULL, 0, 0);
    }
  }
#undef PX
#undef PY
  return drawn;
}

/* The score panel's corner: not the disclaimer's (nor its row when it is centred), and the
 * farthest from the lesion when the ROI is known. */
static HudCorner
panel_corner (HudCorner disclaimer, gboolean roi_ok, gdouble roi_cx, gdouble roi_cy,
    gdouble W, gdouble H)
{
  const HudCorner order[] = { HUD_CORNER_TOP_RIGHT, HUD_CORNER_BOTTOM_RIGHT,
    HUD_CORNER_TOP_LEFT, HUD_CORNER_BOTTOM_LEFT
  };
  HudCorner best = HUD_CORNER_TOP_RIGHT;
  gdouble best_d = -1;
  for (guint i = 0; i < G_N_ELEMENTS (order); i++) {
    HudCorner c = order[i];
    gboolean bottom = c == HUD_CORNER_BOTTOM_LEFT || c == HUD_CORNER_BOTTOM_RIGHT;
    gboolean right = c == HUD_CORNER_TOP_RIGHT || c == HUD_CORNER_BOTTOM_RIGHT;
    gdouble cx = right ? W : 0, cy = bottom ? H : 0, d;
    if (c == disclaimer || (disclaimer == HUD_CORNER_BOTTOM_CENTER && bottom))
      continue;
    /* without a ROI the first allowed corner; with one, the farthest (ties: the order) */
    d = roi_ok ? hypot (cx - roi_cx, cy - roi_cy) : 0;
    if (d > best_d + 1e-6) {
      best = c;
      best_d = d;
    }
  }
  return best;
}

static void
json_str (JsonBuilder * b, const gchar * name, const gchar * v)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, v);
}

static void
json_int (JsonBuilder * b, const gchar * name, gint64 v)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, v);
}

static void
json_bool (JsonBuilder * b, const gchar * name, gboolean v)
{
  json_builder_set_member_name (b, name);
  json_builder_add_boolean_value (b, v);
}

static gchar *
json_text (JsonBuilder * b)
{
  JsonGenerator *g = json_generator_new ();
  JsonNode *root = json_builder_get_root (b);
  gchar *out;
  json_generator_set_root (g, root);
  out = json_generator_to_data (g, NULL);
  json_node_unref (root);
  g_object_unref (g);
  return out;
}

void
hud_render (HudOverlay * ov, const HudState * s, const HudStyle * style, gint64 now_us,
    gboolean have_state)
{
  static const gdouble RED[4] = { 0.75, 0.1, 0.1, 0.88 }, AMBER[4] = { 0.85, 0.52, 0.0, 0.9 };
  static const gdouble NEUTRAL[4] = { 0.32, 0.38, 0.46, 0.92 };
  const gdouble W = ov->width, H = ov->height;
  const gdouble k = MIN (H / 1080.0, W / 1440.0);       /* all sizes are for 1080 lines */
  const gdouble pad = 16 * k;
  const gboolean stale = hud_is_stale (s, style, now_us, have_state);
  const gboolean ended = have_state && hud_state_ended (s);
  const gboolean has = have_state && s->has_score;
  const gboolean ood = have_state && hud_state_has_warning (s, "out_of_distribution");
  const gboolean tic = have_state && s->features.present;
  const gdouble dim = stale ? 0.45 : 1.0;
  gdouble th, x, y, pw, ph, tx, ty, gw;
  gdouble roi_cx = W / 2, roi_cy = H / 2;
  gboolean roi_ok = FALSE;
  HudCorner corner;
  gboolean right, bottom;
  gchar buf[200];
  gchar *warn[HUD_MAX_WARNINGS + 3];
  gboolean warn_red[HUD_MAX_WARNINGS + 3];
  gint n_warn = 0, tic_points = 0, countdown_s;
  cairo_t *cr;
  Ink ink;
  JsonBuilder *jb = json_builder_new ();

  ov->n_rects = 0;
  cr = cairo_create (ov->surface);
  cairo_set_operator (cr, CAIRO_OPERATOR_CLEAR);
  cairo_paint (cr);
  cairo_set_operator (cr, CAIRO_OPERATOR_OVER);
  ink.cr = cr;
  ink.layout = pango_cairo_create_layout (cr);
  ink.desc = pango_font_description_new ();
  ink.font = style->font && *style->font ? style->font : "Sans";
  pango_layout_set_single_paragraph_mode (ink.layout, TRUE);
  json_builder_begin_object (jb);

  /* the permanent disclaimer, in the corner the property names */
  {
    Box d = draw_disclaimer (ov, &ink, style->disclaimer, W, H, pad);
    json_str (jb, "disclaimer", hud_corner_nick (style->disclaimer));
    json_builder_set_member_name (jb, "disclaimer_box");
    json_builder_begin_array (jb);
    json_builder_add_int_value (jb, (gint64) d.x);
    json_builder_add_int_value (jb, (gint64) d.y);
    json_builder_add_int_value (jb, (gint64) d.w);
    json_builder_add_int_value (jb, (gint64) d.h);
    json_builder_end_array (jb);
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

  /* the score panel: its height first, then the corner */
  pw = MIN (600 * k, W * 0.45);
  gw = pw - 2 * pad;
  ph = pad + 30 * k + 108 * k + (ood ? 40 * k : 0) + 38 * k
      + (tic ? 36 * k + 140 * k + 12 * k : 0) + 54 * k + 38 * k + 30 * k + pad;
  corner = panel_corner (style->disclaimer, roi_ok, roi_cx, roi_cy, W, H);
  right = corner == HUD_CORNER_TOP_RIGHT || corner == HUD_CORNER_BOTTOM_RIGHT;
  bottom = corner == HUD_CORNER_BOTTOM_LEFT || corner == HUD_CORNER_BOTTOM_RIGHT;
  x = right ? W - pw - pad : pad;
  /* at the top, below the band where scanners print their header */
  y = bottom ? H - ph - pad : MAX (64 * k, pad);
  json_str (jb, "panel", hud_corner_nick (corner));
  box (cr, x, y, pw, ph, 0, 0, 0, 0.6);
  add_rect (ov, x, y, pw, ph);
  tx = x + pad;
  ty = y + pad;

  /* header: what kind of score this is, and the neutral CPU note */
  {
    /* an exam that ended without a final score keeps its last score, marked not final */
    const gchar *kind = !has ? "NO SCORE YET" : s->final ? "FINAL" : ended ? "NOT FINAL"
        : "PROVISIONAL";
    const gdouble c[4] = { 1, 1, 1, 0.9 * dim };
    g_snprintf (buf, sizeof buf, "P(HCC) - %s", kind);
    text (&ink, tx, ty, buf, 24 * k, !has || s->final, c, NULL);
    json_str (jb, "kind", !has ? "none" : s->final ? "final" : ended ? "not_final"
        : "provisional");
    if (have_state && s->cpu_fallback) {
      const gdouble bg[4] = { 0.4, 0.4, 0.4, 0.85 };
      tag (&ink, x + pw - pad, ty, "CPU", 18 * k, bg, TRUE);
    }
    json_bool (jb, "cpu", have_state && s->cpu_fallback);
    ty += 30 * k;
  }

  /* the score: hollow grey digits and n/30 while provisional; solid, framed and labelled
   * once final */
  {
    gdouble row = 108 * k + (ood ? 40 * k : 0);
    if (has && s->final) {
      const gdouble c[4] = { 1, 1, 1, dim };
      gboolean hcc = g_str_equal (s->label, "HCC");
      const gdouble lc[4] = { hcc ? 1.0 : 0.55, hcc ? 0.78 : 0.82, hcc ? 0.25 : 1.0, dim };
      g_snprintf (buf, sizeof buf, "%.2f", s->score);
      gdouble nw = text (&ink, tx + 8 * k, ty - 4 * k, buf, 96 * k, TRUE, c, &th);
      if (s->label[0])
        text (&ink, tx + 8 * k + nw + 24 * k, ty + 22 * k, s->label, 56 * k, TRUE, lc, NULL);
      cairo_rectangle (cr, tx - 4 * k, ty - 1 * k, gw + 8 * k, row - 6 * k);
      cairo_set_source_rgba (cr, 1, 1, 1, 0.9 * dim);
      cairo_set_line_width (cr, MAX (3 * k, 1.0));
      cairo_stroke (cr);
      json_str (jb, "score", buf);
      json_str (jb, "label", s->label);
    } else if (has) {
      const gdouble c[4] = { 0.78, 0.78, 0.78, dim }, c2[4] = { 0.8, 0.8, 0.8, 0.9 * dim };
      g_snprintf (buf, sizeof buf, "%.2f", s->score);
      gdouble nw = text_ex (&ink, tx + 8 * k, ty - 4 * k, buf, 96 * k, TRUE, FALSE, c,
          INK_HOLLOW, &th);
      json_str (jb, "score", buf);
      g_snprintf (buf, sizeof buf, "%d/%d", s->slots_filled, s->slots_total);
      text (&ink, tx + 8 * k + nw + 24 * k, ty + 30 * k, buf, 40 * k, FALSE, c2, NULL);
      json_str (jb, "label", "");
    } else {
      const gdouble c[4] = { 0.7, 0.7, 0.7, dim };
      text_ex (&ink, tx + 8 * k, ty - 4 * k, "--", 96 * k, TRUE, FALSE, c, INK_HOLLOW, NULL);
      json_str (jb, "score", "--");
      json_str (jb, "label", "");
    }
    g_snprintf (buf, sizeof buf, "%d/%d", s->slots_filled, s->slots_total);
    json_str (jb, "filled", buf);
    if (ood)
      tag (&ink, tx + 8 * k, ty + 104 * k, "OUT OF DISTRIBUTION", 24 * k, AMBER, FALSE);
    json_bool (jb, "ood", ood);
    ty += row;
  }

  /* the gauge with the decision threshold */
  {
    gdouble gh = 20 * k;
    box (cr, tx, ty, gw, gh, 1, 1, 1, 0.18);
    if (has) {
      if (s->final)
        box (cr, tx, ty, gw * s->score, gh, 1.0, 0.78, 0.25, dim);
      else
        box (cr, tx, ty, gw * s->score, gh, 0.7, 0.7, 0.7, 0.6 * dim);
    }
    box (cr, tx + gw * s->threshold - 1.5 * k, ty - 5 * k, 3 * k, gh + 10 * k, 1, 1, 1, 0.9);
    ty += 38 * k;
  }

  /* the TIC reading: its one line, then the curves */
  if (tic) {
    const gdouble c[4] = { 1, 1, 1, dim };
    text (&ink, tx, ty, s->features.summary[0] ? s->features.summary : "TIC: reading...",
        26 * k, FALSE, c, NULL);
    ty += 36 * k;
    tic_points = draw_tic (&ink, &s->features, tx, ty, gw, 140 * k, k, dim);
    ty += 140 * k + 12 * k;
  }
  json_str (jb, "summary", tic ? s->features.summary : "");
  json_int (jb, "tic_points", tic_points);

  /* the slots: filled, flagged (neighbour), missing, pending; the next one outlined */
  {
    gint n = have_state ? MIN (s->slots_total, HUD_MAX_SLOTS) : 0;
    gdouble cell = n > 0 ? gw / n : 0;
    for (gint i = 0; i < n; i++) {
      gdouble cx = tx + i * cell + cell * 0.15, cw = cell * 0.7;
      gboolean late = n == 30 && i >= 25;
      gdouble ch = late ? 40 * k : 28 * k, cy = ty + (44 * k - ch) / 2;
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
      if (i == s->next_slot && !ended) {
        cairo_rectangle (cr, cx - 3 * k, cy - 4 * k, cw + 6 * k, ch + 8 * k);
        cairo_set_source_rgba (cr, 0.3, 0.9, 1.0, 0.95);
        cairo_set_line_width (cr, MAX (3 * k, 1.5));
        cairo_stroke (cr);
      }
    }
    ty += 54 * k;
  }

  /* the phase and the countdown, or EXAM ENDED */
  {
    const gdouble c[4] = { 1, 1, 1, dim };
    gdouble left = have_state ? hud_countdown (s, now_us) : NAN;
    countdown_s = shown_seconds (left);
    if (!have_state) {
      g_strlcpy (buf, "WAITING FOR THE ENGINE", sizeof buf);
      text (&ink, tx, ty, buf, 28 * k, TRUE, c, NULL);
    } else if (ended) {
      const gchar *how = s->final && g_strcmp0 (s->phase, "partial")
          && g_strcmp0 (s->phase, "stopped") ? "COMPLETE" : phase_text (s);
      g_snprintf (buf, sizeof buf, "EXAM ENDED - %s", how);
      tag (&ink, tx, ty - 2 * k, buf, 26 * k, NEUTRAL, FALSE);
    } else if (countdown_s > 0) {
      g_snprintf (buf, sizeof buf, "%s - slot %d in %d s", phase_text (s), s->next_slot + 1,
          countdown_s);
      text (&ink, tx, ty, buf, 28 * k, TRUE, c, NULL);
    } else if (countdown_s == 0) {
      g_snprintf (buf, sizeof buf, "%s - slot %d due now", phase_text (s), s->next_slot + 1);
      text (&ink, tx, ty, buf, 28 * k, TRUE, c, NULL);
    } else {
      g_strlcpy (buf, phase_text (s), sizeof buf);
      text (&ink, tx, ty, buf, 28 * k, TRUE, c, NULL);
    }
    json_str (jb, "phase", buf);
    json_int (jb, "countdown", countdown_s);
    json_bool (jb, "ended", ended);
    ty += 38 * k;
  }

  /* model and backend, small */
  if (have_state && (s->model[0] || s->backend[0])) {
    const gdouble c[4] = { 0.8, 0.8, 0.8, 0.9 * dim };
    g_snprintf (buf, sizeof buf, "%s - %s %s", s->model[0] ? s->model : "model",
        s->backend[0] ? s->backend : "", s->precision);
    text (&ink, tx, ty, buf, 20 * k, FALSE, c, NULL);
  }

  /* warnings in words, beside the panel (under it, or above it at the bottom) */
  if (!have_state) {
    warn_red[n_warn] = TRUE;
    warn[n_warn++] = g_strdup ("NO ENGINE MESSAGES");
  } else {
    if (stale) {
      warn_red[n_warn] = TRUE;
      warn[n_warn++] = g_strdup ("STALE - ENGINE SILENT, SCORE NOT CURRENT");
    }
    if (s->untrained) {
      warn_red[n_warn] = FALSE;
      warn[n_warn++] = g_strdup ("UNTRAINED MODEL");
    }
    for (gint i = 0; i < s->n_warnings && n_warn < (gint) G_N_ELEMENTS (warn); i++) {
      if (!strcmp (s->warnings[i], "out_of_distribution"))
        continue;               /* shown next to the score */
      warn[n_warn] = warning_words (s->warnings[i], &warn_red[n_warn]);
      n_warn++;
    }
  }
  json_builder_set_member_name (jb, "warnings");
  json_builder_begin_array (jb);
  {
    gdouble wy = bottom ? y - 8 * k : y + ph + 8 * k;
    for (gint i = 0; i < n_warn; i++) {
      gdouble bh;
      measure (&ink, warn[i], 26 * k, TRUE, &th);
      bh = th + 26 * k * 0.3;   /* the tag's height, as tag() makes it */
      Box b = tag (&ink, right ? x + pw : x, bottom ? wy - bh : wy, warn[i], 26 * k,
          warn_red[i] ? RED : AMBER, right);
      add_rect (ov, b.x, b.y, b.w, b.h);
      wy += bottom ? -(b.h + 6 * k) : b.h + 6 * k;
      json_builder_add_string_value (jb, warn[i]);
      g_free (warn[i]);
    }
  }
  json_builder_end_array (jb);
  json_str (jb, "state", !have_state ? "none" : stale ? "stale" : ended ? "ended" : "running");
  json_builder_end_object (jb);
  g_free (ov->shown);
  ov->shown = json_text (jb);
  g_object_unref (jb);

  pango_font_description_free (ink.desc);
  g_object_unref (ink.layout);
  cairo_destroy (cr);
  cairo_surface_flush (ov->surface);
}
