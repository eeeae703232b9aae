/**
 * SECTION:element-ceushud
 * @title: ceushud
 * @short_description: draws the ceustream engine's live CEUS score over video
 *
 * A subscriber thread receives the engine's ZeroMQ messages (score.<exam>, status.<exam>,
 * JSON schema v1), keeps the latest state and renders the overlay (cairo/pango) whenever what
 * it shows changes: the HCC probability (hollow and grey with "n/30" while provisional; solid,
 * framed and labelled once final), the gauge with the decision threshold, the TIC reading (a
 * small lesion-vs-liver plot and its summary line), the 30 slots, the phase with a countdown
 * that runs down between messages, the ROI corners, warnings in words (NO SIGNAL, FROZEN
 * IMAGE, OUT OF DISTRIBUTION next to the score, ...), STALE while an exam runs and the engine
 * is silent for #GstCeusHud:stale-after seconds, EXAM ENDED after a normal end, a neutral
 * "CPU" note on CPU fallback, and a permanent block saying the model was trained on simulated
 * data (#GstCeusHud:disclaimer-position picks its corner).
 *
 * Where the panels go is #GstCeusHud:layout: auto puts them where neither the image nor the
 * scanner's text is, and gives a picture narrower than 16:10 a wider canvas
 * (#GstCeusHud:output-width x #GstCeusHud:output-height, or 16:9 at its height) with the video
 * at the left; beside always widens; over uses fixed corners. What is said is the view's
 * (hudview.c), where the layout's (hudlayout.c), the drawing the painter's (hudrender.c).
 *
 * The rule in auto at the video's size (hudscreen.c), so that from the first frame on no panel
 * pixel lies in the image or over the scanner's text and nothing jumps: the first frame gives
 * a provisional screen (what differs from the background is occupied; a large connected blob
 * of it is an image and occupies its whole bounding box, so a dark sector interior is not
 * free), and the panels are laid out in its free space for that very frame. The motion
 * analysis over the next 32 frames only adds occupied cells (what moved, what was drawn
 * later); when it adds none the panels stay where they are (nothing is drawn again), and only
 * where it contradicts the first look are they laid out again, once.
 *
 * The streaming thread never waits for a message or for drawing, but once: the first frame
 * after a caps change waits (at most one second) for an overlay of its size laid out for the
 * screen it shows, so that every frame carries the disclaimer. Per frame it takes a
 * reference to the last rendered overlay and blends its rectangles into the frame (in place
 * at the video's size; into the canvas, after copying the video, otherwise), by the frame's
 * negotiated format. Frames larger than the renderer can hold (over 32767
 * pixels a side) pass through untouched, with one warning.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,width=1280,height=720 ! \
 *     ceushud endpoint=tcp://127.0.0.1:5556 disclaimer-position=bottom-left ! \
 *     videoconvert ! autovideosink
 * ]|
 * Debug output: `GST_DEBUG=ceushud:5` (caps, properties, messages ignored and why).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstceushud.h"

#include <errno.h>
#include <gst/video/video.h>
#include <math.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "hudblend.h"
#include "hudrender.h"
#include "hudlayout.h"
#include "hudscreen.h"
#include "hudstate.h"
#include "hudview.h"

GST_DEBUG_CATEGORY_STATIC (ceus_hud_debug);
#define GST_CAT_DEFAULT ceus_hud_debug

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5556"
#define DEFAULT_STALE_AFTER 3.0
#define DEFAULT_FONT "Sans"
#define DEFAULT_DISCLAIMER HUD_CORNER_BOTTOM_LEFT
#define DEFAULT_LAYOUT HUD_LAYOUT_AUTO
#define WARN_INTERVAL_US (5 * G_USEC_PER_SEC)
/* the longest the first frame waits for the panels laid out for the screen it shows */
#define FIRST_LAYOUT_WAIT_US (G_USEC_PER_SEC)
/* engine messages are a few kB; anything larger is refused by ZeroMQ itself */
#define MAX_MESSAGE_BYTES (1 << 20)

enum
{
  PROP_0,
  PROP_ENDPOINT,
  PROP_EXAM,
  PROP_SERVER_KEY,
  PROP_CLIENT_PUBLIC,
  PROP_CLIENT_SECRET,
  PROP_STALE_AFTER,
  PROP_FONT,
  PROP_SHOW_ROI,
  PROP_DISCLAIMER,
  PROP_RECEIVED,
  PROP_IGNORED,
  PROP_LAST_SEQ,
  PROP_DRAWN_SEQ,
  PROP_DRAWN_MONO,
  PROP_SHOWN,
  PROP_LAYOUT,
  PROP_OUTPUT_WIDTH,
  PROP_OUTPUT_HEIGHT,
};

/* rate-limited warnings, one clock each */
enum
{
  WARN_FOREIGN = HUD_IGNORED_FOREIGN,
  WARN_VERSION = HUD_IGNORED_VERSION,
  WARN_MALFORMED = HUD_MALFORMED,
  WARN_SOCKET,
  N_WARN
};

struct _GstCeusHud
{
  GstVideoFilter parent;

  GMutex lock;                  /* settings, state, current overlay, frame geometry */
  gchar *endpoint;
  gchar *exam;
  gchar *server_key;
  gchar *client_public;
  gchar *client_secret;
  gdouble stale_after;
  gchar *font;
  gboolean show_roi;
  HudCorner disclaimer;
  HudLayoutMode layout;
  gint ask_w, ask_h;            /* output size asked for, 0 = choose */

  HudState state;
  gboolean have_state;
  HudOverlay *overlay;
  gint want_w, want_h;          /* 0 = nothing to render for (no caps, or too big) */
  HudGeometry geom;             /* the video in the output (set_info) */
  HudScreen *learner;           /* the streaming thread's, while it learns */
  HudScreen *screen;            /* the screen as known (provisional, then learnt), shared with
                                 * the renderer (lock) */
  guint screen_gen;             /* bumped when a screen is made, learnt or forgotten */
  guint overlay_gen;            /* the screen_gen the current overlay is laid out for (lock) */
  GCond rendered;               /* signalled when overlay_gen changes */
  gint wake_fd;                 /* eventfd: wakes the renderer when the screen changed */
  gboolean learn;               /* auto layout at the video's size: learn the screen */
  gboolean warned_small;
  gboolean warned_fit;
  gboolean geometry_changed;
  gboolean style_changed;
  gboolean warned_too_big;
  gboolean warned_render;
  gboolean await_first;         /* the next frame waits for its first overlay (streaming) */

  GThread *thread;
  gint running;                 /* atomic */
  guint64 received;
  guint64 ignored;
  guint64 drawn_seq;
  guint64 drawn_mono;
  guint64 overlay_seq;          /* the newest message the current overlay shows (lock): a
                                 * message that changes nothing drawn is shown by it too */
  gint64 last_warn_us[N_WARN];
};

