/* Premultiplied "over" blending of the overlay's rectangles, per pixel format. */
#include "hudblend.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

/* transparent gaps shorter than this are blended through (a transparent pixel blends to
 * what was there); opaque stretches at least this long are copied */
#define GAP_PX 16
#define COPY_PX 32
/* runs ahead whose first bytes are fetched early: each run starts on another row (another
 * page), where the hardware prefetcher has to start over, and the frame is cold (its
 * producer wrote megabytes since) */
#define PREFETCH_RUNS 6

static inline void
prefetch_span (const guint8 * p, gint bytes, gint write)
{
  for (gint o = 0; o < MIN (bytes, 256); o += 64) {
    if (write)
      __builtin_prefetch (p + o, 1);
    else
      __builtin_prefetch (p + o, 0);
  }
}

static void
push_run (GArray * a, gint y, gint x, gint n, gboolean opaque)
{
  HudRun r = { y, x, n, opaque, FALSE };
  if (n > 0)
    g_array_append_val (a, r);
}

/* The runs of one row of alphas: non-transparent stretches (short gaps bridged), with long
 * opaque stretches split out to be copied. */
static void
row_runs (GArray * out, gint y, const guint8 * a, gint w)
{
  gint x = 0;
  while (x < w) {
    gint start, last, e, k, b;
    while (x < w && a[x] == 0)
      x++;
    if (x >= w)
      break;
    start = last = e = x;
    while (e < w) {
      gint g;
      if (a[e]) {
        last = e++;
        continue;
      }
      for (g = e; g < w && a[g] == 0 && g - e < GAP_PX; g++);
      if (g < w && a[g] && g - e < GAP_PX) {
        e = g;
        continue;
      }
      break;
    }
    for (k = b = start; k <= last;) {
      gint o = k;
      if (a[k] != 255) {
        k++;
        continue;
      }
      while (o <= last && a[o] == 255)
        o++;
      if (o - k >= COPY_PX) {
        push_run (out, y, b, k - b, FALSE);
        push_run (out, y, k, o - k, TRUE);
        b = o;
      }
      k = o;
    }
    push_run (out, y, b, last + 1 - b, FALSE);
    x = last + 1;
  }
}

void
hud_overlay_prepare (HudOverlay * ov)
{
  const guint8 *base;
  gint stride;
  gsize total = 0;
  GArray *runs = g_array_new (FALSE, FALSE, sizeof (HudRun));
  GArray *cruns = g_array_new (FALSE, FALSE, sizeof (HudRun));

  g_free (ov->planes);
  g_free (ov->runs);
  g_free (ov->cruns);
  ov->planes = NULL;
  for (gint i = 0; i < ov->n_rects; i++) {
    const HudRect *r = &ov->rects[i];
    gint cw = (r->w + 1) / 2, ch = (r->h + 1) / 2;
    ov->plane_offset[i] = total;
    total += (gsize) r->w * r->h * 2 + (gsize) cw * ch * 3;
  }
  ov->planes = g_malloc0 (total ? total : 1);
  base = cairo_image_surface_get_data (ov->surface);
  stride = cairo_image_surface_get_stride (ov->surface);
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
    ov->run_offset[i] = runs->len;
    for (gint y = 0; y < r->h; y++)
      row_runs (runs, y, A + (gsize) y * r->w, r->w);
    ov->n_runs[i] = runs->len - ov->run_offset[i];
    /* opaque runs of one colour: filled, their source never read */
    for (guint j = ov->run_offset[i]; j < runs->len; j++) {
      HudRun *q = &g_array_index (runs, HudRun, j);
      const guint32 *row = (const guint32 *) (base + (gsize) (r->y + q->y) * stride) + r->x
          + q->x;
      q->fill = q->opaque;
      for (gint k = 1; k < q->n && q->fill; k++)
        q->fill = row[k] == row[0];
    }
    ov->crun_offset[i] = cruns->len;
    for (gint cy = 0; cy < ch; cy++)
      row_runs (cruns, cy, A2 + (gsize) cy * cw, cw);
    ov->n_cruns[i] = cruns->len - ov->crun_offset[i];
    for (guint j = ov->crun_offset[i]; j < cruns->len; j++) {
      HudRun *q = &g_array_index (cruns, HudRun, j);
      const guint8 *u = U + (gsize) q->y * cw + q->x, *v = V + (gsize) q->y * cw + q->x;
      q->fill = q->opaque;
      for (gint k = 1; k < q->n && q->fill; k++)
        q->fill = u[k] == u[0] && v[k] == v[0];
    }
  }
  ov->runs = (HudRun *) g_array_free (runs, FALSE);
  ov->cruns = (HudRun *) g_array_free (cruns, FALSE);
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

