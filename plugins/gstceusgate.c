/**
 * SECTION:element-ceusgate
 * @title: ceusgate
 * @short_description: lets through only the frames a CEUS slot schedule needs
 *
 * A capture card delivers 30-60 frames per second but the 30-slot schedule needs about two
 * frames per slot (the last one before the slot time and the first one at or after it, so that
 * the application can pick the nearest).  Everything else is dropped here, in the streaming
 * thread, so that no application code (Python) runs for frames the schedule does not need.
 *
 * While contrast arrival is being detected, a "monitor" window lets one frame per
 * #GstCeusGate:monitor-interval through.  Every buffer that passes carries a
 * GstReferenceTimestampMeta (caps "timestamp/x-ceus-monotonic") with CLOCK_MONOTONIC at the
 * moment it left the decoder, which the engine uses to measure its own latency.  Identical
 * consecutive frames (#GstCeusGate:frozen-after of them) set #GstCeusGate:frozen.
 *
 * ## The kept past
 * While #GstCeusGate:keep-roi names a box, the gate also keeps the luma (Y) of that box of
 * every frame in a ring, bounded by #GstCeusGate:keep-time (stream time) and
 * #GstCeusGate:keep-max-bytes (the oldest go first), so that a mark given late is served
 * from the frames that were on screen then.  The action signal "replay" sets the rule's
 * settings (monitor window, slots) and runs the kept frames through the same selection rule the
 * live frames take (select_frame: the monitor rule, the slot rule), returns the chosen crops
 * (GRAY8, PTS = stream time, GstBuffer offset 1; frames asked for as context: offset 0) and
 * leaves the rule's state as if those frames had come live, all under one lock,
 * so no live frame is missed or counted twice.  Every buffer that passes afterwards carries
 * the request's epoch (a "timestamp/x-ceus-epoch" reference timestamp), so the application
 * tells frames chosen before the request from those chosen after it.  Only 8-bit YUV and GRAY
 * formats are kept (the luma plane is read as it is; videoconvert copies it the same way).
 *
 * The element never blocks: it takes a mutex only to read its settings, and pushes outside it
 * (except in seek mode, #GstCeusGate:hold-after-slots, where it parks like a prerolled sink).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=exam.mp4 ! decodebin ! ceusgate slots="12,14,16" ! \
 *     videoconvert ! autovideosink
 * ]|
 * Debug output: `GST_DEBUG=ceusgate:5` (LOG: every frame passed or dropped and why; DEBUG:
 * caps, segments, property changes, frozen/unfrozen).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstceusgate.h"

#include <gst/video/video.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

GST_DEBUG_CATEGORY_STATIC (ceus_gate_debug);
#define GST_CAT_DEFAULT ceus_gate_debug

#define DEFAULT_FROZEN_AFTER 30
#define DEFAULT_KEEP_TIME (120 * GST_SECOND)
#define DEFAULT_KEEP_MAX_BYTES ((guint64) 256000000)
/* a kept frame more than this before the newest one starts a new timeline: the ring restarts */
#define KEEP_JUMP_BACK GST_SECOND

enum
{
  PROP_0,
  PROP_SLOTS,
  PROP_MONITOR_INTERVAL,
  PROP_MONITOR_START,
  PROP_MONITOR_STOP,
  PROP_PASS_ALL,
  PROP_STAMP,
  PROP_FROZEN_AFTER,
  PROP_PASSED,
  PROP_DROPPED,
  PROP_LAST_STREAM_TIME,
  PROP_LAST_ARRIVAL,
  PROP_FROZEN,
  PROP_NEXT_SLOT,
  PROP_HOLD_AFTER_SLOTS,
  PROP_SEGMENTS,
  PROP_SEGMENT_FRAMES,
  PROP_HOLDING,
  PROP_KEEP_ROI,
  PROP_KEEP_TIME,
  PROP_KEEP_MAX_BYTES,
  PROP_KEPT_FROM,
  PROP_KEPT_FRAMES,
  PROP_KEPT_BYTES,
  PROP_KEPT_LIMITED,
  PROP_EPOCH,
};

/* one frame of the kept past: the luma of the keep-roi box */
typedef struct
{
  guint64 st;                   /* stream time, ns */
  guint64 arrival;              /* CLOCK_MONOTONIC when it reached the gate */
  GstBuffer *crop;              /* GRAY8, keep_w x keep_h */
} KeptFrame;

struct _GstCeusGate
{
  GstElement parent;
  GstPad *sinkpad;
  GstPad *srcpad;

  GMutex lock;
  GArray *slots;                /* guint64 stream-time ns, ascending */
  guint next_slot;
  guint64 monitor_interval;
  guint64 monitor_start;
  guint64 monitor_stop;
  guint64 last_monitor;
  gboolean pass_all;
  gboolean stamp;
  gboolean hold_after_slots;
  gboolean flushing;
  gboolean holding;             /* the streaming thread is parked in hold(): its pushes done */
  GCond cond;
  guint frozen_after;

  GstSegment segment;
  GstBuffer *prev;              /* last frame seen and not pushed, while a slot is pending */
  guint64 prev_arrival;

  guint64 passed;
  guint64 dropped;
  guint64 last_st;
  guint64 last_arrival;
  guint segments;               /* TIME segments seen: one per start and per flushing seek */
  guint64 segment_frames;       /* frames seen since the latest segment */
  guint32 last_hash;
  guint same_count;
  gboolean frozen;

  GstCaps *stamp_caps;

