/* Parsing engine messages into HudState, driven by the hud_fields[] table.
 *
 * A message is first checked whole against the table (every field present has one of its
 * JSON types; every number is finite and inside its range before anything is cast), then
 * applied. A message that fails any check leaves the state untouched, so a bad or foreign
 * publisher can never blank, corrupt or crash the display. */
#include "hudstate.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

/* JSON integers are exact in a double up to 2^53 */
#define BIG 9007199254740992.0
#define SECONDS_MAX 1e7

static const gchar *const SCORE_TYPE[] = { "score", NULL };
static const gchar *const STATUS_TYPE[] = { "status", NULL };
static const gchar *const PHASES[] = { "waiting", "pre_arrival", "video_phase",
  "late_phase", "complete", "partial", "stopped", "idle", NULL
};

static const gchar *const SLOT_STATES[] = { "frame", "neighbour", "missing", NULL };
static const gchar *const TRAINED_ON[] = { "simulated", "untrained", "real", NULL };
static const gchar *const PRECISIONS[] = { "fp32", "fp16", NULL };
static const gchar *const APHE[] = { "nonrim", "rim", "none", NULL };
static const gchar *const WASHOUT[] = { "none", "early", "late", NULL };
static const gchar *const DEGREE[] = { "none", "mild", "marked", NULL };
static const gchar *const DOMAIN_STATES[] = { "in", "out", "unknown", NULL };
static const gchar *const BASES[] = { "network", "fusion", "physiology", NULL };
static const gchar *const CATEGORY[] = { "LR-5-like", "LR-4-like", "LR-3-like",
  "LR-M-like", NULL
};

#define S HUD_IN_SCORE
#define T HUD_IN_STATUS
#define B HUD_IN_BOTH
#define tNUL HUD_T_NULL
#define tBOO HUD_T_BOOLEAN
#define tINT HUD_T_INTEGER
#define tNUM HUD_T_NUMBER
#define tSTR HUD_T_STRING
#define tARR HUD_T_ARRAY
#define tOBJ HUD_T_OBJECT

