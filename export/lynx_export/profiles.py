"""Build profiles: what a whole build of the Lynx stages starts from, its data and its step counts.

`zoo` is the shipped zoo: it starts from the shipped foundation (`onnx/foundation/`: tokenizer, ViT,
base and chat backbones, built once by `python -m lynx_export foundation`) and trains the Lynx
stages of every variant. `smoke` is a tiny build for CI with the same code paths: it builds the
`smoke` foundation plan (seconds) into its work folder first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .config import GenerationDefaults


@dataclass(frozen=True)
class Profile:
    name: str = "zoo"  # recorded in each manifest's provenance
    foundation_plan: Optional[str] = None  # None: the shipped onnx/foundation/; else a plan built into work/ (foundation.PLANS)
    n_train: int = 12000  # generated training records (train split)
    n_val: int = 600  # generated validation records (goldens come from here)
    n_text: int = 16000  # generated corpus passages / text instructions (half describe a picture in words)
    data_seed: int = 1  # seed of the generated training data
    step_scale: float = 1.0  # multiplies every variant's stage steps
    goldens: int = 3  # golden items per variant (images and a video)
    max_new_tokens: int = 24  # generation default written to manifests and used by goldens
    generation: GenerationDefaults = field(default_factory=GenerationDefaults)  # the rest of the manifests' decoding


PROFILES = {
    "zoo": Profile(),
    "smoke": Profile(name="smoke", foundation_plan="smoke", n_train=300, n_val=40, n_text=300, step_scale=0.05,
                     goldens=2, max_new_tokens=12),
}
