/* Parsing engine messages into HudState. Every field is type-checked; a message that does
 * not parse leaves the state untouched, so a bad publisher can never blank or corrupt the
 * display. */
#include "hudstate.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

void
hud_state_init (HudState * s)
{
  memset (s, 0, sizeof *s);
  s->next_slot = -1;
  s->next_slot_in_s = NAN;
  s->slots_total = 30;
  s->threshold = 0.5;
  s->speed = 1.0;
}

static void
copy_str (gchar * dst, const gchar * src)
{
  g_strlcpy (dst, src ? src : "", HUD_STR);
}

static gboolean
get_num (JsonObject * o, const gchar * key, gdouble * out)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n || JSON_NODE_TYPE (n) != JSON_NODE_VALUE)
    return FALSE;
  GType t = json_node_get_value_type (n);
  if (t == G_TYPE_INT64)
    *out = (gdouble) json_node_get_int (n);
  else if (t == G_TYPE_DOUBLE)
    *out = json_node_get_double (n);
  else
    return FALSE;
  return isfinite (*out);
}

static const gchar *
get_str (JsonObject * o, const gchar * key)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n || JSON_NODE_TYPE (n) != JSON_NODE_VALUE
      || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

static gboolean
get_bool (JsonObject * o, const gchar * key, gboolean dflt)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n || JSON_NODE_TYPE (n) != JSON_NODE_VALUE
      || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return dflt;
  return json_node_get_boolean (n);
}

static gboolean
has_flag (JsonObject * o, const gchar * flag)
{
  JsonNode *n = json_object_get_member (o, "flags");
  if (!n || JSON_NODE_TYPE (n) != JSON_NODE_ARRAY)
    return FALSE;
  JsonArray *a = json_node_get_array (n);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (JSON_NODE_TYPE (e) == JSON_NODE_VALUE
        && json_node_get_value_type (e) == G_TYPE_STRING
        && g_strcmp0 (json_node_get_string (e), flag) == 0)
      return TRUE;
  }
  return FALSE;
}

