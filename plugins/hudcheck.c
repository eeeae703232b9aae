/* hudcheck: the overlay's message reader against the wire schema, without GStreamer.
 *
 *   hudcheck schema DIR   checks every entry of hud_fields[] (the fields ceushud reads)
 *                         against DIR/{score,status,common}.v1.json: the field exists in each
 *                         message that the table says carries it, its JSON types are among
 *                         those the reader accepts, the reader's number range holds the
 *                         schema's, a field the reader requires is required by the schema, and
 *                         every word of the reader's vocabulary is in the schema's enum.
 *                         Exit 0 when all hold, 1 (one line per problem) otherwise.
 *   hudcheck parse        reads JSON lines [topic, payload] from stdin, applies each to one
 *                         HudState as ceushud does, and prints one JSON line per message: the
 *                         outcome and what the overlay now knows.
 *   hudcheck view MODE W H [OW OH]
 *                         the same lines; after each, the view (what the overlay says) and its
 *                         layout for a W x H video (MODE auto|beside|over, output size asked
 *                         OW x OH) with a fixed-advance font (0.6 em a character, 0.65 bold),
 *                         so the expectations are computed by hand.
 *   hudcheck screen W H   raw W x H luma frames on stdin: what the screen analysis learnt
 *                         (and what its first look made of the first frame).
 *
 * Built only for the tests (cmake -DCEUS_TESTS=ON, target hudcheck) and run from pytest
 * (tests/test_overlay.py), so a field renamed in Python and the schema breaks a C test. */
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hudlayout.h"
#include "hudscreen.h"
#include "hudstate.h"
#include "hudview.h"

/* -- the schema side ------------------------------------------------------------------- */

typedef struct
{
  GHashTable *files;            /* file name -> JsonNode root (owned by the parsers) */
  GPtrArray *parsers;
} Schemas;

typedef struct
{
  const gchar *file;
  JsonObject *node;
} Sub;

static gboolean
load_schemas (Schemas * sc, const gchar * dir)
{
  const gchar *names[] = { "common.v1.json", "score.v1.json", "status.v1.json" };
  sc->files = g_hash_table_new (g_str_hash, g_str_equal);
  sc->parsers = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    gchar *path = g_build_filename (dir, names[i], NULL);
    JsonParser *p = json_parser_new ();
    GError *err = NULL;
    if (!json_parser_load_from_file (p, path, &err)) {
      fprintf (stderr, "hudcheck: cannot read %s: %s\n", path, err->message);
      g_clear_error (&err);
      g_object_unref (p);
      g_free (path);
      return FALSE;
    }
    g_ptr_array_add (sc->parsers, p);
    g_hash_table_insert (sc->files, (gpointer) names[i], json_parser_get_root (p));
    g_free (path);
  }
  return TRUE;
}

/* Follows "$ref" (same file "#/..." or "other.json#/...") until a schema without one. */
static Sub
deref (Schemas * sc, Sub s)
{
  for (gint depth = 0; s.node && depth < 32; depth++) {
    const gchar *ref;
    gchar **parts;
    JsonNode *n;
    if (!json_object_has_member (s.node, "$ref"))
      return s;
    ref = json_object_get_string_member (s.node, "$ref");
    parts = g_strsplit (ref, "#", 2);
    if (parts[0][0])
      s.file = g_hash_table_lookup (sc->files, parts[0]) ? parts[0] : NULL;
    n = s.file ? g_hash_table_lookup (sc->files, s.file) : NULL;
    if (n && parts[1]) {
      gchar **ptr = g_strsplit (parts[1], "/", -1);
      for (gchar ** p = ptr; *p && n; p++) {
        if (!**p)
          continue;
        n = JSON_NODE_HOLDS_OBJECT (n) && json_object_has_member (json_node_get_object (n),
            *p) ? json_object_get_member (json_node_get_object (n), *p) : NULL;
      }
      g_strfreev (ptr);
    }
    /* keep the file name alive: it is a key of sc->files */
    if (s.file) {
      gpointer key = NULL;
      g_hash_table_lookup_extended (sc->files, s.file, &key, NULL);
      s.file = key;
    }
    g_strfreev (parts);
    s.node = n && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
  }
  return s;
}