/* Every field the overlay reads. Order matters only for readability. */
const HudField hud_fields[] = {
  /* path                    in  types        items        min     max     req values */
  {"v", B, tINT, 0, 0, 1000, TRUE, NULL},
  {"type", S, tSTR, 0, 0, 0, TRUE, SCORE_TYPE},
  {"type", T, tSTR, 0, 0, 0, TRUE, STATUS_TYPE},
  {"exam", B, tSTR, 0, 0, 0, FALSE, NULL},
  {"seq", B, tINT, 0, 0, BIG, FALSE, NULL},
  {"slots_filled", B, tINT, 0, 0, 1000, FALSE, NULL},
  {"slots_total", B, tINT, 0, 1, 1000, FALSE, NULL},
  {"final", B, tBOO, 0, 0, 0, FALSE, NULL},
  {"label", B, tSTR | tNUL, 0, 0, 0, FALSE, NULL},
  {"flags", B, tARR, tSTR, 0, 0, FALSE, NULL},
  {"slot_states", S, tARR, tSTR | tNUL, 0, 0, FALSE, SLOT_STATES},
  {"slot_states", T, tARR | tNUL, tSTR | tNUL, 0, 0, FALSE, SLOT_STATES},
  {"model", S, tOBJ, 0, 0, 0, FALSE, NULL},
  {"model", T, tOBJ | tNUL, 0, 0, 0, FALSE, NULL},
  {"model.name", B, tSTR, 0, 0, 0, FALSE, NULL},
  {"model.trained_on", B, tSTR, 0, 0, 0, FALSE, TRAINED_ON},
  {"backend", S, tOBJ, 0, 0, 0, FALSE, NULL},
  {"backend", T, tOBJ | tNUL, 0, 0, 0, FALSE, NULL},
  {"backend.name", B, tSTR, 0, 0, 0, FALSE, NULL},
  {"backend.precision", B, tSTR, 0, 0, 0, FALSE, PRECISIONS},
  {"features", B, tOBJ | tNUL, 0, 0, 0, FALSE, NULL},
  {"features.times_s", B, tARR, tNUM, 0, 1e4, FALSE, NULL},
  {"features.lesion", B, tARR, tNUM | tNUL, -1000, 1000, FALSE, NULL},
  {"features.parenchyma", B, tARR, tNUM | tNUL, -1000, 1000, FALSE, NULL},
  {"features.rim", B, tARR, tNUM | tNUL, -1000, 1000, FALSE, NULL},
  {"features.units", B, tSTR, 0, 0, 0, FALSE, NULL},
  {"features.aphe", B, tSTR | tNUL, 0, 0, 0, FALSE, APHE},
  {"features.washout", B, tSTR | tNUL, 0, 0, 0, FALSE, WASHOUT},
  {"features.washout_onset_s", B, tNUM | tNUL, 0, 0, 1e4, FALSE, NULL},
  {"features.washout_degree", B, tSTR | tNUL, 0, 0, 0, FALSE, DEGREE},
  {"features.category", B, tSTR | tNUL, 0, 0, 0, FALSE, CATEGORY},
  {"features.summary", B, tSTR, 0, 0, 0, FALSE, NULL},
  {"features.p_hcc", B, tNUM | tNUL, 0, 0, 1, FALSE, NULL},
  {"domain", B, tOBJ, 0, 0, 0, FALSE, NULL},
  {"domain.state", B, tSTR, 0, 0, 0, FALSE, DOMAIN_STATES},
  {"domain.distance", B, tNUM | tNUL, 0, 0, 1e9, FALSE, NULL},
  {"domain.threshold", B, tNUM | tNUL, 0, 0, 1e9, FALSE, NULL},
  {"domain.method", B, tSTR, 0, 0, 0, FALSE, NULL},
  {"score_basis", B, tSTR, 0, 0, 0, FALSE, BASES},
  {"score", S, tNUM, 0, 0, 1, TRUE, NULL},
  {"slot", S, tINT | tNUL, 0, 0, 999, FALSE, NULL},
  {"provisional", S, tBOO, 0, 0, 0, FALSE, NULL},
  {"threshold", S, tNUM, 0, 0, 1, FALSE, NULL},
  {"phase", T, tSTR, 0, 0, 0, FALSE, PHASES},
  {"next_slot", T, tINT | tNUL, 0, 0, 999, FALSE, NULL},
  {"next_slot_in_s", T, tNUM | tNUL, 0, -SECONDS_MAX, SECONDS_MAX, FALSE, NULL},
  {"speed", T, tNUM, 0, 0, 1e4, FALSE, NULL},
  {"warnings", T, tARR, tSTR, 0, 0, FALSE, NULL},
  {"roi", T, tARR | tNUL, tINT, 0, 32767, FALSE, NULL},
  {"frame_size", T, tARR | tNUL, tINT, 1, 32767, FALSE, NULL},
  {"score", T, tNUM | tNUL, 0, 0, 1, FALSE, NULL},
};

const guint hud_n_fields = G_N_ELEMENTS (hud_fields);

#undef S
#undef T
#undef B

void
hud_state_init (HudState * s)
{
  memset (s, 0, sizeof *s);
  s->next_slot = -1;
  s->next_slot_in_s = NAN;
  s->slots_total = 30;
  s->threshold = 0.5;
  s->speed = 0.0;
  s->features.washout_onset_s = NAN;
  s->features.p_hcc = NAN;
  s->domain_distance = NAN;
  s->domain_threshold = NAN;
}

/* Copies at most @size - 1 bytes of valid UTF-8, never cutting a character in half, with
 * control characters (a newline would make two lines) replaced by spaces. */
static void
copy_text (gchar * dst, gsize size, const gchar * src)
{
  const gchar *end;
  gsize n = 0;
  dst[0] = '\0';
  if (!src)
    return;
  g_utf8_validate (src, -1, &end);
  while (src + n < end) {
    const gchar *next = g_utf8_next_char (src + n);
    if ((gsize) (next - src) >= size)
      break;
    n = next - src;
  }
  memcpy (dst, src, n);
  dst[n] = '\0';
  for (gsize i = 0; i < n; i++)
    if ((guchar) dst[i] < 0x20 || dst[i] == 0x7f)
      dst[i] = ' ';
}

