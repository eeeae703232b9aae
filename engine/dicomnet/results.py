"""Results back into the study: a Comprehensive SR holding a TID 1500 Measurement Report and a
Secondary Capture of the TIC plot with the slot filmstrip, both written with highdicom,
both in the cine's study (its patient and study modules copied from the cine's header by
highdicom), each in a new series.

The report's one TID 1501 group (Measurements and Qualitative Evaluations) references the
cine with the frame numbers of the 30 scored frames, and holds: P(HCC), the threshold, each
slot's time from t0, the TIC reading's P(HCC) (numbers); the label, the TIC category, the
flags, the domain state and the disclaimer "trained on simulated data, not for diagnosis"
(text); the model and backend as the group's algorithm identification (TID 4019); the
finding site (SCT Liver). The procedure reported is SCT "Diagnostic ultrasonography", its
"Equivalent Meaning of Value" (DCM 121051) "Contrast-enhanced ultrasound of the liver".

Every concept is a standard code (DCM, SCT, UCUM; each checked against pydicom's code
dictionary): what the standard codes only generically (a "Probability", a "Time", a
"Comment") carries its exact meaning in a child "Equivalent Meaning of Concept Name"
(DCM 121050, HAS CONCEPT MOD, TEXT); what has no standard code (the label HCC / non-HCC,
the TIC category) is text. No local coding scheme: dicom3tools' ``dciodvfy`` knows only
a fixed list of schemes and warns on any other, declared or not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ceustream.engine.core import DISCLAIMER

log = logging.getLogger(__name__)

MANUFACTURER = "ceustream"


def _meaning(item: Any, text: str, of_value: bool = False) -> Any:
    """``item`` (a content item) with a child giving its exact meaning as text: "Equivalent
    Meaning of Concept Name" (DCM 121050), or "... of Value" (DCM 121051) for a code's value."""
    from highdicom.sr import TextContentItem
    from pydicom.sr.codedict import codes

    name = (codes.DCM.EquivalentMeaningOfValue if of_value
            else codes.DCM.EquivalentMeaningOfConceptName)
    if "ContentSequence" not in item:
        item.ContentSequence = []
    item.ContentSequence.append(TextContentItem(name=name, value=text,
                                                relationship_type="HAS CONCEPT MOD"))
    return item


#: Type 2 attributes of the Patient and General Study modules that the SR and SC copy from
#: the cine: an archive's cine may lack them (present-but-empty is what the standard asks)
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber")


def evidence_header(cine: Any) -> Any:
    """A copy of the cine's header with the Type 2 attributes the writers copy present."""
    import copy

    ds = copy.deepcopy(cine)
    for k in TYPE2:
        if k not in ds:
            setattr(ds, k, "")
    return ds


@dataclass
class Result:
    """What the SR says, from a replay/QA result (no identifiers in it)."""

    score: float | None
    label: str | None            # HCC | non-HCC | indeterminate | None (provisional)
    final: bool
    threshold: float
    t0_s: float | None
    slot_offsets_s: list[float]
    slot_frames: list[int | None]  # 1-based frame numbers of the multi-frame, per slot
    slot_times_s: list[float | None]
    flags: list[str]
    model_name: str
    model_sha256: str
    backend: str
    software_version: str
    tic: dict[str, Any] | None = None
    domain: dict[str, Any] | None = None
    extra_text: list[str] = field(default_factory=list)
    #: what ``score`` stands on: "network", "fusion" or "physiology" (outside the model's
    #: domain: the TIC reading's LI-RADS features weighed by published frequencies)
    score_basis: str | None = None


def label_text(label: str | None) -> str:
    """The label as the SR says it."""
    return {"HCC": "Hepatocellular carcinoma (CEUS score)",
            "non-HCC": "Non-HCC primary liver cancer (CEUS score)",
            "indeterminate": "Indeterminate (outside model domain)"}.get(
        label or "", "Provisional (clip incomplete)")


