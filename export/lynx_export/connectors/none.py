"""The blind control's connector: none. No vision graph, no connector graph, no visual tokens."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConnectorKind
from .base import ConnectorSpec, Placement


@dataclass(frozen=True)
class NoConnectorConfig:
    """No settings."""


class NoConnectorSpec(ConnectorSpec):
    kind = ConnectorKind.NONE
    placement = Placement.NONE
    settings_type = NoConnectorConfig