  /* the kept past (keep_w == 0: off) */
  gint keep_x, keep_y, keep_w, keep_h;
  guint64 keep_time;
  guint64 keep_max_bytes;
  GQueue ring;                  /* KeptFrame *, oldest first */
  guint64 ring_bytes;
  gboolean ring_limited;        /* the byte bound, not the time, dropped frames */
  GstVideoInfo vinfo;
  gboolean vinfo_ok;            /* caps known and the luma readable */
  guint64 epoch;
  GstCaps *epoch_caps;
  GstBuffer *last_buf;          /* the newest kept frame as it came (the "before" frame of a
                                 * slot a replay leaves pending) */
  guint64 last_buf_st;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));

G_DEFINE_TYPE (GstCeusGate, gst_ceus_gate, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (ceusgate, "ceusgate", GST_RANK_NONE, GST_TYPE_CEUS_GATE);

static void clear_prev (GstCeusGate * self);

static guint64
monotonic_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * GST_SECOND + (guint64) ts.tv_nsec;
}

static gint
cmp_u64 (gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;
  return x < y ? -1 : (x > y ? 1 : 0);
}

/* Index of the first slot at or after @t; called with the lock held. */
static guint
first_slot_from (GstCeusGate * self, guint64 t)
{
  guint i = 0;
  if (t == GST_CLOCK_TIME_NONE)
    return 0;
  while (i < self->slots->len && g_array_index (self->slots, guint64, i) < t)
    i++;
  return i;
}

static gchar *
slots_to_string (GstCeusGate * self)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < self->slots->len; i++) {
    gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
    g_ascii_formatd (buf, sizeof buf, "%.6f",
        (gdouble) g_array_index (self->slots, guint64, i) / GST_SECOND);
    if (i)
      g_string_append_c (s, ',');
    g_string_append (s, buf);
  }
  return g_string_free (s, FALSE);
}

/* Parses "t1,t2,..." (seconds).  Returns FALSE and leaves @out untouched on a bad entry. */
static gboolean
parse_slots (const gchar * text, GArray * out)
{
  GArray *tmp = g_array_new (FALSE, FALSE, sizeof (guint64));
  gchar **parts = g_strsplit (text ? text : "", ",", -1);
  gboolean ok = TRUE;
  for (gchar ** p = parts; *p; p++) {
    gchar *item = g_strstrip (*p);
    gchar *end = NULL;
    gdouble v;
    guint64 ns;
    if (!*item)
      continue;
    v = g_ascii_strtod (item, &end);
    if (end == item || *end != '\0' || !(v >= 0.0) || v > 1e7) {
      ok = FALSE;
      break;
    }
    ns = (guint64) (v * GST_SECOND + 0.5);
    g_array_append_val (tmp, ns);
  }
  g_strfreev (parts);
  if (ok) {
    g_array_sort (tmp, cmp_u64);
    g_array_set_size (out, 0);
    g_array_append_vals (out, tmp->data, tmp->len);
  }
  g_array_free (tmp, TRUE);
  return ok;
}

/* A cheap fingerprint of a frame: 256 bytes spread over it (each a separate cache line).
 * Enough to tell a frozen scanner image (byte-identical frames) from live video, whose noise
 * changes every pixel, at about a microsecond per frame. */
static guint32
frame_hash (GstBuffer * buf)
{
  GstMapInfo map;
  guint32 h = 2166136261u;
  if (!gst_buffer_map (buf, &map, GST_MAP_READ))
    return 0;
  if (map.size > 0) {
    gsize step = map.size / 256 + 1;
    for (gsize i = 0; i < map.size; i += step)
      h = (h ^ map.data[i]) * 16777619u;
  }
  gst_buffer_unmap (buf, &map);
  return h;
}

static GstBuffer *
stamp_buffer (GstCeusGate * self, GstBuffer * buf, guint64 arrival, guint64 epoch)
{
  buf = gst_buffer_make_writable (buf);
  gst_buffer_add_reference_timestamp_meta (buf, self->stamp_caps, arrival,
      GST_CLOCK_TIME_NONE);
  if (epoch > 0)
    gst_buffer_add_reference_timestamp_meta (buf, self->epoch_caps, epoch,
        GST_CLOCK_TIME_NONE);
  return buf;
}

/* Seek mode: once every listed slot is served (and no monitor window lies ahead), park the
 * streaming thread like a prerolled sink does, so nothing more is decoded. A flushing seek
 * (FLUSH_START), new slots or a state change to READY release it. */
static gboolean
nothing_ahead (GstCeusGate * self, guint64 st)
{
  return self->hold_after_slots && self->next_slot >= self->slots->len
      && (self->monitor_interval == 0 || st == GST_CLOCK_TIME_NONE
      || st >= self->monitor_stop);
}

static GstFlowReturn
hold (GstCeusGate * self, guint64 st)
{
  GstFlowReturn ret = GST_FLOW_OK;
  g_mutex_lock (&self->lock);
  if (nothing_ahead (self, st) && !self->flushing)
    GST_DEBUG_OBJECT (self, "slots served, holding until the next seek");
  while (nothing_ahead (self, st) && !self->flushing) {
    self->holding = TRUE;
    g_cond_wait (&self->cond, &self->lock);
  }
  self->holding = FALSE;
  if (self->flushing)
    ret = GST_FLOW_FLUSHING;
  g_mutex_unlock (&self->lock);
  return ret;
}

/* THE selection rule, for live frames (chain) and kept ones (replay) alike.  Called with the
 * lock held, once per frame in stream order.  Returns TRUE when the frame at stream time @st
 * passes (a monitor frame, or the first at or after a slot); sets *before_slot when the frame
 * seen just before it must pass too (the last one before a slot).  Advances the monitor's
 * rhythm and the next slot. */
