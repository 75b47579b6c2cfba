"""A small deterministic YAML writer (block mappings, flow lists of scalars, JSON-quoted strings).

The exporter must run where PyYAML is absent (a CUDA machine with only PyTorch and ONNX), and a
fixed layout keeps manifests diff-friendly. Output is plain YAML 1.2 that serde_yaml and PyYAML read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
        text = repr(v)
        if "e" in text and "." not in text:  # "2e-06": YAML 1.1 (PyYAML) reads a float only with a dot
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
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


class YamlError(ValueError):
    """Text outside the subset `dump` writes (or malformed)."""


def load(text: str):
    """Reads what `dump` writes: block mappings and sequences (two-space indent), flow mappings and
    lists, plain and JSON-quoted scalars. Used for the exporter's own manifests (the up-to-date check),
    so that it needs no PyYAML; anything else is a `YamlError`, never a guess."""
    lines = [(len(s) - len(s.lstrip(" ")), s.strip(), n) for n, s in enumerate(text.splitlines(), 1)
             if s.strip() and not s.lstrip().startswith("#")]
    value, i = _load_block(lines, 0, 0)
    if i != len(lines):
        raise YamlError(f"line {lines[i][2]}: unexpected indentation")
    return value


def _load_block(lines, i: int, indent: int):
    if i >= len(lines) or lines[i][0] != indent:
        raise YamlError(f"line {lines[i][2] if i < len(lines) else 'EOF'}: expected a block at indent {indent}")
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        items: list[Any] = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("-"):
            rest = lines[i][1][1:].strip()
            if _key_split(rest) is not None and not rest.startswith(("{", "[")):
                # "- key: value" opens a mapping whose further keys sit at indent + 2
                sub = [(indent + 2, rest, lines[i][2])] + lines[i + 1:]
                item, j = _load_block(sub, 0, indent + 2)
                items.append(item)
                i = i + j
            else:
                items.append(_flow_value(rest, lines[i][2]))
                i += 1
        return items, i
    out: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        _, s, n = lines[i]
        kv = _key_split(s)
        if kv is None:
            raise YamlError(f"line {n}: expected `key: value`")
        key, rest = kv
        if rest == "":
            if i + 1 < len(lines) and lines[i + 1][0] > indent:
                out[key], i = _load_block(lines, i + 1, lines[i + 1][0])
                continue
            out[key] = None
        else:
            out[key] = _flow_value(rest, n)
        i += 1
    return out, i


def _key_split(s: str):
    """(key, rest) of `key: rest` at the top level of `s`, or None."""
    if s.startswith('"'):
        end = _string_end(s, 0)
        if s[end:end + 1] == ":" and (end + 1 == len(s) or s[end + 1] == " "):
            return json.loads(s[:end]), s[end + 1:].strip()
        return None
    for j, ch in enumerate(s):
        if ch in "{[\"":
            return None
        if ch == ":" and (j + 1 == len(s) or s[j + 1] == " "):
            return s[:j], s[j + 1:].strip()
    return None


def _string_end(s: str, start: int) -> int:
    j = start + 1
    while j < len(s):
        if s[j] == "\\":
            j += 2
            continue
        if s[j] == '"':
            return j + 1
        j += 1
    raise YamlError(f"unterminated string in `{s}`")


def _flow_value(s: str, n: int):
    value, j = _parse_flow(s.strip(), 0, n)
    if s.strip()[j:].strip():
        raise YamlError(f"line {n}: trailing text in `{s}`")
    return value


def _parse_flow(s: str, i: int, n: int):
    while i < len(s) and s[i] == " ":
        i += 1
    if i < len(s) and s[i] in "[{":
        close = "]" if s[i] == "[" else "}"
        items: list[Any] = []
        mapping: dict[str, Any] = {}
        i += 1
        while True:
            while i < len(s) and s[i] == " ":
                i += 1
            if i < len(s) and s[i] == close:
                return (items if close == "]" else mapping), i + 1
            if close == "}":
                key, i = _flow_scalar(s, i, n, stop=":")
                if s[i:i + 1] != ":":
                    raise YamlError(f"line {n}: expected `:` in `{s}`")
                value, i = _parse_flow(s, i + 1, n)
                mapping[key] = value
            else:
                value, i = _parse_flow(s, i, n)
                items.append(value)
            while i < len(s) and s[i] == " ":
                i += 1
            if s[i:i + 1] == ",":
                i += 1
            elif s[i:i + 1] != close:
                raise YamlError(f"line {n}: expected `,` or `{close}` in `{s}`")
    return _flow_scalar(s, i, n, stop=",]}")


def _flow_scalar(s: str, i: int, n: int, stop: str):
    if s[i:i + 1] == '"':
        end = _string_end(s, i)
        return json.loads(s[i:end]), end
    j = i
    while j < len(s) and s[j] not in stop:
        j += 1
    return _plain(s[i:j].strip()), j


def _plain(t: str):
    if t in ("null", "~", ""):
        return None
    if t == "true":
        return True
    if t == "false":
        return False
    if re.fullmatch(r"[-+]?[0-9]+", t):
        return int(t)
    if re.fullmatch(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?", t):
        return float(t)
    return t


# -- editing a manifest's lines in place ---------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One line of a manifest in the layout [`dump`] writes: the top-level section it is in, the key
    at indent 2 it is under (`decoder` under `graphs`), its indent and its text without it. On a
    section's first line, `ended` is the section before it (the one this line ends); else empty."""

    text: str
    section: str
    key: str
    indent: int
    stripped: str
    ended: str = ""

    def revision(self, at_least: int) -> str | None:
        """This line with `provenance.export_revision` raised to `at_least`, when it is that line."""
        m = re.match(r"export_revision: (\d+)$", self.stripped) if self.section == "provenance" and self.indent == 2 \
            else None
        return f"  export_revision: {max(int(m[1]), at_least)}" if m else None


def lines(text: str) -> Iterator[Line]:
    """The lines of a manifest `text` with where each one stands, for the edits that rewrite a few
    lines and keep the rest of the file as it was written."""
    section, key = "", ""
    for text_line in text.split("\n"):
        stripped = text_line.lstrip(" ")
        indent = len(text_line) - len(stripped)
        ended = ""
        if indent == 0 and stripped:
            ended, section, key = section, stripped.split(":", 1)[0], ""
        elif indent == 2:
            key = stripped.split(":", 1)[0]
        yield Line(text_line, section, key, indent, stripped, ended)