#define FORMATS "{ BGRx, BGRA, RGBx, RGBA, I420, NV12 }"

static void wake_renderer (GstCeusHud * self);

G_DEFINE_TYPE (GstCeusHud, gst_ceus_hud, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (ceushud, "ceushud", GST_RANK_NONE, GST_TYPE_CEUS_HUD);

#define GST_TYPE_CEUS_HUD_CORNER (gst_ceus_hud_corner_get_type ())
static GType
gst_ceus_hud_corner_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {HUD_CORNER_BOTTOM_LEFT, "Bottom left (default: clear of the scanner's header)",
        "bottom-left"},
    {HUD_CORNER_BOTTOM_RIGHT, "Bottom right", "bottom-right"},
    {HUD_CORNER_TOP_LEFT, "Top left", "top-left"},
    {HUD_CORNER_TOP_RIGHT, "Top right", "top-right"},
    {HUD_CORNER_BOTTOM_CENTER, "Bottom centre", "bottom-center"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstCeusHudCorner", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_CEUS_HUD_LAYOUT (gst_ceus_hud_layout_get_type ())
static GType
gst_ceus_hud_layout_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {HUD_LAYOUT_AUTO, "Learn the scanner's screen: panels where neither the image nor the "
          "scanner's text is; a picture narrower than 16:10 gets a wider canvas", "auto"},
    {HUD_LAYOUT_BESIDE, "A larger canvas: the video at the left, the panels beside it",
        "beside"},
    {HUD_LAYOUT_OVER, "Over the video in fixed corners (a wider canvas below 360 lines)",
        "over"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstCeusHudLayout", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static void
warn_limited (GstCeusHud * self, gint kind, const gchar * what, const gchar * why)
{
  gint64 now = g_get_monotonic_time ();
  gboolean emit;
  g_mutex_lock (&self->lock);
  emit = now - self->last_warn_us[kind] >= WARN_INTERVAL_US || self->last_warn_us[kind] == 0;
  if (emit)
    self->last_warn_us[kind] = now;
  g_mutex_unlock (&self->lock);
  if (emit)
    GST_ELEMENT_WARNING (self, STREAM, DECODE, (NULL), ("ceushud: %s: %s", what, why));
}

/* zmq_setsockopt with the failure reported; TRUE when it took */
static gboolean
set_opt (GstCeusHud * self, void *sock, gint opt, const void *value, gsize len,
    const gchar * name)
{
  if (zmq_setsockopt (sock, opt, value, len) == 0)
    return TRUE;
  GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, (NULL),
      ("ceushud: cannot set ZeroMQ option %s: %s", name, zmq_strerror (zmq_errno ())));
  return FALSE;
}

static gboolean
set_curve (GstCeusHud * self, void *sock)
{
  gchar *server = NULL, *pub = NULL, *sec = NULL;
  gboolean ok = TRUE;
  g_mutex_lock (&self->lock);
  server = g_strdup (self->server_key);
  pub = g_strdup (self->client_public);
  sec = g_strdup (self->client_secret);
  g_mutex_unlock (&self->lock);
  if (server && *server) {
    if (!pub || !sec || strlen (server) != 40 || strlen (pub) != 40 || strlen (sec) != 40) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, (NULL),
          ("ceushud: CURVE needs server-public-key, client-public-key and client-secret-key "
              "as 40-character Z85 strings"));
      ok = FALSE;
    } else {
      ok = zmq_setsockopt (sock, ZMQ_CURVE_SERVERKEY, server, 40) == 0
          && zmq_setsockopt (sock, ZMQ_CURVE_PUBLICKEY, pub, 40) == 0
          && zmq_setsockopt (sock, ZMQ_CURVE_SECRETKEY, sec, 40) == 0;
      if (!ok)
        GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, (NULL),
            ("ceushud: CURVE keys rejected: %s", zmq_strerror (zmq_errno ())));
      else
        GST_DEBUG_OBJECT (self, "CURVE keys set");
    }
  }
  g_free (server);
  g_free (pub);
  g_free (sec);
  return ok;
}

/* The SUB socket with its options, connected; NULL (reported) when any step fails. */
static void *
open_socket (GstCeusHud * self, void *ctx, const gchar * endpoint, const gchar * filter)
{
  void *sock = zmq_socket (ctx, ZMQ_SUB);
  gint zero = 0, hwm = 1000;
  gint64 maxsize = MAX_MESSAGE_BYTES;
  gboolean ok;
  if (!sock) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
        ("ceushud: cannot create a ZeroMQ socket: %s", zmq_strerror (zmq_errno ())));
    return NULL;
  }
  ok = set_opt (self, sock, ZMQ_LINGER, &zero, sizeof zero, "LINGER")
      && set_opt (self, sock, ZMQ_RCVHWM, &hwm, sizeof hwm, "RCVHWM")
      && set_opt (self, sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize, "MAXMSGSIZE");
  if (ok && *filter) {
    gchar *a = g_strdup_printf ("score.%s", filter), *b = g_strdup_printf ("status.%s", filter);
    ok = set_opt (self, sock, ZMQ_SUBSCRIBE, a, strlen (a), "SUBSCRIBE")
        && set_opt (self, sock, ZMQ_SUBSCRIBE, b, strlen (b), "SUBSCRIBE");
    g_free (a);
    g_free (b);
  } else if (ok) {
    ok = set_opt (self, sock, ZMQ_SUBSCRIBE, "score.", 6, "SUBSCRIBE")
        && set_opt (self, sock, ZMQ_SUBSCRIBE, "status.", 7, "SUBSCRIBE");
  }
  ok = ok && set_curve (self, sock);
  if (ok && zmq_connect (sock, endpoint) != 0) {
    GST_ELEMENT_WARNING (self, RESOURCE, OPEN_READ, (NULL),
        ("ceushud: cannot connect to %s: %s", endpoint, zmq_strerror (zmq_errno ())));
    ok = FALSE;
  }
  if (!ok) {
    if (zmq_close (sock) != 0)
      GST_WARNING_OBJECT (self, "zmq_close: %s", zmq_strerror (zmq_errno ()));
    return NULL;
  }
  GST_DEBUG_OBJECT (self, "subscribed to %s (exam filter '%s')", endpoint, filter);
  return sock;
}

static void
close_msg (GstCeusHud * self, zmq_msg_t * m)
{
  if (zmq_msg_close (m) != 0)
    GST_WARNING_OBJECT (self, "zmq_msg_close: %s", zmq_strerror (zmq_errno ()));
}

/* Reads one multipart message; returns the number of parts (0 = none waiting). Only the
 * first two parts are kept in @parts (initialised); the caller closes MIN (n, 2) of them. */