static gboolean
select_frame (GstCeusGate * self, guint64 st, gboolean * before_slot,
    const gchar ** why)
{
  gboolean pass = FALSE;
  *before_slot = FALSE;
  if (st == GST_CLOCK_TIME_NONE)
    return FALSE;
  if (self->monitor_interval > 0 && st >= self->monitor_start
      && st <= self->monitor_stop) {
    if (self->last_monitor == GST_CLOCK_TIME_NONE || st < self->last_monitor
        || st >= self->last_monitor + self->monitor_interval) {
      pass = TRUE;
      *why = " (monitor)";
      self->last_monitor = st;
    }
  }
  while (self->next_slot < self->slots->len
      && g_array_index (self->slots, guint64, self->next_slot) <= st) {
    pass = TRUE;
    *why = " (first at or after a slot)";
    *before_slot = TRUE;
    self->next_slot++;
  }
  return pass;
}

static void
kept_free (KeptFrame * k)
{
  gst_buffer_unref (k->crop);
  g_free (k);
}

/* Forgets the kept past; called with the lock held. */
static void
ring_clear (GstCeusGate * self)
{
  KeptFrame *k;
  while ((k = g_queue_pop_head (&self->ring)))
    kept_free (k);
  gst_buffer_replace (&self->last_buf, NULL);
  self->ring_bytes = 0;
  self->ring_limited = FALSE;
}

/* The luma of the keep-roi box of @buf as a new GRAY8 buffer (NULL when the format has no
 * 8-bit luma or the box is not inside the frame).  Called with the lock held. */
static GstBuffer *
crop_luma (GstCeusGate * self, GstBuffer * buf)
{
  GstVideoFrame f;
  GstMapInfo out;
  GstBuffer *crop;
  const guint8 *data;
  gint stride, ps;
  gsize w = self->keep_w, h = self->keep_h;

  if (!self->vinfo_ok || self->keep_x + self->keep_w > GST_VIDEO_INFO_WIDTH (&self->vinfo)
      || self->keep_y + self->keep_h > GST_VIDEO_INFO_HEIGHT (&self->vinfo))
    return NULL;
  if (!gst_video_frame_map (&f, &self->vinfo, buf, GST_MAP_READ))
    return NULL;
  data = GST_VIDEO_FRAME_COMP_DATA (&f, 0);
  stride = GST_VIDEO_FRAME_COMP_STRIDE (&f, 0);
  ps = GST_VIDEO_FRAME_COMP_PSTRIDE (&f, 0);
  crop = gst_buffer_new_allocate (NULL, w * h, NULL);
  gst_buffer_map (crop, &out, GST_MAP_WRITE);
  for (gsize y = 0; y < h; y++) {
    const guint8 *row = data + (gsize) (self->keep_y + y) * stride
        + (gsize) self->keep_x * ps;
    guint8 *dst = out.data + y * w;
    if (ps == 1) {
      memcpy (dst, row, w);
    } else {
      for (gsize x = 0; x < w; x++)
        dst[x] = row[x * ps];
    }
  }
  gst_buffer_unmap (crop, &out);
  gst_video_frame_unmap (&f);
  return crop;
}

/* Keeps the box of a frame (in stream order; a frame not after the newest is left out, one far
 * before it restarts the ring: a new timeline) and drops what falls out of the bounds.  Called
 * with the lock held. */
static void
ring_add (GstCeusGate * self, GstBuffer * buf, guint64 st, guint64 arrival)
{
  KeptFrame *k, *newest = g_queue_peek_tail (&self->ring);
  GstBuffer *crop;

  if (self->keep_w <= 0 || st == GST_CLOCK_TIME_NONE)
    return;
  if (newest && st <= newest->st) {
    if (st + KEEP_JUMP_BACK < newest->st) {
      GST_DEBUG_OBJECT (self, "stream time went back to %" GST_TIME_FORMAT
          ": the kept past restarts", GST_TIME_ARGS (st));
      ring_clear (self);
    } else {
      return;
    }
  }
  crop = crop_luma (self, buf);
  if (crop == NULL)
    return;
  k = g_new (KeptFrame, 1);
  k->st = st;
  k->arrival = arrival;
  k->crop = crop;
  g_queue_push_tail (&self->ring, k);
  self->ring_bytes += gst_buffer_get_size (crop);
  gst_buffer_replace (&self->last_buf, buf);
  self->last_buf_st = st;
  while ((k = g_queue_peek_head (&self->ring)) != NULL && self->ring.length > 1
      && (st - k->st > self->keep_time || self->ring_bytes > self->keep_max_bytes)) {
    if (st - k->st <= self->keep_time && !self->ring_limited) {
      self->ring_limited = TRUE;
      GST_DEBUG_OBJECT (self, "keep-max-bytes keeps only %" GST_TIME_FORMAT " of the past",
          GST_TIME_ARGS (st - k->st));
    }
    g_queue_pop_head (&self->ring);
    self->ring_bytes -= gst_buffer_get_size (k->crop);
    kept_free (k);
  }
}

