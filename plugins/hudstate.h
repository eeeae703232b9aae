/* What the bedside overlay knows about an exam: the latest score and status messages,
 * parsed from the engine's ZeroMQ JSON (schema version 1, the files engine/wire/schema/<name>.v1.json).
 *
 * The reader is table-driven: hud_fields[] lists every field the overlay reads, with the JSON
 * types and number ranges it accepts. The same table is checked against the schema files by
 * the C test program (hudcheck.c, run from pytest), so a field renamed or retyped on the
 * Python side breaks a test instead of silently blanking the display.
 *
 * Plain C, no GStreamer, so it is tested on its own. */
#ifndef CEUS_HUD_STATE_H
#define CEUS_HUD_STATE_H

#include <glib.h>

G_BEGIN_DECLS

#define HUD_MAX_SLOTS 64
#define HUD_MAX_WARNINGS 8
#define HUD_STR 64
/* the schema allows 96 characters; UTF-8 takes up to 4 bytes each */
#define HUD_LINE 400

typedef enum
{
  HUD_SLOT_PENDING = 0,
  HUD_SLOT_FILLED,
  HUD_SLOT_FLAGGED,             /* filled from a neighbour */
  HUD_SLOT_MISSING,
} HudSlot;

/* The message's "domain" object (is the clip inside the model's domain?); NONE: no message
 * said (an engine from before the check). */
typedef enum
{
  HUD_DOMAIN_NONE = 0,
  HUD_DOMAIN_IN,
  HUD_DOMAIN_OUT,
  HUD_DOMAIN_UNKNOWN,
} HudDomain;

typedef enum
{
  HUD_APPLIED = 0,
  HUD_IGNORED_FOREIGN,          /* another exam than the filter */
  HUD_IGNORED_VERSION,          /* unknown schema version */
  HUD_MALFORMED,                /* not JSON, not an object, bad field types or numbers */
} HudApply;

/* JSON types a field may have (a bit set). An integer is also a number. */
typedef enum
{
  HUD_T_NULL = 1 << 0,
  HUD_T_BOOLEAN = 1 << 1,
  HUD_T_INTEGER = 1 << 2,       /* a number with no fractional part */
  HUD_T_NUMBER = 1 << 3,        /* any finite number */
  HUD_T_STRING = 1 << 4,
  HUD_T_ARRAY = 1 << 5,
  HUD_T_OBJECT = 1 << 6,
} HudJsonType;

/* Which messages carry a field. */
typedef enum
{
  HUD_IN_SCORE = 1 << 0,
  HUD_IN_STATUS = 1 << 1,
  HUD_IN_BOTH = HUD_IN_SCORE | HUD_IN_STATUS,
} HudIn;

/* One field the overlay reads. @path is a dotted member path ("features.summary"). Arrays
 * give their elements' types and range in @items / @min / @max; for a plain number, @min and
 * @max bound the value itself. Strings with a known vocabulary list it in @values (NULL
 * terminated; the schema's enum must contain each). */
typedef struct
{
  const gchar *path;
  HudIn in;
  guint types;
  guint items;                  /* arrays only: the elements' types */
  gdouble min, max;             /* numbers (or array elements): accepted range */
  gboolean required;            /* a message without it is malformed */
  const gchar *const *values;
} HudField;

extern const HudField hud_fields[];
extern const guint hud_n_fields;

/* The time-intensity-curve (TIC) reading published beside the score. Curves hold NAN where
 * the schema has null (slot not filled yet). */
typedef struct
{
  gboolean present;
  gint n;                       /* points: times_s and the curves, cut to the shortest */
  gdouble times[HUD_MAX_SLOTS];
  gdouble lesion[HUD_MAX_SLOTS];
  gdouble parenchyma[HUD_MAX_SLOTS];
  gdouble rim[HUD_MAX_SLOTS];
  gboolean has_rim;
  gchar units[HUD_STR];
  gchar aphe[HUD_STR];
  gchar washout[HUD_STR];
  gchar washout_degree[HUD_STR];
  gchar category[HUD_STR];
  gdouble washout_onset_s;      /* NAN = none */
  gdouble p_hcc;                /* NAN = none */
  gchar summary[HUD_LINE];
} HudFeatures;

typedef struct
{
  gchar exam[HUD_STR];
  gboolean has_score;
  gdouble score;
  gdouble threshold;
  gchar label[HUD_STR];         /* empty until final */
  gchar basis[HUD_STR];         /* what the score stands on (score_basis); empty: the network */
  gboolean final;
  gint slots_filled;
  gint slots_total;
  HudSlot slots[HUD_MAX_SLOTS];
  gchar phase[HUD_STR];
  gint next_slot;               /* -1 = none */
  gdouble next_slot_in_s;       /* stream seconds to the next slot when sent; NAN = unknown */
  gint64 status_mono_us;        /* g_get_monotonic_time() when that status arrived */
  gdouble speed;                /* stream s per wall s; 0 = unknown (counted as 1) */
  gint roi[4];
  gint frame_size[2];
  gboolean has_roi;
  gchar model[HUD_STR];
  gchar trained_on[HUD_STR];
  gchar backend[HUD_STR];
  gchar precision[HUD_STR];
  gboolean cpu_fallback;
  gboolean untrained;
  gboolean partial;
  gboolean ood_flag;             /* "out_of_distribution" among the flags */
  gchar warnings[HUD_MAX_WARNINGS][HUD_STR];
  gint n_warnings;
  HudDomain domain;             /* the latest message's "domain.state" (kept when one has none) */
  gdouble domain_distance;      /* NAN = null */
  gdouble domain_threshold;     /* NAN = null */
  gchar domain_method[HUD_STR];
  HudFeatures features;
  gint64 last_message_us;       /* g_get_monotonic_time() at the last accepted message */
  guint64 seq;
  guint64 version;              /* bumped on every accepted message */
} HudState;

void hud_state_init (HudState * s);

/* Applies one [topic, payload] message. @exam_filter: NULL or "" accepts any exam (and
 * follows the newest one). @now_us: g_get_monotonic_time() at reception. On HUD_MALFORMED /
 * HUD_IGNORED_*, @why (if not NULL) gets a one-line reason and @s is unchanged. */
HudApply hud_state_apply (HudState * s, const gchar * topic, gsize topic_len,
    const gchar * payload, gsize payload_len, const gchar * exam_filter, gint64 now_us,
    gchar * why, gsize why_len);

/* TRUE after a normal end (phase complete/partial/stopped, or a final score). */
gboolean hud_state_ended (const HudState * s);

/* TRUE when @name is among the status warnings. */
gboolean hud_state_has_warning (const HudState * s, const gchar * name);

G_END_DECLS

#endif
