/* The overlay's view model: what to say for a state (see hudview.h). No geometry, no
 * drawing. */
#include "hudview.h"

#include <math.h>
#include <string.h>

const gchar *const hud_disclaimer_lines[] = {
  "MODEL TRAINED ON SIMULATED DATA", "NOT FOR DIAGNOSIS", NULL
};

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

guint64
hud_state_content_hash (const HudState * s)
{
  /* FNV-1a over the state with what changes on every message but is never drawn as such
   * zeroed: the sequence numbers and arrival times (the countdown they give is in the key on
   * its own, in whole seconds as shown) */
  HudState c;
  const guint8 *b = (const guint8 *) &c;
  guint64 h = 1469598103934665603ull;
  memcpy (&c, s, sizeof c);
  c.seq = 0;
  c.version = 0;
  c.last_message_us = 0;
  c.status_mono_us = 0;
  c.next_slot_in_s = isnan (s->next_slot_in_s) ? NAN : 0;
  for (gsize i = 0; i < sizeof c; i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

gchar *
hud_render_key (const HudState * s, const HudStyle * style, gint64 now_us, gboolean have_state)
{
  return g_strdup_printf ("%016" G_GINT64_MODIFIER "x|%d|%d|%d", hud_state_content_hash (s),
      have_state, hud_is_stale (s, style, now_us, have_state),
      shown_seconds (hud_countdown (s, now_us)));
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

void
hud_warning_words (const gchar * name, HudWords * out)
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
    {"out_of_distribution", "OUTSIDE MODEL DOMAIN", FALSE},
    {"model_tic_disagree", "MODEL/TIC DISAGREE", FALSE},
    {"recording_damaged", "RECORDING DAMAGED", FALSE},
  };
  for (guint i = 0; i < G_N_ELEMENTS (known); i++)
    if (!g_strcmp0 (name, known[i].name)) {
      out->tone = known[i].red ? HUD_TONE_ALERT : HUD_TONE_CAUTION;
      g_strlcpy (out->text, known[i].words, sizeof out->text);
      return;
    }
  out->tone = HUD_TONE_CAUTION;
  gchar *up = g_utf8_strup (name, -1);
  g_strdelimit (up, "_", ' ');
  g_strlcpy (out->text, up, sizeof out->text);
  g_free (up);
}

gboolean
hud_outside_domain (const HudState * s)
{
  return s->domain == HUD_DOMAIN_OUT || !g_strcmp0 (s->label, "indeterminate") || s->ood_flag
      || hud_state_has_warning (s, "out_of_distribution");
}

static void
words (HudWords * w, HudTone tone, const gchar * fmt, ...) G_GNUC_PRINTF (3, 4);

static void
words (HudWords * w, HudTone tone, const gchar * fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_vsnprintf (w->text, sizeof w->text, fmt, ap);
  va_end (ap);
  w->tone = tone;
}

static void
add_warning (HudView * v, HudTone tone, const gchar * text)
{
  if (v->n_warnings < HUD_VIEW_MAX_WARN)
    words (&v->warnings[v->n_warnings++], tone, "%s", text);
}

void
hud_view_build (HudView * v, const HudState * s, const HudStyle * style, gint64 now_us,
    gboolean have_state)
{
  const gboolean stale = hud_is_stale (s, style, now_us, have_state);
  const gboolean ended = have_state && hud_state_ended (s);
  const gboolean has = have_state && s->has_score;
  const gchar *kind_words;

  memset (v, 0, sizeof *v);
  v->state = !have_state ? HUD_SHOW_NONE : stale ? HUD_SHOW_STALE : ended ? HUD_SHOW_ENDED
      : HUD_SHOW_RUNNING;
  v->kind = !has ? HUD_KIND_NONE : s->final ? HUD_KIND_FINAL : ended ? HUD_KIND_NOT_FINAL
      : HUD_KIND_PROVISIONAL;
  v->outside = have_state && hud_outside_domain (s);
  v->dim = stale ? 0.45 : 1.0;
  v->threshold = s->threshold;
  v->next_slot = -1;
  kind_words = v->kind == HUD_KIND_NONE ? "NO SCORE YET" : v->kind == HUD_KIND_FINAL ? "FINAL"
      : v->kind == HUD_KIND_NOT_FINAL ? "NOT FINAL" : "PROVISIONAL";
  g_snprintf (v->filled, sizeof v->filled, "%d/%d", s->slots_filled, s->slots_total);
  if (has)
    g_snprintf (v->score, sizeof v->score, "%.2f", s->score);
  else
    g_strlcpy (v->score, "--", sizeof v->score);

  if (v->outside) {
    /* what still holds is the TIC reading; the network's number is kept, small and grey */
    const HudFeatures *f = &s->features;
    g_snprintf (v->title, sizeof v->title, "TIC READING - %s", kind_words);
    g_strlcpy (v->headline, "OUTSIDE MODEL DOMAIN", sizeof v->headline);
    if (f->present && f->category[0])
      words (&v->label, HUD_TONE_TEXT, "TIC %s", f->category);
    if (has && g_str_equal (s->basis, "physiology"))
      /* the engine's score out of its domain: the TIC reading's P(HCC), not the network's */
      words (&v->detail, HUD_TONE_TEXT, "physiology P(HCC) %s", v->score);
    else
      words (&v->detail, HUD_TONE_MUTED, "CNN P(HCC) %s - not valid here", v->score);
    if (s->domain == HUD_DOMAIN_OUT && !isnan (s->domain_distance)
        && !isnan (s->domain_threshold))
      g_snprintf (v->domain_words, sizeof v->domain_words, "domain distance %.2f > %.2f",
          s->domain_distance, s->domain_threshold);
    v->gauge = NAN;
  } else {
    g_snprintf (v->title, sizeof v->title, "P(HCC) - %s", kind_words);
    g_strlcpy (v->headline, v->score, sizeof v->headline);
    v->headline_is_number = TRUE;
    v->hollow = v->kind != HUD_KIND_FINAL;
    if (v->kind == HUD_KIND_FINAL && s->label[0])
      words (&v->label, g_str_equal (s->label, "HCC") ? HUD_TONE_HCC : HUD_TONE_NON_HCC, "%s",
          s->label);
    else if (has)
      words (&v->detail, HUD_TONE_MUTED, "%s", v->filled);
    v->gauge = has ? s->score : NAN;
    v->gauge_final = v->kind == HUD_KIND_FINAL;
  }

  v->tic = have_state && s->features.present;
  if (v->tic)
    g_strlcpy (v->summary, s->features.summary[0] ? s->features.summary : "TIC: reading...",
        sizeof v->summary);

  /* the phase and the countdown, or EXAM ENDED */
  v->countdown = have_state ? shown_seconds (hud_countdown (s, now_us)) : -1;
  if (!have_state) {
    g_strlcpy (v->phase, "WAITING FOR THE ENGINE", sizeof v->phase);
  } else if (ended) {
    const gchar *how = s->final && g_strcmp0 (s->phase, "partial")
        && g_strcmp0 (s->phase, "stopped") ? "COMPLETE" : phase_text (s);
    g_snprintf (v->phase, sizeof v->phase, "EXAM ENDED - %s", how);
    v->phase_tag = TRUE;
    v->countdown = -1;
  } else if (v->countdown > 0) {
    g_snprintf (v->phase, sizeof v->phase, "%s - slot %d in %d s", phase_text (s),
        s->next_slot + 1, v->countdown);
  } else if (v->countdown == 0) {
    g_snprintf (v->phase, sizeof v->phase, "%s - slot %d due now", phase_text (s),
        s->next_slot + 1);
  } else {
    g_strlcpy (v->phase, phase_text (s), sizeof v->phase);
  }

  /* warnings in words; out_of_distribution is the headline itself */
  if (!have_state) {
    add_warning (v, HUD_TONE_ALERT, "NO ENGINE MESSAGES");
  } else {
    if (stale)
      add_warning (v, HUD_TONE_ALERT, "STALE - ENGINE SILENT, SCORE NOT CURRENT");
    if (s->untrained)
      add_warning (v, HUD_TONE_CAUTION, "UNTRAINED MODEL");
    /* a final label whose domain check had nothing to go on: said, not hidden */
    if (s->final && s->domain == HUD_DOMAIN_UNKNOWN && !v->outside)
      add_warning (v, HUD_TONE_CAUTION, "DOMAIN NOT CHECKED");
    for (gint i = 0; i < s->n_warnings && v->n_warnings < HUD_VIEW_MAX_WARN; i++) {
      if (!strcmp (s->warnings[i], "out_of_distribution"))
        continue;
      hud_warning_words (s->warnings[i], &v->warnings[v->n_warnings++]);
    }
  }

  if (have_state && (s->model[0] || s->backend[0]))
    g_snprintf (v->info, sizeof v->info, "%s - %s %s", s->model[0] ? s->model : "model",
        s->backend[0] ? s->backend : "", s->precision);
  v->cpu = have_state && s->cpu_fallback;

  v->n_slots = have_state ? MIN (s->slots_total, HUD_MAX_SLOTS) : 0;
  memcpy (v->slots, s->slots, sizeof v->slots);
  if (have_state && !ended && s->next_slot >= 0 && s->next_slot < v->n_slots)
    v->next_slot = s->next_slot;

  v->has_roi = have_state && s->has_roi && style->show_roi && s->roi[2] > 0 && s->roi[3] > 0;
  for (gint i = 0; i < 4; i++)
    v->roi[i] = s->roi[i];
  v->frame_size[0] = s->frame_size[0];
  v->frame_size[1] = s->frame_size[1];
}

static void
json_str (JsonBuilder * b, const gchar * name, const gchar * v)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, v);
}