static GstFlowReturn
gst_ceus_gate_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstCeusGate *self = GST_CEUS_GATE (parent);
  guint64 now = monotonic_ns ();
  guint64 pts = GST_BUFFER_PTS (buf);
  guint64 st = pts;
  gboolean pass = FALSE, stamp, before_slot = FALSE;
  GstBuffer *push_prev = NULL;
  guint64 prev_arrival = 0, epoch;
  guint32 hash = 0;
  GstFlowReturn ret = GST_FLOW_OK;
  gboolean was_frozen;
  guint slot_before = 0;
  const gchar *why_pass = NULL;

  if (pts != GST_CLOCK_TIME_NONE && self->segment.format == GST_FORMAT_TIME) {
    guint64 s = gst_segment_to_stream_time (&self->segment, GST_FORMAT_TIME, pts);
    if (s != GST_CLOCK_TIME_NONE)
      st = s;
  }
  if (self->frozen_after > 0)
    hash = frame_hash (buf);

  g_mutex_lock (&self->lock);
  was_frozen = self->frozen;
  self->last_arrival = now;
  self->segment_frames++;
  if (self->frozen_after > 0) {
    if (self->passed + self->dropped > 0 && hash == self->last_hash)
      self->same_count++;
    else
      self->same_count = 0;
    self->last_hash = hash;
    self->frozen = self->same_count >= self->frozen_after;
  }
  stamp = self->stamp;
  epoch = self->epoch;

  if (st != GST_CLOCK_TIME_NONE)
    self->last_st = st;
  ring_add (self, buf, st, now);
  slot_before = self->next_slot;
  pass = select_frame (self, st, &before_slot, &why_pass);
  if (before_slot && self->prev) {
    push_prev = self->prev;
    prev_arrival = self->prev_arrival;
    self->prev = NULL;
  }
  if (self->pass_all) {
    pass = TRUE;
    why_pass = " (pass-all)";
  }

  if (pass) {
    /* this frame goes downstream, so the next slot's "before" frame is already there */
    if (self->prev) {
      gst_buffer_unref (self->prev);
      self->prev = NULL;
    }
  } else if (self->next_slot < self->slots->len) {
    if (self->prev)
      gst_buffer_unref (self->prev);
    self->prev = gst_buffer_ref (buf);
    self->prev_arrival = now;
  }
  self->passed += (pass ? 1 : 0) + (push_prev ? 1 : 0);
  if (!pass)
    self->dropped++;
  if (self->frozen != was_frozen)
    GST_DEBUG_OBJECT (self, "image %s at stream time %" GST_TIME_FORMAT,
        self->frozen ? "frozen" : "moving again", GST_TIME_ARGS (st));
  g_mutex_unlock (&self->lock);

  if (push_prev)
    GST_LOG_OBJECT (self, "passed the frame before slot %u (held since %" G_GUINT64_FORMAT
        " ns)", slot_before, prev_arrival);
  GST_LOG_OBJECT (self, "%s frame at stream time %" GST_TIME_FORMAT "%s", pass ? "passed" :
      "dropped", GST_TIME_ARGS (st), pass ? (why_pass ? why_pass : "") : "");

  if (push_prev) {
    if (stamp)
      push_prev = stamp_buffer (self, push_prev, prev_arrival, epoch);
    ret = gst_pad_push (self->srcpad, push_prev);
    if (ret != GST_FLOW_OK) {
      gst_buffer_unref (buf);
      return ret;
    }
  }
  if (!pass) {
    gst_buffer_unref (buf);
  } else {
    if (stamp)
      buf = stamp_buffer (self, buf, now, epoch);
    ret = gst_pad_push (self->srcpad, buf);
  }
  if (ret == GST_FLOW_OK)
    ret = hold (self, st);
  return ret;
}

/* A kept frame as the replay signals return it: GRAY8 crop, PTS = stream time, offset 1 for a
 * chosen frame and 0 for context, its arrival and the request's epoch as reference stamps. */
static void
replay_append (GstCeusGate * self, GstBufferList * out, KeptFrame * k, guint64 kind,
    guint64 epoch)
{
  GstBuffer *b = gst_buffer_copy (k->crop);
  GST_BUFFER_PTS (b) = k->st;
  GST_BUFFER_OFFSET (b) = kind;
  gst_buffer_add_reference_timestamp_meta (b, self->stamp_caps, k->arrival,
      GST_CLOCK_TIME_NONE);
  gst_buffer_add_reference_timestamp_meta (b, self->epoch_caps, epoch, GST_CLOCK_TIME_NONE);
  gst_buffer_list_add (out, b);
}

/* Runs the kept frames from @from on through select_frame, as they came; returns the chosen
 * ones (kept frames from @pre_from to @from as context).  The rule's state is then what it
 * would be had they come live; when the newest kept frame was not chosen and a slot is pending,
 * it becomes the frame held for that slot's "before", as live.  Called with the lock held. */
static void
replay_ring (GstCeusGate * self, GstBufferList * out, guint64 epoch, guint64 pre_from,
    guint64 from)
{
  KeptFrame *prev = NULL;
  gboolean before, prev_chosen = FALSE;
  const gchar *why = NULL;
  guint walked = 0;
  for (GList * l = self->ring.head; l; l = l->next) {
    KeptFrame *k = l->data;
    gboolean pass;
    if (k->st < from) {
      if (k->st >= pre_from)
        replay_append (self, out, k, 0, epoch);
      continue;
    }
    walked++;
    pass = select_frame (self, k->st, &before, &why);
    if (before && prev && !prev_chosen)
      replay_append (self, out, prev, 1, epoch);
    if (pass)
      replay_append (self, out, k, 1, epoch);
    prev = k;
    prev_chosen = pass;
  }
  if (walked == 0 && self->ring.length == 0)   /* nothing kept: as the slots property does */
    self->next_slot = first_slot_from (self, self->last_st);
  if (prev && !prev_chosen && self->next_slot < self->slots->len && self->last_buf
      && self->last_buf_st == prev->st) {
    self->prev = gst_buffer_ref (self->last_buf);
    self->prev_arrival = prev->arrival;
  }
}

/* The "replay" action signal: sets the monitor window (@interval 0: none; its rhythm goes on
 * from @last_monitor, G_MAXUINT64: from the window's first frame) and the slots, then runs
 * the kept past from @from through the rule. */
