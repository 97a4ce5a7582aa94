"""The optimiser every training stage uses: AdamW with a linear warm-up and a cosine decay to a floor.

Settings (a stage's keys): ``lr`` (peak), ``weight_decay`` (0.01), ``warmup`` (a fraction of the steps below 1, else
a step count; 0.05), ``min_lr_ratio`` (the floor, as a fraction of ``lr``; 0.05).
"""

from __future__ import annotations

import math
from typing import Any

import torch

DEFAULTS = {"lr": 1e-4, "weight_decay": 0.01, "warmup": 0.05, "min_lr_ratio": 0.05}


def stage_optimizer(params: list[torch.nn.Parameter], settings: dict[str, Any], total_steps: int,
                    what: str = "this stage") -> dict[str, Any]:
    """-> Lightning's ``configure_optimizers`` dict for ``params`` over ``total_steps`` optimiser steps."""
    if not params:
        raise ValueError(f"{what} has nothing to train")
    s = {**DEFAULTS, **{k: v for k, v in settings.items() if k in DEFAULTS and v is not None}}
    opt = torch.optim.AdamW(params, lr=float(s["lr"]), weight_decay=float(s["weight_decay"]), betas=(0.9, 0.98))
    total = max(1, int(total_steps))
    warmup = int(s["warmup"] * total) if float(s["warmup"]) < 1 else int(s["warmup"])
    floor = float(s["min_lr_ratio"])

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