/* The branches of a schema: itself, or each of its oneOf/anyOf alternatives (dereferenced). */
static GArray *
branches (Schemas * sc, Sub s)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (Sub));
  const gchar *keys[] = { "oneOf", "anyOf" };
  gboolean split = FALSE;
  s = deref (sc, s);
  if (!s.node)
    return out;
  for (guint k = 0; k < 2; k++) {
    if (!json_object_has_member (s.node, keys[k]))
      continue;
    JsonArray *a = json_object_get_array_member (s.node, keys[k]);
    split = TRUE;
    for (guint i = 0; a && i < json_array_get_length (a); i++) {
      Sub b = { s.file, json_array_get_object_element (a, i) };
      GArray *sub = branches (sc, b);
      g_array_append_vals (out, sub->data, sub->len);
      g_array_free (sub, TRUE);
    }
  }
  if (!split)
    g_array_append_val (out, s);
  return out;
}

static guint
value_type (JsonNode * n)
{
  if (JSON_NODE_HOLDS_NULL (n))
    return HUD_T_NULL;
  if (JSON_NODE_HOLDS_ARRAY (n))
    return HUD_T_ARRAY;
  if (JSON_NODE_HOLDS_OBJECT (n))
    return HUD_T_OBJECT;
  switch (json_node_get_value_type (n)) {
    case G_TYPE_BOOLEAN:
      return HUD_T_BOOLEAN;
    case G_TYPE_STRING:
      return HUD_T_STRING;
    case G_TYPE_INT64:
      return HUD_T_INTEGER;
    default:
      return HUD_T_NUMBER;
  }
}

static guint
type_name (const gchar * t)
{
  if (!g_strcmp0 (t, "null"))
    return HUD_T_NULL;
  if (!g_strcmp0 (t, "boolean"))
    return HUD_T_BOOLEAN;
  if (!g_strcmp0 (t, "integer"))
    return HUD_T_INTEGER;
  if (!g_strcmp0 (t, "number"))
    return HUD_T_NUMBER;
  if (!g_strcmp0 (t, "string"))
    return HUD_T_STRING;
  if (!g_strcmp0 (t, "array"))
    return HUD_T_ARRAY;
  if (!g_strcmp0 (t, "object"))
    return HUD_T_OBJECT;
  return 0;
}

/* Everything a schema lets through, as HudJsonType bits; ~0 when it does not say. */
static guint
schema_types (Schemas * sc, Sub s)
{
  GArray *bs = branches (sc, s);
  guint t = 0;
  for (guint i = 0; i < bs->len; i++) {
    JsonObject *o = g_array_index (bs, Sub, i).node;
    if (json_object_has_member (o, "type")) {
      JsonNode *n = json_object_get_member (o, "type");
      if (JSON_NODE_HOLDS_ARRAY (n)) {
        JsonArray *a = json_node_get_array (n);
        for (guint j = 0; j < json_array_get_length (a); j++)
          t |= type_name (json_array_get_string_element (a, j));
      } else {
        t |= type_name (json_node_get_string (n));
      }
    } else if (json_object_has_member (o, "enum")) {
      JsonArray *a = json_object_get_array_member (o, "enum");
      for (guint j = 0; j < json_array_get_length (a); j++)
        t |= value_type (json_array_get_element (a, j));
    } else if (json_object_has_member (o, "const")) {
      t |= value_type (json_object_get_member (o, "const"));
    } else {
      t = ~0u;
    }
  }
  g_array_free (bs, TRUE);
  return t;
}

