"""What a connector kind declares: its settings, where its output goes, its token count, the module
behind its `connector` graph and its manifest fields (docs/contract.md section 2, docs/manifest.md).

The variant's `ConnectorConfig` (config.py) is the file layer: the flat settings that variant
overrides write and that cache keys hash. `ConnectorSpec.settings` turns it into the kind's own
typed settings and refuses a setting the kind does not read, so a variant cannot change something
that has no effect.
"""

from __future__ import annotations

import dataclasses
import enum
import typing

from torch import nn

from ..config import ConfigError, ConnectorConfig, ConnectorKind, DecoderConfig

# Manifest fields of the `axes.connector` block and `axes.cross_attention_every` (the schema the
# runtime reads): a kind fills those it has, the others are written as null.
MANIFEST_FIELDS = ("depth", "latents", "cross_attention_every")


class Placement(str, enum.Enum):
    """Where the connector's output enters the decoder."""

    PREFIX = "prefix"  # visual_embeds placed before the text
    CROSS = "cross"  # per-layer keys/values read by gated cross-attention blocks
    NONE = "none"  # no vision at all (blind control)


class ConnectorSpec:
    """One connector kind. Subclasses set the class attributes and override the methods they need."""

    kind: typing.ClassVar[ConnectorKind]
    placement: typing.ClassVar[Placement]
    settings_type: typing.ClassVar[type]  # a frozen dataclass; its field names are ConnectorConfig fields

    def settings(self, flat: ConnectorConfig, where: str = ""):
        """The kind's typed settings from the variant's flat connector config."""
        names = {f.name for f in dataclasses.fields(self.settings_type)}
        default = ConnectorConfig()
        for f in dataclasses.fields(ConnectorConfig):
            if f.name != "kind" and f.name not in names and getattr(flat, f.name) != getattr(default, f.name):
                raise ConfigError(f"{where or 'connector'}: kind `{self.kind.value}` has no setting `{f.name}` "
                                  f"(it reads: {', '.join(sorted(names)) or 'nothing'})")
        return self.settings_type(**{n: getattr(flat, n) for n in names})

    def visual_tokens(self, s, resolution: int, patch: int) -> int | None:
        """Prefix tokens per image (a projector's: per frame), or the cross-attention memory length."""
        return None

    def graph_tokens(self, s, resolution: int, patch: int) -> int | str | None:
        """The token axis of the connector graph's output: a number, or a symbolic name where it
        varies with the frame count."""
        return self.visual_tokens(s, resolution, patch)

    def prepare_decoder(self, decoder, s) -> int:
        """Adds what the kind needs inside the decoder (before adapters); returns the number of
        cross-attention blocks it added."""
        return 0

    def build(self, s, vision_dim: int, dec: DecoderConfig, patches: int, n_cross: int) -> nn.Module | None:
        """The module behind the `connector` graph: (B, F, P, vision_dim) -> what `placement` says
        (a prefix kind's module is a `models.layers.PrefixConnector`)."""
        return None

    def manifest_fields(self, s) -> dict:
        """Values for MANIFEST_FIELDS this kind has."""
        return {}
