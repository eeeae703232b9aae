/* The overlay's view model: from what the overlay knows (HudState) to what it says, in
 * words, numbers and tones, with no geometry and no drawing. Plain C (glib only), tested on
 * its own by hudcheck ("view").
 *
 * Honest by construction: a provisional score is hollow with "n/30"; a final one is solid
 * and labelled; outside the model's domain (label "indeterminate", or out_of_distribution
 * among the warnings or flags) the headline is "OUTSIDE MODEL DOMAIN" with the TIC reading
 * (category, summary) under it and the network's number de-emphasised; STALE only while an
 * exam runs and the engine is silent; EXAM ENDED after a normal end. */
#ifndef CEUS_HUD_VIEW_H
#define CEUS_HUD_VIEW_H

#include <glib.h>
#include <json-glib/json-glib.h>

#include "hudstate.h"

G_BEGIN_DECLS

#define HUD_VIEW_MAX_WARN (HUD_MAX_WARNINGS + 3)
#define HUD_TEXT 200

typedef enum
{
  HUD_CORNER_BOTTOM_LEFT = 0,
  HUD_CORNER_BOTTOM_RIGHT,
  HUD_CORNER_TOP_LEFT,
  HUD_CORNER_TOP_RIGHT,
  HUD_CORNER_BOTTOM_CENTER,
} HudCorner;

typedef struct
{
  gdouble stale_after_s;        /* no message for this long while an exam runs = STALE */
  const gchar *font;            /* family, e.g. "Sans" */
  gboolean show_roi;
  HudCorner disclaimer;         /* layout=over: where the "trained on simulated data" block goes */
} HudStyle;

/* What a piece of text means, which the painter turns into a colour. */
typedef enum
{
  HUD_TONE_TEXT = 0,            /* white */
  HUD_TONE_MUTED,               /* grey: provisional, de-emphasised */
  HUD_TONE_HCC,                 /* amber label */
  HUD_TONE_NON_HCC,             /* blue label */
  HUD_TONE_CAUTION,             /* amber banner */
  HUD_TONE_ALERT,               /* red banner */
  HUD_TONE_NOTE,                /* neutral grey-blue tag */
} HudTone;

typedef enum
{
  HUD_KIND_NONE = 0,            /* no score yet */
  HUD_KIND_PROVISIONAL,
  HUD_KIND_FINAL,
  HUD_KIND_NOT_FINAL,           /* ended without a final score */
} HudKind;

typedef enum
{
  HUD_SHOW_NONE = 0,            /* no engine messages */
  HUD_SHOW_RUNNING,
  HUD_SHOW_STALE,
  HUD_SHOW_ENDED,
} HudShowState;

typedef struct
{
  gchar text[HUD_TEXT];
  HudTone tone;
} HudWords;

typedef struct
{
  HudShowState state;
  HudKind kind;
  gboolean outside;             /* outside the model's domain */
  gboolean hollow;              /* the headline is drawn hollow (provisional / no score) */
  gdouble dim;                  /* 1, or 0.45 while STALE */
  gchar title[HUD_TEXT];        /* "P(HCC) - FINAL", "TIC READING - OUTSIDE MODEL DOMAIN" */
  gchar headline[HUD_TEXT];     /* "0.87", "--", "OUTSIDE MODEL DOMAIN" */
  gboolean headline_is_number;
  gchar score[16];              /* "0.87" or "--" (also when de-emphasised) */
  HudWords label;               /* "HCC" / "non-HCC" (final), "LR-5-like" (outside), "" */
  HudWords detail;              /* "13/30" provisional; outside: "CNN 0.87 - not valid here" */
  gchar filled[16];             /* "13/30" */
  gchar domain_words[HUD_TEXT]; /* outside, from the domain check: "domain distance 3.10 > 2.00" */
  gdouble gauge;                /* the score bar (0..1), NAN = no bar */
  gdouble threshold;
  gboolean gauge_final;
  gchar summary[HUD_LINE];      /* the TIC reading in words, "" = none */
  gboolean tic;                 /* the TIC plot is shown (curves in the state) */
  gchar phase[HUD_TEXT];        /* "VIDEO PHASE - slot 13 in 4 s", "EXAM ENDED - COMPLETE" */
  gboolean phase_tag;           /* drawn as a neutral tag (ended) */
  gint countdown;               /* whole seconds shown, -1 = none */
  HudWords warnings[HUD_VIEW_MAX_WARN];
  gint n_warnings;
  gchar info[HUD_TEXT];         /* "cnn3d - onnxruntime fp32", "" = none */
  gboolean cpu;                 /* the neutral CPU note */
  gint n_slots;
  HudSlot slots[HUD_MAX_SLOTS];
  gint next_slot;               /* -1 = none outlined */
  gboolean has_roi;             /* the ROI in the engine's frame coordinates */
  gdouble roi[4];
  gint frame_size[2];           /* the engine's frame size, 0 = unknown */
} HudView;

/* The disclaimer's words: always shown, on every frame. */
extern const gchar *const hud_disclaimer_lines[];

/* Seconds left to the next slot as shown now (>= 0), NAN when there is no countdown: the
 * status's next_slot_in_s minus the stream time passed since it arrived (speed, or 1 when
 * unknown). */
gdouble hud_countdown (const HudState * s, gint64 now_us);

/* TRUE while an exam runs and nothing arrived for stale_after_s (never after a normal end). */
gboolean hud_is_stale (const HudState * s, const HudStyle * style, gint64 now_us,
    gboolean have_state);

/* A hash of what the state shows: equal for two messages that differ only in their
 * sequence numbers and arrival times (the engine repeats its status several times a second;
 * the same picture is not drawn again for each). */
guint64 hud_state_content_hash (const HudState * s);

/* What the picture depends on: the state's content, staleness and the countdown's whole
 * seconds; a change means a re-render. */
gchar *hud_render_key (const HudState * s, const HudStyle * style, gint64 now_us,
    gboolean have_state);

/* A warning's name in words for the bedside; unknown names as themselves, upper case. */
void hud_warning_words (const gchar * name, HudWords * out);

/* TRUE when the model is outside its domain for this state (label "indeterminate", or
 * out_of_distribution among the status warnings or the flags). */
gboolean hud_outside_domain (const HudState * s);

void hud_view_build (HudView * v, const HudState * s, const HudStyle * style, gint64 now_us,
    gboolean have_state);

/* Adds the view's members to an open JSON object (the element's "shown" property: for
 * debugging and logs, not evidence of what was drawn). */
void hud_view_add_json (const HudView * v, JsonBuilder * b);

const gchar *hud_corner_nick (HudCorner c);

G_END_DECLS

#endif