/* The subschema of property @name (searching object branches), or {NULL, NULL}. */
static Sub
property (Schemas * sc, Sub s, const gchar * name, gboolean * required)
{
  GArray *bs = branches (sc, s);
  Sub out = { NULL, NULL };
  for (guint i = 0; i < bs->len && !out.node; i++) {
    Sub b = g_array_index (bs, Sub, i);
    JsonObject *props = json_object_has_member (b.node, "properties") ?
        json_object_get_object_member (b.node, "properties") : NULL;
    if (props && json_object_has_member (props, name)) {
      out.file = b.file;
      out.node = json_object_get_object_member (props, name);
      *required = FALSE;
      if (json_object_has_member (b.node, "required")) {
        JsonArray *r = json_object_get_array_member (b.node, "required");
        for (guint j = 0; j < json_array_get_length (r); j++)
          *required |= !g_strcmp0 (json_array_get_string_element (r, j), name);
      }
    }
  }
  g_array_free (bs, TRUE);
  return out;
}

/* The subschema of an array's elements, or {NULL, NULL}. */
static Sub
items (Schemas * sc, Sub s)
{
  GArray *bs = branches (sc, s);
  Sub out = { NULL, NULL };
  for (guint i = 0; i < bs->len && !out.node; i++) {
    Sub b = g_array_index (bs, Sub, i);
    if (json_object_has_member (b.node, "items")) {
      out.file = b.file;
      out.node = json_object_get_object_member (b.node, "items");
    }
  }
  g_array_free (bs, TRUE);
  return out;
}

/* The numeric bounds the schema allows (over all branches); NAN when unbounded. */
static void
bounds (Schemas * sc, Sub s, gdouble * lo, gdouble * hi)
{
  GArray *bs = branches (sc, s);
  *lo = *hi = NAN;
  gboolean any_lo_missing = FALSE, any_hi_missing = FALSE;
  for (guint i = 0; i < bs->len; i++) {
    JsonObject *o = g_array_index (bs, Sub, i).node;
    gboolean numeric = FALSE;
    if (json_object_has_member (o, "type")) {
      JsonNode *tn = json_object_get_member (o, "type");
      guint t = 0;
      if (JSON_NODE_HOLDS_ARRAY (tn)) {
        JsonArray *a = json_node_get_array (tn);
        for (guint j = 0; j < json_array_get_length (a); j++)
          t |= type_name (json_array_get_string_element (a, j));
      } else {
        t = type_name (json_node_get_string (tn));
      }
      numeric = (t & (HUD_T_NUMBER | HUD_T_INTEGER)) != 0;
    }
    if (!numeric)
      continue;
    const gchar *lk[] = { "minimum", "exclusiveMinimum" }, *hk[] = { "maximum", "exclusiveMaximum" };
    gboolean has_lo = FALSE, has_hi = FALSE;
    for (guint k = 0; k < 2; k++) {
      if (json_object_has_member (o, lk[k])) {
        gdouble v = json_object_get_double_member (o, lk[k]);
        *lo = isnan (*lo) ? v : MIN (*lo, v);
        has_lo = TRUE;
      }
      if (json_object_has_member (o, hk[k])) {
        gdouble v = json_object_get_double_member (o, hk[k]);
        *hi = isnan (*hi) ? v : MAX (*hi, v);
        has_hi = TRUE;
      }
    }
    any_lo_missing |= !has_lo;
    any_hi_missing |= !has_hi;
  }
  if (any_lo_missing)
    *lo = NAN;
  if (any_hi_missing)
    *hi = NAN;
  g_array_free (bs, TRUE);
}

/* Every string the schema's enum or const (over all branches) allows; NULL when it has
 * neither. */
