/* ceushud: draws the ceustream engine's live state over video, in place.
 *
 * A subscriber thread receives the engine's ZeroMQ messages (score.<exam>, status.<exam>,
 * JSON schema v1), keeps the latest state and renders the overlay (cairo/pango) whenever
 * what it shows changes: the score and its label once final, the 30 slots (filled, flagged,
 * missing, pending), the phase and the countdown to the next slot, the ROI corners, warnings
 * ("NO SCORE YET", "STALE" when the engine is silent for stale-after seconds, "NO SIGNAL",
 * "CPU FALLBACK"), and a permanent line saying the model was trained on simulated data.
 *
 * The streaming thread never waits for a message or for drawing: per frame it takes a
 * reference to the last rendered overlay and blends its rectangles into the frame.
 *
 * Example:
 *   gst-launch-1.0 v4l2src ! videoconvert ! ceushud endpoint=tcp://127.0.0.1:5556 ! \
 *       videoconvert ! autovideosink
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstceushud.h"

#include <gst/video/video.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "hudblend.h"
#include "hudrender.h"
#include "hudstate.h"

GST_DEBUG_CATEGORY_STATIC (ceus_hud_debug);
#define GST_CAT_DEFAULT ceus_hud_debug

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5556"
#define DEFAULT_STALE_AFTER 3.0
#define DEFAULT_FONT "Sans"
#define WARN_INTERVAL_US (5 * G_USEC_PER_SEC)

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
  PROP_RECEIVED,
  PROP_IGNORED,
  PROP_LAST_SEQ,
  PROP_DRAWN_SEQ,
  PROP_DRAWN_MONO,
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

  HudState state;
  gboolean have_state;
  HudOverlay *overlay;
  gint want_w, want_h;
  HudFormat want_fmt;
  gboolean geometry_changed;

  GThread *thread;
  volatile gint running;
  guint64 received;
  guint64 ignored;
  guint64 drawn_seq;
  guint64 drawn_mono;
  gint64 last_warn_us[4];
};

#define FORMATS "{ BGRx, BGRA, RGBx, RGBA, I420, NV12 }"

G_DEFINE_TYPE (GstCeusHud, gst_ceus_hud, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (ceushud, "ceushud", GST_RANK_NONE, GST_TYPE_CEUS_HUD);

static void
warn_limited (GstCeusHud * self, gint kind, const gchar * what, const gchar * why)
{
  gint64 now = g_get_monotonic_time ();
  if (now - self->last_warn_us[kind] < WARN_INTERVAL_US)
    return;
  self->last_warn_us[kind] = now;
  GST_ELEMENT_WARNING (self, STREAM, DECODE, (NULL), ("ceushud: ignored %s: %s", what, why));
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
    }
  }
  g_free (server);
  g_free (pub);
  g_free (sec);
  return ok;
}

/* Reads one multipart message; returns the number of parts (0 = none waiting). Only the
 * first two parts are kept in @parts. */
