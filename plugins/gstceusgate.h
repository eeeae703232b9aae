#ifndef GST_CEUS_GATE_H
#define GST_CEUS_GATE_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_CEUS_GATE (gst_ceus_gate_get_type ())
G_DECLARE_FINAL_TYPE (GstCeusGate, gst_ceus_gate, GST, CEUS_GATE, GstElement)
GST_ELEMENT_REGISTER_DECLARE (ceusgate);

G_END_DECLS

#endif