static GHashTable *
enum_words (Schemas * sc, Sub s)
{
  GArray *bs = branches (sc, s);
  GHashTable *words = NULL;
  for (guint i = 0; i < bs->len; i++) {
    JsonObject *o = g_array_index (bs, Sub, i).node;
    if (!json_object_has_member (o, "enum") && !json_object_has_member (o, "const"))
      continue;
    if (!words)
      words = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    if (json_object_has_member (o, "const")) {
      JsonNode *c = json_object_get_member (o, "const");
      if (value_type (c) == HUD_T_STRING)
        g_hash_table_add (words, g_strdup (json_node_get_string (c)));
      continue;
    }
    JsonArray *a = json_object_get_array_member (o, "enum");
    for (guint j = 0; j < json_array_get_length (a); j++) {
      JsonNode *e = json_array_get_element (a, j);
      if (value_type (e) == HUD_T_STRING)
        g_hash_table_add (words, g_strdup (json_node_get_string (e)));
    }
  }
  g_array_free (bs, TRUE);
  return words;
}

static const gchar *
types_text (guint t, GString * out)
{
  const gchar *names[] = { "null", "boolean", "integer", "number", "string", "array", "object" };
  g_string_truncate (out, 0);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (t & (1u << i))
      g_string_append_printf (out, "%s%s", out->len ? "|" : "", names[i]);
  return out->str;
}

/* The schema's types @st are all read by C's @ct? (an integer is a number to C) */
static guint
unread_types (guint st, guint ct)
{
  guint accepted = ct;
  if (ct & HUD_T_NUMBER)
    accepted |= HUD_T_INTEGER;
  return st & ~accepted;
}

static gint
check_one (Schemas * sc, const HudField * f, const gchar * msg)
{
  gchar *file = g_strdup_printf ("%s.v1.json", msg);
  JsonNode *root = g_hash_table_lookup (sc->files, file);
  Sub s = { NULL, NULL };
  gboolean required = FALSE;
  gchar **parts = g_strsplit (f->path, ".", -1);
  GString *a = g_string_new (NULL), *b = g_string_new (NULL);
  gint problems = 0;
  guint st, bad;

  gpointer key = NULL;
  g_hash_table_lookup_extended (sc->files, file, &key, NULL);
  s.file = key;
  s.node = root ? json_node_get_object (root) : NULL;
  for (gchar ** p = parts; *p && s.node; p++)
    s = property (sc, s, *p, &required);
  if (!s.node) {
    printf ("FAIL %s %s: the overlay reads it, the schema has no such field\n", msg, f->path);
    problems++;
    goto out;
  }
  st = schema_types (sc, s);
  bad = unread_types (st, f->types);
  if (bad) {
    printf ("FAIL %s %s: the schema allows %s, the overlay reads only %s\n", msg, f->path,
        types_text (st, a), types_text (f->types, b));
    problems++;
  }
  if (f->required && !required) {
    printf ("FAIL %s %s: the overlay requires it, the schema does not\n", msg, f->path);
    problems++;
  }
  if (f->types & HUD_T_ARRAY) {
    Sub it = items (sc, s);
    if (!it.node) {
      printf ("FAIL %s %s: the schema gives no item type\n", msg, f->path);
      problems++;
    } else {
      st = schema_types (sc, it);
      bad = unread_types (st, f->items);
      if (bad) {
        printf ("FAIL %s %s[]: the schema allows %s, the overlay reads only %s\n", msg,
            f->path, types_text (st, a), types_text (f->items, b));
        problems++;
      }
      s = it;                   /* ranges and words below are the items' */
    }
  }
  if ((f->types | f->items) & (HUD_T_NUMBER | HUD_T_INTEGER)) {
    gdouble lo, hi;
    bounds (sc, s, &lo, &hi);
    if ((!isnan (lo) && lo < f->min) || (!isnan (hi) && hi > f->max)) {
      printf ("FAIL %s %s: the schema allows %g..%g, the overlay only %g..%g\n", msg, f->path,
          lo, hi, f->min, f->max);
      problems++;
    }
  }
  if (f->values) {
    GHashTable *words = enum_words (sc, s);
    if (!words) {
      printf ("FAIL %s %s: the overlay knows its words, the schema has no enum\n", msg,
          f->path);
      problems++;
    }
    for (const gchar * const *w = f->values; words && *w; w++) {
      if (!g_hash_table_contains (words, *w)) {
        printf ("FAIL %s %s: the overlay knows '%s', the schema's enum does not\n", msg,
            f->path, *w);
        problems++;
      }
    }
    if (words)
      g_hash_table_destroy (words);
  }
  if (!problems)
    printf ("ok %s %s\n", msg, f->path);
out:
  g_string_free (a, TRUE);
  g_string_free (b, TRUE);
  g_strfreev (parts);
  g_free (file);
  return problems;
}

