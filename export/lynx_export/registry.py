"""The variant registry (timm style): variants are registered in one place and looked up by name.

    Variant("lynx-xattn", changes="connector", ..., overrides=dict(connector={"kind": "cross_attention"}))
    register_variant(record.config)   # variants.py does this for every record of VARIANTS

`create_variant(name)` returns the validated `VariantConfig`; `list_variants()` the names.
"""

from __future__ import annotations

import difflib
from typing import Callable

from . import config as C

_REGISTRY: dict[str, Callable[[], C.VariantConfig]] = {}


def register_variant(fn: Callable[[], C.VariantConfig]):
    cfg = fn()
    if cfg.name in _REGISTRY:
        raise ValueError(f"variant `{cfg.name}` registered twice")
    _REGISTRY[cfg.name] = fn
    return fn


def create_variant(name: str, **overrides) -> C.VariantConfig:
    """The registered variant `name`, optionally with overrides (unknown keys are an error)."""
    _load()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f"; similar: `{close[0]}`" if close else ""
        raise KeyError(f"no variant `{name}`{hint}")
    cfg = _REGISTRY[name]()
    if overrides:
        cfg = C.replace(cfg, **overrides)
    return cfg.validate()


def list_variants() -> list[str]:
    _load()
    return list(_REGISTRY)


def _load():
    from . import variants  # noqa: F401  (registers on import)