static gint
recv_message (GstCeusHud * self, void *sock, zmq_msg_t parts[2])
{
  gint n = 0;
  for (;;) {
    zmq_msg_t m;
    if (zmq_msg_init (&m) != 0) {
      GST_WARNING_OBJECT (self, "zmq_msg_init: %s", zmq_strerror (zmq_errno ()));
      return n;
    }
    if (zmq_msg_recv (&m, sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
      gint err = zmq_errno ();
      close_msg (self, &m);
      if (n > 0 || err != EAGAIN)
        GST_DEBUG_OBJECT (self, "receive stopped: %s", zmq_strerror (err));
      return n;
    }
    gboolean more = zmq_msg_more (&m);
    if (n < 2)
      parts[n] = m;             /* ownership moves to parts[] */
    else
      close_msg (self, &m);
    n++;
    if (!more)
      return n;
  }
}

static void
receive_all (GstCeusHud * self, void *sock, const gchar * filter)
{
  for (;;) {
    zmq_msg_t parts[2];
    gchar why[160] = "expected [topic, payload]";
    HudApply r = HUD_MALFORMED;
    HudState next;
    gint n = recv_message (self, sock, parts);
    if (n == 0)
      return;
    if (n == 2) {
      /* parse outside the lock: the video thread only ever waits for a pointer swap */
      g_mutex_lock (&self->lock);
      next = self->state;
      g_mutex_unlock (&self->lock);
      r = hud_state_apply (&next, zmq_msg_data (&parts[0]), zmq_msg_size (&parts[0]),
          zmq_msg_data (&parts[1]), zmq_msg_size (&parts[1]), filter,
          g_get_monotonic_time (), why, sizeof why);
    }
    g_mutex_lock (&self->lock);
    if (r == HUD_APPLIED) {
      self->state = next;
      self->received++;
      self->have_state = TRUE;
    } else {
      self->ignored++;
    }
    g_mutex_unlock (&self->lock);
    if (r == HUD_APPLIED) {
      GST_LOG_OBJECT (self, "message seq %" G_GUINT64_FORMAT " applied", next.seq);
    } else {
      GST_DEBUG_OBJECT (self, "message ignored: %s", why);
      warn_limited (self, r, "ignored a message", why);
    }
    for (gint i = 0; i < MIN (n, 2); i++)
      close_msg (self, &parts[i]);
  }
}

/* Renders a new overlay when what it shows changed; never touches the video thread. */
static void
maybe_render (GstCeusHud * self, gchar ** last_key, HudScreen * screen, guint * screen_gen,
    HudOverlay ** spare)
{
  HudState st;
  HudStyle style;
  HudGeometry geom;
  gboolean have, redo, warn = FALSE, fits;
  gint w, h;
  gchar *key, *font;
  gint64 now_us = g_get_monotonic_time ();
  HudOverlay *ov, *old;

  g_mutex_lock (&self->lock);
  st = self->state;
  have = self->have_state;
  w = self->want_w;
  h = self->want_h;
  redo = self->geometry_changed || self->style_changed;
  self->geometry_changed = self->style_changed = FALSE;
  style.stale_after_s = self->stale_after;
  style.show_roi = self->show_roi;
  style.disclaimer = self->disclaimer;
  geom = self->geom;
  if (self->screen_gen != *screen_gen) {
    /* a screen made, learnt (or forgotten): a copy for this thread, once */
    if (self->screen && self->overlay && self->overlay_gen == *screen_gen && screen->ready
        && hud_screen_same_cells (self->screen, screen)) {
      /* learnt as it looked at first: the same layout, nothing to draw again */
      memcpy (screen, self->screen, sizeof *screen);
      if (screen->learnt)
        hud_overlay_mark_learnt (self->overlay);
      self->overlay_gen = self->screen_gen;
      g_cond_broadcast (&self->rendered);
      GST_DEBUG_OBJECT (self, "screen learnt as first seen: the panels stay");
    } else {
      if (self->screen)
        memcpy (screen, self->screen, sizeof *screen);
      else
        screen->ready = screen->learnt = FALSE;
      redo = TRUE;
    }
    *screen_gen = self->screen_gen;
  }
  if (self->learn && !screen->ready) {
    /* auto at the video's size: the panels wait for the first frame's look at the screen
     * (that frame waits for them), never drawn where the screen is not known */
    g_mutex_unlock (&self->lock);
    return;
  }
  font = g_strdup (self->font);
  g_mutex_unlock (&self->lock);
  style.font = font;
  if (w <= 0 || h <= 0) {
    g_free (font);
    return;
  }
  key = hud_render_key (&st, &style, now_us, have);
  if (!redo && *last_key && g_str_equal (key, *last_key)) {
    /* the same picture: the overlay on screen already shows this message */
    g_mutex_lock (&self->lock);
    if (self->overlay)
      self->overlay_seq = st.seq;
    g_mutex_unlock (&self->lock);
    g_free (key);
    g_free (font);
    return;
  }
  g_free (*last_key);
  *last_key = key;
  /* the overlay swapped out last time, once the video thread let go of it: no new surface
   * (33 MB at 2160p) to allocate and clear for each countdown second */
  if (*spare && (g_atomic_int_get (&(*spare)->ref) != 1 || (*spare)->width != w
          || (*spare)->height != h))
    g_clear_pointer (spare, hud_overlay_unref);
  if (*spare && g_atomic_int_get (&(*spare)->ref) == 1) {
    ov = *spare;
    *spare = NULL;
  } else {
    ov = hud_overlay_new (w, h);
  }
  if (!ov) {
    g_mutex_lock (&self->lock);
    warn = !self->warned_render;
    self->warned_render = TRUE;
    g_mutex_unlock (&self->lock);
    if (warn)
      GST_ELEMENT_WARNING (self, RESOURCE, NO_SPACE_LEFT, (NULL),
          ("ceushud: cannot render a %dx%d overlay; frames pass undrawn", w, h));
    g_free (font);
    return;
  }
  ov->seq = st.seq;
  fits = hud_render (ov, &st, &style, &geom, screen, now_us, have);
  hud_overlay_prepare (ov);
  {
    gsize blended = 0, copied = 0;
    for (gint i = 0; i < ov->n_rects; i++)
      for (gsize j = 0; j < ov->n_runs[i]; j++) {
        const HudRun *r = &ov->runs[ov->run_offset[i] + j];
        *(r->opaque ? &copied : &blended) += r->n;
      }
    GST_DEBUG_OBJECT (self, "rendered %dx%d in %.2f ms (%d rectangles; per frame %"
        G_GSIZE_FORMAT " pixels blended, %" G_GSIZE_FORMAT " copied)", w, h,
        (g_get_monotonic_time () - now_us) / 1000.0, ov->n_rects, blended, copied);
  }
  if (!fits) {
    g_mutex_lock (&self->lock);
    warn = !self->warned_fit;
    self->warned_fit = TRUE;
    g_mutex_unlock (&self->lock);
    if (warn)
      GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, (NULL),
          ("ceushud: the panels do not fit this %dx%d screen legibly (layout=%s); drawn at "
              "the smallest size in the corners; layout=beside gives them room", w, h,
              hud_layout_nick (geom.mode)));
  }
  GST_LOG_OBJECT (self, "key %s", key);
  g_free (font);
  g_mutex_lock (&self->lock);
  if (self->want_w == w && self->want_h == h) {
    old = self->overlay;
    self->overlay = ov;
    self->overlay_seq = ov->seq;
    self->overlay_gen = *screen_gen;
    g_cond_broadcast (&self->rendered);
  } else {
    old = ov;                   /* caps changed meanwhile: render again next tick */
    self->geometry_changed = TRUE;
  }
  g_mutex_unlock (&self->lock);
  if (old && !*spare && old != ov)
    *spare = old;
  else
    hud_overlay_unref (old);
}