void
hud_view_add_json (const HudView * v, JsonBuilder * b)
{
  static const gchar *states[] = { "none", "running", "stale", "ended" };
  static const gchar *kinds[] = { "none", "provisional", "final", "not_final" };
  json_str (b, "state", states[v->state]);
  json_str (b, "kind", kinds[v->kind]);
  json_str (b, "title", v->title);
  json_str (b, "headline", v->headline);
  json_str (b, "score", v->score);
  json_str (b, "label", v->kind == HUD_KIND_FINAL && !v->outside ? v->label.text : "");
  json_str (b, "tic_label", v->outside ? v->label.text : "");
  json_str (b, "detail", v->detail.text);
  json_str (b, "filled", v->filled);
  json_str (b, "phase", v->phase);
  json_builder_set_member_name (b, "countdown");
  json_builder_add_int_value (b, v->countdown);
  json_builder_set_member_name (b, "ended");
  json_builder_add_boolean_value (b, v->state == HUD_SHOW_ENDED);
  json_builder_set_member_name (b, "ood");
  json_builder_add_boolean_value (b, v->outside);
  json_str (b, "domain", v->domain_words);
  json_builder_set_member_name (b, "cpu");
  json_builder_add_boolean_value (b, v->cpu);
  json_str (b, "summary", v->summary);
  json_builder_set_member_name (b, "warnings");
  json_builder_begin_array (b);
  for (gint i = 0; i < v->n_warnings; i++)
    json_builder_add_string_value (b, v->warnings[i].text);
  json_builder_end_array (b);
}