static GstBufferList *
gst_ceus_gate_replay (GstCeusGate * self, guint64 epoch, guint64 from, guint64 pre_from,
    guint64 start, guint64 stop, guint64 interval, guint64 last_monitor,
    const gchar * slots)
{
  GstBufferList *out = gst_buffer_list_new ();
  g_mutex_lock (&self->lock);
  if (!parse_slots (slots, self->slots)) {
    g_mutex_unlock (&self->lock);
    GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS, (NULL),
        ("ceusgate: invalid slots '%s': expected comma-separated seconds", slots));
    return out;
  }
  self->epoch = epoch;
  self->monitor_start = start;
  self->monitor_stop = stop;
  self->monitor_interval = interval;
  self->last_monitor = last_monitor;
  self->next_slot = 0;
  clear_prev (self);
  replay_ring (self, out, epoch, pre_from, from);
  GST_DEBUG_OBJECT (self, "replay epoch %" G_GUINT64_FORMAT " from %" GST_TIME_FORMAT
      ": %u slots, monitor every %" G_GUINT64_FORMAT " ns; %u buffers of %u kept frames, "
      "next slot %u", epoch, GST_TIME_ARGS (from), self->slots->len, interval,
      gst_buffer_list_length (out), self->ring.length, self->next_slot);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  return out;
}

static void
clear_prev (GstCeusGate * self)
{
  if (self->prev) {
    gst_buffer_unref (self->prev);
    self->prev = NULL;
  }
}

static gboolean
gst_ceus_gate_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstCeusGate *self = GST_CEUS_GATE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      GST_DEBUG_OBJECT (self, "flush start: releasing a held stream");
      g_mutex_lock (&self->lock);
      self->flushing = TRUE;
      g_cond_broadcast (&self->cond);
      g_mutex_unlock (&self->lock);
      break;
    case GST_EVENT_FLUSH_STOP:
      g_mutex_lock (&self->lock);
      clear_prev (self);
      self->flushing = FALSE;
      self->last_monitor = GST_CLOCK_TIME_NONE;
      self->same_count = 0;
      self->frozen = FALSE;
      g_mutex_unlock (&self->lock);
      break;
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT, caps);
      g_mutex_lock (&self->lock);
      {
        GstVideoInfo info;
        gboolean ok = gst_video_info_from_caps (&info, caps);
        const GstVideoFormatInfo *fi = ok ? info.finfo : NULL;
        gboolean luma = ok && (GST_VIDEO_FORMAT_INFO_IS_YUV (fi)
            || GST_VIDEO_FORMAT_INFO_IS_GRAY (fi))
            && GST_VIDEO_FORMAT_INFO_DEPTH (fi, 0) == 8
            && GST_VIDEO_FORMAT_INFO_BITS (fi) == 8 && !GST_VIDEO_FORMAT_INFO_IS_TILED (fi);
        if (!self->vinfo_ok || !luma || GST_VIDEO_INFO_WIDTH (&info) !=
            GST_VIDEO_INFO_WIDTH (&self->vinfo) || GST_VIDEO_INFO_HEIGHT (&info) !=
            GST_VIDEO_INFO_HEIGHT (&self->vinfo))
          ring_clear (self);      /* other pictures: the kept boxes mean another place */
        self->vinfo_ok = luma;
        if (ok)
          self->vinfo = info;
        if (!luma)
          GST_DEBUG_OBJECT (self, "caps without an 8-bit luma plane: no past can be kept");
      }
      g_mutex_unlock (&self->lock);
      break;
    }
    case GST_EVENT_SEGMENT:{
      const GstSegment *seg;
      gst_event_parse_segment (event, &seg);
      GST_DEBUG_OBJECT (self, "segment %" GST_SEGMENT_FORMAT, seg);
      g_mutex_lock (&self->lock);
      gst_segment_copy_into (seg, &self->segment);
      clear_prev (self);
      /* a seek's consumer knows its frames from the ones before it by this count: a frame
       * decided before the flush reached the gate can never look like one after it */
      self->segments++;
      self->segment_frames = 0;
      /* slots before the new segment were decided in an earlier one */
      if (seg->format == GST_FORMAT_TIME)
        self->next_slot = first_slot_from (self, seg->time);
      g_mutex_unlock (&self->lock);
      break;
    }
    case GST_EVENT_EOS:
      g_mutex_lock (&self->lock);
      clear_prev (self);
      g_mutex_unlock (&self->lock);
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static void
gst_ceus_gate_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstCeusGate *self = GST_CEUS_GATE (object);

  g_mutex_lock (&self->lock);
  switch (prop_id) {
    case PROP_SLOTS:{
      gchar *was = slots_to_string (self);
      GArray *tmp = g_array_new (FALSE, FALSE, sizeof (guint64));
      gboolean same = !self->hold_after_slots
          && parse_slots (g_value_get_string (value), tmp);
      if (same) {
        gchar *now;
        GArray *keep = self->slots;
        self->slots = tmp;
        now = slots_to_string (self);
        self->slots = keep;
        same = strcmp (was, now) == 0;
        g_free (now);
      }
      g_free (was);
      g_array_free (tmp, TRUE);
      if (same) {               /* the same list again keeps the frame held for the next slot */
        GST_DEBUG_OBJECT (self, "the same %u slots again", self->slots->len);
        break;
      }
    }
      if (!parse_slots (g_value_get_string (value), self->slots)) {
        g_mutex_unlock (&self->lock);
        GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS, (NULL),
            ("ceusgate: invalid slots '%s': expected comma-separated seconds",
                g_value_get_string (value)));
        return;
      }
      /* slots already in the past are not served retroactively */
      self->next_slot = first_slot_from (self, self->last_st);
      clear_prev (self);
      g_cond_broadcast (&self->cond);
      GST_DEBUG_OBJECT (self, "%u slots set, next %u", self->slots->len, self->next_slot);
      break;
    case PROP_MONITOR_INTERVAL:{
      guint64 v = g_value_get_uint64 (value);
      /* the same interval again (e.g. moving the window's end) keeps the monitor's rhythm */
      if (v != self->monitor_interval)
        self->last_monitor = GST_CLOCK_TIME_NONE;
      self->monitor_interval = v;
      GST_DEBUG_OBJECT (self, "monitor-interval %" G_GUINT64_FORMAT " ns", v);
      break;
    }
    case PROP_MONITOR_START:
      self->monitor_start = g_value_get_uint64 (value);
      GST_DEBUG_OBJECT (self, "monitor-start %" GST_TIME_FORMAT,
          GST_TIME_ARGS (self->monitor_start));
      break;
    case PROP_MONITOR_STOP:
      self->monitor_stop = g_value_get_uint64 (value);
      g_cond_broadcast (&self->cond);
      GST_DEBUG_OBJECT (self, "monitor-stop %" GST_TIME_FORMAT,
          GST_TIME_ARGS (self->monitor_stop));
      break;
    case PROP_PASS_ALL:
      self->pass_all = g_value_get_boolean (value);
      GST_DEBUG_OBJECT (self, "pass-all %d", self->pass_all);
      break;
    case PROP_STAMP:
      self->stamp = g_value_get_boolean (value);
      GST_DEBUG_OBJECT (self, "stamp %d", self->stamp);
      break;
    case PROP_FROZEN_AFTER:
      self->frozen_after = g_value_get_uint (value);
      GST_DEBUG_OBJECT (self, "frozen-after %u frames", self->frozen_after);
      break;
    case PROP_HOLD_AFTER_SLOTS:
      self->hold_after_slots = g_value_get_boolean (value);
      g_cond_broadcast (&self->cond);
      GST_DEBUG_OBJECT (self, "hold-after-slots %d", self->hold_after_slots);
      break;
    case PROP_KEEP_ROI:{
      const gchar *text = g_value_get_string (value);
      gint x = 0, y = 0, w = 0, h = 0;
      gchar tail;
      if (text && *text && (sscanf (text, "%d,%d,%d,%d%c", &x, &y, &w, &h, &tail) != 4
              || x < 0 || y < 0 || w <= 0 || h <= 0 || w > 16384 || h > 16384)) {
        g_mutex_unlock (&self->lock);
        GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS, (NULL),
            ("ceusgate: invalid keep-roi '%s': expected x,y,w,h", text));
        return;
      }
      ring_clear (self);
      self->keep_x = x;
      self->keep_y = y;
      self->keep_w = (text && *text) ? w : 0;
      self->keep_h = (text && *text) ? h : 0;
      GST_DEBUG_OBJECT (self, "keep-roi %d,%d %dx%d (%s)", x, y, self->keep_w, self->keep_h,
          self->keep_w ? "keeping the past" : "off");
      break;
    }
    case PROP_KEEP_TIME:
      self->keep_time = g_value_get_uint64 (value);
      GST_DEBUG_OBJECT (self, "keep-time %" GST_TIME_FORMAT, GST_TIME_ARGS (self->keep_time));
      break;
    case PROP_KEEP_MAX_BYTES:
      self->keep_max_bytes = g_value_get_uint64 (value);
      GST_DEBUG_OBJECT (self, "keep-max-bytes %" G_GUINT64_FORMAT, self->keep_max_bytes);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  g_mutex_unlock (&self->lock);
}

