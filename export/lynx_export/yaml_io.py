"""A small deterministic YAML writer (block mappings, flow lists of scalars, JSON-quoted strings).

The exporter must run where PyYAML is absent (a CUDA machine with only PyTorch and ONNX), and a
fixed layout keeps manifests diff-friendly. Output is plain YAML 1.2 that serde_yaml and PyYAML read.
"""

from __future__ import annotations

import json
import math
import re

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./+-]*$")
_RESERVED = {"null", "true", "false", "yes", "no", "on", "off", "~", "y", "n"}


def scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError("non-finite float in manifest")
        return repr(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return json.dumps(s, ensure_ascii=False)


def _flow(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{scalar(k)}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return scalar(v)


def _is_flat(v) -> bool:
    """Small enough to write on one line: a mapping or list of scalars."""
    if isinstance(v, dict):
        return all(not isinstance(x, (dict, list, tuple)) or (isinstance(x, (list, tuple)) and
                   all(not isinstance(y, (dict, list, tuple)) for y in x)) for x in v.values()) and len(_flow(v)) < 100
    if isinstance(v, (list, tuple)):
        return all(not isinstance(x, (dict, list, tuple)) for x in v)
    return True


def dump(data: dict) -> str:
    lines: list[str] = []
    _block(data, 0, lines)
    return "\n".join(lines) + "\n"


def _block(v, indent: int, lines: list[str]):
    pad = " " * indent
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, (dict, list, tuple)) and x and not _is_flat(x):
                lines.append(f"{pad}{scalar(k)}:")
                _block(x, indent + 2, lines)
            else:
                lines.append(f"{pad}{scalar(k)}: {_flow(x)}")
    elif isinstance(v, (list, tuple)):
        for x in v:
            if isinstance(x, dict) and not _is_flat(x):
                sub: list[str] = []
                _block(x, indent + 2, sub)
                sub[0] = f"{pad}- " + sub[0].lstrip()
                lines.extend(sub)
            else:
                lines.append(f"{pad}- {_flow(x)}")