/* Opaque runs (a panel's backdrop or tag with its text already on it) are copied, not
 * blended: "over" with an opaque source is the source. */
static inline void
copy_rgb (guint32 * d, const guint32 * sp, gint n, gboolean bgr)
{
  if (bgr) {
    memcpy (d, sp, (gsize) n * 4);
    return;
  }
  for (gint k = 0; k < n; k++) {
    guint32 s = sp[k];
    d[k] = (s & 0xFF00FF00u) | ((s >> 16) & 0xFFu) | ((s & 0xFFu) << 16);
  }
}

/* "over" for @n BGR-ordered pixels: 16-bit lanes, four pixels a step (SSE2, on every x86-64;
 * the same arithmetic as over(): s + round(d x (255 - a) / 255) per byte, which premultiplied
 * sources keep within 255) */
static void
over_run (guint32 * d, const guint32 * sp, gint n)
{
  gint k = 0;
#ifdef __SSE2__
  const __m128i zero = _mm_setzero_si128 (), c255 = _mm_set1_epi16 (255);
  const __m128i c128 = _mm_set1_epi16 (128);
  for (; k + 4 <= n; k += 4) {
    __m128i s = _mm_loadu_si128 ((const __m128i *) (sp + k));
    __m128i dv = _mm_loadu_si128 ((const __m128i *) (d + k));
    __m128i sl = _mm_unpacklo_epi8 (s, zero), sh = _mm_unpackhi_epi8 (s, zero);
    __m128i dl = _mm_unpacklo_epi8 (dv, zero), dh = _mm_unpackhi_epi8 (dv, zero);
    /* each pixel's alpha (lane 3 of its four) in all four of its lanes */
    __m128i al = _mm_shufflehi_epi16 (_mm_shufflelo_epi16 (sl, 0xFF), 0xFF);
    __m128i ah = _mm_shufflehi_epi16 (_mm_shufflelo_epi16 (sh, 0xFF), 0xFF);
    __m128i tl = _mm_add_epi16 (_mm_mullo_epi16 (dl, _mm_sub_epi16 (c255, al)), c128);
    __m128i th = _mm_add_epi16 (_mm_mullo_epi16 (dh, _mm_sub_epi16 (c255, ah)), c128);
    tl = _mm_srli_epi16 (_mm_add_epi16 (tl, _mm_srli_epi16 (tl, 8)), 8);
    th = _mm_srli_epi16 (_mm_add_epi16 (th, _mm_srli_epi16 (th, 8)), 8);
    _mm_storeu_si128 ((__m128i *) (d + k), _mm_adds_epu8 (_mm_packus_epi16 (tl, th), s));
  }
#endif
  for (; k < n; k++)
    d[k] = over (sp[k], d[k]);
}

static void
blend_rgb (const HudOverlay * ov, HudFrame * f, gboolean bgr)
{
  const guint8 *base = cairo_image_surface_get_data (ov->surface);
  gint sstride = cairo_image_surface_get_stride (ov->surface);
  for (gint i = 0; i < ov->n_rects; i++) {
    const HudRect *r = &ov->rects[i];
    gint w = MIN (r->w, f->width - r->x), h = MIN (r->h, f->height - r->y);
    const HudRun *run = ov->runs + ov->run_offset[i];
    for (gsize j = 0; j < ov->n_runs[i]; j++) {
      gint y = run[j].y, x = run[j].x, n = MIN (run[j].n, w - x);
      if (j + PREFETCH_RUNS < ov->n_runs[i]) {
        const HudRun *q = &run[j + PREFETCH_RUNS];
        if (q->y < h && q->x < w) {
          if (!q->fill)
            prefetch_span (base + (gsize) (r->y + q->y) * sstride + (gsize) (r->x + q->x) * 4,
                q->n * 4, 0);
          prefetch_span (f->data[0] + (gsize) (r->y + q->y) * f->stride[0] + (gsize) (r->x
                  + q->x) * 4, q->n * 4, 1);
        }
      }
      if (y >= h || n <= 0)
        continue;
      const guint32 *sp = (const guint32 *) (base + (gsize) (r->y + y) * sstride) + r->x + x;
      guint32 *d = (guint32 *) (f->data[0] + (gsize) (r->y + y) * f->stride[0]) + r->x + x;
      if (run[j].fill) {
        guint32 s = sp[0];
        if (!bgr)
          s = (s & 0xFF00FF00u) | ((s >> 16) & 0xFFu) | ((s & 0xFFu) << 16);
        for (gint k = 0; k < n; k++)
          d[k] = s;
      } else if (run[j].opaque)
        copy_rgb (d, sp, n, bgr);
      else if (bgr)
        over_run (d, sp, n);
      else
        for (gint k = 0; k < n; k++) {
          guint32 s = sp[k];
          s = (s & 0xFF00FF00u) | ((s >> 16) & 0xFFu) | ((s & 0xFFu) << 16);
          d[k] = over (s, d[k]);
        }
    }
  }
}