static void
gst_ceus_gate_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstCeusGate *self = GST_CEUS_GATE (object);

  g_mutex_lock (&self->lock);
  switch (prop_id) {
    case PROP_SLOTS:
      g_value_take_string (value, slots_to_string (self));
      break;
    case PROP_MONITOR_INTERVAL:
      g_value_set_uint64 (value, self->monitor_interval);
      break;
    case PROP_MONITOR_START:
      g_value_set_uint64 (value, self->monitor_start);
      break;
    case PROP_MONITOR_STOP:
      g_value_set_uint64 (value, self->monitor_stop);
      break;
    case PROP_PASS_ALL:
      g_value_set_boolean (value, self->pass_all);
      break;
    case PROP_STAMP:
      g_value_set_boolean (value, self->stamp);
      break;
    case PROP_FROZEN_AFTER:
      g_value_set_uint (value, self->frozen_after);
      break;
    case PROP_HOLD_AFTER_SLOTS:
      g_value_set_boolean (value, self->hold_after_slots);
      break;
    case PROP_PASSED:
      g_value_set_uint64 (value, self->passed);
      break;
    case PROP_DROPPED:
      g_value_set_uint64 (value, self->dropped);
      break;
    case PROP_LAST_STREAM_TIME:
      g_value_set_uint64 (value, self->last_st);
      break;
    case PROP_LAST_ARRIVAL:
      g_value_set_uint64 (value, self->last_arrival);
      break;
    case PROP_SEGMENTS:
      g_value_set_uint (value, self->segments);
      break;
    case PROP_SEGMENT_FRAMES:
      g_value_set_uint64 (value, self->segment_frames);
      break;
    case PROP_HOLDING:
      g_value_set_boolean (value, self->holding);
      break;
    case PROP_FROZEN:
      g_value_set_boolean (value, self->frozen);
      break;
    case PROP_NEXT_SLOT:
      g_value_set_int (value, self->next_slot < self->slots->len ?
          (gint) self->next_slot : -1);
      break;
    case PROP_KEEP_ROI:
      g_value_take_string (value, self->keep_w ? g_strdup_printf ("%d,%d,%d,%d",
              self->keep_x, self->keep_y, self->keep_w, self->keep_h) : g_strdup (""));
      break;
    case PROP_KEEP_TIME:
      g_value_set_uint64 (value, self->keep_time);
      break;
    case PROP_KEEP_MAX_BYTES:
      g_value_set_uint64 (value, self->keep_max_bytes);
      break;
    case PROP_KEPT_FROM:{
      KeptFrame *k = g_queue_peek_head (&self->ring);
      g_value_set_uint64 (value, k ? k->st : G_MAXUINT64);
      break;
    }
    case PROP_KEPT_FRAMES:
      g_value_set_uint (value, self->ring.length);
      break;
    case PROP_KEPT_BYTES:
      g_value_set_uint64 (value, self->ring_bytes);
      break;
    case PROP_KEPT_LIMITED:
      g_value_set_boolean (value, self->ring_limited);
      break;
    case PROP_EPOCH:
      g_value_set_uint64 (value, self->epoch);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  g_mutex_unlock (&self->lock);
}