static gpointer
subscriber_thread (gpointer data)
{
  GstCeusHud *self = GST_CEUS_HUD (data);
  void *ctx = zmq_ctx_new ();
  void *sock = NULL;
  gchar *endpoint, *filter, *key = NULL;
  HudScreen *screen = g_new0 (HudScreen, 1);
  HudOverlay *spare = NULL;
  guint screen_gen = 0;

  g_mutex_lock (&self->lock);
  endpoint = g_strdup (self->endpoint ? self->endpoint : DEFAULT_ENDPOINT);
  filter = g_strdup (self->exam ? self->exam : "");
  g_mutex_unlock (&self->lock);

  if (!ctx)
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
        ("ceushud: cannot create a ZeroMQ context: %s", zmq_strerror (zmq_errno ())));
  else
    sock = open_socket (self, ctx, endpoint, filter);

  /* without a socket the overlay still draws (the disclaimer, "NO ENGINE MESSAGES"); the
   * streaming thread's eventfd wakes the loop when the screen changed */
  while (g_atomic_int_get (&self->running)) {
    zmq_pollitem_t items[2] = { {sock, 0, ZMQ_POLLIN, 0}, {NULL, self->wake_fd, ZMQ_POLLIN, 0} };
    gint first = sock ? 0 : 1, n = (self->wake_fd >= 0 ? 2 : 1) - first;
    gint rc = n > 0 ? zmq_poll (items + first, n, 100) : (g_usleep (100000), 0);
    if (rc < 0 && zmq_errno () != EINTR) {
      warn_limited (self, WARN_SOCKET, "ZeroMQ poll failed", zmq_strerror (zmq_errno ()));
      g_usleep (100000);
    } else if (rc > 0) {
      if (sock && (items[0].revents & ZMQ_POLLIN))
        receive_all (self, sock, filter);
      if (self->wake_fd >= 0 && (items[1].revents & ZMQ_POLLIN)) {
        guint64 v;
        if (read (self->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
          GST_DEBUG_OBJECT (self, "wake read: %s", g_strerror (errno));
      }
    }
    maybe_render (self, &key, screen, &screen_gen, &spare);
  }
  hud_overlay_unref (spare);
  g_free (screen);
  g_free (key);
  g_free (endpoint);
  g_free (filter);
  if (sock && zmq_close (sock) != 0)
    GST_WARNING_OBJECT (self, "zmq_close: %s", zmq_strerror (zmq_errno ()));
  if (ctx) {
    gint rc;
    while ((rc = zmq_ctx_term (ctx)) != 0 && zmq_errno () == EINTR);
    if (rc != 0)
      GST_WARNING_OBJECT (self, "zmq_ctx_term: %s", zmq_strerror (zmq_errno ()));
  }
  return NULL;
}

static gboolean
gst_ceus_hud_start (GstBaseTransform * trans)
{
  GstCeusHud *self = GST_CEUS_HUD (trans);
  g_mutex_lock (&self->lock);
  hud_state_init (&self->state);
  self->have_state = FALSE;
  self->received = self->ignored = 0;
  self->drawn_seq = self->drawn_mono = self->overlay_seq = 0;
  self->warned_render = FALSE;
  self->warned_fit = FALSE;
  memset (self->last_warn_us, 0, sizeof self->last_warn_us);
  g_mutex_unlock (&self->lock);
  g_atomic_int_set (&self->running, 1);
  self->wake_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (self->wake_fd < 0)
    GST_WARNING_OBJECT (self, "eventfd: %s (the renderer notices a new screen within "
        "100 ms)", g_strerror (errno));
  self->thread = g_thread_new ("ceushud-sub", subscriber_thread, self);
  GST_DEBUG_OBJECT (self, "started");
  return TRUE;
}

static gboolean
gst_ceus_hud_stop (GstBaseTransform * trans)
{
  GstCeusHud *self = GST_CEUS_HUD (trans);
  g_atomic_int_set (&self->running, 0);
  if (self->thread) {
    g_thread_join (self->thread);
    self->thread = NULL;
  }
  if (self->wake_fd >= 0 && close (self->wake_fd) != 0)
    GST_WARNING_OBJECT (self, "close eventfd: %s", g_strerror (errno));
  self->wake_fd = -1;
  g_mutex_lock (&self->lock);
  g_cond_broadcast (&self->rendered);
  hud_overlay_unref (self->overlay);
  self->overlay = NULL;
  self->want_w = self->want_h = 0;
  g_clear_pointer (&self->learner, g_free);
  g_clear_pointer (&self->screen, g_free);
  self->screen_gen++;
  g_mutex_unlock (&self->lock);
  GST_DEBUG_OBJECT (self, "stopped");
  return TRUE;
}

static gboolean
hud_format (GstVideoFormat f, HudFormat * out)
{
  switch (f) {
    case GST_VIDEO_FORMAT_BGRx:
    case GST_VIDEO_FORMAT_BGRA:
      *out = HUD_FMT_BGRX;
      return TRUE;
    case GST_VIDEO_FORMAT_RGBx:
    case GST_VIDEO_FORMAT_RGBA:
      *out = HUD_FMT_RGBX;
      return TRUE;
    case GST_VIDEO_FORMAT_I420:
      *out = HUD_FMT_I420;
      return TRUE;
    case GST_VIDEO_FORMAT_NV12:
      *out = HUD_FMT_NV12;
      return TRUE;
    default:
      return FALSE;
  }
}

/* The output's caps: the canvas the layout asks for (hud_geometry); any size upstream. */
static GstCaps *
gst_ceus_hud_transform_caps (GstBaseTransform * trans, GstPadDirection direction,
    GstCaps * caps, GstCaps * filter)
{
  GstCeusHud *self = GST_CEUS_HUD (trans);
  GstCaps *out = gst_caps_new_empty ();
  HudLayoutMode mode;
  gint ask_w, ask_h;

  g_mutex_lock (&self->lock);
  mode = self->layout;
  ask_w = self->ask_w;
  ask_h = self->ask_h;
  g_mutex_unlock (&self->lock);
  for (guint i = 0; i < gst_caps_get_size (caps); i++) {
    GstStructure *st = gst_structure_copy (gst_caps_get_structure (caps, i));
    gint w, h;
    if (direction == GST_PAD_SINK && gst_structure_get_int (st, "width", &w)
        && gst_structure_get_int (st, "height", &h)) {
      HudGeometry g;
      hud_geometry (&g, mode, w, h, ask_w, ask_h);
      gst_structure_set (st, "width", G_TYPE_INT, g.out_w, "height", G_TYPE_INT, g.out_h,
          NULL);
    } else {
      gst_structure_set (st, "width", GST_TYPE_INT_RANGE, 1, G_MAXINT, "height",
          GST_TYPE_INT_RANGE, 1, G_MAXINT, NULL);
    }
    out = gst_caps_merge_structure (out, st);
  }
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, out, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (out);
    out = tmp;
  }
  GST_DEBUG_OBJECT (self, "%s caps %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT,
      direction == GST_PAD_SINK ? "sink" : "src", caps, out);
  return out;
}

