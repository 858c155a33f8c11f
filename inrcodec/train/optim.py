"""Adam for the fit, without `torch.optim`.

The first use of any `torch.optim` optimizer imports `torch._dynamo` (its
methods are wrapped to opt out of compilation), which takes ~1.5 s on the
2-core machine: 10 % of an `--effort fast` encode and 15 % of a 10 s
`--time-limit`, paid by every `inrcodec encode` process. The update is the
textbook one (Kingma & Ba, 2015), as `torch.optim.Adam` computes it with its
default options, on lists of tensors at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class Adam:
    """Adam over parameter groups, each with its own learning rate.

    `param_groups` is a list of {"params": [...], "lr": float}, as in
    `torch.optim`: the caller sets each group's "lr" before `step`.
    Parameters without a gradient are left alone, moments included (the
    dropped finest latent level gets none).
    """

    def __init__(self, groups: Iterable[Iterable[torch.nn.Parameter]],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.param_groups: list[dict] = [{"params": list(params), "lr": 0.0} for params in groups]
        self.betas, self.eps = betas, eps
        params = [p for group in self.param_groups for p in group["params"]]
        self._moments = {id(p): (torch.zeros_like(p), torch.zeros_like(p)) for p in params}
        self._steps = {id(p): 0 for p in params}  # per parameter: one may miss steps

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for group in self.param_groups:
            # Parameters share a step count unless some missed a step: group by it.
            by_count: dict[int, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is not None:
                    self._steps[id(p)] += 1
                    by_count.setdefault(self._steps[id(p)], []).append(p)
            for count, params in by_count.items():
                grads = [p.grad for p in params]
                firsts = [self._moments[id(p)][0] for p in params]
                seconds = [self._moments[id(p)][1] for p in params]
                torch._foreach_lerp_(firsts, grads, 1 - beta1)
                torch._foreach_mul_(seconds, beta2)
                torch._foreach_addcmul_(seconds, grads, grads, 1 - beta2)
                denominators = torch._foreach_sqrt(seconds)
                torch._foreach_div_(denominators, math.sqrt(1 - beta2**count))
                torch._foreach_add_(denominators, self.eps)
                torch._foreach_addcdiv_(params, firsts, denominators, -group["lr"] / (1 - beta1**count))