static int
check_schema (const gchar * dir)
{
  Schemas sc;
  gint problems = 0, checked = 0;
  if (!load_schemas (&sc, dir))
    return 2;
  for (guint i = 0; i < hud_n_fields; i++) {
    const HudField *f = &hud_fields[i];
    if (f->in & HUD_IN_SCORE) {
      problems += check_one (&sc, f, "score");
      checked++;
    }
    if (f->in & HUD_IN_STATUS) {
      problems += check_one (&sc, f, "status");
      checked++;
    }
  }
  printf ("%d field checks, %d problems\n", checked, problems);
  g_hash_table_destroy (sc.files);
  g_ptr_array_free (sc.parsers, TRUE);
  return problems ? 1 : 0;
}

/* -- the reader side ------------------------------------------------------------------- */

static void
add_num (JsonBuilder * b, const gchar * name, gdouble v)
{
  json_builder_set_member_name (b, name);
  if (isnan (v))
    json_builder_add_null_value (b);
  else
    json_builder_add_double_value (b, v);
}

static void
add_str (JsonBuilder * b, const gchar * name, const gchar * v)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, v);
}

static void
add_curve (JsonBuilder * b, const gchar * name, const gdouble * v, gint n)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (gint i = 0; i < n; i++) {
    if (isnan (v[i]))
      json_builder_add_null_value (b);
    else
      json_builder_add_double_value (b, v[i]);
  }
  json_builder_end_array (b);
}