static GstStateChangeReturn
gst_ceus_gate_change_state (GstElement * element, GstStateChange transition)
{
  GstCeusGate *self = GST_CEUS_GATE (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    g_mutex_lock (&self->lock);
    self->flushing = TRUE;      /* release a held streaming thread */
    g_cond_broadcast (&self->cond);
    g_mutex_unlock (&self->lock);
  } else if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    g_mutex_lock (&self->lock);
    self->flushing = FALSE;
    g_mutex_unlock (&self->lock);
  }
  ret = GST_ELEMENT_CLASS (gst_ceus_gate_parent_class)->change_state (element, transition);

  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    g_mutex_lock (&self->lock);
    clear_prev (self);
    ring_clear (self);
    self->vinfo_ok = FALSE;
    gst_segment_init (&self->segment, GST_FORMAT_UNDEFINED);
    self->last_monitor = GST_CLOCK_TIME_NONE;
    self->last_st = GST_CLOCK_TIME_NONE;
    self->same_count = 0;
    self->frozen = FALSE;
    g_mutex_unlock (&self->lock);
  }
  return ret;
}

static void
gst_ceus_gate_finalize (GObject * object)
{
  GstCeusGate *self = GST_CEUS_GATE (object);
  clear_prev (self);
  ring_clear (self);
  g_array_free (self->slots, TRUE);
  gst_caps_unref (self->stamp_caps);
  gst_caps_unref (self->epoch_caps);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (gst_ceus_gate_parent_class)->finalize (object);
}