static gboolean
gst_ceus_hud_set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo * in_info,
    GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstCeusHud *self = GST_CEUS_HUD (filter);
  HudFormat fmt;
  HudGeometry g;
  gint w = GST_VIDEO_INFO_WIDTH (in_info), h = GST_VIDEO_INFO_HEIGHT (in_info);
  gint ow = GST_VIDEO_INFO_WIDTH (out_info), oh = GST_VIDEO_INFO_HEIGHT (out_info);
  gboolean too_big, warn, warn_small = FALSE;

  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT, incaps, outcaps);
  if (!hud_format (GST_VIDEO_INFO_FORMAT (in_info), &fmt)
      || GST_VIDEO_INFO_FORMAT (in_info) != GST_VIDEO_INFO_FORMAT (out_info)) {
    GST_WARNING_OBJECT (self, "unsupported format %s",
        gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (in_info)));
    return FALSE;
  }
  g_mutex_lock (&self->lock);
  hud_geometry (&g, self->layout, w, h, self->ask_w, self->ask_h);
  g_mutex_unlock (&self->lock);
  if (g.out_w != ow || g.out_h != oh) {
    /* downstream fixed another size: the video at the left, as large a canvas as given */
    if (ow < w || oh < h) {
      GST_WARNING_OBJECT (self, "output %dx%d is smaller than the video %dx%d", ow, oh, w, h);
      return FALSE;
    }
    g.out_w = ow;
    g.out_h = oh;
    g.canvas = ow != w || oh != h;
    g.video_x = 0;
    g.video_y = ((oh - h) / 2) & ~1;
  }
  too_big = g.out_w > HUD_MAX_DIM || g.out_h > HUD_MAX_DIM;
  g_mutex_lock (&self->lock);
  warn = too_big && !self->warned_too_big;
  self->warned_too_big |= too_big;
  if (g.too_small && !self->warned_small)
    warn_small = self->warned_small = TRUE;
  /* every caps change re-renders, even at the same size: the overlay is blended by the
   * format each frame carries, and a fresh overlay costs nothing the video thread waits for */
  self->want_w = too_big ? 0 : g.out_w;
  self->want_h = too_big ? 0 : g.out_h;
  self->geom = g;
  self->geometry_changed = TRUE;
  if (self->overlay && (self->overlay->width != g.out_w || self->overlay->height != g.out_h)) {
    hud_overlay_unref (self->overlay);
    self->overlay = NULL;
  }
  /* the screen is learnt again for a new picture size */
  self->learn = g.mode == HUD_LAYOUT_AUTO && !g.canvas && !too_big;
  if (!self->learner || self->learner->width != w || self->learner->height != h
      || !self->learn) {
    g_clear_pointer (&self->learner, g_free);
    g_clear_pointer (&self->screen, g_free);
    self->screen_gen++;
    if (self->learn) {
      self->learner = g_new (HudScreen, 1);
      hud_screen_init (self->learner, w, h);
    }
  }
  g_mutex_unlock (&self->lock);
  self->await_first = !too_big;
  wake_renderer (self);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), !g.canvas);
  GST_DEBUG_OBJECT (self, "layout %s: %dx%d video at (%d, %d) in a %dx%d output%s",
      hud_layout_nick (g.mode), w, h, g.video_x, g.video_y, g.out_w, g.out_h,
      self->learn ? "; learning the screen" : "");
  if (warn_small) {
    GST_WARNING_OBJECT (self, "layout=over at %dx%d cannot hold legible text", w, h);
    GST_ELEMENT_WARNING (self, STREAM, FORMAT, (NULL),
        ("ceushud: layout=over on a %dx%d picture cannot hold text with capitals of %.0f px "
            "or more; drawing on a %dx%d canvas with the video beside the panels", w, h,
            HUD_CAP_FLOOR_PX, g.out_w, g.out_h));
  }
  if (warn)
    GST_ELEMENT_WARNING (self, STREAM, FORMAT, (NULL),
        ("ceushud: %dx%d frames are larger than the overlay can draw (at most %d pixels a "
            "side); they pass through without the overlay", g.out_w, g.out_h, HUD_MAX_DIM));
  return TRUE;
}

static void
wake_renderer (GstCeusHud * self)
{
  guint64 one = 1;
  if (self->wake_fd >= 0 && write (self->wake_fd, &one, sizeof one) < 0)
    GST_DEBUG_OBJECT (self, "wake write: %s", g_strerror (errno));
}

/* Looks at the input frame while the screen is being learnt; nothing once it is. The first
 * look gives the provisional screen (the renderer lays the panels out for it at once). */
static void
learn_screen (GstCeusHud * self, GstVideoFrame * frame)
{
  HudScreen *sc = self->learner;
  const guint8 *luma = GST_VIDEO_FRAME_PLANE_DATA (frame, 0);
  gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0), step = 1;
  if (!self->learn || !sc || sc->learnt)
    return;
  switch (GST_VIDEO_FRAME_FORMAT (frame)) {
    case GST_VIDEO_FORMAT_I420:
    case GST_VIDEO_FORMAT_NV12:
      break;
    default:                   /* 32-bit RGB: green is byte 1 in all four orders */
      luma += 1;
      step = 4;
  }
  if (hud_screen_feed (sc, luma, stride, step)) {
    HudScreen *copy = g_memdup2 (sc, sizeof *sc);
    gboolean first = !sc->learnt;
    if (first)
      GST_DEBUG_OBJECT (self, "provisional screen from the first frame: %d image area(s), "
          "background luma %d", sc->n_areas, sc->background);
    else
      GST_DEBUG_OBJECT (self, "screen learnt from %d frames: %d image area(s), background "
          "luma %d", sc->samples, sc->n_areas, sc->background);
    for (gint i = 0; i < sc->n_areas; i++)
      GST_DEBUG_OBJECT (self, "image area %d: %dx%d at (%d, %d)", i, sc->areas[i].w,
          sc->areas[i].h, sc->areas[i].x, sc->areas[i].y);
    g_mutex_lock (&self->lock);
    g_free (self->screen);
    self->screen = copy;
    self->screen_gen++;
    g_mutex_unlock (&self->lock);
    wake_renderer (self);
  }
}

