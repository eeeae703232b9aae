"""TensorRT plans on disk, keyed so that a stale or foreign plan is rebuilt, never loaded.

A plan is tied to the exact TensorRT version, the GPU's compute capability and the OS
(tensorrt.md section 1), and of course to the ONNX it came from, its precision and its
optimisation profile. The key is the sha256 of all of these; the plan's folder also holds
a ``plan.json`` with the fields in clear, checked again before a plan is deserialised.
Plain Python: tested without a GPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PROFILE = (1, 8, 32)  # batch min, opt, max: several exams at once


@dataclass(frozen=True)
class PlanKey:
    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: tuple[int, int, int] = PROFILE
    os: str = f"{platform.system()}-{platform.machine()}"

    @property
    def digest(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:24]

    def describe(self) -> dict:
        d = asdict(self)
        d["profile"] = list(self.profile)
        d["digest"] = self.digest
        return d


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "ceustream" / "trt"


class PlanStore:
    """``<root>/<digest>/{plan.bin, plan.json}`` plus one shared timing cache per TensorRT
    version and GPU."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_dir()

    def path(self, key: PlanKey) -> Path:
        return self.root / key.digest

    def timing_cache_path(self, key: PlanKey) -> Path:
        tag = hashlib.sha256(f"{key.trt_version}|{key.gpu_name}|{key.compute_capability}"
                             .encode()).hexdigest()[:16]
        return self.root / f"timing-{tag}.cache"

    def load(self, key: PlanKey) -> tuple[bytes | None, str]:
        """(plan bytes or None, why not). A plan whose recorded key differs from ``key`` is
        refused (foreign: copied from another machine or TensorRT version)."""
        d = self.path(key)
        plan, meta = d / "plan.bin", d / "plan.json"
        if not plan.exists() or not meta.exists():
            return None, "no cached plan"
        try:
            recorded = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            return None, "cached plan's description is unreadable"
        want = key.describe()
        for field in ("onnx_sha256", "trt_version", "gpu_name", "compute_capability",
                      "precision", "profile", "os"):
            if recorded.get(field) != want[field]:
                return None, (f"cached plan is for {field}={recorded.get(field)!r}, "
                              f"this machine needs {want[field]!r}")
        data = plan.read_bytes()
        if hashlib.sha256(data).hexdigest() != recorded.get("plan_sha256"):
            return None, "cached plan is corrupt (checksum mismatch)"
        return data, "cached plan matches"

    def save(self, key: PlanKey, plan: bytes, build_s: float) -> Path:
        d = self.path(key)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "plan.bin.tmp"
        tmp.write_bytes(plan)
        tmp.replace(d / "plan.bin")
        meta = key.describe() | {"plan_sha256": hashlib.sha256(plan).hexdigest(),
                                 "build_s": round(build_s, 2), "bytes": len(plan)}
        (d / "plan.json").write_text(json.dumps(meta, indent=1))
        log.info("TensorRT plan cached: %s (%d bytes, built in %.1f s)", d, len(plan), build_s)
        return d / "plan.bin"

    def invalidate(self, key: PlanKey) -> None:
        d = self.path(key)
        log.info("TensorRT plan removed from the cache: %s", d)
        for f in ("plan.bin", "plan.json"):
            (d / f).unlink(missing_ok=True)