static gchar *
dump (const HudState * s, HudApply r, const gchar * why)
{
  const gchar *outcome[] = { "applied", "foreign", "version", "malformed" };
  JsonBuilder *b = json_builder_new ();
  JsonGenerator *g = json_generator_new ();
  JsonNode *root;
  gchar *text;
  json_builder_begin_object (b);
  add_str (b, "outcome", outcome[r]);
  add_str (b, "why", r == HUD_APPLIED ? "" : why);
  add_str (b, "exam", s->exam);
  json_builder_set_member_name (b, "has_score");
  json_builder_add_boolean_value (b, s->has_score);
  add_num (b, "score", s->has_score ? s->score : NAN);
  json_builder_set_member_name (b, "final");
  json_builder_add_boolean_value (b, s->final);
  json_builder_set_member_name (b, "ended");
  json_builder_add_boolean_value (b, hud_state_ended (s));
  add_str (b, "label", s->label);
  add_num (b, "threshold", s->threshold);
  json_builder_set_member_name (b, "slots_filled");
  json_builder_add_int_value (b, s->slots_filled);
  json_builder_set_member_name (b, "slots_total");
  json_builder_add_int_value (b, s->slots_total);
  json_builder_set_member_name (b, "slots");
  json_builder_begin_array (b);
  for (gint i = 0; i < MIN (s->slots_total, HUD_MAX_SLOTS); i++)
    json_builder_add_int_value (b, s->slots[i]);
  json_builder_end_array (b);
  add_str (b, "phase", s->phase);
  json_builder_set_member_name (b, "next_slot");
  json_builder_add_int_value (b, s->next_slot);
  add_num (b, "next_slot_in_s", s->next_slot_in_s);
  add_num (b, "speed", s->speed);
  json_builder_set_member_name (b, "roi");
  if (s->has_roi) {
    json_builder_begin_array (b);
    for (gint i = 0; i < 4; i++)
      json_builder_add_int_value (b, s->roi[i]);
    json_builder_end_array (b);
  } else {
    json_builder_add_null_value (b);
  }
  add_str (b, "model", s->model);
  add_str (b, "trained_on", s->trained_on);
  add_str (b, "backend", s->backend);
  add_str (b, "precision", s->precision);
  json_builder_set_member_name (b, "cpu_fallback");
  json_builder_add_boolean_value (b, s->cpu_fallback);
  json_builder_set_member_name (b, "warnings");
  json_builder_begin_array (b);
  for (gint i = 0; i < s->n_warnings; i++)
    json_builder_add_string_value (b, s->warnings[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "seq");
  json_builder_add_int_value (b, (gint64) s->seq);
  json_builder_set_member_name (b, "features");
  if (s->features.present) {
    const HudFeatures *f = &s->features;
    json_builder_begin_object (b);
    add_curve (b, "times_s", f->times, f->n);
    add_curve (b, "lesion", f->lesion, f->n);
    add_curve (b, "parenchyma", f->parenchyma, f->n);
    add_curve (b, "rim", f->has_rim ? f->rim : NULL, f->has_rim ? f->n : 0);
    add_str (b, "units", f->units);
    add_str (b, "aphe", f->aphe);
    add_str (b, "washout", f->washout);
    add_str (b, "washout_degree", f->washout_degree);
    add_str (b, "category", f->category);
    add_num (b, "washout_onset_s", f->washout_onset_s);
    add_num (b, "p_hcc", f->p_hcc);
    add_str (b, "summary", f->summary);
    json_builder_end_object (b);
  } else {
    json_builder_add_null_value (b);
  }
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (g, root);
  text = json_generator_to_data (g, NULL);
  json_node_unref (root);
  g_object_unref (g);
  g_object_unref (b);
  return text;
}

static int
parse_lines (void)
{
  HudState s;
  GIOChannel *in = g_io_channel_unix_new (0);
  gchar *line = NULL;
  gsize len;
  gint64 now = 0;
  hud_state_init (&s);
  g_io_channel_set_encoding (in, NULL, NULL);
  while (g_io_channel_read_line (in, &line, &len, NULL, NULL) == G_IO_STATUS_NORMAL) {
    JsonParser *p = json_parser_new ();
    JsonNode *root;
    gchar why[160] = "";
    HudApply r = HUD_MALFORMED;
    JsonArray *a = NULL;
    const gchar *topic = NULL, *payload = NULL;
    if (json_parser_load_from_data (p, line, (gssize) len, NULL)
        && (root = json_parser_get_root (p)) && JSON_NODE_HOLDS_ARRAY (root)
        && json_array_get_length (a = json_node_get_array (root)) == 2
        && JSON_NODE_HOLDS_VALUE (json_array_get_element (a, 0))
        && JSON_NODE_HOLDS_VALUE (json_array_get_element (a, 1))
        && (topic = json_array_get_string_element (a, 0))
        && (payload = json_array_get_string_element (a, 1))) {
      now += G_USEC_PER_SEC;
      r = hud_state_apply (&s, topic, strlen (topic), payload, strlen (payload), NULL, now, why,
          sizeof why);
    } else {
      g_strlcpy (why, "hudcheck: expected a line [topic, payload]", sizeof why);
    }
    gchar *text = dump (&s, r, why);
    printf ("%s\n", text);
    fflush (stdout);
    g_free (text);
    g_object_unref (p);
    g_free (line);
  }
  g_io_channel_unref (in);
  return 0;
}

/* -- the view and the layout, without cairo ------------------------------------------ */

static gdouble
fixed_advance (gpointer ctx, const gchar * text, gdouble px, gboolean bold)
{
  return g_utf8_strlen (text, -1) * px * (bold ? 0.65 : 0.6);
}

static void
add_box (JsonBuilder * b, const gchar * name, const HudBox * box)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  json_builder_add_double_value (b, box->x);
  json_builder_add_double_value (b, box->y);
  json_builder_add_double_value (b, box->w);
  json_builder_add_double_value (b, box->h);
  json_builder_end_array (b);
}

