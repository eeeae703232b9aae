/* What the bedside overlay knows about an exam: the latest score and status messages,
 * parsed from the engine's ZeroMQ JSON (schema version 1). Plain C, no GStreamer, so it is
 * tested on its own. */
#ifndef CEUS_HUD_STATE_H
#define CEUS_HUD_STATE_H

#include <glib.h>

G_BEGIN_DECLS

#define HUD_MAX_SLOTS 64
#define HUD_STR 64

typedef enum
{
  HUD_SLOT_PENDING = 0,
  HUD_SLOT_FILLED,
  HUD_SLOT_FLAGGED,             /* filled from a neighbour */
  HUD_SLOT_MISSING,
} HudSlot;

typedef enum
{
  HUD_APPLIED = 0,
  HUD_IGNORED_FOREIGN,          /* another exam than the filter */
  HUD_IGNORED_VERSION,          /* unknown schema version */
  HUD_MALFORMED,                /* not JSON, not an object, bad field types */
} HudApply;

typedef struct
{
  gchar exam[HUD_STR];
  gboolean has_score;
  gdouble score;
  gdouble threshold;
  gchar label[HUD_STR];         /* empty until final */
  gboolean final;
  gint slots_filled;
  gint slots_total;
  HudSlot slots[HUD_MAX_SLOTS];
  gchar phase[HUD_STR];
  gint next_slot;               /* -1 = none */
  gdouble next_slot_in_s;       /* at status time; NAN = unknown */
  gdouble status_wall;          /* t_wall of the status message */
  gdouble speed;
  gint roi[4];
  gint frame_size[2];
  gboolean has_roi;
  gchar model[HUD_STR];
  gchar trained_on[HUD_STR];
  gchar backend[HUD_STR];
  gchar precision[HUD_STR];
  gboolean cpu_fallback;
  gboolean partial;
  gchar warnings[4][HUD_STR];
  gint n_warnings;
  gint64 last_message_us;       /* g_get_monotonic_time() at the last accepted message */
  guint64 seq;
  guint64 version;              /* bumped on every accepted message */
} HudState;

void hud_state_init (HudState * s);

/* Applies one [topic, payload] message. @exam_filter: NULL or "" accepts any exam (and
 * follows the newest one). On HUD_MALFORMED / HUD_IGNORED_*, @why (if not NULL) gets a
 * static reason and @s is unchanged. */
HudApply hud_state_apply (HudState * s, const gchar * topic, gsize topic_len,
    const gchar * payload, gsize payload_len, const gchar * exam_filter,
    const gchar ** why);

G_END_DECLS

#endif
