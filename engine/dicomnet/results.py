"""Results back into the study: a Comprehensive SR holding a TID 1500 Measurement Report and a
Secondary Capture of the TIC plot with the slot filmstrip, both written with highdicom,
both in the cine's study (its patient and study modules copied from the cine's header by
highdicom), each in a new series.

The report's one TID 1501 group (Measurements and Qualitative Evaluations) references the
cine with the frame numbers of the 30 scored frames, and holds: P(HCC), the threshold, each
slot's time from t0, the TIC reading's P(HCC); the label and the TIC category as coded
evaluations; the model and backend as the group's algorithm identification (TID 4019);
the flags, the domain state and the disclaimer "trained on simulated data, not for
diagnosis" as text. Concepts that have no code in DCM or SCT use the private scheme
``99CEUS`` (PS3.16 8.2: a local coding scheme, described in the report's own items).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ceustream.engine.core import DISCLAIMER

log = logging.getLogger(__name__)

SCHEME = "99CEUS"
MANUFACTURER = "ceustream"


def _code(value: str, meaning: str, scheme: str = SCHEME):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _scheme():
    """The local scheme declared in the SR (PS3.3 C.12.1.1.2.1)."""
    from pydicom.dataset import Dataset

    d = Dataset()
    d.CodingSchemeDesignator = SCHEME
    d.CodingSchemeName = "ceustream local concepts"
    d.CodingSchemeResponsibleOrganization = "ceustream project"
    return d


def _ucum(value: str, meaning: str):
    return _code(value, meaning, "UCUM")


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


def _label_code(label: str | None):
    return {"HCC": _code("HCC", "Hepatocellular carcinoma (CEUS score)"),
            "non-HCC": _code("NONHCC", "Non-HCC primary liver cancer (CEUS score)"),
            "indeterminate": _code("INDET", "Indeterminate (outside model domain)")}.get(
        label or "", _code("PROV", "Provisional (clip incomplete)"))


def measurement_report(cine: Any, res: Result):
    """The TID 1500 content tree for ``res`` about ``cine`` (a header dataset)."""
    import highdicom as hd
    from highdicom.sr import (AlgorithmIdentification, DeviceObserverIdentifyingAttributes,
                              Measurement, MeasurementReport,
                              MeasurementsAndQualitativeEvaluations, ObservationContext,
                              ObserverContext, QualitativeEvaluation,
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
    unity = _ucum("1", "no units")
    ms: list[Any] = []
    if res.score is not None:
        ms.append(Measurement(name=_code("PHCC", "Probability of HCC (model)"),
                              value=float(res.score), unit=unity, algorithm_id=algo))
    ms.append(Measurement(name=_code("THR", "Decision threshold"), value=float(res.threshold),
                          unit=unity))
    if res.t0_s is not None:
        ms.append(Measurement(name=_code("T0", "Contrast arrival t0 from first frame"),
                              value=float(res.t0_s), unit=_ucum("s", "second")))
    for k, (off, t) in enumerate(zip(res.slot_offsets_s, res.slot_times_s)):
        if t is None:
            continue
        ms.append(Measurement(name=_code(f"SLOT{k:02d}", f"Slot {k} frame time (t0+{off:g} s)"),
                              value=float(t), unit=_ucum("s", "second")))
    tic = res.tic or {}
    if isinstance(tic.get("p_hcc"), (int, float)):
        ms.append(Measurement(name=_code("TICP", "Probability of HCC (TIC reading)"),
                              value=float(tic["p_hcc"]), unit=unity))
    evals = [QualitativeEvaluation(name=_code("LABEL", "CEUS label"),
                                   value=_label_code(res.label))]
    if tic.get("category"):
        evals.append(QualitativeEvaluation(
            name=_code("TICCAT", "TIC category"),
            value=_code(str(tic["category"])[:16].upper(), str(tic["category"])[:64])))
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="CEUS lesion score"),
        algorithm_id=algo, measurements=ms, qualitative_evaluations=evals,
        source_images=[SourceImageForMeasurementGroup.from_source_image(
            cine, referenced_frame_numbers=frames or None)])
    texts = [("DISCL", "Disclaimer", DISCLAIMER + " Trained on simulated data, not for "
              "diagnosis."),
             ("FLAGS", "Flags", ", ".join(res.flags) or "none"),
             ("FINAL", "Final", "final (30/30 slots)" if res.final else
              f"provisional ({sum(t is not None for t in res.slot_times_s)}/"
              f"{len(res.slot_offsets_s)} slots)")]
    d = res.domain or {}
    texts.append(("DOMAIN", "Model domain", f"{d.get('state', 'unknown')}"
                  + (f" (distance {d['distance']:.3g}, threshold {d['threshold']:.3g}, "
                     f"{d.get('method', '')})" if isinstance(d.get("distance"), (int, float))
                     and isinstance(d.get("threshold"), (int, float)) else "")))
    if tic.get("summary"):
        texts.append(("TICSUM", "TIC reading", str(tic["summary"])[:1024]))
    if res.label == "indeterminate" or "out_of_distribution" in res.flags:
        texts.append(("OOD", "Outside model domain", "outside model domain: the TIC reading "
                      "is what still holds" + (
                          "; the probability is the physiology reading's (LI-RADS features of "
                          "the TIC reading, published frequencies), not the network's"
                          if res.score_basis == "physiology" else "")))
    for t in res.extra_text:
        texts.append(("NOTE", "Note", t[:1024]))
    for value, meaning, text in texts:  # inside the group container (TID 1501)
        group[0].ContentSequence.append(TextContentItem(name=_code(value, meaning), value=text,
                                                        relationship_type="CONTAINS"))
    return MeasurementReport(
        observation_context=ObservationContext(observer_device_context=device),
        procedure_reported=_code("CEUS", "Contrast-enhanced ultrasound of the liver"),
        imaging_measurements=[group])


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
    sr.CodingSchemeIdentificationSequence = [_scheme()]
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