static void
copy_str (gchar * dst, const gchar * src)
{
  copy_text (dst, HUD_STR, src);
}

/* The member at a dotted @path, or NULL when it (or an object on the way) is absent. */
static JsonNode *
member (JsonObject * root, const gchar * path)
{
  gchar **parts = g_strsplit (path, ".", -1);
  JsonObject *o = root;
  JsonNode *n = NULL;
  for (gchar ** p = parts; *p; p++) {
    if (!o || !json_object_has_member (o, *p)) {
      n = NULL;
      break;
    }
    n = json_object_get_member (o, *p);
    o = (p[1] && JSON_NODE_HOLDS_OBJECT (n)) ? json_node_get_object (n) : NULL;
    if (p[1] && !o) {
      n = NULL;
      break;
    }
  }
  g_strfreev (parts);
  return n;
}

/* The JSON type of @n as HudJsonType bits (a number with no fraction is INTEGER|NUMBER);
 * a number's value in @num. 0 for a number that is not finite. */
static guint
node_type (JsonNode * n, gdouble * num)
{
  switch (JSON_NODE_TYPE (n)) {
    case JSON_NODE_NULL:
      return HUD_T_NULL;
    case JSON_NODE_ARRAY:
      return HUD_T_ARRAY;
    case JSON_NODE_OBJECT:
      return HUD_T_OBJECT;
    case JSON_NODE_VALUE:
      break;
  }
  GType t = json_node_get_value_type (n);
  if (t == G_TYPE_BOOLEAN)
    return HUD_T_BOOLEAN;
  if (t == G_TYPE_STRING)
    return HUD_T_STRING;
  if (t == G_TYPE_INT64 || t == G_TYPE_DOUBLE) {
    gdouble v = t == G_TYPE_INT64 ? (gdouble) json_node_get_int (n) : json_node_get_double (n);
    if (!isfinite (v))
      return 0;
    *num = v;
    return (v == floor (v) ? HUD_T_INTEGER : 0) | HUD_T_NUMBER;
  }
  return 0;
}

static const gchar *
type_words (guint types)
{
  if (types & HUD_T_OBJECT)
    return "an object";
  if (types & HUD_T_ARRAY)
    return "an array";
  if (types & HUD_T_STRING)
    return "a string";
  if (types & HUD_T_BOOLEAN)
    return "true or false";
  if (types & HUD_T_NUMBER)
    return "a number";
  if (types & HUD_T_INTEGER)
    return "an integer";
  return "null";
}

