"""The contract a model carries inside its ONNX file (metadata key ``ceustream``).

The schedule, input size, channel order, normalisation and class names travel with the
weights, so the engine configures itself from the model it loads: a model trained on another
schedule is served correctly without code changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError

META_KEY = "ceustream"
META_FORMAT = 1

#: The paper's schedule (section 1.1.6): 25 frames at 2 s from t0, then 5 at 30 s from 60 s.
PAPER_OFFSETS_S = tuple(float(2 * i) for i in range(25)) + (60.0, 90.0, 120.0, 150.0, 180.0)
#: Half the video-phase spacing; in the late phase a frame within 3 s still shows the same phase.
PAPER_TOLERANCE_S = (1.0,) * 25 + (3.0,) * 5


@dataclass(frozen=True)
class ModelMeta:
    name: str
    offsets_s: tuple[float, ...] = PAPER_OFFSETS_S
    tolerance_s: tuple[float, ...] = PAPER_TOLERANCE_S
    input_name: str = "clip"
    output_name: str = "prob"
    layout: str = "NCDHW"
    height: int = 64
    width: int = 64
    channels: int = 1
    color: str = "luma"
    #: model input = (pixel * scale - mean) / std, pixel in 0..255
    norm_scale: float = 1.0 / 255.0
    norm_mean: float = 0.0
    norm_std: float = 1.0
    classes: tuple[str, ...] = ("non-HCC", "HCC")
    positive: str = "HCC"
    output_kind: str = "probabilities"
    threshold: float = 0.5
    #: "simulated", "untrained" or "real": shown next to every score
    trained_on: str = "untrained"
    #: how the clip becomes the input (``preprocess.Preprocessing``): {"kind": "scale"} is
    #: the pixel scaling above alone; {"kind": "liver_rank", "ring": 0.1} ranks every pixel
    #: among the ROI border's (the liver's) pixels first
    preprocessing: dict[str, Any] = field(default_factory=lambda: {"kind": "scale"})
    #: the clip's second reading, beside the network (``core.analysis``): the time-intensity
    #: curve model's coefficients and the out-of-distribution reference; {} = none
    analysis: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return len(self.offsets_s)

    @property
    def positive_index(self) -> int:
        return self.classes.index(self.positive)

    def preprocessing_spec(self):
        from .preprocess import Preprocessing

        return Preprocessing.from_dict(self.preprocessing)

    def label_for(self, p: float) -> str:
        """The class name for P(positive) ``p`` at this model's threshold."""
        if p >= self.threshold:
            return self.positive
        return next(c for c in self.classes if c != self.positive)

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        return (batch, self.channels, self.frames, self.height, self.width)

    def to_json(self) -> str:
        d = asdict(self)
        d["format"] = META_FORMAT
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "model") -> "ModelMeta":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError(f"{where}: metadata '{META_KEY}' is not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise ModelError(f"{where}: metadata '{META_KEY}' must be a JSON object")
        fmt = d.pop("format", None)
        if fmt != META_FORMAT:
            raise ModelError(f"{where}: metadata format {fmt!r} is not supported "
                             f"(this engine reads format {META_FORMAT})")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelError(f"{where}: unknown metadata field(s) {', '.join(unknown)}")
        if "name" not in d:
            raise ModelError(f"{where}: metadata lacks 'name'")
        for k in ("offsets_s", "tolerance_s", "classes"):
            if k in d:
                if not isinstance(d[k], list):
                    raise ModelError(f"{where}: metadata field {k} must be a list")
                d[k] = tuple(d[k])
        try:
            meta = cls(**d)
        except TypeError as e:
            raise ModelError(f"{where}: bad metadata ({e})") from None
        meta.validate(where)
        return meta

    def validate(self, where: str = "model") -> None:
        def bad(msg: str) -> ModelError:
            return ModelError(f"{where}: metadata {msg}")

        if not self.offsets_s or any(not isinstance(x, (int, float)) for x in self.offsets_s):
            raise bad("offsets_s must be a non-empty list of seconds")
        if list(self.offsets_s) != sorted(self.offsets_s) or len(set(self.offsets_s)) != len(
                self.offsets_s) or self.offsets_s[0] < 0:
            raise bad("offsets_s must be strictly increasing and >= 0")
        if len(self.tolerance_s) != len(self.offsets_s) or any(
                not isinstance(x, (int, float)) or x <= 0 for x in self.tolerance_s):
            raise bad("tolerance_s must give one positive tolerance per slot")
        if self.layout != "NCDHW":
            raise bad(f"layout {self.layout!r} is not supported (NCDHW only)")
        if self.channels != 1 or self.color != "luma":
            raise bad("only single-channel luma input is supported")
        for k in ("height", "width"):
            v = getattr(self, k)
            if not isinstance(v, int) or not 8 <= v <= 1024:
                raise bad(f"{k} must be an integer in 8..1024")
        if not isinstance(self.norm_std, (int, float)) or self.norm_std == 0:
            raise bad("norm_std must be non-zero")
        if len(self.classes) != 2 or self.positive not in self.classes:
            raise bad("classes must name two classes including the positive one")
        if self.output_kind not in ("probabilities", "logits"):
            raise bad("output_kind must be 'probabilities' or 'logits'")
        if not 0.0 < self.threshold < 1.0:
            raise bad("threshold must be in (0, 1)")
        if self.trained_on not in ("simulated", "untrained", "real"):
            raise bad("trained_on must be 'simulated', 'untrained' or 'real'")
        if not isinstance(self.preprocessing, dict):
            raise bad("preprocessing must be an object")
        try:
            self.preprocessing_spec()
        except (TypeError, ValueError) as e:
            raise bad(str(e)) from None
        if not isinstance(self.analysis, dict):
            raise bad("analysis must be an object")


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    meta: ModelMeta
    sha256: str
    #: the FP16 sibling (same weights, precision in the graph) when it exists
    fp16_path: Path | None = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.meta.name, "sha256": self.sha256, "trained_on": self.meta.trained_on}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = out = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, i
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of one protobuf message: ints for varints, bytes for
    length-delimited fields; fixed-width fields are skipped over."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            v, i = buf[i:i + n], i + n
        elif wire == 1:
            v, i = None, i + 8
        elif wire == 5:
            v, i = None, i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield num, wire, v


