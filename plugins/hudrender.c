/* The painter: the layout's items (hudlayout.h) drawn with cairo and pango, and the
 * rectangles the video thread blends. What to say is the view's (hudview.c), where to say it
 * the layout's (hudlayout.c); nothing here decides either. */
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
    g_free (ov->runs);
    g_free (ov->cruns);
    g_free (ov->shown);
    g_free (ov);
  }
}

/* The rectangles the video thread blends: disjoint (an overlapping one is merged into the
 * union, so no pixel is blended twice), even-aligned for I420/NV12 chroma. */
static void
add_rect (HudOverlay * ov, gdouble x, gdouble y, gdouble w, gdouble h)
{
  gint x0 = MAX ((gint) floor (x) - 2, 0) & ~1, y0 = MAX ((gint) floor (y) - 2, 0) & ~1;
  gint x1 = MIN ((gint) ceil (x + w) + 3, ov->width);
  gint y1 = MIN ((gint) ceil (y + h) + 3, ov->height);
  gboolean merged;
  if (x1 <= x0 || y1 <= y0)
    return;
  do {
    merged = FALSE;
    for (gint i = 0; i < ov->n_rects; i++) {
      HudRect *r = &ov->rects[i];
      if (ov->n_rects < HUD_MAX_RECTS && (x0 >= r->x + r->w || r->x >= x1 || y0 >= r->y + r->h
              || r->y >= y1))
        continue;
      /* overlapping (or no room left): one rectangle holding both */
      x0 = MIN (x0, r->x);
      y0 = MIN (y0, r->y);
      x1 = MAX (x1, r->x + r->w);
      y1 = MAX (y1, r->y + r->h);
      ov->rects[i] = ov->rects[--ov->n_rects];
      merged = TRUE;
      break;
    }
  } while (merged);
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

static void
set_font (Ink * ink, const gchar * str, gdouble px, gboolean bold)
{
  pango_font_description_set_family (ink->desc, ink->font);
  pango_font_description_set_weight (ink->desc, bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
  pango_font_description_set_absolute_size (ink->desc, MAX (px, 1.0) * PANGO_SCALE);
  pango_layout_set_font_description (ink->layout, ink->desc);
  pango_layout_set_text (ink->layout, str, -1);
}

/* the layout's measuring function */
static gdouble
measure (gpointer ctx, const gchar * str, gdouble px, gboolean bold)
{
  Ink *ink = ctx;
  PangoRectangle logical;
  set_font (ink, str, px, bold);
  pango_layout_get_pixel_extents (ink->layout, NULL, &logical);
  return logical.width;
}

static void
rgba_of (HudTone tone, gdouble dim, gdouble c[4])
{
  static const gdouble tones[][4] = {
    [HUD_TONE_TEXT] = {1, 1, 1, 1},
    [HUD_TONE_MUTED] = {0.72, 0.72, 0.72, 1},
    [HUD_TONE_HCC] = {1.0, 0.78, 0.25, 1},
    [HUD_TONE_NON_HCC] = {0.55, 0.82, 1.0, 1},
    /* tags are opaque: the video thread copies them instead of blending */
    [HUD_TONE_CAUTION] = {0.72, 0.40, 0.0, 1},  /* deep amber: white text reads */
    [HUD_TONE_ALERT] = {0.78, 0.1, 0.1, 1},
    [HUD_TONE_NOTE] = {0.32, 0.38, 0.46, 1},
  };
  memcpy (c, tones[tone], sizeof tones[0]);
  c[3] *= dim;
}

/* text with its top-left at (x, y): solid with a dark outline, or grey and see-through
 * (provisional) */
static void
text_at (Ink * ink, gdouble x, gdouble y, const gchar * str, gdouble px, gboolean bold,
    const gdouble c[4], gboolean faint)
{
  set_font (ink, str, px, bold);
  cairo_move_to (ink->cr, x, y);
  pango_cairo_layout_path (ink->cr, ink->layout);
  if (faint) {
    cairo_set_source_rgba (ink->cr, c[0], c[1], c[2], 0.55 * c[3]);
    cairo_fill_preserve (ink->cr);
    cairo_set_source_rgba (ink->cr, c[0], c[1], c[2], c[3]);
    cairo_set_line_width (ink->cr, MAX (px / 30.0, 1.0));
    cairo_stroke (ink->cr);
    return;
  }
  cairo_set_source_rgba (ink->cr, 0, 0, 0, 0.8 * c[3]);
  cairo_set_line_width (ink->cr, MAX (px / 12.0, 1.0));
  cairo_stroke (ink->cr);
  cairo_move_to (ink->cr, x, y);
  cairo_set_source_rgba (ink->cr, c[0], c[1], c[2], c[3]);
  pango_cairo_show_layout (ink->cr, ink->layout);
}

static void
fill (cairo_t * cr, const HudBox * b, gdouble r, gdouble g, gdouble bl, gdouble a)
{
  cairo_rectangle (cr, b->x, b->y, b->w, b->h);
  cairo_set_source_rgba (cr, r, g, bl, a);
  cairo_fill (cr);
}

static gdouble
nice_step (gdouble span, gint ticks)
{
  gdouble raw = span / MAX (ticks, 1), mag = pow (10, floor (log10 (MAX (raw, 1e-9))));
  gdouble f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* The TIC plot in @b: a key (lesion amber, liver blue), the y axis in the curves' units
 * (dB over the exam's baseline), the x axis in seconds after arrival every 60 s; null points
 * break the line. Returns the lesion points drawn. */
static gint
draw_tic (Ink * ink, const HudFeatures * f, const HudBox * b, gdouble lab, gdouble dim)
{
  static const gdouble lesion_c[4] = { 1.0, 0.72, 0.2, 1 }, liver_c[4] = { 0.6, 0.82, 1.0, 1 };
  const gdouble grey[4] = { 0.85, 0.85, 0.85, dim };
  cairo_t *cr = ink->cr;
  gdouble tmax = 180, vmin = 0, vmax = 0, lh = lab * HUD_LINE_EM, step;
  gchar unit[HUD_STR] = "dB", buf[32];
  gdouble yw, px0, px1, py0, py1, kx;
  gint drawn = 0;

  for (gint i = 0; i < f->n; i++) {
    const gdouble *cv[] = { f->lesion, f->parenchyma, f->has_rim ? f->rim : NULL };
    tmax = MAX (tmax, f->times[i]);
    for (gint c = 0; c < 3; c++)
      if (cv[c] && !isnan (cv[c][i])) {
        vmin = MIN (vmin, cv[c][i]);
        vmax = MAX (vmax, cv[c][i]);
      }
  }
  if (f->units[0]) {
    g_strlcpy (unit, f->units, sizeof unit);
    g_strdelimit (unit, " ", '\0');     /* "dB over baseline" -> "dB" */
  }
  tmax = ceil (tmax / 60.0) * 60.0;
  if (vmax - vmin < 1e-6)
    vmax = vmin + 1.0;
  step = nice_step (vmax - vmin, 3);
  vmin = floor (vmin / step) * step;
  vmax = ceil (vmax / step) * step;
  g_snprintf (buf, sizeof buf, "%.0f", vmin < 0 ? vmin : vmax);
  yw = MAX (measure (ink, buf, lab, FALSE), measure (ink, unit, lab, FALSE)) + 0.4 * lab;
  px0 = b->x + yw;
  px1 = b->x + b->w - 0.6 * lab;
  py0 = b->y + 2 * lh;
  py1 = b->y + b->h - lh - 0.2 * lab;
  /* no tint behind the plot: a filled box would make its whole area a blend run for the
   * video thread (at 2160p most of the overlay's per-frame cost); the axes and the grid
   * lines frame it */
  /* the key, then the unit over the y axis */
  kx = b->x;
  for (gint c = 0; c < 2; c++) {
    const gdouble *col = c == 0 ? lesion_c : liver_c;
    const gchar *name = c == 0 ? "lesion" : "liver";
    cairo_set_source_rgba (cr, col[0], col[1], col[2], dim);
    cairo_set_line_width (cr, MAX (lab / 5, 2.0));
    cairo_move_to (cr, kx + 0.1 * lab, b->y + 0.55 * lh);
    cairo_line_to (cr, kx + 1.5 * lab, b->y + 0.55 * lh);
    cairo_stroke (cr);
    kx += 1.8 * lab;
    {
      gdouble tc[4] = { col[0], col[1], col[2], dim };
      text_at (ink, kx, b->y, name, lab, TRUE, tc, FALSE);
    }
    kx += measure (ink, name, lab, TRUE) + 1.0 * lab;
  }
  text_at (ink, b->x, b->y + lh, unit, lab, FALSE, grey, FALSE);
#define PX(t) (px0 + (px1 - px0) * (t) / tmax)
#define PY(v) (py1 - (py1 - py0) * ((v) - vmin) / (vmax - vmin))
  cairo_set_line_width (cr, MAX (lab / 10, 1.0));
  cairo_set_source_rgba (cr, 1, 1, 1, 0.6 * dim);
  cairo_move_to (cr, px0, py0);
  cairo_line_to (cr, px0, py1);
  cairo_line_to (cr, px1, py1);
  cairo_stroke (cr);
  for (gdouble v = vmin; v <= vmax + 1e-9; v += step) {
    gdouble ty = PY (v), tw;
    cairo_set_source_rgba (cr, 1, 1, 1, (fabs (v) < 1e-9 ? 0.45 : 0.15) * dim);
    cairo_move_to (cr, px0 - 0.3 * lab, ty);
    cairo_line_to (cr, px1, ty);
    cairo_stroke (cr);
    g_snprintf (buf, sizeof buf, "%.0f", v);
    tw = measure (ink, buf, lab, FALSE);
    if (ty - lh / 2 > b->y + 1.6 * lh)  /* clear of the key and the unit */
      text_at (ink, px0 - tw - 0.35 * lab, ty - lh / 2, buf, lab, FALSE, grey, FALSE);
  }
  for (gdouble t = 0; t <= tmax + 1e-9; t += 60) {
    gdouble tx = PX (t), tw;
    g_snprintf (buf, sizeof buf, t + 60 > tmax ? "%.0f s" : "%.0f", t);
    tw = measure (ink, buf, lab, FALSE);
    cairo_set_source_rgba (cr, 1, 1, 1, 0.6 * dim);
    cairo_move_to (cr, tx, py1);
    cairo_line_to (cr, tx, py1 + 0.3 * lab);
    cairo_stroke (cr);
    text_at (ink, CLAMP (tx - tw / 2, b->x, b->x + b->w - tw), py1 + 0.2 * lab, buf, lab,
        FALSE, grey, FALSE);
  }
  /* the curves: liver under, lesion over, rim dashed */
  {
    const gdouble *cv[] = { f->parenchyma, f->lesion, f->has_rim ? f->rim : NULL };
    const gdouble *col[] = { liver_c, lesion_c, lesion_c };
    const gdouble widths[] = { 0.16, 0.22, 0.12 };
    cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);
    for (gint c = 0; c < 3; c++) {
      gboolean pen = FALSE;
      if (!cv[c])
        continue;
      cairo_set_source_rgba (cr, col[c][0], col[c][1], col[c][2], dim);
      cairo_set_line_width (cr, MAX (widths[c] * lab, 1.5));
      if (c == 2) {
        gdouble dash = 0.4 * lab;
        cairo_set_dash (cr, &dash, 1, 0);
      }
      for (gint i = 0; i < f->n; i++) {
        gdouble v = cv[c][i];
        gboolean alone;
        if (isnan (v)) {
          pen = FALSE;
          continue;
        }
        alone = (i == 0 || isnan (cv[c][i - 1])) && (i + 1 >= f->n || isnan (cv[c][i + 1]));
        if (alone) {
          cairo_stroke (cr);
          cairo_arc (cr, PX (f->times[i]), PY (v), MAX (0.18 * lab, 1.5), 0, 2 * G_PI);
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

static void
draw_slots (cairo_t * cr, const HudView * v, const HudBox * b, gdouble stale)
{
  gint n = v->n_slots;
  gdouble cell = b->w / n, lw = MAX (b->h / 14, 1.0);
  for (gint i = 0; i < n; i++) {
    gdouble cx = b->x + i * cell + cell * 0.15, cw = cell * 0.7;
    gboolean late = n == 30 && i >= 25;
    gdouble ch = late ? b->h * 0.8 : b->h * 0.56, cy = b->y + (b->h - ch) / 2;
    switch (v->slots[i]) {
      case HUD_SLOT_FILLED:
        cairo_rectangle (cr, cx, cy, cw, ch);
        cairo_set_source_rgba (cr, 0.95, 0.95, 0.95, stale ? 0.5 : 0.95);
        cairo_fill (cr);
        break;
      case HUD_SLOT_FLAGGED:
        cairo_rectangle (cr, cx, cy, cw, ch);
        cairo_set_source_rgba (cr, 1.0, 0.65, 0.1, 0.95);
        cairo_fill (cr);
        break;
      case HUD_SLOT_MISSING:
        cairo_rectangle (cr, cx, cy, cw, ch);
        cairo_set_source_rgba (cr, 0.85, 0.15, 0.15, 0.95);
        cairo_fill (cr);
        break;
      default:
        cairo_rectangle (cr, cx + lw / 2, cy + lw / 2, cw - lw, ch - lw);
        cairo_set_source_rgba (cr, 1, 1, 1, 0.45);
        cairo_set_line_width (cr, lw);
        cairo_stroke (cr);
    }
    if (i == v->next_slot) {
      cairo_rectangle (cr, cx - 1.5 * lw, cy - 2 * lw, cw + 3 * lw, ch + 4 * lw);
      cairo_set_source_rgba (cr, 0.3, 0.9, 1.0, 0.95);
      cairo_set_line_width (cr, 1.5 * lw);
      cairo_stroke (cr);
    }
  }
}

static void
json_box (JsonBuilder * jb, const gchar * name, const HudBox * b)
{
  json_builder_set_member_name (jb, name);
  json_builder_begin_array (jb);
  json_builder_add_int_value (jb, (gint64) floor (b->x));
  json_builder_add_int_value (jb, (gint64) floor (b->y));
  json_builder_add_int_value (jb, (gint64) ceil (b->w));
  json_builder_add_int_value (jb, (gint64) ceil (b->h));
  json_builder_end_array (jb);
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
hud_overlay_mark_learnt (HudOverlay * ov)
{
  static const gchar before[] = "\"screen_learnt\":false}";
  gsize n;
  if (!ov->shown || (n = strlen (ov->shown)) < sizeof before - 1
      || strcmp (ov->shown + n - (sizeof before - 1), before) != 0)
    return;
  ov->shown[n - (sizeof before - 1)] = 0;
  {
    gchar *s = g_strconcat (ov->shown, "\"screen_learnt\":true}", NULL);
    g_free (ov->shown);
    ov->shown = s;
  }
}

gboolean
hud_render (HudOverlay * ov, const HudState * s, const HudStyle * style,
    const HudGeometry * g, const HudScreen * screen, gint64 now_us, gboolean have_state)
{
  HudView *v = g_new (HudView, 1);
  HudLayout *l = g_new (HudLayout, 1);
  JsonBuilder *jb = json_builder_new ();
  gint tic_points = 0;
  gboolean fits;
  cairo_t *cr;
  Ink ink;

  /* a reused overlay: only its last rectangles hold anything (a new surface is clear) */
  {
    guint8 *data = cairo_image_surface_get_data (ov->surface);
    gint stride = cairo_image_surface_get_stride (ov->surface);
    cairo_surface_flush (ov->surface);
    for (gint i = 0; i < ov->n_rects; i++) {
      const HudRect *r = &ov->rects[i];
      for (gint y = r->y; y < r->y + r->h; y++)
        memset (data + (gsize) y * stride + (gsize) r->x * 4, 0, (gsize) r->w * 4);
    }
    cairo_surface_mark_dirty (ov->surface);
  }
  ov->n_rects = 0;
  cr = cairo_create (ov->surface);
  cairo_set_operator (cr, CAIRO_OPERATOR_OVER);
  ink.cr = cr;
  ink.layout = pango_cairo_create_layout (cr);
  ink.desc = pango_font_description_new ();
  ink.font = style->font && *style->font ? style->font : "Sans";
  pango_layout_set_single_paragraph_mode (ink.layout, TRUE);

  hud_view_build (v, s, style, now_us, have_state);
  hud_layout (l, v, g, screen, style->disclaimer, measure, &ink);

  for (gint i = 0; i < l->n; i++) {
    const HudItem *it = &l->items[i];
    const gdouble dim = it->dimmable ? dim : 1.0;
    gdouble c[4];
    rgba_of (it->tone, dim, c);
    if (it->kind != HUD_ITEM_ROI) {
      /* outlines and strokes reach a little past the box */
      gdouble m = MAX (it->px, l->body_px) * 0.15 + 2;
      add_rect (ov, it->box.x - m, it->box.y - m, it->box.w + 2 * m, it->box.h + 2 * m);
    }
    switch (it->kind) {
      case HUD_ITEM_BACKDROP:
        fill (cr, &it->box, 0, 0, 0, 0.66);
        break;
      case HUD_ITEM_TEXT:
        text_at (&ink, it->box.x, it->box.y, it->text, it->px, it->bold, c, FALSE);
        break;
      case HUD_ITEM_TAG:{
        gdouble white[4] = { 1, 1, 1, dim };
        fill (cr, &it->box, c[0], c[1], c[2], c[3]);
        text_at (&ink, it->box.x + 0.4 * it->px, it->box.y, it->text, it->px, it->bold, white,
            FALSE);
        break;
      }
      case HUD_ITEM_NUMBER:
        /* provisional: grey (the tone), solid so it reads from two metres; final: white,
         * framed and labelled */
        text_at (&ink, it->box.x, it->box.y - 0.05 * it->px, it->text, it->px, TRUE, c, FALSE);
        break;
      case HUD_ITEM_FRAME:
        cairo_rectangle (cr, it->box.x, it->box.y, it->box.w, it->box.h);
        cairo_set_source_rgba (cr, 1, 1, 1, 0.9 * dim);
        cairo_set_line_width (cr, MAX (l->body_px / 10, 1.0));
        cairo_stroke (cr);
        break;
      case HUD_ITEM_GAUGE:{
        HudBox bar = it->box, fillb = it->box, mark;
        fill (cr, &bar, 1, 1, 1, 0.18);
        fillb.w = bar.w * CLAMP (v->gauge, 0, 1);
        if (v->gauge_final)
          fill (cr, &fillb, 1.0, 0.78, 0.25, dim);
        else
          fill (cr, &fillb, 0.7, 0.7, 0.7, 0.6 * dim);
        mark = (HudBox) {
        bar.x + bar.w * v->threshold - bar.h / 8, bar.y - bar.h / 4, bar.h / 4, bar.h * 1.5};
        fill (cr, &mark, 1, 1, 1, 0.9);
        break;
      }
      case HUD_ITEM_TIC:
        if (have_state && s->features.present)
          tic_points = draw_tic (&ink, &s->features, &it->box, it->px, dim);
        break;
      case HUD_ITEM_SLOTS:
        draw_slots (cr, v, &it->box, v->state == HUD_SHOW_STALE);
        break;
      case HUD_ITEM_ROI:{
        const HudBox *r = &it->box;
        gdouble arm = MIN (r->w, r->h) * 0.22, lw = MAX (l->body_px / 10, 1.5);
        cairo_set_line_width (cr, lw);
        cairo_set_source_rgba (cr, 0.3, 0.9, 1.0, v->state == HUD_SHOW_STALE ? 0.4 : 0.9);
        for (gint k = 0; k < 4; k++) {
          gdouble cx = (k & 1) ? r->x + r->w : r->x, cy = (k & 2) ? r->y + r->h : r->y;
          gdouble dx = (k & 1) ? -arm : arm, dy = (k & 2) ? -arm : arm;
          cairo_move_to (cr, cx + dx, cy);
          cairo_line_to (cr, cx, cy);
          cairo_line_to (cr, cx, cy + dy);
          cairo_stroke (cr);
          add_rect (ov, MIN (cx, cx + dx) - lw, MIN (cy, cy + dy) - lw, fabs (dx) + 2 * lw,
              fabs (dy) + 2 * lw);
        }
        break;
      }
    }
  }

  json_builder_begin_object (jb);
  hud_view_add_json (v, jb);
  json_builder_set_member_name (jb, "tic_points");
  json_builder_add_int_value (jb, tic_points);
  json_builder_set_member_name (jb, "layout");
  json_builder_add_string_value (jb, hud_layout_nick (g->mode));
  json_builder_set_member_name (jb, "where");
  json_builder_add_string_value (jb, l->where ? l->where : "");
  json_builder_set_member_name (jb, "fits");
  json_builder_add_boolean_value (jb, l->fits);
  json_builder_set_member_name (jb, "cap_px");
  json_builder_add_double_value (jb, l->cap_px);
  json_builder_set_member_name (jb, "disclaimer");
  json_builder_add_string_value (jb, hud_corner_nick (style->disclaimer));
  json_box (jb, "disclaimer_box", &l->disclaimer);
  json_box (jb, "panel_box", &l->panel);
  {
    HudBox video = { g->video_x, g->video_y, g->in_w, g->in_h };
    json_box (jb, "video", &video);
  }
  json_builder_set_member_name (jb, "canvas");
  json_builder_begin_array (jb);
  json_builder_add_int_value (jb, g->out_w);
  json_builder_add_int_value (jb, g->out_h);
  json_builder_end_array (jb);
  json_builder_set_member_name (jb, "screen_areas");
  json_builder_begin_array (jb);
  for (gint i = 0; screen && screen->ready && i < screen->n_areas; i++) {
    HudBox a = { screen->areas[i].x, screen->areas[i].y, screen->areas[i].w,
      screen->areas[i].h
    };
    json_builder_begin_array (jb);
    json_builder_add_int_value (jb, (gint64) a.x);
    json_builder_add_int_value (jb, (gint64) a.y);
    json_builder_add_int_value (jb, (gint64) a.w);
    json_builder_add_int_value (jb, (gint64) a.h);
    json_builder_end_array (jb);
  }
  json_builder_end_array (jb);
  json_builder_set_member_name (jb, "screen_ready");
  json_builder_add_boolean_value (jb, screen && screen->ready);
  /* the last member: hud_overlay_mark_learnt rewrites it */
  json_builder_set_member_name (jb, "screen_learnt");
  json_builder_add_boolean_value (jb, screen && screen->learnt);
  json_builder_end_object (jb);
  g_free (ov->shown);
  ov->shown = json_text (jb);
  g_object_unref (jb);

  pango_font_description_free (ink.desc);
  g_object_unref (ink.layout);
  cairo_destroy (cr);
  cairo_surface_flush (ov->surface);
  fits = l->fits;
  g_free (v);
  g_free (l);
  return fits;
}