/* Checks one value against accepted @types and range; on failure writes why. */
static gboolean
check_value (JsonNode * n, guint types, gdouble min, gdouble max, const gchar * path,
    gchar * why, gsize why_len)
{
  gdouble v = 0;
  guint t = node_type (n, &v);
  if (t == 0 && JSON_NODE_HOLDS_VALUE (n) && (json_node_get_value_type (n) == G_TYPE_DOUBLE
          || json_node_get_value_type (n) == G_TYPE_INT64)) {
    g_snprintf (why, why_len, "field '%s' is not a finite number", path);
    return FALSE;
  }
  /* an integer-only field takes 3.0 (JSON has one number type), never 3.5 */
  if (!(t & types)) {
    g_snprintf (why, why_len, "field '%s' must be %s%s", path, type_words (types),
        (types & HUD_T_NULL) && types != HUD_T_NULL ? " or null" : "");
    return FALSE;
  }
  if ((t & HUD_T_NUMBER) && (types & (HUD_T_NUMBER | HUD_T_INTEGER)) && !(v >= min
          && v <= max)) {
    g_snprintf (why, why_len, "field '%s' is %g, outside %g..%g", path, v, min, max);
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_field (JsonObject * root, const HudField * f, gchar * why, gsize why_len)
{
  JsonNode *n = member (root, f->path);
  if (!n) {
    if (f->required)
      g_snprintf (why, why_len, "field '%s' is missing", f->path);
    return !f->required;
  }
  if (!check_value (n, f->types, f->min, f->max, f->path, why, why_len))
    return FALSE;
  if (JSON_NODE_HOLDS_ARRAY (n)) {
    JsonArray *a = json_node_get_array (n);
    guint len = json_array_get_length (a);
    for (guint i = 0; i < len; i++) {
      gchar *p = g_strdup_printf ("%s[%u]", f->path, i);
      gboolean ok = check_value (json_array_get_element (a, i), f->items, f->min, f->max, p,
          why, why_len);
      g_free (p);
      if (!ok)
        return FALSE;
    }
  }
  return TRUE;
}

/* -- reading validated messages: no check can fail from here on ----------------------- */

static const gchar *
get_str (JsonObject * o, const gchar * path)
{
  JsonNode *n = member (o, path);
  return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING ?
      json_node_get_string (n) : NULL;
}

static gboolean
get_num (JsonObject * o, const gchar * path, gdouble * out)
{
  JsonNode *n = member (o, path);
  gdouble v = 0;
  if (!n || !(node_type (n, &v) & HUD_T_NUMBER))
    return FALSE;
  *out = v;
  return TRUE;
}

static gboolean
get_bool (JsonObject * o, const gchar * path, gboolean dflt)
{
  JsonNode *n = member (o, path);
  return n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_BOOLEAN ?
      json_node_get_boolean (n) : dflt;
}

static JsonArray *
get_array (JsonObject * o, const gchar * path)
{
  JsonNode *n = member (o, path);
  return n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

static gboolean
has_string (JsonArray * a, const gchar * s)
{
  for (guint i = 0; a && i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_STRING
        && g_strcmp0 (json_node_get_string (e), s) == 0)
      return TRUE;
  }
  return FALSE;
}

/* Numbers of a validated array into @out (NAN for null); returns the count kept. */
static gint
read_curve (JsonArray * a, gdouble * out)
{
  gint n = a ? (gint) MIN (json_array_get_length (a), HUD_MAX_SLOTS) : 0;
  for (gint i = 0; i < n; i++) {
    gdouble v = NAN;
    node_type (json_array_get_element (a, i), &v);
    out[i] = JSON_NODE_HOLDS_NULL (json_array_get_element (a, i)) ? NAN : v;
  }
  return n;
}

static void
read_features (JsonObject * o, HudFeatures * f)
{
  JsonNode *n = member (o, "features");
  gint nt, nl, np, nr;
  gdouble v;
  memset (f, 0, sizeof *f);
  f->washout_onset_s = NAN;
  f->p_hcc = NAN;
  if (!n || !JSON_NODE_HOLDS_OBJECT (n))
    return;
  f->present = TRUE;
  nt = read_curve (get_array (o, "features.times_s"), f->times);
  nl = read_curve (get_array (o, "features.lesion"), f->lesion);
  np = read_curve (get_array (o, "features.parenchyma"), f->parenchyma);
  nr = read_curve (get_array (o, "features.rim"), f->rim);
  f->n = MIN (nt, MIN (nl, np));
  f->has_rim = FALSE;
  for (gint i = 0; i < MIN (nr, f->n); i++)
    f->has_rim |= !isnan (f->rim[i]);
  for (gint i = nr; i < HUD_MAX_SLOTS; i++)
    f->rim[i] = NAN;
  copy_str (f->units, get_str (o, "features.units"));
  copy_str (f->aphe, get_str (o, "features.aphe"));
  copy_str (f->washout, get_str (o, "features.washout"));
  copy_str (f->washout_degree, get_str (o, "features.washout_degree"));
  copy_str (f->category, get_str (o, "features.category"));
  copy_text (f->summary, sizeof f->summary, get_str (o, "features.summary"));
  if (get_num (o, "features.washout_onset_s", &v))
    f->washout_onset_s = v;
  if (get_num (o, "features.p_hcc", &v))
    f->p_hcc = v;
}

static void
read_slots (JsonObject * o, HudState * s)
{
  JsonArray *a = get_array (o, "slot_states");
  guint len;
  if (!a)
    return;
  len = MIN (json_array_get_length (a), HUD_MAX_SLOTS);
  for (guint i = 0; i < len; i++) {
    JsonNode *e = json_array_get_element (a, i);
    const gchar *v = JSON_NODE_HOLDS_VALUE (e) ? json_node_get_string (e) : NULL;
    if (g_strcmp0 (v, "frame") == 0)
      s->slots[i] = HUD_SLOT_FILLED;
    else if (g_strcmp0 (v, "neighbour") == 0)
      s->slots[i] = HUD_SLOT_FLAGGED;
    else if (g_strcmp0 (v, "missing") == 0)
      s->slots[i] = HUD_SLOT_MISSING;
    else
      s->slots[i] = HUD_SLOT_PENDING;
  }
  s->slots_total = (gint) len;
}

static void
read_common (JsonObject * o, HudState * s)
{
  gdouble v;
  JsonArray *flags = get_array (o, "flags");
  if (member (o, "model")) {
    copy_str (s->model, get_str (o, "model.name"));
    copy_str (s->trained_on, get_str (o, "model.trained_on"));
  }
  if (member (o, "backend")) {
    copy_str (s->backend, get_str (o, "backend.name"));
    copy_str (s->precision, get_str (o, "backend.precision"));
  }
  if (flags) {
    s->cpu_fallback = has_string (flags, "cpu_fallback");
    s->untrained = has_string (flags, "untrained_model");
    s->partial = has_string (flags, "slots_missing");
    s->ood_flag = has_string (flags, "out_of_distribution");
  }
  if (member (o, "domain")) {
    const gchar *d = get_str (o, "domain.state");
    s->domain = !g_strcmp0 (d, "in") ? HUD_DOMAIN_IN : !g_strcmp0 (d, "out") ? HUD_DOMAIN_OUT
        : !g_strcmp0 (d, "unknown") ? HUD_DOMAIN_UNKNOWN : HUD_DOMAIN_NONE;
    s->domain_distance = get_num (o, "domain.distance", &v) ? v : NAN;
    s->domain_threshold = get_num (o, "domain.threshold", &v) ? v : NAN;
    copy_str (s->domain_method, get_str (o, "domain.method"));
  }
  if (get_num (o, "seq", &v))
    s->seq = (guint64) v;
  if (get_num (o, "slots_total", &v))
    s->slots_total = (gint) v;
  if (get_num (o, "slots_filled", &v))
    s->slots_filled = (gint) v;
  read_slots (o, s);
  if (member (o, "features"))
    read_features (o, &s->features);
  s->final = get_bool (o, "final", s->final);
  copy_str (s->label, s->final ? get_str (o, "label") : NULL);
  if (member (o, "score_basis"))      /* a status without it keeps the score's */
    copy_str (s->basis, get_str (o, "score_basis"));
}

static void
read_score (JsonObject * o, HudState * s)
{
  gdouble v;
  if (get_num (o, "score", &v)) {
    s->has_score = TRUE;
    s->score = v;
  }
  if (get_num (o, "threshold", &v) && v > 0 && v < 1)
    s->threshold = v;
}

static void
read_status (JsonObject * o, HudState * s, gint64 now_us)
{
  gdouble v;
  JsonArray *a;
  JsonNode *n;
  copy_str (s->phase, get_str (o, "phase"));
  s->next_slot = get_num (o, "next_slot", &v) ? (gint) v : -1;
  s->next_slot_in_s = get_num (o, "next_slot_in_s", &v) ? v : NAN;
  s->status_mono_us = now_us;
  s->speed = get_num (o, "speed", &v) ? v : 0.0;
  a = get_array (o, "roi");
  s->has_roi = a && json_array_get_length (a) == 4;
  for (guint i = 0; s->has_roi && i < 4; i++)
    s->roi[i] = (gint) json_array_get_int_element (a, i);
  a = get_array (o, "frame_size");
  if (a && json_array_get_length (a) == 2) {
    s->frame_size[0] = (gint) json_array_get_int_element (a, 0);
    s->frame_size[1] = (gint) json_array_get_int_element (a, 1);
  }
  s->n_warnings = 0;
  a = get_array (o, "warnings");
  for (guint i = 0; a && i < json_array_get_length (a) && s->n_warnings < HUD_MAX_WARNINGS; i++)
    copy_str (s->warnings[s->n_warnings++], json_array_get_string_element (a, i));
  /* a status also carries the latest score, so a display started mid-exam catches up */
  n = member (o, "score");
  if (n && get_num (o, "score", &v)) {
    s->has_score = TRUE;
    s->score = v;
  } else if (n) {
    s->has_score = FALSE;       /* null: the exam has no score yet */
  }
}

static HudApply
fail (HudApply r, gchar * why, gsize why_len, const gchar * text)
{
  if (why && why_len)
    g_strlcpy (why, text, why_len);
  return r;
}

HudApply
hud_state_apply (HudState * s, const gchar * topic, gsize topic_len,
    const gchar * payload, gsize payload_len, const gchar * exam_filter, gint64 now_us,
    gchar * why, gsize why_len)
{
  JsonParser *parser = NULL;
  JsonNode *root;
  JsonObject *o;
  GError *err = NULL;
  HudApply ret = HUD_APPLIED;
  gchar *t;
  const gchar *exam, *type;
  gboolean is_score;
  gdouble v;
  gchar scratch[160];
  HudState next;

  /* ZeroMQ may give NULL data for an empty part */
  if (!topic)
    topic = "", topic_len = 0;
  if (!payload)
    payload = "", payload_len = 0;
  t = g_strndup (topic, topic_len);
  if (!why || !why_len) {
    why = scratch;
    why_len = sizeof scratch;
  }
  if (strlen (t) != topic_len || !g_utf8_validate (t, -1, NULL)
      || (!g_str_has_prefix (t, "score.") && !g_str_has_prefix (t, "status."))) {
    ret = fail (HUD_MALFORMED, why, why_len, "unknown topic");
    goto out;
  }
  is_score = g_str_has_prefix (t, "score.");
  exam = strchr (t, '.') + 1;
  if (exam_filter && *exam_filter && strcmp (exam, exam_filter) != 0) {
    ret = fail (HUD_IGNORED_FOREIGN, why, why_len, "message for another exam");
    goto out;
  }
  if (!*exam || strlen (exam) >= HUD_STR) {
    ret = fail (HUD_MALFORMED, why, why_len, "topic has no valid exam id");
    goto out;
  }
  if (!g_utf8_validate (payload, (gssize) payload_len, NULL)) {
    ret = fail (HUD_MALFORMED, why, why_len, "payload is not UTF-8");
    goto out;
  }
  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, payload, (gssize) payload_len, &err)) {
    g_clear_error (&err);
    ret = fail (HUD_MALFORMED, why, why_len, "payload is not JSON");
    goto out;
  }
  root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    ret = fail (HUD_MALFORMED, why, why_len, "payload is not a JSON object");
    goto out;
  }
  o = json_node_get_object (root);
  if (!get_num (o, "v", &v) || v != 1.0) {
    ret = fail (HUD_IGNORED_VERSION, why, why_len, "unknown schema version");
    goto out;
  }
  type = get_str (o, "type");
  if (g_strcmp0 (type, is_score ? "score" : "status") != 0) {
    ret = fail (HUD_MALFORMED, why, why_len, "type does not match the topic");
    goto out;
  }
  /* the whole message is checked before anything is applied */
  for (guint i = 0; i < hud_n_fields; i++) {
    const HudField *f = &hud_fields[i];
    if (!(f->in & (is_score ? HUD_IN_SCORE : HUD_IN_STATUS)))
      continue;
    if (!check_field (o, f, why, why_len)) {
      ret = HUD_MALFORMED;
      goto out;
    }
  }
  next = *s;
  if (strcmp (next.exam, exam) != 0) {
    /* a new exam: start from a clean slate */
    hud_state_init (&next);
    copy_str (next.exam, exam);
  }
  if (is_score)
    read_score (o, &next);
  else
    read_status (o, &next, now_us);
  read_common (o, &next);
  next.last_message_us = now_us;
  next.version = s->version + 1;
  *s = next;
out:
  if (parser)
    g_object_unref (parser);
  g_free (t);
  return ret;
}

gboolean
hud_state_ended (const HudState * s)
{
  return s->final || !g_strcmp0 (s->phase, "complete") || !g_strcmp0 (s->phase, "partial")
      || !g_strcmp0 (s->phase, "stopped");
}

gboolean
hud_state_has_warning (const HudState * s, const gchar * name)
{
  for (gint i = 0; i < s->n_warnings; i++)
    if (!strcmp (s->warnings[i], name))
      return TRUE;
  return FALSE;
}
