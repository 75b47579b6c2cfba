"""The variant registry (timm style): variants are registered in one place and looked up by name.

    Variant("lynx-xattn", changes="connector", ..., overrides=dict(connector={"kind": "cross_attention"}))
    register_variant(record.config)   # variants.py does this for every record of VARIANTS

`create_variant(name)` returns the validated `VariantConfig`; `list_variants()` the names.

A seed replicate needs no record: `NAME-seedK` is the registered variant NAME trained with seed K
(initialisation, data order and subsets), `seed_of: NAME` in its manifest; `compare` folds NAME and
its replicates into one row with the spread over seeds. `list_variants()` names the replicates the
zoo ships (variants.REPLICATES) after the records.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable

from . import config as C

_REGISTRY: dict[str, Callable[[], C.VariantConfig]] = {}
_REPLICATE = re.compile(r"(?P<of>.+)-seed(?P<seed>[1-9][0-9]*)")


def register_variant(fn: Callable[[], C.VariantConfig]):
    cfg = fn()
    if cfg.name in _REGISTRY:
        raise ValueError(f"variant `{cfg.name}` registered twice")
    _REGISTRY[cfg.name] = fn
    return fn


def create_variant(name: str, **overrides) -> C.VariantConfig:
    """The registered variant `name`, optionally with overrides (unknown keys are an error)."""
    _load()
    replicate = _REPLICATE.fullmatch(name) if name not in _REGISTRY else None
    if replicate:
        try:
            of = create_variant(replicate["of"])
        except KeyError:
            of = None  # not a replicate of anything: the error below names `name`
        if of is not None:
            return _replicate(of, int(replicate["seed"]), **overrides)
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f"; similar: `{close[0]}`" if close else ""
        raise KeyError(f"no variant `{name}`{hint}")
    cfg = _REGISTRY[name]()
    if overrides:
        cfg = C.replace(cfg, **overrides)
    return cfg.validate()


def _replicate(cfg: C.VariantConfig, seed: int, **overrides) -> C.VariantConfig:
    of = cfg.name
    if cfg.seed_of is not None or cfg.base_variant:
        raise KeyError(f"no variant `{of}-seed{seed}`: `{of}` "
                       + ("is itself a replicate" if cfg.seed_of else "exports another variant's weights"))
    if seed == cfg.recipe.seed:
        raise KeyError(f"no variant `{of}-seed{seed}`: `{of}` is trained with seed {seed} already")
    cfg = C.replace(cfg, name=f"{of}-seed{seed}", seed_of=of, recipe={"seed": seed},
                    description=f"{cfg.description} (repeated with training seed {seed})")
    if overrides:
        cfg = C.replace(cfg, **overrides)
    return cfg.validate()


def list_variants() -> list[str]:
    _load()
    from .variants import REPLICATES

    return list(_REGISTRY) + list(REPLICATES)


def _load():
    from . import variants  # noqa: F401  (registers on import)
