/* Premultiplied "over" blending of the overlay's rectangles, per pixel format. */
#include "hudblend.h"

#include <string.h>

/* exact round(v / 255) for v <= 255 * 255 */
static inline guint
div255 (guint v)
{
  return (v + 128 + ((v + 128) >> 8)) >> 8;
}

static inline guint
px_at (const guint8 * base, gint stride, gint x, gint y)
{
  return *(const guint32 *) (base + (gsize) y * stride + (gsize) x * 4);
}

void
hud_overlay_prepare (HudOverlay * ov)
{
  const guint8 *base;
  gint stride;
  gsize total = 0;

  gsize n_spans = 0;

  g_free (ov->planes);
  g_free (ov->spans);
  ov->planes = NULL;
  for (gint i = 0; i < ov->n_rects; i++) {
    const HudRect *r = &ov->rects[i];
    gint cw = (r->w + 1) / 2, ch = (r->h + 1) / 2;
    ov->plane_offset[i] = total;
    total += (gsize) r->w * r->h * 2 + (gsize) cw * ch * 3;
    ov->span_offset[i] = n_spans;
    n_spans += (gsize) r->h * 2;
  }
  ov->planes = g_malloc0 (total ? total : 1);
  ov->spans = g_malloc0 (sizeof (gint) * (n_spans ? n_spans : 1));
  base = cairo_image_surface_get_data (ov->surface);
  stride = cairo_image_surface_get_stride (ov->surface);
  /* the spans: where each row has anything to blend */
  for (gint i = 0; i < ov->n_rects; i++) {
    const HudRect *r = &ov->rects[i];
    gint *sp = ov->spans + ov->span_offset[i];
    for (gint y = 0; y < r->h; y++) {
      const guint32 *row = (const guint32 *) (base + (gsize) (r->y + y) * stride) + r->x;
      gint x0 = 0, x1 = r->w;
      while (x0 < x1 && row[x0] == 0)
        x0++;
      while (x1 > x0 && row[x1 - 1] == 0)
        x1--;
      /* an empty row: (w, 0), which neither widens a union nor runs a loop */
      sp[2 * y] = x0 < x1 ? x0 : r->w;
      sp[2 * y + 1] = x0 < x1 ? x1 : 0;
    }
  }
  for (gint i = 0; i < ov->n_rects; i++) {
    const HudRect *r = &ov->rects[i];
    gint cw = (r->w + 1) / 2, ch = (r->h + 1) / 2;
    guint8 *Y = ov->planes + ov->plane_offset[i];
    guint8 *A = Y + (gsize) r->w * r->h;
    guint8 *U = A + (gsize) r->w * r->h;
    guint8 *V = U + (gsize) cw * ch;
    guint8 *A2 = V + (gsize) cw * ch;
    for (gint y = 0; y < r->h; y++)
      for (gint x = 0; x < r->w; x++) {
        guint p = px_at (base, stride, r->x + x, r->y + y);
        gint a = p >> 24, R = (p >> 16) & 255, G = (p >> 8) & 255, B = p & 255;
        /* BT.601 studio range, premultiplied by alpha */
        gint yv = (66 * R + 129 * G + 25 * B + 128) / 256 + (16 * a + 127) / 255;
        Y[y * r->w + x] = (guint8) CLAMP (yv, 0, 255);
        A[y * r->w + x] = (guint8) a;
      }
    for (gint cy = 0; cy < ch; cy++)
      for (gint cx = 0; cx < cw; cx++) {
        gint sa = 0, sr = 0, sg = 0, sb = 0, n = 0;
        for (gint dy = 0; dy < 2; dy++)
          for (gint dx = 0; dx < 2; dx++) {
            gint x = cx * 2 + dx, y = cy * 2 + dy;
            if (x >= r->w || y >= r->h)
              continue;
            guint p = px_at (base, stride, r->x + x, r->y + y);
            sa += p >> 24;
            sr += (p >> 16) & 255;
            sg += (p >> 8) & 255;
            sb += p & 255;
            n++;
          }
        sa /= n;
        sr /= n;
        sg /= n;
        sb /= n;
        gint u = (-38 * sr - 74 * sg + 112 * sb) / 256 + (128 * sa + 127) / 255;
        gint v = (112 * sr - 94 * sg - 18 * sb) / 256 + (128 * sa + 127) / 255;
        U[cy * cw + cx] = (guint8) CLAMP (u, 0, 255);
        V[cy * cw + cx] = (guint8) CLAMP (v, 0, 255);
        A2[cy * cw + cx] = (guint8) sa;
      }
  }
}