static void
read_slots (JsonObject * o, HudState * s)
{
  JsonNode *n = json_object_get_member (o, "slot_states");
  if (!n || JSON_NODE_TYPE (n) != JSON_NODE_ARRAY)
    return;
  JsonArray *a = json_node_get_array (n);
  guint len = MIN (json_array_get_length (a), HUD_MAX_SLOTS);
  for (guint i = 0; i < len; i++) {
    JsonNode *e = json_array_get_element (a, i);
    const gchar *v = NULL;
    if (JSON_NODE_TYPE (e) == JSON_NODE_VALUE
        && json_node_get_value_type (e) == G_TYPE_STRING)
      v = json_node_get_string (e);
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
  JsonNode *n;
  gdouble v;
  n = json_object_get_member (o, "model");
  if (n && JSON_NODE_TYPE (n) == JSON_NODE_OBJECT) {
    JsonObject *m = json_node_get_object (n);
    copy_str (s->model, get_str (m, "name"));
    copy_str (s->trained_on, get_str (m, "trained_on"));
  }
  n = json_object_get_member (o, "backend");
  if (n && JSON_NODE_TYPE (n) == JSON_NODE_OBJECT) {
    JsonObject *b = json_node_get_object (n);
    copy_str (s->backend, get_str (b, "name"));
    copy_str (s->precision, get_str (b, "precision"));
  }
  s->cpu_fallback = has_flag (o, "cpu_fallback");
  if (get_num (o, "seq", &v) && v >= 0)
    s->seq = (guint64) v;
  read_slots (o, s);
}

static void
read_score (JsonObject * o, HudState * s, gdouble score)
{
  gdouble v;
  const gchar *label;
  s->has_score = TRUE;
  s->score = CLAMP (score, 0.0, 1.0);
  s->final = get_bool (o, "final", FALSE);
  label = get_str (o, "label");
  copy_str (s->label, s->final ? label : NULL);
  if (get_num (o, "slots_filled", &v))
    s->slots_filled = (gint) v;
  if (get_num (o, "threshold", &v) && v > 0 && v < 1)
    s->threshold = v;
  s->partial = has_flag (o, "slots_missing");
}

static void
read_status (JsonObject * o, HudState * s)
{
  gdouble v;
  JsonNode *n;
  copy_str (s->phase, get_str (o, "phase"));
  s->next_slot = get_num (o, "next_slot", &v) ? (gint) v : -1;
  s->next_slot_in_s = get_num (o, "next_slot_in_s", &v) ? v : NAN;
  s->status_wall = get_num (o, "t_wall", &v) ? v : 0.0;
  s->speed = get_num (o, "speed", &v) && v > 0 ? v : 1.0;
  if (get_num (o, "slots_filled", &v))
    s->slots_filled = (gint) v;
  n = json_object_get_member (o, "roi");
  s->has_roi = FALSE;
  if (n && JSON_NODE_TYPE (n) == JSON_NODE_ARRAY
      && json_array_get_length (json_node_get_array (n)) == 4) {
    JsonArray *a = json_node_get_array (n);
    s->has_roi = TRUE;
    for (guint i = 0; i < 4; i++)
      s->roi[i] = (gint) json_array_get_int_element (a, i);
  }
  n = json_object_get_member (o, "frame_size");
  if (n && JSON_NODE_TYPE (n) == JSON_NODE_ARRAY
      && json_array_get_length (json_node_get_array (n)) == 2) {
    JsonArray *a = json_node_get_array (n);
    s->frame_size[0] = (gint) json_array_get_int_element (a, 0);
    s->frame_size[1] = (gint) json_array_get_int_element (a, 1);
  }
  s->n_warnings = 0;
  n = json_object_get_member (o, "warnings");
  if (n && JSON_NODE_TYPE (n) == JSON_NODE_ARRAY) {
    JsonArray *a = json_node_get_array (n);
    for (guint i = 0; i < json_array_get_length (a) && s->n_warnings < 4; i++) {
      JsonNode *e = json_array_get_element (a, i);
      if (JSON_NODE_TYPE (e) == JSON_NODE_VALUE
          && json_node_get_value_type (e) == G_TYPE_STRING)
        copy_str (s->warnings[s->n_warnings++], json_node_get_string (e));
    }
  }
  /* a status also carries the latest score, so a display started mid-exam catches up */
  if (get_num (o, "score", &v))
    read_score (o, s, v);
}

HudApply
hud_state_apply (HudState * s, const gchar * topic, gsize topic_len,
    const gchar * payload, gsize payload_len, const gchar * exam_filter,
    const gchar ** why)
{
  JsonParser *parser;
  JsonNode *root;
  JsonObject *o;
  GError *err = NULL;
  HudApply ret = HUD_APPLIED;
  gchar *t = g_strndup (topic, topic_len);
  const gchar *dot = strchr (t, '.');
  const gchar *exam, *type;
  gdouble v;
  HudState next;

  if (!dot || (strncmp (t, "score.", 6) != 0 && strncmp (t, "status.", 7) != 0)) {
    g_free (t);
    if (why)
      *why = "unknown topic";
    return HUD_MALFORMED;
  }
  exam = dot + 1;
  if (exam_filter && *exam_filter && strcmp (exam, exam_filter) != 0) {
    g_free (t);
    if (why)
      *why = "message for another exam";
    return HUD_IGNORED_FOREIGN;
  }
  if (!g_utf8_validate (payload, (gssize) payload_len, NULL)) {
    g_free (t);
    if (why)
      *why = "payload is not UTF-8";
    return HUD_MALFORMED;
  }
  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, payload, (gssize) payload_len, &err)) {
    g_clear_error (&err);
    g_object_unref (parser);
    g_free (t);
    if (why)
      *why = "payload is not JSON";
    return HUD_MALFORMED;
  }
  root = json_parser_get_root (parser);
  if (!root || JSON_NODE_TYPE (root) != JSON_NODE_OBJECT) {
    ret = HUD_MALFORMED;
    if (why)
      *why = "payload is not a JSON object";
    goto out;
  }
  o = json_node_get_object (root);
  if (!get_num (o, "v", &v) || v != 1.0) {
    ret = HUD_IGNORED_VERSION;
    if (why)
      *why = "unknown schema version";
    goto out;
  }
  type = get_str (o, "type");
  next = *s;
  if (strcmp (next.exam, exam) != 0) {
    /* a new exam: start from a clean slate */
    hud_state_init (&next);
    copy_str (next.exam, exam);
  }
  if (g_strcmp0 (type, "score") == 0 && strncmp (t, "score.", 6) == 0) {
    if (!get_num (o, "score", &v)) {
      ret = HUD_MALFORMED;
      if (why)
        *why = "score message without a numeric score";
      goto out;
    }
    read_score (o, &next, v);
  } else if (g_strcmp0 (type, "status") == 0 && strncmp (t, "status.", 7) == 0) {
    read_status (o, &next);
  } else {
    ret = HUD_MALFORMED;
    if (why)
      *why = "type does not match the topic";
    goto out;
  }
  read_common (o, &next);
  next.last_message_us = g_get_monotonic_time ();
  next.version = s->version + 1;
  *s = next;
out:
  g_object_unref (parser);
  g_free (t);
  return ret;
}
