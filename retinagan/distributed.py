"""Data-parallel training under torchrun: one process per device, the global batch split.

`torchrun --nproc_per_node N train.py KIND ...` runs any training kind on N processes (NCCL
on GPUs, gloo on CPUs). `--batch-size` stays the *global* batch: each process takes its
contiguous 1/N of every batch. All processes draw the same batch indices and augmentation
parameters from the same seeded generator and keep their own slice, which makes this a
distributed sampler whose union is exactly the single-process batch. After each backward
the gradients of the optimiser's parameters are averaged across processes (one all-reduce
of a flat buffer), then every process takes the same optimiser step.

Why not the DistributedDataParallel wrapper: the adversarial steps train sub-networks
(the encoder alone, two discriminators) with their own optimisers and several forwards per
backward; the wrapper's reducer expects one forward-backward per iteration of the wrapped
module. Averaging the gradients per optimiser step is what the wrapper does, said plainly.

So that N processes compute what one process computes with the same global batch:
- BatchNorm layers become GlobalBatchNorm2d: batch statistics over the global batch
  (torch's SyncBatchNorm runs on GPUs only);
- losses that sum over the batch before dividing (soft Dice) sum across processes
  (global_sum, differentiable);
- latent noise is drawn for the global batch and sliced (randn).
Dropout masks still differ per process, as in any data-parallel run.
Logging, sample grids, training states and checkpoints are written by rank 0 alone;
every rank resumes from the same state folder (a shared filesystem across nodes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


WORLD = World()


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else stay single.

    Returns the world and this process's device (cuda:LOCAL_RANK when device is a GPU)."""
    global WORLD
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        WORLD = World()
        return WORLD, device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    WORLD = World(rank, size, local_rank)
    return WORLD, device


def teardown() -> None:
    global WORLD
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    WORLD = World()


def local_batch(global_batch: int) -> int:
    if global_batch % WORLD.size:
        raise ValueError(f"--batch-size {global_batch} (the global batch) must divide by the {WORLD.size} processes")
    return global_batch // WORLD.size


def shard(batch):
    """This process's contiguous slice of a global batch (a tensor, or indices)."""
    if WORLD.size == 1:
        return batch
    size = local_batch(len(batch))
    return batch[WORLD.rank * size : (WORLD.rank + 1) * size]


def randn(like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise shaped like this process's rows: drawn for the global batch
    (every process keeps the same global RNG stream) and sliced, so N processes use the
    noise one process would."""
    if WORLD.size == 1:
        return torch.randn_like(like)
    noise = torch.randn((like.shape[0] * WORLD.size, *like.shape[1:]), dtype=like.dtype, device=like.device)
    return shard(noise)


def global_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum over processes, with gradients (the backward sums the gradients back)."""
    if WORLD.size == 1:
        return value
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(value)


def global_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean over processes of a detached value (for logging)."""
    if WORLD.size == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / WORLD.size


def agree_max(value: float, device: torch.device) -> float:
    """The largest of the processes' values, known to all (e.g. how far the clock has run)."""
    if WORLD.size == 1:
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def step(optimizer: torch.optim.Optimizer) -> None:
    """Average the gradients across processes (one flat all-reduce), then step."""
    if WORLD.size > 1:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= WORLD.size
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()
    optimizer.step()


def broadcast_parameters(*modules: nn.Module) -> None:
    """Start every process from rank 0's weights (same seed gives the same, but be sure)."""
    if WORLD.size == 1:
        return
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch, on any backend.

    Same parameters and buffers as nn.BatchNorm2d (checkpoints do not change); in eval mode,
    or in a single process, it is nn.BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or WORLD.size == 1:
            return super().forward(x)
        dtype, x = x.dtype, x.float()  # statistics in fp32 whatever autocast made x (as BatchNorm keeps them)
        count = x.shape[0] * x.shape[2] * x.shape[3] * WORLD.size
        mean = global_sum(x.sum(dim=(0, 2, 3))) / count
        centred = x - mean[None, :, None, None]
        var = global_sum(centred.pow(2).sum(dim=(0, 2, 3))) / count  # two passes, as accurate as BatchNorm's
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / max(count - 1, 1), momentum)
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(dtype)


def global_batchnorm(module: nn.Module) -> nn.Module:
    """Swap every nn.BatchNorm2d in module for GlobalBatchNorm2d (in place; state kept)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            replacement.to(device=child.weight.device if child.affine else None)
            setattr(module, name, replacement)
        else:
            global_batchnorm(child)
    return module