/* "Over" on whole 32-bit pixels, two channels per multiply (SWAR), branch-free so the
 * compiler vectorises it; a transparent pixel (alpha 0, colour 0) leaves the frame as it was.
 * Cairo's ARGB32 is B,G,R,A in memory on little-endian machines, as BGRx/BGRA frames are; for
 * RGBx/RGBA the source's red and blue swap places. The padding byte gets the overlay's alpha
 * blended in, which BGRx ignores and BGRA reads as coverage. */
static inline guint32
over (guint32 s, guint32 d)
{
  guint32 ia = 255u - (s >> 24);
  guint32 rb = (d & 0x00FF00FFu) * ia + 0x00800080u;
  guint32 ag = ((d >> 8) & 0x00FF00FFu) * ia + 0x00800080u;
  rb = ((rb + ((rb >> 8) & 0x00FF00FFu)) >> 8) & 0x00FF00FFu;
  ag = (ag + ((ag >> 8) & 0x00FF00FFu)) & 0xFF00FF00u;
  return s + (rb | ag);
}

static void
blend_rgb (const HudOverlay * ov, HudFrame * f, gboolean bgr)
{
  const guint8 *base = cairo_image_surface_get_data (ov->surface);
  gint sstride = cairo_image_surface_get_stride (ov->surface);
  for (gint i = 0; i < ov->n_rects; i++) {
    const HudRect *r = &ov->rects[i];
    gint w = MIN (r->w, f->width - r->x), h = MIN (r->h, f->height - r->y);
    const gint *span = ov->spans + ov->span_offset[i];
    for (gint y = 0; y < h; y++) {
      const guint32 *sp = (const guint32 *) (base + (gsize) (r->y + y) * sstride) + r->x;
      guint32 *d = (guint32 *) (f->data[0] + (gsize) (r->y + y) * f->stride[0]) + r->x;
      gint x0 = span[2 * y], x1 = MIN (span[2 * y + 1], w);
      /* blocks of 8 pixels with nothing drawn (between letters) are skipped whole */
      for (gint x = x0; x < x1; x += 8) {
        gint e = MIN (x + 8, x1);
        guint32 any = 0;
        for (gint k = x; k < e; k++)
          any |= sp[k];
        if (!any)
          continue;
        if (bgr) {
          for (gint k = x; k < e; k++)
            d[k] = over (sp[k], d[k]);
        } else {
          for (gint k = x; k < e; k++) {
            guint32 s = sp[k];
            s = (s & 0xFF00FF00u) | ((s >> 16) & 0xFFu) | ((s & 0xFFu) << 16);
            d[k] = over (s, d[k]);
          }
        }
      }
    }
  }
}