static void
gst_ceus_gate_class_init (GstCeusGateClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  gobject_class->set_property = gst_ceus_gate_set_property;
  gobject_class->get_property = gst_ceus_gate_get_property;
  gobject_class->finalize = gst_ceus_gate_finalize;
  element_class->change_state = gst_ceus_gate_change_state;

  g_object_class_install_property (gobject_class, PROP_SLOTS,
      g_param_spec_string ("slots", "Slots",
          "Slot times in seconds of stream time, comma-separated. For each slot the last "
          "frame before it and the first frame at or after it pass; slots already in the "
          "past when set are not served", "", rw));
  g_object_class_install_property (gobject_class, PROP_MONITOR_INTERVAL,
      g_param_spec_uint64 ("monitor-interval", "Monitor interval",
          "Inside the monitor window, pass one frame per this many nanoseconds "
          "(0 = no monitoring); used while contrast arrival is detected",
          0, G_MAXUINT64, 0, rw));
  g_object_class_install_property (gobject_class, PROP_MONITOR_START,
      g_param_spec_uint64 ("monitor-start", "Monitor start",
          "Start of the monitor window, stream time in nanoseconds", 0,
          G_MAXUINT64, 0, rw));
  g_object_class_install_property (gobject_class, PROP_MONITOR_STOP,
      g_param_spec_uint64 ("monitor-stop", "Monitor stop",
          "End of the monitor window, stream time in nanoseconds", 0,
          G_MAXUINT64, G_MAXUINT64, rw));
  g_object_class_install_property (gobject_class, PROP_PASS_ALL,
      g_param_spec_boolean ("pass-all", "Pass all",
          "Pass every frame (for measurements and tests)", FALSE, rw));
  g_object_class_install_property (gobject_class, PROP_STAMP,
      g_param_spec_boolean ("stamp", "Stamp",
          "Attach a timestamp/x-ceus-monotonic reference timestamp (CLOCK_MONOTONIC "
          "when the frame reached the gate) to every frame that passes", TRUE, rw));
  g_object_class_install_property (gobject_class, PROP_FROZEN_AFTER,
      g_param_spec_uint ("frozen-after", "Frozen after",
          "Report a frozen image after this many identical consecutive frames "
          "(0 = off)", 0, G_MAXUINT, DEFAULT_FROZEN_AFTER, rw));
  g_object_class_install_property (gobject_class, PROP_HOLD_AFTER_SLOTS,
      g_param_spec_boolean ("hold-after-slots", "Hold after slots",
          "Seek mode: once every listed slot is served and no monitor window lies ahead, "
          "hold the stream (like a prerolled sink) so nothing more is decoded until the next "
          "flushing seek or new slots", FALSE, rw));
  g_object_class_install_property (gobject_class, PROP_PASSED,
      g_param_spec_uint64 ("passed", "Passed", "Frames passed downstream", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_DROPPED,
      g_param_spec_uint64 ("dropped", "Dropped", "Frames dropped", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_LAST_STREAM_TIME,
      g_param_spec_uint64 ("last-stream-time", "Last stream time",
          "Stream time of the newest frame seen (ns; G_MAXUINT64 = none yet)", 0,
          G_MAXUINT64, G_MAXUINT64, ro));
  g_object_class_install_property (gobject_class, PROP_HOLDING,
      g_param_spec_boolean ("holding", "Holding",
          "hold-after-slots: the streaming thread is parked (every frame it passed has been "
          "pushed downstream) until a seek or new slots", FALSE,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_SEGMENTS,
      g_param_spec_uint ("segments", "Segments",
          "TIME segments the gate has seen (one at the start, one per flushing seek)", 0,
          G_MAXUINT, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_SEGMENT_FRAMES,
      g_param_spec_uint64 ("segment-frames", "Segment frames",
          "frames the gate has seen since the latest segment", 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_LAST_ARRIVAL,
      g_param_spec_uint64 ("last-arrival", "Last arrival",
          "CLOCK_MONOTONIC (ns) when the newest frame arrived; 0 = none yet", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_FROZEN,
      g_param_spec_boolean ("frozen", "Frozen",
          "TRUE while the last frozen-after frames were identical", FALSE, ro));
  g_object_class_install_property (gobject_class, PROP_NEXT_SLOT,
      g_param_spec_int ("next-slot", "Next slot",
          "Index of the next slot to be served, -1 when none is pending", -1,
          G_MAXINT, -1, ro));

  g_object_class_install_property (gobject_class, PROP_KEEP_ROI,
      g_param_spec_string ("keep-roi", "Keep ROI",
          "x,y,w,h (pixels of the frame): keep the luma of this box of every frame for late "
          "marks (the replay signals); empty = keep nothing. Setting it forgets the kept past",
          "", rw));
  g_object_class_install_property (gobject_class, PROP_KEEP_TIME,
      g_param_spec_uint64 ("keep-time", "Keep time",
          "How much of the past is kept (stream time, ns)", 0, G_MAXUINT64,
          DEFAULT_KEEP_TIME, rw));
  g_object_class_install_property (gobject_class, PROP_KEEP_MAX_BYTES,
      g_param_spec_uint64 ("keep-max-bytes", "Keep max bytes",
          "At most this many bytes of kept boxes (the oldest go first)", 0, G_MAXUINT64,
          DEFAULT_KEEP_MAX_BYTES, rw));
  g_object_class_install_property (gobject_class, PROP_KEPT_FROM,
      g_param_spec_uint64 ("kept-from", "Kept from",
          "Stream time (ns) of the oldest kept frame; G_MAXUINT64 = none", 0, G_MAXUINT64,
          G_MAXUINT64, ro));
  g_object_class_install_property (gobject_class, PROP_KEPT_FRAMES,
      g_param_spec_uint ("kept-frames", "Kept frames", "Frames in the kept past", 0,
          G_MAXUINT, 0, ro));
  g_object_class_install_property (gobject_class, PROP_KEPT_BYTES,
      g_param_spec_uint64 ("kept-bytes", "Kept bytes", "Bytes of the kept past", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_KEPT_LIMITED,
      g_param_spec_boolean ("kept-limited", "Kept limited",
          "TRUE once keep-max-bytes, not keep-time, dropped kept frames", FALSE, ro));
  g_object_class_install_property (gobject_class, PROP_EPOCH,
      g_param_spec_uint64 ("epoch", "Epoch",
          "The epoch of the latest replay request (stamped on every frame passed since)", 0,
          G_MAXUINT64, 0, ro));

  /**
   * GstCeusGate::replay:
   * @epoch: stamped on the returned frames and on every frame passed from now on
   * @from: kept frames from this stream time (ns) on are run through the rule
   * @pre_from: kept frames from here to @from are returned as context (offset 0);
   *   G_MAXUINT64: none
   * @start: @stop: @interval: the monitor window, as the monitor-* properties (@interval 0:
   *   no monitor)
   * @last_monitor: the monitor frame the rhythm goes on from (G_MAXUINT64: the window's
   *   first frame)
   * @slots: the slots, as the slots property
   *
   * Sets the rule's settings and runs the kept past from @from through it, under one lock;
   * returns the chosen crops (GRAY8 buffers, PTS = stream time, offset 1).
   */
  g_signal_new_class_handler ("replay", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION, G_CALLBACK (gst_ceus_gate_replay),
      NULL, NULL, NULL, GST_TYPE_BUFFER_LIST, 8, G_TYPE_UINT64, G_TYPE_UINT64,
      G_TYPE_UINT64, G_TYPE_UINT64, G_TYPE_UINT64, G_TYPE_UINT64, G_TYPE_UINT64,
      G_TYPE_STRING);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "CEUS slot gate", "Filter/Video",
      "Passes only the frames a contrast-ultrasound slot schedule needs",
      "ceustream");
  GST_DEBUG_CATEGORY_INIT (ceus_gate_debug, "ceusgate", 0, "CEUS slot gate");
}

static void
gst_ceus_gate_init (GstCeusGate * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_ceus_gate_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_ceus_gate_sink_event));
  GST_PAD_SET_PROXY_CAPS (self->sinkpad);
  GST_PAD_SET_PROXY_ALLOCATION (self->sinkpad);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  GST_PAD_SET_PROXY_CAPS (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->slots = g_array_new (FALSE, FALSE, sizeof (guint64));
  self->monitor_stop = G_MAXUINT64;
  self->last_monitor = GST_CLOCK_TIME_NONE;
  self->last_st = GST_CLOCK_TIME_NONE;
  self->stamp = TRUE;
  self->frozen_after = DEFAULT_FROZEN_AFTER;
  gst_segment_init (&self->segment, GST_FORMAT_UNDEFINED);
  self->stamp_caps = gst_caps_new_empty_simple ("timestamp/x-ceus-monotonic");
  self->epoch_caps = gst_caps_new_empty_simple ("timestamp/x-ceus-epoch");
  g_queue_init (&self->ring);
  self->keep_time = DEFAULT_KEEP_TIME;
  self->keep_max_bytes = DEFAULT_KEEP_MAX_BYTES;
}
