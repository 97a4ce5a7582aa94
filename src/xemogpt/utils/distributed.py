"""Collectives the rest of the project needs without a training loop of its own."""

from __future__ import annotations

from typing import Any

import torch


def gather_objects(trainer: Any | None, obj: Any) -> list[Any]:
    """``obj`` of every rank (a list of one outside distributed runs); ``trainer`` None: the default process group's
    ranks, when there is one."""
    dist = torch.distributed
    if trainer is None:
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
            return [obj]
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    if trainer.world_size <= 1 or not torch.distributed.is_initialized():
        return [obj]
    out = [None] * trainer.world_size
    torch.distributed.all_gather_object(out, obj)
    return out