static void
blend_plane (guint8 * dst, gint dstride, const guint8 * src, const guint8 * alpha, gint sw,
    gint w, gint h, gint pixel_step, const gint * span, gint rows, gint sub)
{
  for (gint y = 0; y < h; y++) {
    guint8 *d = dst + (gsize) y * dstride;
    const guint8 *s = src + (gsize) y * sw, *a = alpha + (gsize) y * sw;
    gint r0 = y << sub, r1 = MIN ((y << sub) + sub, rows - 1);
    gint x0 = MIN (span[2 * r0], span[2 * r1]) >> sub;
    gint x1 = MIN ((MAX (span[2 * r0 + 1], span[2 * r1 + 1]) + sub) >> sub, w);
    if (span[2 * r0] >= span[2 * r0 + 1] && span[2 * r1] >= span[2 * r1 + 1])
      continue;                 /* nothing to blend in this row */
    for (gint x = x0; x < x1; x += 16) {
      gint e = MIN (x + 16, x1);
      guint any = 0;
      for (gint k = x; k < e; k++)
        any |= a[k];
      if (!any)
        continue;               /* nothing drawn here (between letters) */
      for (gint k = x; k < e; k++)
        d[k * pixel_step] = (guint8) (s[k] + div255 (d[k * pixel_step] * (255u - a[k])));
    }
  }
}

static void
blend_yuv (const HudOverlay * ov, HudFrame * f)
{
  gint fcw = (f->width + 1) / 2, fch = (f->height + 1) / 2;
  for (gint i = 0; i < ov->n_rects; i++) {
    const HudRect *r = &ov->rects[i];
    gint cw = (r->w + 1) / 2, ch = (r->h + 1) / 2;
    const guint8 *Y = ov->planes + ov->plane_offset[i];
    const guint8 *A = Y + (gsize) r->w * r->h;
    const guint8 *U = A + (gsize) r->w * r->h;
    const guint8 *V = U + (gsize) cw * ch;
    const guint8 *A2 = V + (gsize) cw * ch;
    gint w = MIN (r->w, f->width - r->x), h = MIN (r->h, f->height - r->y);
    gint cx0 = r->x / 2, cy0 = r->y / 2;
    gint cwc = MIN (cw, fcw - cx0), chc = MIN (ch, fch - cy0);
    if (w <= 0 || h <= 0)
      continue;
    const gint *span = ov->spans + ov->span_offset[i];
    blend_plane (f->data[0] + (gsize) r->y * f->stride[0] + r->x, f->stride[0], Y, A, r->w, w,
        h, 1, span, r->h, 0);
    if (f->format == HUD_FMT_I420) {
      blend_plane (f->data[1] + (gsize) cy0 * f->stride[1] + cx0, f->stride[1], U, A2, cw,
          cwc, chc, 1, span, r->h, 1);
      blend_plane (f->data[2] + (gsize) cy0 * f->stride[2] + cx0, f->stride[2], V, A2, cw,
          cwc, chc, 1, span, r->h, 1);
    } else {                    /* NV12: interleaved UV */
      guint8 *uv = f->data[1] + (gsize) cy0 * f->stride[1] + (gsize) cx0 * 2;
      blend_plane (uv, f->stride[1], U, A2, cw, cwc, chc, 2, span, r->h, 1);
      blend_plane (uv + 1, f->stride[1], V, A2, cw, cwc, chc, 2, span, r->h, 1);
    }
  }
}

static gint
planes_of (HudFormat format)
{
  switch (format) {
    case HUD_FMT_I420:
      return 3;
    case HUD_FMT_NV12:
      return 2;
    default:
      return 1;
  }
}

gboolean
hud_blend (const HudOverlay * ov, HudFrame * f)
{
  if (!ov || !ov->surface || ov->width != f->width || ov->height != f->height
      || f->n_planes < planes_of (f->format))
    return FALSE;
  for (gint i = 0; i < planes_of (f->format); i++)
    if (!f->data[i])
      return FALSE;
  switch (f->format) {
    case HUD_FMT_BGRX:
      blend_rgb (ov, f, TRUE);
      return TRUE;
    case HUD_FMT_RGBX:
      blend_rgb (ov, f, FALSE);
      return TRUE;
    case HUD_FMT_I420:
    case HUD_FMT_NV12:
      if (!ov->planes)
        return FALSE;
      blend_yuv (ov, f);
      return TRUE;
  }
  return FALSE;
}
