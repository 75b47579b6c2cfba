"""Importers: models made elsewhere turned into zoo variants (`origin: {kind: imported}`, docs/manifest.md).

    python -m lynx_export import hf DIR --name NAME [--zoo ROOT]

- `hf`: a Hugging Face LLaVA checkpoint folder (`LlavaForConditionalGeneration`, as `save_pretrained`
  writes it) -> vision, projector, embedding and decoder graphs with Optimum's tensor names and a KV
  cache, the checkpoint's tokenizer.json, a prompt template from its chat template and its image
  preprocessing (`hf.py`, graphs in `hf_graphs.py`).

Each importer reads its source offline (nothing is downloaded) and refuses what it cannot
reproduce exactly with a `CheckpointError` naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path


class CheckpointError(ValueError):
    """A source the importer cannot turn into a variant: `file`: field `field`: what and the way out."""

    def __init__(self, file: Path | str, field: str | None, message: str):
        self.file, self.field = Path(file), field
        where = f"`{file}`" + (f": field `{field}`" if field else "")
        super().__init__(f"{where}: {message}")