/* One plane of a rect by its runs: @src/@alpha @sw wide, the frame's pixels @pixel_step
 * bytes apart (2 for NV12's interleaved chroma), clipped to @w x @h. */
static void
blend_plane (guint8 * dst, gint dstride, const guint8 * src, const guint8 * alpha, gint sw,
    gint w, gint h, gint pixel_step, const HudRun * run, gsize n_runs)
{
  for (gsize j = 0; j < n_runs; j++) {
    gint y = run[j].y, x = run[j].x, n = MIN (run[j].n, w - x);
    if (j + PREFETCH_RUNS < n_runs) {
      const HudRun *q = &run[j + PREFETCH_RUNS];
      if (q->y < h && q->x < w) {
        if (!q->fill) {
          prefetch_span (src + (gsize) q->y * sw + q->x, q->n, 0);
          prefetch_span (alpha + (gsize) q->y * sw + q->x, q->n, 0);
        }
        prefetch_span (dst + (gsize) q->y * dstride + (gsize) q->x * pixel_step,
            q->n * pixel_step, 1);
      }
    }
    if (y >= h || n <= 0)
      continue;
    guint8 *d = dst + (gsize) y * dstride + (gsize) x * pixel_step;
    const guint8 *s = src + (gsize) y * sw + x, *a = alpha + (gsize) y * sw + x;
    if (run[j].fill && pixel_step == 1)
      memset (d, s[0], n);
    else if (run[j].fill)
      for (gint k = 0; k < n; k++)
        d[k * 2] = s[0];
    else if (run[j].opaque && pixel_step == 1)
      memcpy (d, s, n);
    else if (run[j].opaque)
      for (gint k = 0; k < n; k++)
        d[k * 2] = s[k];
    else if (pixel_step == 1)
      for (gint k = 0; k < n; k++)
        d[k] = (guint8) (s[k] + div255 (d[k] * (255u - a[k])));
    else
      for (gint k = 0; k < n; k++)
        d[k * 2] = (guint8) (s[k] + div255 (d[k * 2] * (255u - a[k])));
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
    const HudRun *run = ov->runs + ov->run_offset[i];
    const HudRun *crun = ov->cruns + ov->crun_offset[i];
    gsize nr = ov->n_runs[i], nc = ov->n_cruns[i];
    if (w <= 0 || h <= 0)
      continue;
    blend_plane (f->data[0] + (gsize) r->y * f->stride[0] + r->x, f->stride[0], Y, A, r->w, w,
        h, 1, run, nr);
    if (f->format == HUD_FMT_I420) {
      blend_plane (f->data[1] + (gsize) cy0 * f->stride[1] + cx0, f->stride[1], U, A2, cw,
          cwc, chc, 1, crun, nc);
      blend_plane (f->data[2] + (gsize) cy0 * f->stride[2] + cx0, f->stride[2], V, A2, cw,
          cwc, chc, 1, crun, nc);
    } else {                    /* NV12: interleaved UV */
      guint8 *uv = f->data[1] + (gsize) cy0 * f->stride[1] + (gsize) cx0 * 2;
      blend_plane (uv, f->stride[1], U, A2, cw, cwc, chc, 2, crun, nc);
      blend_plane (uv + 1, f->stride[1], V, A2, cw, cwc, chc, 2, crun, nc);
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
      if (ov->n_rects && !ov->runs)
        return FALSE;
      blend_rgb (ov, f, TRUE);
      return TRUE;
    case HUD_FMT_RGBX:
      if (ov->n_rects && !ov->runs)
        return FALSE;
      blend_rgb (ov, f, FALSE);
      return TRUE;
    case HUD_FMT_I420:
    case HUD_FMT_NV12:
      if (!ov->planes || (ov->n_rects && !ov->cruns))
        return FALSE;
      blend_yuv (ov, f);
      return TRUE;
  }
  return FALSE;
}