/* The first frame after a caps change waits (at most FIRST_LAYOUT_WAIT_US) for an overlay
 * of its size, laid out for the screen as known (auto: the first look at this very frame),
 * so that every frame carries the disclaimer and no frame shows the panels elsewhere. */
static void
await_first_overlay (GstCeusHud * self)
{
  gint64 end;
  gboolean ok = TRUE;
  if (!self->await_first)
    return;
  self->await_first = FALSE;
  end = g_get_monotonic_time () + FIRST_LAYOUT_WAIT_US;
  g_mutex_lock (&self->lock);
  while (self->want_w > 0 && g_atomic_int_get (&self->running)
      && (!self->overlay || self->overlay->width != self->want_w
          || self->overlay->height != self->want_h
          || (self->learn && self->overlay_gen != self->screen_gen)))
    if (!g_cond_wait_until (&self->rendered, &self->lock, end)) {
      ok = FALSE;
      break;
    }
  g_mutex_unlock (&self->lock);
  GST_DEBUG_OBJECT (self, "the first frame %s", ok ? "waited for its overlay"
      : "passes before its overlay was drawn (the renderer is slow)");
}

static void
map_frame (GstVideoFrame * frame, HudFrame * f)
{
  f->width = GST_VIDEO_FRAME_WIDTH (frame);
  f->height = GST_VIDEO_FRAME_HEIGHT (frame);
  f->n_planes = MIN (GST_VIDEO_FRAME_N_PLANES (frame), 3);
  for (gint i = 0; i < f->n_planes; i++) {
    f->data[i] = GST_VIDEO_FRAME_PLANE_DATA (frame, i);
    f->stride[i] = GST_VIDEO_FRAME_PLANE_STRIDE (frame, i);
  }
}

static void
blend_current (GstCeusHud * self, HudFrame * f)
{
  HudOverlay *ov = NULL;
  gboolean update;
  guint64 seq;
  g_mutex_lock (&self->lock);
  if (self->overlay)
    ov = hud_overlay_ref (self->overlay);
  seq = self->overlay_seq;
  g_mutex_unlock (&self->lock);
  if (!ov)
    return;                     /* nothing rendered (yet) for this size: the frame passes */
  if (!hud_blend (ov, f)) {
    GST_LOG_OBJECT (self, "overlay %dx%d does not fit a %dx%d frame yet: passed undrawn",
        ov->width, ov->height, f->width, f->height);
    hud_overlay_unref (ov);
    return;
  }
  g_mutex_lock (&self->lock);
  update = seq != self->drawn_seq;
  g_mutex_unlock (&self->lock);
  if (update) {
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    g_mutex_lock (&self->lock);
    self->drawn_seq = seq;
    self->drawn_mono = (guint64) ts.tv_sec * GST_SECOND + (guint64) ts.tv_nsec;
    g_mutex_unlock (&self->lock);
  }
  hud_overlay_unref (ov);
}

static GstFlowReturn
gst_ceus_hud_transform_frame_ip (GstVideoFilter * filter, GstVideoFrame * frame)
{
  GstCeusHud *self = GST_CEUS_HUD (filter);
  HudFrame f = { {NULL, NULL, NULL}, {0, 0, 0}, 0, 0, 0, HUD_FMT_BGRX };

  if (!hud_format (GST_VIDEO_FRAME_FORMAT (frame), &f.format))
    return GST_FLOW_OK;
  learn_screen (self, frame);
  await_first_overlay (self);
  map_frame (frame, &f);
  blend_current (self, &f);
  return GST_FLOW_OK;
}

/* the canvas: the video copied to (vx, vy), black around it, then the overlay */
static GstFlowReturn
gst_ceus_hud_transform_frame (GstVideoFilter * filter, GstVideoFrame * in,
    GstVideoFrame * out)
{
  GstCeusHud *self = GST_CEUS_HUD (filter);
  HudFrame f = { {NULL, NULL, NULL}, {0, 0, 0}, 0, 0, 0, HUD_FMT_BGRX };
  gint vx, vy;
  GstVideoFormat fmt = GST_VIDEO_FRAME_FORMAT (out);

  if (!hud_format (fmt, &f.format))
    return GST_FLOW_OK;
  g_mutex_lock (&self->lock);
  vx = self->geom.video_x;
  vy = self->geom.video_y;
  g_mutex_unlock (&self->lock);
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES (out); p++) {
    gboolean rgb = f.format == HUD_FMT_BGRX || f.format == HUD_FMT_RGBX;
    gint sub = p > 0 ? 1 : 0;   /* chroma planes: half size */
    gint bpp = rgb ? 4 : (fmt == GST_VIDEO_FORMAT_NV12 && p == 1) ? 2 : 1;
    gint ow = (GST_VIDEO_FRAME_WIDTH (out) + sub) >> sub, oh = (GST_VIDEO_FRAME_HEIGHT (out)
        + sub) >> sub;
    gint iw = (GST_VIDEO_FRAME_WIDTH (in) + sub) >> sub, ih = (GST_VIDEO_FRAME_HEIGHT (in)
        + sub) >> sub;
    gint ox = vx >> sub, oy = vy >> sub;
    gint ostride = GST_VIDEO_FRAME_PLANE_STRIDE (out, p);
    gint istride = GST_VIDEO_FRAME_PLANE_STRIDE (in, p);
    guint8 *od = GST_VIDEO_FRAME_PLANE_DATA (out, p);
    const guint8 *id = GST_VIDEO_FRAME_PLANE_DATA (in, p);
    guint8 black = rgb ? 0 : p == 0 ? 16 : 128;
    iw = MIN (iw, ow - ox);
    ih = MIN (ih, oh - oy);
    for (gint y = 0; y < oh; y++) {
      guint8 *row = od + (gsize) y * ostride;
      if (y >= oy && y < oy + ih) {
        memset (row, black, (gsize) ox * bpp);
        memcpy (row + (gsize) ox * bpp, id + (gsize) (y - oy) * istride, (gsize) iw * bpp);
        memset (row + (gsize) (ox + iw) * bpp, black, (gsize) (ow - ox - iw) * bpp);
      } else {
        memset (row, black, (gsize) ow * bpp);
      }
    }
    if (rgb && (fmt == GST_VIDEO_FORMAT_BGRA || fmt == GST_VIDEO_FORMAT_RGBA)) {
      /* opaque black around the video (alpha is byte 3) */
      for (gint y = 0; y < oh; y++) {
        guint8 *row = od + (gsize) y * ostride;
        gboolean in_rows = y >= oy && y < oy + ih;
        for (gint x = 0; x < ow; x++)
          if (!in_rows || x < ox || x >= ox + iw)
            row[x * 4 + 3] = 255;
      }
    }
  }
  learn_screen (self, in);
  await_first_overlay (self);
  map_frame (out, &f);
  blend_current (self, &f);
  return GST_FLOW_OK;
}

