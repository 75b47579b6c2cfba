"""What every Lynx variant starts from: a foundation folder's tokenizer, ViT and base and chat
backbones (the analogues of the EVA-CLIP and Vicuna checkpoints Lynx downloads).

The zoo reads the shipped `onnx/foundation/` (written by `python -m lynx_export foundation`):
`foundation.json` names each file with its sha256, and each component with its config; the weights
are safetensors (tensors only: nothing runs on load). Every file is verified when the folder is
opened, so a damaged or hand-edited checkpoint is an error naming it, never a silent other model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import BackboneRef, ConfigError, DecoderConfig, Flavour, VisionConfig, from_dict
from .onnx_io import sha256_file

FORMAT = 1  # the foundation.json layout this reader understands (foundation.FORMAT)


class FoundationError(ValueError):
    """A foundation folder is missing, damaged, or lacks what a build asks of it."""


@dataclass(frozen=True)
class Pretrained:
    """A verified foundation folder."""

    folder: Path
    doc: dict  # foundation.json

    @classmethod
    def open(cls, folder: Path) -> "Pretrained":
        folder = Path(folder)
        path = folder / "foundation.json"
        if not path.exists():
            raise FoundationError(f"{path}: no foundation here; the shipped one is onnx/foundation/ (build one with "
                                  "`python -m lynx_export foundation`, docs/exporter.md)")
        try:
            doc = json.loads(path.read_text())
        except ValueError as e:
            raise FoundationError(f"{path}: not JSON ({e})") from None
        if doc.get("format") != FORMAT:
            raise FoundationError(f"{path}: format `{doc.get('format')}`, this exporter reads format {FORMAT}")
        for name, entry in doc.get("files", {}).items():
            f = folder / name
            if not f.exists():
                raise FoundationError(f"{path}: lists `{name}`, which is missing from {folder}")
            if sha256_file(f) != entry["sha256"]:
                raise FoundationError(f"{f}: sha256 differs from the one in {path.name} (damaged or replaced)")
        for name in ("tokenizer.json", "vit.safetensors"):
            if name not in doc.get("files", {}):
                raise FoundationError(f"{path}: `files` lacks `{name}`")
        return cls(folder, doc)

    # -- identities (cache keys of everything built on top) --------------------------------------
    def file_key(self, name: str) -> str:
        return self.doc["files"][name]["sha256"][:16]

    def tokenizer_key(self) -> str:
        return self.file_key("tokenizer.json")

    def vit_key(self) -> str:
        return self.file_key("vit.safetensors")

    def backbone_key(self, ref: BackboneRef) -> str:
        return self.file_key(self._file(ref))

    # -- components ------------------------------------------------------------------------------
    def tokenizer_path(self) -> Path:
        return self.folder / "tokenizer.json"

    def vision_config(self) -> VisionConfig:
        return self._config(VisionConfig, "vit")

    def vit_state(self) -> dict:
        return self._load("vit.safetensors")

    def decoder_config(self, ref: BackboneRef) -> DecoderConfig:
        self._file(ref)
        return self._config(DecoderConfig, self._component(ref))

    def backbone_state(self, ref: BackboneRef) -> dict:
        return self._load(self._file(ref))

    def backbones(self) -> list[str]:
        """The backbone checkpoints it holds: ["llama-small-base", "llama-small-chat", ...]."""
        return sorted(n.removesuffix(".safetensors") for n in self.doc["files"]
                      if n.endswith((("-base.safetensors", "-chat.safetensors"))))

    @staticmethod
    def _component(ref: BackboneRef) -> str:
        return f"{ref.family.value}-{ref.size}-{'chat' if ref.flavour is Flavour.CHAT else 'base'}"

    def _file(self, ref: BackboneRef) -> str:
        name = f"{self._component(ref)}.safetensors"
        if name not in self.doc["files"]:
            raise FoundationError(f"{self.folder}: no backbone `{self._component(ref)}` (holds "
                                  f"{', '.join(self.backbones()) or 'none'}); build it with `python -m lynx_export "
                                  f"foundation --backbones {ref.family.value}-{ref.size}`")
        return name

    def _config(self, cls, component: str):
        try:
            return from_dict(cls, self.doc["components"][component]["config"], f"foundation.json components.{component}")
        except KeyError:
            raise FoundationError(f"{self.folder / 'foundation.json'}: no `components.{component}.config`") from None
        except ConfigError as e:
            raise FoundationError(str(e)) from None

    def _load(self, name: str) -> dict:
        from safetensors.torch import load_file
        return load_file(str(self.folder / name))