static gint
recv_message (void *sock, zmq_msg_t parts[2])
{
  gint n = 0;
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init (&m);
    if (zmq_msg_recv (&m, sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
      zmq_msg_close (&m);
      return n;
    }
    gboolean more = zmq_msg_more (&m);
    if (n < 2)
      parts[n] = m;             /* ownership moves to parts[] */
    else
      zmq_msg_close (&m);
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
    const gchar *why = "expected [topic, payload]";
    HudApply r = HUD_MALFORMED;
    HudState next;
    gint n = recv_message (sock, parts);
    if (n == 0)
      return;
    if (n == 2) {
      /* parse outside the lock: the video thread only ever waits for a pointer swap */
      g_mutex_lock (&self->lock);
      next = self->state;
      g_mutex_unlock (&self->lock);
      r = hud_state_apply (&next, zmq_msg_data (&parts[0]), zmq_msg_size (&parts[0]),
          zmq_msg_data (&parts[1]), zmq_msg_size (&parts[1]), filter, &why);
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
    if (r != HUD_APPLIED)
      warn_limited (self, r, "message", why);
    for (gint i = 0; i < MIN (n, 2); i++)
      zmq_msg_close (&parts[i]);
  }
}

/* Renders a new overlay when what it shows changed; never touches the video thread. */
static void
maybe_render (GstCeusHud * self, gchar ** last_key)
{
  HudState st;
  HudStyle style;
  gboolean have, geom;
  gint w, h;
  HudFormat fmt;
  gchar *key, *font;
  gint64 now_us = g_get_monotonic_time ();
  gdouble now_wall = g_get_real_time () / 1e6;
  HudOverlay *ov, *old;

  g_mutex_lock (&self->lock);
  st = self->state;
  have = self->have_state;
  w = self->want_w;
  h = self->want_h;
  fmt = self->want_fmt;
  geom = self->geometry_changed;
  self->geometry_changed = FALSE;
  style.stale_after_s = self->stale_after;
  style.show_roi = self->show_roi;
  font = g_strdup (self->font);
  g_mutex_unlock (&self->lock);
  style.font = font;
  if (w <= 0 || h <= 0) {
    g_free (font);
    return;
  }
  key = hud_render_key (&st, &style, now_us, now_wall);
  if (!geom && *last_key && g_str_equal (key, *last_key)) {
    g_free (key);
    g_free (font);
    return;
  }
  g_free (*last_key);
  *last_key = key;
  ov = hud_overlay_new (w, h, fmt);
  ov->seq = st.seq;
  hud_render (ov, &st, &style, now_us, now_wall, have);
  hud_overlay_prepare (ov);
  g_free (font);
  g_mutex_lock (&self->lock);
  if (self->want_w == w && self->want_h == h && self->want_fmt == fmt) {
    old = self->overlay;
    self->overlay = ov;
  } else {
    old = ov;                   /* caps changed meanwhile: render again next tick */
    self->geometry_changed = TRUE;
  }
  g_mutex_unlock (&self->lock);
  hud_overlay_unref (old);
}

static gpointer
subscriber_thread (gpointer data)
{
  GstCeusHud *self = GST_CEUS_HUD (data);
  void *ctx = zmq_ctx_new ();
  void *sock = zmq_socket (ctx, ZMQ_SUB);
  gchar *endpoint, *filter, *key = NULL;
  gint zero = 0, hwm = 1000;
  gboolean connected = FALSE;

  g_mutex_lock (&self->lock);
  endpoint = g_strdup (self->endpoint);
  filter = g_strdup (self->exam ? self->exam : "");
  g_mutex_unlock (&self->lock);

  zmq_setsockopt (sock, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt (sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
  if (*filter) {
    gchar *a = g_strdup_printf ("score.%s", filter), *b = g_strdup_printf ("status.%s", filter);
    zmq_setsockopt (sock, ZMQ_SUBSCRIBE, a, strlen (a));
    zmq_setsockopt (sock, ZMQ_SUBSCRIBE, b, strlen (b));
    g_free (a);
    g_free (b);
  } else {
    zmq_setsockopt (sock, ZMQ_SUBSCRIBE, "score.", 6);
    zmq_setsockopt (sock, ZMQ_SUBSCRIBE, "status.", 7);
  }
  if (set_curve (self, sock)) {
    if (zmq_connect (sock, endpoint) == 0)
      connected = TRUE;
    else
      GST_ELEMENT_WARNING (self, RESOURCE, OPEN_READ, (NULL),
          ("ceushud: cannot connect to %s: %s", endpoint, zmq_strerror (zmq_errno ())));
  }

  while (g_atomic_int_get (&self->running)) {
    zmq_pollitem_t item = { sock, 0, ZMQ_POLLIN, 0 };
    if (connected && zmq_poll (&item, 1, 100) > 0)
      receive_all (self, sock, filter);
    else if (!connected)
      g_usleep (100000);
    maybe_render (self, &key);
  }
  g_free (key);
  g_free (endpoint);
  g_free (filter);
  zmq_close (sock);
  zmq_ctx_term (ctx);
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
  self->drawn_seq = self->drawn_mono = 0;
  memset (self->last_warn_us, 0, sizeof self->last_warn_us);
  g_mutex_unlock (&self->lock);
  g_atomic_int_set (&self->running, 1);
  self->thread = g_thread_new ("ceushud-sub", subscriber_thread, self);
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
  g_mutex_lock (&self->lock);
  hud_overlay_unref (self->overlay);
  self->overlay = NULL;
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static gboolean
gst_ceus_hud_set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo * in_info,
    GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstCeusHud *self = GST_CEUS_HUD (filter);
  HudFormat fmt;
  switch (GST_VIDEO_INFO_FORMAT (in_info)) {
    case GST_VIDEO_FORMAT_BGRx:
    case GST_VIDEO_FORMAT_BGRA:
      fmt = HUD_FMT_BGRX;
      break;
    case GST_VIDEO_FORMAT_RGBx:
    case GST_VIDEO_FORMAT_RGBA:
      fmt = HUD_FMT_RGBX;
      break;
    case GST_VIDEO_FORMAT_I420:
      fmt = HUD_FMT_I420;
      break;
    case GST_VIDEO_FORMAT_NV12:
      fmt = HUD_FMT_NV12;
      break;
    default:
      return FALSE;
  }
  g_mutex_lock (&self->lock);
  self->want_w = GST_VIDEO_INFO_WIDTH (in_info);
  self->want_h = GST_VIDEO_INFO_HEIGHT (in_info);
  self->want_fmt = fmt;
  self->geometry_changed = TRUE;
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static GstFlowReturn
gst_ceus_hud_transform_frame_ip (GstVideoFilter * filter, GstVideoFrame * frame)
{
  GstCeusHud *self = GST_CEUS_HUD (filter);
  HudOverlay *ov = NULL;
  HudFrame f;

  g_mutex_lock (&self->lock);
  if (self->overlay)
    ov = hud_overlay_ref (self->overlay);
  g_mutex_unlock (&self->lock);
  if (!ov)
    return GST_FLOW_OK;         /* nothing rendered yet: the frame passes untouched */
  f.width = GST_VIDEO_FRAME_WIDTH (frame);
  f.height = GST_VIDEO_FRAME_HEIGHT (frame);
  f.format = ov->format;
  for (guint i = 0; i < 3 && i < GST_VIDEO_FRAME_N_PLANES (frame); i++) {
    f.data[i] = GST_VIDEO_FRAME_PLANE_DATA (frame, i);
    f.stride[i] = GST_VIDEO_FRAME_PLANE_STRIDE (frame, i);
  }
  hud_blend (ov, &f);
  if (ov->seq != self->drawn_seq) {
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    g_mutex_lock (&self->lock);
    self->drawn_seq = ov->seq;
    self->drawn_mono = (guint64) ts.tv_sec * GST_SECOND + (guint64) ts.tv_nsec;
    g_mutex_unlock (&self->lock);
  }
  hud_overlay_unref (ov);
  return GST_FLOW_OK;
}

static void
set_string (GstCeusHud * self, gchar ** field, const GValue * value)
{
  g_mutex_lock (&self->lock);
  g_free (*field);
  *field = g_value_dup_string (value);
  g_mutex_unlock (&self->lock);
}

static void
gst_ceus_hud_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstCeusHud *self = GST_CEUS_HUD (object);
  switch (prop_id) {
    case PROP_ENDPOINT:
      set_string (self, &self->endpoint, value);
      break;
    case PROP_EXAM:
      set_string (self, &self->exam, value);
      break;
    case PROP_SERVER_KEY:
      set_string (self, &self->server_key, value);
      break;
    case PROP_CLIENT_PUBLIC:
      set_string (self, &self->client_public, value);
      break;
    case PROP_CLIENT_SECRET:
      set_string (self, &self->client_secret, value);
      break;
    case PROP_STALE_AFTER:
      g_mutex_lock (&self->lock);
      self->stale_after = g_value_get_double (value);
      g_mutex_unlock (&self->lock);
      break;
    case PROP_FONT:
      set_string (self, &self->font, value);
      break;
    case PROP_SHOW_ROI:
      g_mutex_lock (&self->lock);
      self->show_roi = g_value_get_boolean (value);
      g_mutex_unlock (&self->lock);
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
          "Seconds without any engine message before the score is shown as STALE", 0.2,
          3600.0, DEFAULT_STALE_AFTER, rw_play));
  g_object_class_install_property (gobject_class, PROP_FONT,
      g_param_spec_string ("font", "Font", "Font family for all text", DEFAULT_FONT,
          rw_play));
  g_object_class_install_property (gobject_class, PROP_SHOW_ROI,
      g_param_spec_boolean ("show-roi", "Show ROI",
          "Mark the ROI's corners (never a full box over the lesion)", TRUE, rw_play));
  g_object_class_install_property (gobject_class, PROP_RECEIVED,
      g_param_spec_uint64 ("messages-received", "Messages received",
          "Engine messages accepted", 0, G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_IGNORED,
      g_param_spec_uint64 ("messages-ignored", "Messages ignored",
          "Messages ignored (malformed, unknown schema version, another exam)", 0,
          G_MAXUINT64, 0, ro));
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
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS, caps));
  gst_caps_unref (caps);
  gst_element_class_set_static_metadata (element_class, "CEUS bedside overlay",
      "Filter/Effect/Video",
      "Draws the ceustream engine's live HCC score, slots, countdown and warnings over video",
      "ceustream");

  bt_class->start = GST_DEBUG_FUNCPTR (gst_ceus_hud_start);
  bt_class->stop = GST_DEBUG_FUNCPTR (gst_ceus_hud_stop);
  bt_class->passthrough_on_same_caps = FALSE;
  vf_class->set_info = GST_DEBUG_FUNCPTR (gst_ceus_hud_set_info);
  vf_class->transform_frame_ip = GST_DEBUG_FUNCPTR (gst_ceus_hud_transform_frame_ip);
  GST_DEBUG_CATEGORY_INIT (ceus_hud_debug, "ceushud", 0, "CEUS bedside overlay");
}

static void
gst_ceus_hud_init (GstCeusHud * self)
{
  g_mutex_init (&self->lock);
  self->endpoint = g_strdup (DEFAULT_ENDPOINT);
  self->exam = g_strdup ("");
  self->server_key = g_strdup ("");
  self->client_public = g_strdup ("");
  self->client_secret = NULL;
  self->stale_after = DEFAULT_STALE_AFTER;
  self->font = g_strdup (DEFAULT_FONT);
  self->show_roi = TRUE;
  hud_state_init (&self->state);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}