static void
set_string (GstCeusHud * self, gchar ** field, const GValue * value, const gchar * name)
{
  g_mutex_lock (&self->lock);
  g_free (*field);
  *field = g_value_dup_string (value);
  self->style_changed = TRUE;
  g_mutex_unlock (&self->lock);
  GST_DEBUG_OBJECT (self, "%s set", name);
}

static void
gst_ceus_hud_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstCeusHud *self = GST_CEUS_HUD (object);
  switch (prop_id) {
    case PROP_ENDPOINT:
      set_string (self, &self->endpoint, value, "endpoint");
      break;
    case PROP_EXAM:
      set_string (self, &self->exam, value, "exam");
      break;
    case PROP_SERVER_KEY:
      set_string (self, &self->server_key, value, "server-public-key");
      break;
    case PROP_CLIENT_PUBLIC:
      set_string (self, &self->client_public, value, "client-public-key");
      break;
    case PROP_CLIENT_SECRET:
      set_string (self, &self->client_secret, value, "client-secret-key");
      break;
    case PROP_STALE_AFTER:
      g_mutex_lock (&self->lock);
      self->stale_after = g_value_get_double (value);
      g_mutex_unlock (&self->lock);
      GST_DEBUG_OBJECT (self, "stale-after %.2f s", g_value_get_double (value));
      break;
    case PROP_FONT:
      set_string (self, &self->font, value, "font");
      break;
    case PROP_SHOW_ROI:
      g_mutex_lock (&self->lock);
      self->show_roi = g_value_get_boolean (value);
      self->style_changed = TRUE;
      g_mutex_unlock (&self->lock);
      GST_DEBUG_OBJECT (self, "show-roi %d", g_value_get_boolean (value));
      break;
    case PROP_DISCLAIMER:
      g_mutex_lock (&self->lock);
      self->disclaimer = g_value_get_enum (value);
      self->style_changed = TRUE;
      g_mutex_unlock (&self->lock);
      GST_DEBUG_OBJECT (self, "disclaimer-position %s",
          hud_corner_nick (g_value_get_enum (value)));
      break;
    case PROP_LAYOUT:
      g_mutex_lock (&self->lock);
      self->layout = g_value_get_enum (value);
      g_mutex_unlock (&self->lock);
      GST_DEBUG_OBJECT (self, "layout %s", hud_layout_nick (g_value_get_enum (value)));
      gst_base_transform_reconfigure_src (GST_BASE_TRANSFORM (self));
      break;
    case PROP_OUTPUT_WIDTH:
      g_mutex_lock (&self->lock);
      self->ask_w = g_value_get_int (value);
      g_mutex_unlock (&self->lock);
      GST_DEBUG_OBJECT (self, "output-width %d", g_value_get_int (value));
      break;
    case PROP_OUTPUT_HEIGHT:
      g_mutex_lock (&self->lock);
      self->ask_h = g_value_get_int (value);
      g_mutex_unlock (&self->lock);
      GST_DEBUG_OBJECT (self, "output-height %d", g_value_get_int (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
gst_ceus_hud_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstCeusHud *self = GST_CEUS_HUD (object);
  g_mutex_lock (&self->lock);
  switch (prop_id) {
    case PROP_ENDPOINT:
      g_value_set_string (value, self->endpoint);
      break;
    case PROP_EXAM:
      g_value_set_string (value, self->exam);
      break;
    case PROP_SERVER_KEY:
      g_value_set_string (value, self->server_key);
      break;
    case PROP_CLIENT_PUBLIC:
      g_value_set_string (value, self->client_public);
      break;
    case PROP_CLIENT_SECRET:
      g_value_set_string (value, self->client_secret ? "(set)" : NULL);
      break;
    case PROP_STALE_AFTER:
      g_value_set_double (value, self->stale_after);
      break;
    case PROP_FONT:
      g_value_set_string (value, self->font);
      break;
    case PROP_SHOW_ROI:
      g_value_set_boolean (value, self->show_roi);
      break;
    case PROP_DISCLAIMER:
      g_value_set_enum (value, self->disclaimer);
      break;
    case PROP_RECEIVED:
      g_value_set_uint64 (value, self->received);
      break;
    case PROP_IGNORED:
      g_value_set_uint64 (value, self->ignored);
      break;
    case PROP_LAST_SEQ:
      g_value_set_uint64 (value, self->state.seq);
      break;
    case PROP_DRAWN_SEQ:
      g_value_set_uint64 (value, self->drawn_seq);
      break;
    case PROP_DRAWN_MONO:
      g_value_set_uint64 (value, self->drawn_mono);
      break;
    case PROP_SHOWN:
      g_value_set_string (value, self->overlay ? self->overlay->shown : NULL);
      break;
    case PROP_LAYOUT:
      g_value_set_enum (value, self->layout);
      break;
    case PROP_OUTPUT_WIDTH:
      g_value_set_int (value, self->ask_w);
      break;
    case PROP_OUTPUT_HEIGHT:
      g_value_set_int (value, self->ask_h);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
  g_mutex_unlock (&self->lock);
}

static void
gst_ceus_hud_finalize (GObject * object)
{
  GstCeusHud *self = GST_CEUS_HUD (object);
  g_free (self->endpoint);
  g_free (self->exam);
  g_free (self->server_key);
  g_free (self->client_public);
  g_free (self->client_secret);
  g_free (self->font);
  hud_overlay_unref (self->overlay);
  g_free (self->learner);
  g_free (self->screen);
  g_cond_clear (&self->rendered);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (gst_ceus_hud_parent_class)->finalize (object);
}

static void
gst_ceus_hud_class_init (GstCeusHudClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *bt_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *vf_class = GST_VIDEO_FILTER_CLASS (klass);
  const GParamFlags rw_ready = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;
  const GParamFlags rw_play = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;
  GstCaps *caps = gst_caps_from_string (GST_VIDEO_CAPS_MAKE (FORMATS));

  gobject_class->set_property = gst_ceus_hud_set_property;
  gobject_class->get_property = gst_ceus_hud_get_property;
  gobject_class->finalize = gst_ceus_hud_finalize;

  g_object_class_install_property (gobject_class, PROP_ENDPOINT,
      g_param_spec_string ("endpoint", "Endpoint",
          "The engine's ZeroMQ PUB endpoint to subscribe to", DEFAULT_ENDPOINT, rw_ready));
  g_object_class_install_property (gobject_class, PROP_EXAM,
      g_param_spec_string ("exam", "Exam",
          "Show only this exam id (empty = follow the newest exam)", "", rw_ready));
  g_object_class_install_property (gobject_class, PROP_SERVER_KEY,
      g_param_spec_string ("server-public-key", "Server public key",
          "CURVE: the engine's public key (Z85, 40 characters); empty = no encryption, "
          "loopback only", "", rw_ready));
  g_object_class_install_property (gobject_class, PROP_CLIENT_PUBLIC,
      g_param_spec_string ("client-public-key", "Client public key",
          "CURVE: this display's public key (Z85), authorised on the engine", "", rw_ready));
  g_object_class_install_property (gobject_class, PROP_CLIENT_SECRET,
      g_param_spec_string ("client-secret-key", "Client secret key",
          "CURVE: this display's secret key (Z85); reads back as '(set)'", "", rw_ready));
  g_object_class_install_property (gobject_class, PROP_STALE_AFTER,
      g_param_spec_double ("stale-after", "Stale after",
          "Seconds without any engine message, while an exam runs, before the score is "
          "shown as STALE (never after the exam ended normally)", 0.2, 3600.0,
          DEFAULT_STALE_AFTER, rw_play));
  g_object_class_install_property (gobject_class, PROP_FONT,
      g_param_spec_string ("font", "Font", "Font family for all text", DEFAULT_FONT,
          rw_play));
  g_object_class_install_property (gobject_class, PROP_SHOW_ROI,
      g_param_spec_boolean ("show-roi", "Show ROI",
          "Mark the ROI's corners (never a full box over the lesion)", TRUE, rw_play));
  g_object_class_install_property (gobject_class, PROP_DISCLAIMER,
      g_param_spec_enum ("disclaimer-position", "Disclaimer position",
          "Corner of the 'MODEL TRAINED ON SIMULATED DATA - NOT FOR DIAGNOSIS' block; pick "
          "one clear of the scanner's own text (the score panel takes another corner)",
          GST_TYPE_CEUS_HUD_CORNER, DEFAULT_DISCLAIMER, rw_play));
  g_object_class_install_property (gobject_class, PROP_RECEIVED,
      g_param_spec_uint64 ("messages-received", "Messages received",
          "Engine messages accepted", 0, G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_IGNORED,
      g_param_spec_uint64 ("messages-ignored", "Messages ignored",
          "Messages ignored (malformed, a number not finite or out of range, unknown schema "
          "version, another exam)", 0, G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_LAST_SEQ,
      g_param_spec_uint64 ("last-seq", "Last sequence number",
          "Sequence number of the newest accepted message of the shown exam", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_DRAWN_SEQ,
      g_param_spec_uint64 ("drawn-seq", "Drawn sequence number",
          "Sequence number of the newest message already drawn into a frame", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_DRAWN_MONO,
      g_param_spec_uint64 ("drawn-mono", "Drawn at",
          "CLOCK_MONOTONIC (ns) when drawn-seq was first drawn (latency measurements)", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_SHOWN,
      g_param_spec_string ("shown", "Shown",
          "What the current overlay says, as a JSON object (state, kind, score, label, "
          "filled, phase, countdown, ended, ood, cpu, summary, tic_points, warnings, "
          "disclaimer, panel); for tests and logs", NULL, ro));
  g_object_class_install_property (gobject_class, PROP_LAYOUT,
      g_param_spec_enum ("layout", "Layout",
          "Where the panels go: auto (learn the scanner's screen from the first frames and "
          "use the space that is neither image nor scanner text; a picture narrower than "
          "16:10 gets a wider canvas with the panels beside it), beside (always a wider "
          "canvas), over (fixed corners over the video; a wider canvas below 360 lines)",
          GST_TYPE_CEUS_HUD_LAYOUT, DEFAULT_LAYOUT, rw_ready));
  g_object_class_install_property (gobject_class, PROP_OUTPUT_WIDTH,
      g_param_spec_int ("output-width", "Output width",
          "Width of the canvas when the panels go beside the video (the second monitor's, "
          "e.g. 1920); 0 = 16:9 at the video's height (at least 480 lines)", 0, HUD_MAX_DIM,
          0, rw_ready));
  g_object_class_install_property (gobject_class, PROP_OUTPUT_HEIGHT,
      g_param_spec_int ("output-height", "Output height",
          "Height of that canvas (e.g. 1080); 0 = choose", 0, HUD_MAX_DIM, 0, rw_ready));
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref (caps);
  gst_element_class_set_static_metadata (element_class, "CEUS bedside overlay",
      "Filter/Effect/Video",
      "Draws the ceustream engine's live HCC score, TIC reading, slots, countdown and "
      "warnings over video", "ceustream");
  gst_type_mark_as_plugin_api (GST_TYPE_CEUS_HUD_CORNER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_CEUS_HUD_LAYOUT, 0);

  bt_class->start = GST_DEBUG_FUNCPTR (gst_ceus_hud_start);
  bt_class->stop = GST_DEBUG_FUNCPTR (gst_ceus_hud_stop);
  bt_class->passthrough_on_same_caps = FALSE;
  vf_class->set_info = GST_DEBUG_FUNCPTR (gst_ceus_hud_set_info);
  vf_class->transform_frame_ip = GST_DEBUG_FUNCPTR (gst_ceus_hud_transform_frame_ip);
  vf_class->transform_frame = GST_DEBUG_FUNCPTR (gst_ceus_hud_transform_frame);
  bt_class->transform_caps = GST_DEBUG_FUNCPTR (gst_ceus_hud_transform_caps);
  GST_DEBUG_CATEGORY_INIT (ceus_hud_debug, "ceushud", 0, "CEUS bedside overlay");
}

static void
gst_ceus_hud_init (GstCeusHud * self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->rendered);
  self->wake_fd = -1;
  self->endpoint = g_strdup (DEFAULT_ENDPOINT);
  self->exam = g_strdup ("");
  self->server_key = g_strdup ("");
  self->client_public = g_strdup ("");
  self->client_secret = NULL;
  self->stale_after = DEFAULT_STALE_AFTER;
  self->font = g_strdup (DEFAULT_FONT);
  self->show_roi = TRUE;
  self->disclaimer = DEFAULT_DISCLAIMER;
  self->layout = DEFAULT_LAYOUT;
  hud_state_init (&self->state);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}
