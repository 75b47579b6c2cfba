import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# One torch thread: the tests' models are tiny, so a second thread buys nothing (the recall test:
# 11.5 vs 11.9 s on a quiet machine, 7.2 vs 7.9 s beside another process's two-thread matmuls).
torch.set_num_threads(1)

from lynx_export.config import DecoderConfig, Family, VisionConfig  # noqa: E402
from lynx_export.profiles import PROFILES  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Builds under test set their own thread count (`run_build(..., threads=2)`); the next test
    starts from one again."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_foundation(tmp_path_factory):
    """A tiny foundation (the `smoke` plan, every backbone), built once per test session; its work
    folder (data, caches, stages) is the sibling `work`."""
    from lynx_export.foundation import PLANS, STAGES, Foundation

    root = tmp_path_factory.mktemp("smoke-foundation")
    out = root / "out"
    plan = PLANS["smoke"]
    Foundation(plan, root / "work", out, lambda m: None).build(STAGES, list(plan.backbones))
    return out


@pytest.fixture
def tiny_vision():
    return VisionConfig(patch=8, width=32, layers=2, heads=2)


def tiny_decoder(family: Family = Family.LLAMA) -> DecoderConfig:
    return DecoderConfig(family, vocab_size=64, hidden=32, layers=2, heads=2, ffn=48, max_positions=64)


@pytest.fixture
def smoke_profile():
    return PROFILES["smoke"]