def measurement_report(cine: Any, res: Result):
    """The TID 1500 content tree for ``res`` about ``cine`` (a header dataset)."""
    import highdicom as hd
    from highdicom.sr import (AlgorithmIdentification, CodedConcept,
                              DeviceObserverIdentifyingAttributes, FindingSite, Measurement,
                              MeasurementReport, MeasurementsAndQualitativeEvaluations,
                              ObservationContext, ObserverContext,
                              SourceImageForMeasurementGroup, TextContentItem,
                              TrackingIdentifier)
    from pydicom.sr.codedict import codes

    device = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="ceustream", manufacturer_name=MANUFACTURER,
            model_name=res.model_name[:64]))
    algo = AlgorithmIdentification(name=res.model_name[:64], version=res.model_sha256[:16],
                                   parameters=[f"backend={res.backend}"[:64],
                                               f"sha256={res.model_sha256}"[:64]])
    frames = sorted({f for f in res.slot_frames if f is not None})
    unity, second = codes.UCUM.NoUnits, codes.UCUM.Second

    def num(name: Any, meaning: str, value: float, unit: Any, **kw: Any) -> Any:
        m = Measurement(name=name, value=float(value), unit=unit, **kw)
        _meaning(m[0], meaning)
        return m

    ms: list[Any] = []
    if res.score is not None:
        ms.append(num(codes.DCM.Probability, "Probability of HCC (model)", res.score, unity,
                      algorithm_id=algo))
    ms.append(num(codes.DCM.Probability, "Decision threshold on the probability of HCC",
                  res.threshold, unity))
    if res.t0_s is not None:
        ms.append(num(codes.DCM.BolusArrivalTime, "Contrast arrival t0 from first frame",
                      res.t0_s, second))
    for k, (off, t) in enumerate(zip(res.slot_offsets_s, res.slot_times_s)):
        if t is not None:
            ms.append(num(codes.DCM.Time, f"Slot {k} frame time (t0+{off:g} s)", t, second))
    tic = res.tic or {}
    if isinstance(tic.get("p_hcc"), (int, float)):
        ms.append(num(codes.DCM.Probability, "Probability of HCC (TIC reading)",
                      tic["p_hcc"], unity))
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="CEUS lesion score"),
        algorithm_id=algo, measurements=ms,
        finding_sites=[FindingSite(anatomic_location=codes.SCT.Liver)],
        source_images=[SourceImageForMeasurementGroup.from_source_image(
            cine, referenced_frame_numbers=frames or None)])
    # (concept, its exact meaning, the text); no standard code holds these values
    finding, comment = codes.DCM.Finding, codes.DCM.Comment
    texts = [(finding, "CEUS label (model classification)", label_text(res.label))]
    if tic.get("category"):
        texts.append((finding, "TIC category", str(tic["category"])))
    texts += [(comment, "Disclaimer", DISCLAIMER + " Trained on simulated data, not for "
               "diagnosis."),
              (comment, "Flags", ", ".join(res.flags) or "none"),
              (comment, "Final", "final (30/30 slots)" if res.final else
               f"provisional ({sum(t is not None for t in res.slot_times_s)}/"
               f"{len(res.slot_offsets_s)} slots)")]
    d = res.domain or {}
    texts.append((comment, "Model domain", f"{d.get('state', 'unknown')}"
                  + (f" (distance {d['distance']:.3g}, threshold {d['threshold']:.3g}, "
                     f"{d.get('method', '')})" if isinstance(d.get("distance"), (int, float))
                     and isinstance(d.get("threshold"), (int, float)) else "")))
    if tic.get("summary"):
        texts.append((comment, "TIC reading", str(tic["summary"])[:1024]))
    if res.label == "indeterminate" or "out_of_distribution" in res.flags:
        texts.append((comment, "Outside model domain", "outside model domain: the TIC "
                      "reading is what still holds" + (
                          "; the probability is the physiology reading's (LI-RADS features of "
                          "the TIC reading, published frequencies), not the network's"
                          if res.score_basis == "physiology" else "")))
    for t in res.extra_text:
        texts.append((comment, "Note", t[:1024]))
    for name, meaning, text in texts:  # inside the group container (TID 1501)
        group[0].ContentSequence.append(_meaning(
            TextContentItem(name=name, value=text, relationship_type="CONTAINS"), meaning))
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=device),
        procedure_reported=CodedConcept.from_code(codes.SCT.DiagnosticUltrasonography),
        imaging_measurements=[group])
    for item in report[0].ContentSequence:  # the procedure: what kind of ultrasonography
        if item.ConceptNameCodeSequence[0].CodeValue == "121058":
            _meaning(item, "Contrast-enhanced ultrasound of the liver", of_value=True)
    return report


def write_sr(cine: Any, res: Result, series_number: int = 9901):
    """The Comprehensive SR (a pydicom dataset) in the cine's study."""
    import highdicom as hd

    cine = evidence_header(cine)
    report = measurement_report(cine, res)
    sr = hd.sr.ComprehensiveSR(
        evidence=[cine], content=report, series_instance_uid=hd.UID(),
        series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=bool(res.final), is_final=False,
        is_verified=False)
    sr.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the TIC summary may hold any character
    sr.SeriesDescription = "ceustream CEUS score (simulated-data model)"
    sr.SoftwareVersions = res.software_version[:64]
    return sr


def write_sc(cine: Any, rgb: np.ndarray, res: Result, series_number: int = 9902):
    """A Secondary Capture (RGB) of the TIC plot and filmstrip, in the cine's study."""
    import highdicom as hd

    cine = evidence_header(cine)
    img = np.ascontiguousarray(rgb[..., :3].astype(np.uint8))
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=cine, pixel_array=img, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=hd.UID(),
        series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, patient_orientation=("L", "F"),
        transfer_syntax_uid="1.2.840.10008.1.2.1")
    sc.SeriesDescription = "ceustream TIC and slot filmstrip (simulated-data model)"
    sc.ImageComments = (DISCLAIMER + f" P(HCC) {res.score:.3f}" if res.score is not None
                        else DISCLAIMER)[:10240]
    sc.BurnedInAnnotation = "YES"
    # General Series Laterality (Type 2C) is absent for an unpaired body part: the liver
    sc.BodyPartExamined = "LIVER"
    if "Laterality" in sc:
        del sc.Laterality
    sc.SoftwareVersions = res.software_version[:64]
    return sc
