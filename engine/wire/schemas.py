"""The v1 JSON Schema files as a consumer needs them: one file per message, without ``$ref``.

The shipped files (``schema/{common,score,status,command}.v1.json``, see :func:`schema_dir`)
share definitions through ``$ref``s relative to ``$id``s on ``ceustream.invalid``, which no
resolver can fetch: they resolve only through a registry that holds all four files. The
*bundled* copies made here inline every ``$ref``, so each stands alone.

Compatibility (the policy, also in the README and CHANGELOG): within v1 fields are only
ever added, never removed, renamed or given another type or meaning; a consumer must ignore
fields it does not know. The shipped score and status files say ``additionalProperties:
false`` because the engine's own tests use them to catch a field sent but not described;
their bundled *consumer* copies (the default here) drop it, so a consumer validating with
them keeps working when fields are added. Commands go the other way (a client writes them,
the engine reads them): the command schema stays strict, as the engine refuses unknown keys.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from .messages import SCHEMAS, VERSION, schema_dir, schema_text

log = logging.getLogger(__name__)

#: the messages a consumer receives (open copies by default) and sends (strict)
RECEIVED = ("score", "status")
SENT = ("command",)
BUNDLED_ID = "https://ceustream.invalid/schema/bundled/{name}.v{v}.json"

__all__ = ["bundle", "write_bundled", "schema_dir", "RECEIVED", "SENT"]


def _documents() -> dict[str, dict[str, Any]]:
    return {n: json.loads(schema_text(n)) for n in SCHEMAS}


def _resolve(ref: str, base: str, docs: dict[str, dict]) -> tuple[Any, str]:
    """``common.v1.json#/$defs/exam`` or ``#/$defs/seconds`` (within ``base``) → (the node,
    the document it is in)."""
    file, _, pointer = ref.partition("#")
    name = file.split(".v", 1)[0] if file else base
    if name not in docs:
        raise ValueError(f"$ref {ref!r}: no schema {name!r}")
    node: Any = docs[name]
    for part in filter(None, pointer.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, name


def _inline(node: Any, base: str, docs: dict[str, dict], open_objects: bool,
            depth: int = 0) -> Any:
    if depth > 64:
        raise ValueError("schema $refs nest more than 64 deep (a cycle?)")
    if isinstance(node, list):
        return [_inline(x, base, docs, open_objects, depth + 1) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target, where = _resolve(node["$ref"], base, docs)
        out = _inline(target, where, docs, open_objects, depth + 1)
        out = dict(out) if isinstance(out, dict) else {"allOf": [out]}
        for k, v in node.items():  # a sibling (a description) says more than the target
            if k != "$ref":
                out[k] = _inline(v, base, docs, open_objects, depth + 1)
        return out
    out = {k: _inline(v, base, docs, open_objects, depth + 1) for k, v in node.items()
           if k != "$defs"}
    if open_objects and out.get("additionalProperties") is False:
        del out["additionalProperties"]
    return out


def bundle(name: str, open_objects: bool | None = None) -> dict[str, Any]:
    """The schema of message ``name`` ("score", "status" or "command") with every ``$ref``
    inlined. ``open_objects`` (default: True for received messages, False for commands)
    drops ``additionalProperties: false`` so that fields added within v1 validate."""
    if name not in RECEIVED + SENT:
        raise ValueError(f"no message schema {name!r}: expected one of "
                         f"{', '.join(RECEIVED + SENT)}")
    open_objects = name in RECEIVED if open_objects is None else open_objects
    docs = _documents()
    out = _inline(copy.deepcopy(docs[name]), name, docs, open_objects)
    out["$id"] = BUNDLED_ID.format(name=name, v=VERSION)
    out["$comment"] = ("bundled from the ceustream v1 schema files, every reference inlined; " +
                       ("unknown fields allowed (consumers must ignore them)" if open_objects
                        else "strict: unknown fields are refused"))
    return out


def write_bundled(folder: str | Path) -> list[Path]:
    """Writes ``<name>.v1.json`` for every message into ``folder``; returns the paths."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in RECEIVED + SENT:
        p = d / f"{name}.v{VERSION}.json"
        p.write_text(json.dumps(bundle(name), indent=2, ensure_ascii=False) + "\n",
                     encoding="utf-8")
        paths.append(p)
    log.info("bundled schemas written to %s", d)
    return paths