# ONNX ModelProto: graph = 7, metadata_props = 14 (StringStringEntryProto: key 1, value 2);
# GraphProto: input = 11, output = 12 (ValueInfoProto: name = 1). See onnx/onnx.proto.
def _graph_facts(p: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """(metadata, input names, output names), read straight from the ONNX protobuf: no onnx
    or ONNX Runtime import is needed to know what a model file promises."""
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelError(f"model {p}: cannot be read ({e.strerror})") from None

    def name_of(value_info: bytes) -> str:
        for num, wire, v in _fields(value_info):
            if num == 1 and wire == 2:
                return v.decode("utf-8", "replace")
        return ""

    props: dict[str, str] = {}
    inputs: list[str] = []
    outputs: list[str] = []
    try:
        graph = None
        for num, wire, v in _fields(data):
            if num == 7 and wire == 2:
                graph = v
            elif num == 14 and wire == 2:
                kv = {n: x.decode("utf-8") for n, w, x in _fields(v) if w == 2 and n in (1, 2)}
                props[kv.get(1, "")] = kv.get(2, "")
        if graph is None:
            raise ValueError("no graph")
        for num, wire, v in _fields(graph):
            if num == 11 and wire == 2:
                inputs.append(name_of(v))
            elif num == 12 and wire == 2:
                outputs.append(name_of(v))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"model {p}: not a readable ONNX file ({e})") from None
    return props, inputs, outputs


def read(path: str | Path) -> LoadedModel:
    """Reads and validates the metadata of an ONNX model file."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model {p}: file not found")
    props, inputs, outputs = _graph_facts(p)
    if META_KEY not in props:
        raise ModelError(f"model {p}: no '{META_KEY}' metadata (schedule, input size, "
                         "classes); export it with `ceustream export`")
    meta = ModelMeta.from_json(props[META_KEY], f"model {p}")
    if meta.input_name not in inputs:
        raise ModelError(f"model {p}: metadata names input {meta.input_name!r} but the graph "
                         f"has {inputs}")
    if meta.output_name not in outputs:
        raise ModelError(f"model {p}: metadata names output {meta.output_name!r} but the graph"
                         f" has {outputs}")
    fp16 = p.with_name(p.stem + "_fp16" + p.suffix)
    return LoadedModel(p, meta, file_sha256(p), fp16 if fp16.exists() else None)


def write(model: Any, meta: ModelMeta) -> None:
    """Stores ``meta`` in an in-memory ``onnx.ModelProto`` (replacing an earlier one)."""
    meta.validate("export")
    keep = [m for m in model.metadata_props if m.key != META_KEY]
    del model.metadata_props[:]
    for m in keep:
        model.metadata_props.append(m)
    entry = model.metadata_props.add()
    entry.key = META_KEY
    entry.value = meta.to_json()


def shipped_model_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("ceustream.models") / "weights" / "cnn3d.onnx"))