static gchar *
dump_view (const HudState * s, const HudGeometry * g)
{
  static const gchar *kinds[] = { "backdrop", "text", "tag", "number", "frame", "gauge", "tic",
    "slots", "roi"
  };
  HudStyle style = { 3.0, "Sans", TRUE, HUD_CORNER_BOTTOM_LEFT };
  HudView *v = g_new (HudView, 1);
  HudLayout *l = g_new (HudLayout, 1);
  JsonBuilder *b = json_builder_new ();
  JsonGenerator *gen = json_generator_new ();
  JsonNode *root;
  gchar *text;
  /* "now" is the last message's time: nothing is stale */
  hud_view_build (v, s, &style, s->last_message_us, s->version > 0);
  hud_layout (l, v, g, NULL, style.disclaimer, fixed_advance, NULL);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "view");
  json_builder_begin_object (b);
  hud_view_add_json (v, b);
  json_builder_set_member_name (b, "gauge");
  json_builder_add_double_value (b, isnan (v->gauge) ? -1 : v->gauge);
  json_builder_set_member_name (b, "hollow");
  json_builder_add_boolean_value (b, v->hollow);
  json_builder_set_member_name (b, "label_tone");
  json_builder_add_int_value (b, v->label.tone);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "geometry");
  json_builder_begin_array (b);
  json_builder_add_int_value (b, g->out_w);
  json_builder_add_int_value (b, g->out_h);
  json_builder_add_int_value (b, g->video_x);
  json_builder_add_int_value (b, g->video_y);
  json_builder_add_boolean_value (b, g->canvas);
  json_builder_add_boolean_value (b, g->too_small);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "body_px");
  json_builder_add_double_value (b, l->body_px);
  json_builder_set_member_name (b, "fits");
  json_builder_add_boolean_value (b, l->fits);
  json_builder_set_member_name (b, "where");
  json_builder_add_string_value (b, l->where ? l->where : "");
  add_box (b, "panel", &l->panel);
  add_box (b, "disclaimer", &l->disclaimer);
  json_builder_set_member_name (b, "items");
  json_builder_begin_array (b);
  for (gint i = 0; i < l->n; i++) {
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "kind");
    json_builder_add_string_value (b, kinds[l->items[i].kind]);
    json_builder_set_member_name (b, "text");
    json_builder_add_string_value (b, l->items[i].text);
    json_builder_set_member_name (b, "px");
    json_builder_add_double_value (b, l->items[i].px);
    json_builder_set_member_name (b, "tone");
    json_builder_add_int_value (b, l->items[i].tone);
    add_box (b, "box", &l->items[i].box);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, NULL);
  json_node_unref (root);
  g_object_unref (gen);
  g_object_unref (b);
  g_free (v);
  g_free (l);
  return text;
}

