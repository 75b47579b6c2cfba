"""Parameter-efficient additions to a frozen LLM.

- `BottleneckAdapter`: Houlsby et al. 2019 down/up projection with a residual, inserted after
  every `adapter_freq`-th decoder layer as in Lynx (`adapter_freq: 2`). The up projection starts
  at zero, so an untrained adapter is the identity.
- `LoRALinear`: Hu et al. 2021; y = W x + (alpha / r) * B A x, with B starting at zero. The low
  rank factors stay separate MatMuls in ONNX so the frozen W is shared with other variants.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BottleneckAdapter(nn.Module):
    def __init__(self, dim: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):  # (B, T, D) -> (B, T, D)
        return x + self.up(F.gelu(self.down(x), approximate="tanh"))


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features) / rank)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x):
        return self.base(x) + torch.matmul(torch.matmul(x, self.lora_a.t()), self.lora_b.t()) * self.scale
