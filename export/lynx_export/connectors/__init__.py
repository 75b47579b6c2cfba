"""Connector kinds, registered once: each module in this package owns one kind (its settings, its
placement, its token count, the module behind its `connector` graph and its manifest fields).

To add a kind: write `connectors/NAME.py` with a `ConnectorSpec` subclass, add its enum value to
`config.ConnectorKind` (and any new flat setting to `config.ConnectorConfig`), list it in `KINDS`
below, and give the runtime the same value with its family (`ConnectorKind` in
src/manifest/raw.rs). A variant that uses it goes in variants.py. docs/architecture.md has the
walk-through.
"""

from __future__ import annotations

from ..config import ConfigError, ConnectorConfig, ConnectorKind, DecoderConfig
from .base import MANIFEST_FIELDS, ConnectorSpec, Placement
from .cross_attention import CrossAttentionSpec
from .none import NoConnectorSpec
from .projector import ProjectorSpec
from .resampler import ResamplerSpec

KINDS: dict[ConnectorKind, ConnectorSpec] = {
    s.kind: s for s in (ResamplerSpec(), ProjectorSpec(), CrossAttentionSpec(), NoConnectorSpec())}

__all__ = ["KINDS", "MANIFEST_FIELDS", "ConnectorSpec", "Placement", "spec", "settings", "build_connector"]


def spec(kind: ConnectorKind) -> ConnectorSpec:
    if kind not in KINDS:
        raise ConfigError(f"connector kind `{kind.value}` has no module in lynx_export/connectors")
    return KINDS[kind]


def settings(flat: ConnectorConfig, where: str = ""):
    """The typed settings of `flat`'s kind (see `ConnectorSpec.settings`)."""
    return spec(flat.kind).settings(flat, where)


def build_connector(flat: ConnectorConfig, vision_dim: int, dec: DecoderConfig, patches: int, n_cross: int):
    """The connector module of `flat`'s kind, or None for a blind variant."""
    return spec(flat.kind).build(settings(flat), vision_dim, dec, patches, n_cross)