static int
view_lines (const gchar * mode, gint w, gint h, gint ow, gint oh)
{
  HudState s;
  HudGeometry g;
  GIOChannel *in = g_io_channel_unix_new (0);
  gchar *line = NULL;
  gsize len;
  gint64 now = 0;
  HudLayoutMode m = !strcmp (mode, "beside") ? HUD_LAYOUT_BESIDE : !strcmp (mode, "over")
      ? HUD_LAYOUT_OVER : HUD_LAYOUT_AUTO;
  hud_geometry (&g, m, w, h, ow, oh);
  hud_state_init (&s);
  g_io_channel_set_encoding (in, NULL, NULL);
  while (g_io_channel_read_line (in, &line, &len, NULL, NULL) == G_IO_STATUS_NORMAL) {
    JsonParser *p = json_parser_new ();
    JsonNode *root;
    JsonArray *a;
    if (json_parser_load_from_data (p, line, (gssize) len, NULL)
        && (root = json_parser_get_root (p)) && JSON_NODE_HOLDS_ARRAY (root)
        && json_array_get_length (a = json_node_get_array (root)) == 2) {
      const gchar *topic = json_array_get_string_element (a, 0);
      const gchar *payload = json_array_get_string_element (a, 1);
      now += G_USEC_PER_SEC;
      if (topic && payload)
        hud_state_apply (&s, topic, strlen (topic), payload, strlen (payload), NULL, now,
            NULL, 0);
    }
    gchar *text = dump_view (&s, &g);
    printf ("%s\n", text);
    fflush (stdout);
    g_free (text);
    g_object_unref (p);
    g_free (line);
  }
  g_io_channel_unref (in);
  return 0;
}

/* -- the screen analysis, on raw luma frames ------------------------------------------- */

static void
print_screen (const HudScreen * sc)
{
  printf ("\"areas\": [");
  for (gint i = 0; i < sc->n_areas; i++)
    printf ("%s[%d, %d, %d, %d]", i ? ", " : "", sc->areas[i].x, sc->areas[i].y, sc->areas[i].w,
        sc->areas[i].h);
  printf ("], \"cells\": [");
  for (gint r = 0; r < sc->rows; r++) {
    printf ("%s\"", r ? ", " : "");
    for (gint c = 0; c < sc->cols; c++)
      putchar (sc->ready ? ".si"[sc->cells[r][c]] : '?');
    printf ("\"");
  }
  printf ("]");
}

/* the screen as the first look made it ("first": provisional), then as learnt; "same": the
 * learnt cells are the provisional ones (the panels stay) */
static int
screen_frames (gint w, gint h)
{
  HudScreen *sc = g_new (HudScreen, 1), *first = g_new0 (HudScreen, 1);
  guint8 *frame = g_malloc ((gsize) w * h);
  gint frames = 0;
  hud_screen_init (sc, w, h);
  while (fread (frame, 1, (gsize) w * h, stdin) == (gsize) w * h) {
    hud_screen_feed (sc, frame, w, 1);
    if (frames++ == 0)
      memcpy (first, sc, sizeof *sc);
  }
  hud_screen_finish (sc);
  printf ("{\"frames\": %d, \"samples\": %d, \"cell\": %d, \"background\": %d, ",
      frames, sc->samples, sc->cell, sc->background);
  print_screen (sc);
  printf (", \"same\": %s, \"first\": {\"ready\": %s, ", hud_screen_same_cells (first, sc)
      ? "true" : "false", first->ready ? "true" : "false");
  print_screen (first);
  printf ("}}\n");
  g_free (frame);
  g_free (first);
  g_free (sc);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc == 3 && !strcmp (argv[1], "schema"))
    return check_schema (argv[2]);
  if (argc == 2 && !strcmp (argv[1], "parse"))
    return parse_lines ();
  if ((argc == 5 || argc == 7) && !strcmp (argv[1], "view"))
    return view_lines (argv[2], atoi (argv[3]), atoi (argv[4]), argc == 7 ? atoi (argv[5]) : 0,
        argc == 7 ? atoi (argv[6]) : 0);
  if (argc == 4 && !strcmp (argv[1], "screen"))
    return screen_frames (atoi (argv[2]), atoi (argv[3]));
  fprintf (stderr, "usage: hudcheck schema DIR | hudcheck parse < LINES | hudcheck view MODE "
      "W H [OW OH] < LINES | hudcheck screen W H < FRAMES\n");
  return 2;
}
